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
import traceback
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


# One encoder for every atom: ``json.dumps`` with ``default`` builds a new one per call.
_json = json.JSONEncoder(default=str).encode


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
        return _json(dict.__getitem__(self, key))


class LazyJsonAtoms(JsonAtoms):
    """The atoms of one access line, worked out as the format names them.

    gunicorn's own ``atoms`` copies every request header, response header and environ entry
    into a dict for every line, though a format names a handful: the ones :data:`ACCESS_FORMAT`
    names are given up front, a ``{name}i``/``{name}o``/``{name}e`` atom is looked up when asked,
    and any other atom comes from gunicorn's full set, made once if a format asks for one.
    """

    def __init__(self, logger: JsonLogger, resp: Any, req: Any, environ: Any, took: Any) -> None:
        status = str(resp.status).split(None, 1)[0] if resp.status is not None else ""
        method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
        dict.__init__(
            self,
            h=environ.get("REMOTE_ADDR", "-"),
            m=method,
            U=path,
            s=status,
            B=getattr(resp, "sent", None),
            **_line_atoms(method, path, status, took),
        )
        self._sources = (logger, resp, req, environ, took)
        self._full: dict[str, Any] | None = None

    def __getitem__(self, key: str) -> str:
        if key.startswith("{"):
            key = key.lower()
        if not dict.__contains__(self, key):
            found, value = self._look_up(key)
            if not found:
                return "null"
            dict.__setitem__(self, key, value)
        return super().__getitem__(key)

    def _look_up(self, key: str) -> tuple[bool, Any]:
        logger, resp, req, environ, took = self._sources
        if key.startswith("{") and key[-2:] in ("}i", "}o", "}e"):
            name, kind = key[1:-2], key[-1]
            if kind == "e":
                pairs = environ.items()
            else:
                pairs = getattr(req if kind == "i" else resp, "headers", None) or ()
            found, value = False, None
            for header, each in pairs:  # the last one, as gunicorn's dict of them keeps
                if header.lower() == name:
                    found, value = True, each
            return found, value
        if self._full is None:
            self._full = dict(logger.atoms(resp, req, environ, took))
        return key in self._full, self._full.get(key)


def _line_atoms(method: Any, path: Any, status: str, took: timedelta) -> dict[str, Any]:
    """The atoms :data:`ACCESS_FORMAT` adds to gunicorn's, from its method, path and status."""
    return {
        "time": logs.iso_time(time.time()),
        "pid": os.getpid(),  # which worker served it
        "status": int(status) if status.isdigit() else None,
        "duration": round(took.total_seconds(), 6),
        "message": f"{method} {path} {status}",
    }


class JsonLogger(glogging.Logger):
    """gunicorn's logger with JSON error lines and access lines built by :class:`LazyJsonAtoms`."""

    def access(
        self,
        resp: Response,
        req: Request,
        environ: MutableMapping[str, Any],
        request_time: timedelta,
    ) -> None:
        """gunicorn's ``access``, with the atoms worked out only as the format asks for them
        (:class:`LazyJsonAtoms`): the line is the same, for about half the work."""
        if not self.access_log_enabled:
            return
        try:
            atoms = LazyJsonAtoms(self, resp, req, environ, request_time)
            self.access_log.info(self.cfg.access_log_format, atoms)
        except Exception:
            self.error(traceback.format_exc())

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
        line = _line_atoms(atoms.get("m"), atoms.get("U"), str(atoms.get("s") or ""), request_time)
        return {**atoms, **line}  # type: ignore[typeddict-item]
