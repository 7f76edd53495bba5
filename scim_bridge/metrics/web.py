"""Request metrics for a Flask app: every answer counted, whichever hook or handler produced it.

App-wide ``before_request``/``after_request`` hooks see the SCIM blueprint's own 401, 404 and 429
answers too, and Flask's 404, 405 and 413. The route label is the matched rule's template
(``/scim/v2/Users/<resource_id>``), never the raw path, which may hold ids. A placeholder is filled
in only with a value from a fixed list (the resource types served), so no client can add a series.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Collection
from collections.abc import Mapping

from flask import Flask
from flask import Response
from flask import g
from flask import request
from prometheus_client import Counter
from prometheus_client import Histogram

from scim_bridge.metrics.instruments import HTTP_DURATION
from scim_bridge.metrics.instruments import HTTP_REQUESTS

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"  # no rule: a 404 or 405 from routing itself
_STARTED = "scim_bridge_metrics_started"


def route_label(placeholders: Mapping[str, Collection[str]]) -> str:
    """The rule's template, with the placeholders named in ``placeholders`` filled in when their
    value is one of those listed (``<resource_endpoint>`` → ``Users``)."""
    rule = request.url_rule
    if rule is None:
        return UNMATCHED
    label = rule.rule
    for name, allowed in placeholders.items():
        value = (request.view_args or {}).get(name)
        if value in allowed:
            label = _filled(label, name, str(value))
    return label


@functools.lru_cache(maxsize=256)  # templates x listed values: a fixed, small set
def _filled(template: str, name: str, value: str) -> str:
    """``template`` with its placeholder ``name`` (``<name>`` or ``<converter:name>``) set."""
    pattern = rf"<(?:[^:<>]+:)?{re.escape(name)}>"
    return re.sub(pattern, lambda _: value, template)


def method_label() -> str:
    """Any method a client sends would be a new series: unknown ones share one label."""
    return request.method if request.method in METHODS else "other"


def instrument(app: Flask, placeholders: Mapping[str, Collection[str]] | None = None) -> None:
    """Count and time every request the app answers; call before registering blueprints."""
    known = dict(placeholders or {})

    @app.before_request
    def start_clock() -> None:
        setattr(g, _STARTED, time.perf_counter())

    @app.after_request
    def record(response: Response) -> Response:
        started = getattr(g, _STARTED, None)
        elapsed = None if started is None else time.perf_counter() - started
        observe(method_label(), route_label(known), response.status_code, elapsed)
        return response


def observe(method: str, route: str, status: int, seconds: float | None) -> None:
    """Count one answer, and time it when its start is known: for answers given outside Flask's
    hooks too (``scim.lookup_path``), under the labels Flask's would carry."""
    counted, timed = _series(method, route, status)
    counted.inc()
    if seconds is not None:
        timed.observe(seconds)


@functools.lru_cache(maxsize=1024)  # methods x rules x statuses: bounded by the labels' own rules
def _series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    """A request's two series, looked up once per label set rather than on every request."""
    return HTTP_REQUESTS.labels(method, route, str(status)), HTTP_DURATION.labels(method, route)
