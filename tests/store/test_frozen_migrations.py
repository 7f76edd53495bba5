"""Migrations are frozen: they import nothing live, and 0003's copy of the hash is the live one."""

from __future__ import annotations

import ast
import importlib.util
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from scim_bridge.store import audit

VERSIONS = Path(audit.__file__).parent / "migrations" / "versions"

# Events as the chain meets them: naive (SQLite) and aware instants in and out of UTC, ISO text,
# non-ASCII text, whole and fractional floats (JSONB's 1e16), nesting, and no detail at all.
EVENTS: list[dict[str, Any]] = [
    {
        "seq": 1,
        "prev_hash": audit.GENESIS,
        "at": datetime(2024, 5, 1, 12, 0, 0),
        "request_id": "r-1",
        "actor": "entra",
        "source": "scim",
        "action": "user.create",
        "target": "Users/1",
        "detail": {"userName": "jane@contoso.com", "active": True},
    },
    {
        "seq": 2,
        "prev_hash": "a" * 64,
        "at": datetime(2024, 5, 1, 14, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        "request_id": None,
        "actor": "cli:zoë",
        "source": "cli",
        "action": "gitlab.user.block",
        "target": "Élodie Müller ✓",
        "detail": {"sizes": [1.0, 2.5, 1e16], "nested": {"count": 3.0, "none": None}},
    },
    {
        "seq": 3,
        "prev_hash": "b" * 64,
        "at": "2024-05-02T08:00:00.000001+00:00",
        "request_id": "r-3",
        "actor": None,
        "source": None,
        "action": "token.revoke",
        "target": None,
        "detail": None,
    },
    {
        "seq": 1_000_000,
        "prev_hash": "c" * 64,
        "at": datetime(2025, 1, 1, tzinfo=UTC),
        "request_id": "r-4",
        "actor": "worker",
        "source": "worker",
        "action": "group.member.add",
        "target": "acme/engineering",
        "detail": {"keys": ["z", "a"], "b": {"y": 1, "x": 2}},
    },
]


def migration(filename: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"frozen_{filename[:-3]}", VERSIONS / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: str(event["seq"]))
def test_0003s_frozen_hash_is_the_live_one(event: dict[str, Any]) -> None:
    """If this fails, the live hash changed: chains 0003 wrote (and every stored one) break."""
    frozen = migration("0003_trust.py")
    assert frozen._event_hash(event) == audit.event_hash(event)
    assert frozen._canonical(event) == audit.canonical(event)


def test_0003s_frozen_constants_are_the_live_ones() -> None:
    frozen = migration("0003_trust.py")
    assert (frozen.GENESIS, frozen.HEAD_ID, frozen.EVENT_FIELDS) == (
        audit.GENESIS,
        audit.HEAD_ID,
        audit.EVENT_FIELDS,
    )


@pytest.mark.parametrize("path", sorted(VERSIONS.glob("*.py")), ids=lambda path: path.name)
def test_no_migration_imports_live_code(path: Path) -> None:
    """Anywhere in the file, inside functions too: a migration must not follow later code."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {name for name in imported if name.split(".")[0] == "scim_bridge"}, path.name
