"""JSON log lines: one object per record, with the request id of the request being served."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn.config import Config

from scim_bridge import context
from scim_bridge import logs
from scim_bridge.gunicorn_logs import ACCESS_FORMAT
from scim_bridge.gunicorn_logs import JsonAtoms
from scim_bridge.gunicorn_logs import JsonLogger
from scim_bridge.gunicorn_logs import LazyJsonAtoms


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


def _served() -> tuple[Any, Any, dict[str, Any], timedelta]:
    """A response, request and environ as gunicorn hands them to its access log."""
    response = SimpleNamespace(
        status="404 NOT FOUND",
        sent=123,
        headers=[("Content-Type", "application/scim+json"), ("X-Request-Id", "rid-9")],
    )
    request = SimpleNamespace(headers=[("HOST", "bridge"), ("USER-AGENT", "Entra/1")])
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/scim/v2/Users?filter=x",
        "PATH_INFO": "/scim/v2/Users",
        "QUERY_STRING": "filter=x",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_USER_AGENT": "Entra/1",
    }
    return response, request, environ, timedelta(microseconds=12345)


@pytest.mark.parametrize(
    "line_format",
    [
        ACCESS_FORMAT,
        '{"r": %(r)s, "agent": %({user-agent}i)s, "addr": %({remote_addr}e)s, "a": %(a)s, '
        '"missing": %({x-none}o)s, "t": %(T)s, "q": %(q)s}',
    ],
)
def test_the_access_line_works_out_only_the_atoms_it_names_and_reads_the_same(
    line_format: str,
) -> None:
    logger = JsonLogger(Config())
    served = _served()
    lazy = json.loads(line_format % LazyJsonAtoms(logger, *served))
    full = json.loads(line_format % JsonAtoms(dict(logger.atoms(*served))))
    lazy.pop("time", None), full.pop("time", None)  # the clock moved between the two
    assert lazy == full
    if line_format == ACCESS_FORMAT:
        assert lazy["request_id"] == "rid-9" and lazy["status"] == 404 and lazy["bytes"] == 123
