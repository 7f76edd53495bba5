"""What a handler gets (the caller, merged parameters) and what it gives back (a Reply)."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

from werkzeug.datastructures import MultiDict

from tests.gitlab_double.errors import bad_params
from tests.gitlab_double.errors import forbidden
from tests.gitlab_double.records import TokenRecord
from tests.gitlab_double.records import UserRecord

_TRUE = {"true", "1", "t", "yes", "y", "on"}


@dataclass
class Caller:
    """The token's user; `is_admin` already accounts for Admin Mode (gitlab.md §1.1)."""

    user: UserRecord
    token: TokenRecord
    is_admin: bool

    def require_admin(self) -> None:
        """`authenticated_as_admin!` answers 403 `{"message":"403 Forbidden"}`."""
        if not self.is_admin:
            raise forbidden()


@dataclass
class Call:
    caller: Caller
    params: dict[str, Any]
    query: MultiDict[str, str]
    base_url: str
    path: str


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    plain: bool = False  # body is text/plain (Rack::Attack's `Retry later`), not JSON


def to_bool(value: Any) -> bool:
    """Grape's Boolean coercion: JSON booleans, or strings like "true"/"1"."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def to_int(name: str, value: Any) -> int:
    """Grape's Integer coercion; anything else is `{"error": "<name> is invalid"}`."""
    if isinstance(value, bool):
        raise bad_params(f"{name} is invalid")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_params(f"{name} is invalid") from None


def present(params: dict[str, Any], name: str) -> bool:
    return params.get(name) not in (None, "")


def require(params: dict[str, Any], *names: str) -> None:
    """`requires :a, :b`: all missing names are listed in one message."""
    missing = [f"{n} is missing" for n in names if not present(params, n)]
    if missing:
        raise bad_params(*missing)


def all_or_none(params: dict[str, Any], *names: str) -> None:
    """`all_or_none_of :extern_uid, :provider`."""
    given = [n for n in names if present(params, n)]
    if given and len(given) != len(names):
        raise bad_params(f"{', '.join(names)} provide all or none of parameters")
