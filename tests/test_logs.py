"""JSON log lines: one object per record, with the request id of the request being served."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from types import SimpleNamespace

import pytest

from scim_bridge import context
from scim_bridge import logs
from scim_bridge.gunicorn_logs import ACCESS_FORMAT
from scim_bridge.gunicorn_logs import JsonAtoms


def record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.getLogger("scim_bridge.test").makeRecord(
        "scim_bridge.test",
        logging.WARNING,
        __file__,
        1,
        message,
        args,
        exc_info,  # type: ignore[arg-type]
    )


def test_a_json_line_carries_the_bound_request_id() -> None:
    bound = context.RequestContext(request_id="rid-7f3a", actor="entra")
    with context.bound(bound):
        line = logs.JsonFormatter().format(record('refused "%s"\nnext', "a\\b"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["request_id"] == "rid-7f3a"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "scim_bridge.test"
    assert entry["message"] == 'refused "a\\b"\nnext'
    when = datetime.fromisoformat(entry["time"])
    assert when.utcoffset() is not None and when.utcoffset().total_seconds() == 0
    assert "exception" not in entry


def test_outside_a_request_the_request_id_is_null_and_exceptions_are_kept() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        line = logs.JsonFormatter().format(record("failed", exc_info=sys.exc_info()))
    entry = json.loads(line)
    assert entry["request_id"] is None
    assert "ValueError: boom" in entry["exception"]


@pytest.mark.parametrize(
    ("setting", "expected"), [(None, "json"), ("json", "json"), ("TEXT", "text"), ("xml", "json")]
)
def test_the_format_follows_the_setting(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, expected: str
) -> None:
    if setting is None:
        monkeypatch.delenv(logs.FORMAT_ENV, raising=False)
    else:
        monkeypatch.setenv(logs.FORMAT_ENV, setting)
    assert logs.log_format() == expected
    assert isinstance(logs.formatter(), logs.JsonFormatter) is (expected == "json")


def test_the_access_line_is_json_whatever_the_client_sent() -> None:
    atoms = {
        "time": "2025-01-01T00:00:00.000Z",
        "message": 'GET /scim/v2/Users/a"b\\c 404',
        "m": "GET",
        "U": '/scim/v2/Users/a"b\\c\n',
        "status": 404,
        "duration": 0.0123,
        "B": None,
        "h": "127.0.0.1",
        "{x-request-id}o": "rid-1",
        "q": 'filter=userName eq "jane@contoso.com"',
        "{wsgi.input}e": SimpleNamespace(),
    }
    entry = json.loads(ACCESS_FORMAT % JsonAtoms(atoms))
    assert entry["path"] == '/scim/v2/Users/a"b\\c\n'
    assert entry["status"] == 404 and entry["duration_s"] == 0.0123 and entry["bytes"] is None
    assert entry["request_id"] == "rid-1"
    assert "jane" not in json.dumps(entry), "the query string is never logged"
    del atoms["{x-request-id}o"]  # no X-Request-Id header: not a SCIM request
    without_id = json.loads(ACCESS_FORMAT % JsonAtoms(atoms))
    assert without_id["request_id"] is None
