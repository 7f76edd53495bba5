"""gunicorn's own logs as JSON lines, like the app's (``SCIM_BRIDGE_LOG_FORMAT=json``).

gunicorn builds an access line by ``access_log_format % atoms``. :class:`JsonAtoms` hands out every
atom as a JSON literal (quoted and escaped, or ``null`` when missing), so :data:`ACCESS_FORMAT` is
valid JSON whatever a client puts in its path or headers. The error log ("Booting worker", worker
timeouts) gets the app's JSON formatter.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import MutableMapping
from datetime import timedelta
from typing import TYPE_CHECKING
from typing import Any

from gunicorn import glogging

from scim_bridge import logs

if TYPE_CHECKING:
    from gunicorn.config import Config
    from gunicorn.glogging import _AtomsDict  # types-gunicorn's own; no class at run time
    from gunicorn.http import Request
    from gunicorn.http.wsgi import Response

    class AccessAtoms(_AtomsDict, total=False):
        """gunicorn's atoms and those :data:`ACCESS_FORMAT` adds."""

        time: str
        pid: int
        status: int | None
        duration: float
        message: str


# The path only, never the query string (a filter may hold an email); the request id is the one
# the SCIM layer answered with, so the line joins the app's lines and the audit log.
ACCESS_FORMAT = (
    '{"time": %(time)s, "level": "INFO", "logger": "gunicorn.access", "message": %(message)s, '
    '"method": %(m)s, "path": %(U)s, "status": %(status)s, "duration_s": %(duration)s, '
    '"bytes": %(B)s, "remote_addr": %(h)s, "pid": %(pid)s, "request_id": %({x-request-id}o)s}'
)


class JsonAtoms(glogging.SafeAtoms):
    """gunicorn's atoms, each read as a JSON literal; header atoms case-insensitively."""

    def __init__(self, atoms: dict[str, Any]) -> None:
        # The atoms as they are: SafeAtoms' own escaping of quotes would be escaped again by JSON.
        dict.__init__(self, atoms)

    def __getitem__(self, key: str) -> str:
        if key.startswith("{"):
            key = key.lower()
        if not dict.__contains__(self, key):
            return "null"
        return json.dumps(dict.__getitem__(self, key), default=str)


class JsonLogger(glogging.Logger):
    """gunicorn's logger with JSON error lines and JSON-safe access atoms."""

    atoms_wrapper_class = JsonAtoms

    def setup(self, cfg: Config) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(logs.JsonFormatter())

    def atoms(
        self,
        resp: Response,
        req: Request,
        environ: MutableMapping[str, Any],
        request_time: timedelta,
    ) -> AccessAtoms:
        atoms = super().atoms(resp, req, environ, request_time)
        status = str(atoms.get("s") or "")
        return {
            **atoms,
            "time": logs.iso_time(time.time()),
            "pid": os.getpid(),  # which worker served it
            "status": int(status) if status.isdigit() else None,
            "duration": round(request_time.total_seconds(), 6),
            "message": f"{atoms.get('m')} {atoms.get('U')} {status}",
        }
