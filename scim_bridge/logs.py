"""Logging set-up, one for every process the bridge runs: the CLI, the worker, gunicorn's workers.

The level comes from ``SCIM_BRIDGE_LOG_LEVEL`` (default INFO), the format from
``SCIM_BRIDGE_LOG_FORMAT``: ``json`` (default; one object per line, for log pipelines) or ``text``
(for a terminal). A JSON line carries the request id of the SCIM request it was logged in, so the
app's lines, gunicorn's access line and the audit log can be joined on it.

Nothing the bridge logs holds a secret: credentials are never formatted into messages, and access
logs carry the path only.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC
from datetime import datetime
from typing import Any

from scim_bridge import context

FORMAT_ENV = "SCIM_BRIDGE_LOG_FORMAT"
FORMATS = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_format() -> str:
    """``json`` or ``text``; an unknown value falls back to JSON (and is reported by configure)."""
    value = os.environ.get(FORMAT_ENV, "json").strip().lower()
    return value if value in FORMATS else "json"


def iso_time(timestamp: float) -> str:
    """``2024-05-01T12:00:00.123Z``: ISO 8601 in UTC, to the millisecond."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id, exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": context.current().request_id,
        }
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def formatter() -> logging.Formatter:
    return JsonFormatter() if log_format() == "json" else logging.Formatter(TEXT_FORMAT)


def configure() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(formatter())
    logging.basicConfig(
        level=os.environ.get("SCIM_BRIDGE_LOG_LEVEL", "INFO").upper(), handlers=[handler]
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    asked = os.environ.get(FORMAT_ENV)
    if asked is not None and asked.strip().lower() not in FORMATS:
        logging.getLogger(__name__).warning(
            "%s=%r is neither json nor text: logging JSON", FORMAT_ENV, asked
        )
