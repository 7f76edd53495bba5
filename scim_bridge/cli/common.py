"""What every command shares: its settings and bridge, and one readable line when it must stop."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any
from typing import NoReturn
from typing import TypeVar

import click

from scim_bridge import context
from scim_bridge.auth.clients import ClientError
from scim_bridge.auth.tokens import TokenError
from scim_bridge.bridge import Bridge
from scim_bridge.provisioning.operator_links import OperatorLinkError
from scim_bridge.settings import Settings
from scim_bridge.settings import SettingsError
from scim_bridge.settings import load_settings
from scim_bridge.store.migrate import SchemaError
from scim_bridge.token_rotation import RotationError
from scim_bridge.token_vault import TokenVaultError

F = TypeVar("F", bound=Callable[..., Any])

# How long a command waits for the jobs it queued before it leaves them to the worker.
REPAIR_SECONDS = 300.0


def operator_context() -> context.RequestContext:
    """Who runs a command that changes something, for the audit trail."""
    try:
        name = getpass.getuser()
    except Exception:  # no user name in a bare container
        name = "unknown"
    return context.RequestContext(actor=f"cli:{name}", source="cli")


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def open_settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        fail(str(error))


def open_bridge(*, migrate_schema: bool = True) -> Bridge:
    try:
        return Bridge(open_settings(), migrate=migrate_schema)
    except SchemaError as error:
        fail(str(error))


def friendly(function: F) -> F:
    """Settings and schema problems end the command with one readable line, not a traceback."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (
            SettingsError,
            SchemaError,
            TokenError,
            ClientError,
            OperatorLinkError,
            TokenVaultError,
            RotationError,
        ) as error:
            fail(str(error))

    return wrapper  # type: ignore[return-value]
