"""Entra's lookups, answered without Flask's dispatch: the bridge's most frequent request.

Before each create or update, Entra asks for the resource by its matching attribute (entra.md
§1.2, ``GET /Users?filter=userName eq "…"``), so a provisioning cycle sends a lookup for every
write, and a quiet cycle sends little else. ``quick_search`` answers one from a single indexed
read; Flask's request context, URL routing, hooks and Response object then cost about a third of
the app's CPU for it (``benchmarks/load.py``, issue 13).

This WSGI middleware takes exactly ``GET <prefix>/<served endpoint>`` (a search of one resource
type, whatever its query) and gives it to :meth:`ScimEndpoints.answer`, which the Flask view calls
too: the same request id, authentication, failure count, rate limit, read transaction, handler and
SCIM error bodies. It writes the answer as werkzeug would, and counts and times it under the labels
Flask's hooks give the same request. Anything else (another method or path, ``HEAD``, a trailing
slash) goes to Flask unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug import Request

from scim_bridge.scim.blueprint import URL_PREFIX
from scim_bridge.scim.blueprint import ScimEndpoints
from scim_bridge.scim.blueprint import unexpected_error
from scim_bridge.scim.blueprint import wsgi_parts

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger(__name__)

Observe = Callable[[str, str, int, float | None], None]
"""Counts one answer: method, route label, status, seconds (``metrics.web.observe``)."""


class LookupPath:
    """WSGI: searches of a served resource type to :class:`ScimEndpoints`, the rest to ``app``."""

    def __init__(
        self,
        app: WSGIApplication,
        endpoints: ScimEndpoints,
        served: Collection[str],
        observe: Observe,
    ) -> None:
        self.app = app
        self.endpoints = endpoints
        # The path is its own route label: the search rule's template with its endpoint filled in.
        self.routes = frozenset(f"{URL_PREFIX}/{endpoint}" for endpoint in served)
        self.observe = observe

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        route = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "GET" or route not in self.routes:
            return self.app(environ, start_response)
        started = time.perf_counter()
        try:
            answer = self.endpoints.answer(Request(environ))
        except Exception:  # as Flask would: logged, and the SCIM 500, never a stack trace
            log.exception("unexpected error serving GET %s", route)
            answer = unexpected_error()
        status, headers, body = wsgi_parts(answer)
        start_response(status, headers)
        self.observe("GET", route, int(answer.status), time.perf_counter() - started)
        return [body]
