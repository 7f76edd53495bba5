"""The SCIM endpoints on Flask: scim2-server's handler inside one store transaction per request.

The order of a write is what makes it safe (DESIGN.md 2-3): validate, write the resource, its audit
event and its reconcile job (claimed for this request's inline run) in one transaction, commit, and
only then let the target catch up within the request's deadline. The write transaction is the
handler's store operation (``Database.write_scope``): parsing comes before it and rendering after,
so neither holds the store's writer lock. A write the target refuses for good is undone and
answered as a SCIM error, so Entra never holds an acknowledgement the bridge could not honour. A
read (GET, HEAD) runs in one read transaction from the credential's check to the answer.

Every answer comes from :meth:`ScimEndpoints.answer`, given a werkzeug request: the Flask view's,
and the searches ``scim.lookup_path`` takes from the WSGI layer before Flask's dispatch.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextlib import nullcontext
from http import HTTPStatus
from typing import Protocol

from flask import Blueprint
from flask import Response
from flask import request
from scim2_models import Error
from scim2_models import InvalidValueException
from scim2_models import SCIMException
from scim2_server.handler import ScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.routing import ROUTES
from scim2_server.routing import Route
from werkzeug import Request
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import InternalServerError
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import NotFound
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.sansio.utils import get_current_url

from scim_bridge import context
from scim_bridge.guards import retry_after_header
from scim_bridge.scim.service import BridgeScimService
from scim_bridge.store.db import Change
from scim_bridge.store.db import Transaction
from scim_bridge.store.db import WriteScope

log = logging.getLogger(__name__)

URL_PREFIX = "/scim/v2"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REQUEST_ID_HEADERS = ("client-request-id", "X-Request-Id")
FALLBACK_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]


class WriteRejected(Exception):
    """The target refused a write for good; Entra must be told, and the write undone."""

    def __init__(self, status: int, scim_type: str | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.scim_type = scim_type
        self.detail = detail

    def to_error(self) -> Error:
        return Error(status=self.status, scim_type=self.scim_type, detail=self.detail)


class Claim(Protocol):
    """Called in a write's transaction, just before it commits, with the keys of the jobs it
    queued: claims them for the request, so the claim costs no transaction of its own. Returns
    what :class:`Committed` is given (opaque to this layer)."""

    def __call__(self, job_keys: list[str]) -> object: ...


class Committed(Protocol):
    """Called after a write committed, with what :class:`Claim` returned; may raise
    :class:`WriteRejected`."""

    def __call__(self, changes: list[Change], claimed: object) -> None: ...


class Reverter(Protocol):
    def __call__(self, changes: list[Change], reason: str) -> None: ...


class Authenticator(Protocol):
    """Returns the verified caller's name, or raises ``UnauthorizedException``.

    ``base_url`` is the SCIM base URL the request came in on: the audience a token must be for.
    """

    def __call__(self, authorization: str | None, base_url: str) -> str: ...


class Limiter(Protocol):
    """A per-key rate limit (``scim_bridge.guards.RateLimiter``)."""

    def take(self, key: str) -> float | None: ...

    def waiting(self, key: str) -> float | None: ...


class Failures(Protocol):
    """Counts failed authentications per address (``scim_bridge.auth.authenticator``)."""

    def failed(self, source: str | None) -> float | None:
        """None while ``source`` may fail again, else the seconds until it may."""
        ...


def _request_id(req: Request) -> str:
    for header in REQUEST_ID_HEADERS:
        value = req.headers.get(header)
        if value and len(value) <= 128 and value.isprintable():
            return value
    return str(uuid.uuid4())


class ScimEndpoints:
    """Wires a handler, the store's transactions, authentication and the after-commit step."""

    def __init__(
        self,
        handler: ScimHandler,
        *,
        transaction: Callable[[bool], AbstractContextManager[Transaction]],
        write_scope: Callable[
            [Callable[[Transaction], object]], AbstractContextManager[WriteScope]
        ],
        authenticate: Authenticator,
        claim: Claim,
        committed: Committed,
        revert: Reverter,
        limiter: Limiter | None = None,
        failures: Failures | None = None,
        public_base_url: str | None = None,
    ) -> None:
        self.handler = handler
        self.service: BridgeScimService = handler.service  # type: ignore[assignment]
        self.transaction = transaction
        self.write_scope = write_scope
        self.authenticate = authenticate
        self.claim = claim
        self.committed = committed
        self.revert = revert
        self.limiter = limiter
        self.failures = failures
        # The base URL clients use (behind a proxy that changes the host), for meta.location.
        self.public_base_url = public_base_url

    def blueprint(self) -> Blueprint:
        blueprint = Blueprint("scim", __name__, url_prefix=URL_PREFIX)
        # Every answer under the prefix is SCIM (RFC 7644 §3.12): no automatic OPTIONS, and any
        # method reaches the view, whose handler answers 404 or 405 as SCIM errors.
        for route in ROUTES:
            blueprint.add_url_rule(
                _flask_rule(route),
                route.name,
                self._view,
                methods=[route.method],
                provide_automatic_options=False,
                strict_slashes=False,
            )
        for rule in ("/", "/<path:_path>"):
            blueprint.add_url_rule(
                rule,
                "fallback",
                self._view,
                methods=FALLBACK_METHODS,
                provide_automatic_options=False,
                strict_slashes=False,
            )
        blueprint.app_errorhandler(HTTPException)(self._routing_error)
        return blueprint

    def _routing_error(self, error: HTTPException) -> Response | HTTPException:
        """What Flask answers before any view, under the SCIM prefix, as the SCIM error it is.

        A request Flask could not route (a method it was never told of, ``PROPFIND``) goes to the
        view, whose handler answers 404 or 405 with the endpoint's own ``Allow``; anything else becomes the RFC 7644 §3.12 Error JSON.
        Outside the prefix, errors are left to Flask.
        """
        if not request.path.startswith(URL_PREFIX):
            return error
        if request.url_rule is None and isinstance(error, MethodNotAllowed | NotFound):
            return self._view()
        return _to_flask(_error_response(Error(status=error.code, detail=error.description)))

    def _view(self, **_kwargs: str) -> Response:
        return _to_flask(self.answer(request))

    def answer(self, req: Request) -> ScimResponse:
        """The SCIM answer to ``req``, with its ``X-Request-Id``: what every route under the
        prefix gives, through Flask or without it (``scim.lookup_path``)."""
        request_id = _request_id(req)
        source = req.remote_addr
        with context.bound(context.RequestContext(request_id=request_id, source=source)):
            response = self._respond(req, request_id, source)
        response.headers["X-Request-Id"] = request_id
        return response

    def _respond(self, req: Request, request_id: str, source: str | None) -> ScimResponse:
        # A read checks its credential in the transaction it answers from: one, not two.
        read = req.method not in WRITE_METHODS
        with self.transaction(False) if read else nullcontext():
            return self._authenticated(req, request_id, source)

    def _authenticated(self, req: Request, request_id: str, source: str | None) -> ScimResponse:
        # Authentication first: only a failure counts against the address, so a valid credential
        # is never refused for what else comes from there.
        base_url = self._base_url(req)
        try:
            actor = self.authenticate(req.headers.get("Authorization"), base_url)
        except SCIMException as error:
            if self.failures and (wait := self.failures.failed(source)) is not None:
                return _too_many(wait, "too many failed authentications from this address")
            return self.service.error_response(error)
        if self.limiter and (wait := self.limiter.take(f"caller:{actor}")) is not None:
            return _too_many(wait)
        with context.bound(context.RequestContext(request_id, actor, source)):
            try:
                return self._serve(self._read(req, base_url))
            except SCIMException as error:
                return self.service.error_response(error)
            except WriteRejected as rejection:
                return _error_response(rejection.to_error())
            except HTTPException as error:
                return _error_response(Error(status=error.code, detail=error.description))
            except Exception:
                log.exception("unexpected error serving %s %s", req.method, req.path)
                return _error_response(Error(status=500, detail="Internal server error"))

    def _read(self, req: Request, base_url: str) -> ScimRequest:
        if "\x00" in req.path or any("\x00" in value for value in req.args.values()):
            # PostgreSQL cannot hold NUL in text: refuse it up front, never a 500.
            raise InvalidValueException(detail="NUL characters are not allowed")
        # HEAD is GET without the body (RFC 9110 §9.3.2); Flask drops the body itself.
        method = "GET" if req.method == "HEAD" else req.method
        return ScimRequest(
            method=method,
            base_url=base_url,
            path=req.path.removeprefix(URL_PREFIX),
            query=req.args.to_dict(),
            headers=list(req.headers.items()),
            # A read's body has no meaning (RFC 9110 §9.3.1): not even read.
            body=req.get_data() if method in WRITE_METHODS else b"",
        )

    def _base_url(self, req: Request) -> str:
        if self.public_base_url:
            return self.public_base_url
        return _request_base_url(req.scheme, req.host)

    def _serve(self, scim_request: ScimRequest) -> ScimResponse:
        if scim_request.method.upper() not in WRITE_METHODS:
            return self.handler.handle(scim_request)  # in the read transaction _respond opened
        # The write, its audit event, its jobs and their claim for this request: one commit, at
        # the end of the handler's store operation, so the answer is rendered after it.
        with self.write_scope(self._claim) as scope:
            response = self.handler.handle(scim_request)
        tx = scope.transaction
        if tx is not None and tx.changes:
            try:
                self.committed(list(tx.changes), scope.finished)
            except WriteRejected as rejection:
                self.revert(list(tx.changes), rejection.detail)
                raise
        return response

    def _claim(self, tx: Transaction) -> object:
        return self.claim(list(tx.job_keys)) if tx.changes else None


@functools.lru_cache(maxsize=64)  # bounded: the Host header is the client's to choose
def _request_base_url(scheme: str, host: str) -> str:
    """The SCIM base URL a request reached, as Flask's ``host_url`` gives it (IDNA and percent
    decoding included), worked out once per host rather than on every request."""
    return get_current_url(scheme, host).rstrip("/") + URL_PREFIX


def _too_many(wait: float, reason: str = "too many requests") -> ScimResponse:
    """429 with ``Retry-After``: Entra backs off and retries (entra.md §5)."""
    response = _error_response(Error(status=429, detail=f"{reason}; retry after the time given"))
    response.headers["Retry-After"] = retry_after_header(wait)
    return response


def _error_response(error: Error) -> ScimResponse:
    return ScimResponse(HTTPStatus(int(error.status or 500)), error.model_dump())


def _to_flask(scim_response: ScimResponse) -> Response:
    _, headers, body = wsgi_parts(scim_response)
    if scim_response.body is None:
        response = Response(status=int(scim_response.status), headers=headers)
        del response.headers["Content-Type"]  # a 204 or 304 has no body to describe
        return response
    return Response(body, status=int(scim_response.status), headers=headers)


def wsgi_parts(scim_response: ScimResponse) -> tuple[str, list[tuple[str, str]], bytes]:
    """The status line, headers and body of an answer, as werkzeug sends them: for Flask's
    Response (``_to_flask``) and for answers written without Flask (``scim.lookup_path``)."""
    status = int(scim_response.status)
    headers = dict(scim_response.headers)
    body = b""
    if scim_response.body is None:
        headers.pop("Content-Type", None)
    else:
        body = json.dumps(scim_response.body).encode()
        headers["Content-Length"] = str(len(body))
    return (
        f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}",
        list(headers.items()),
        body,
    )


def unexpected_error() -> ScimResponse:
    """What Flask answers under the prefix for an exception nothing caught: its 500, as the SCIM
    error ``_routing_error`` makes of it."""
    return _error_response(Error(status=500, detail=InternalServerError.description))


def _flask_rule(route: Route) -> str:
    return route.pattern.replace("{endpoint}", "<resource_endpoint>").replace(
        "{resource_id}", "<resource_id>"
    )


__all__ = ["Authenticator", "Claim", "Committed", "Reverter", "ScimEndpoints", "WriteRejected"]
