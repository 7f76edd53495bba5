"""The OAuth 2.0 token endpoint, ``POST /oauth2/token``: client credentials grant only.

RFC 6749 §4.4 (the grant), §2.3.1 (client_secret_basic and client_secret_post: Entra's "Header",
"Body" and "Both" send methods, entra.md §3.3), §5.1 (the answer, ``Cache-Control: no-store``) and
§5.2 (the errors; ``invalid_client`` is 401 with ``WWW-Authenticate``).

A refused client takes as long as any refused credential and counts as a failed authentication
of its address (``scim_bridge.auth.authenticator``): past ``[auth] failures_per_minute`` the
address gets 429 ``slow_down``. Other malformed requests count against the address's request
rate; a client that authenticates is limited by its own rate, never by its address's traffic.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from datetime import timedelta
from typing import Any
from typing import Protocol
from urllib.parse import unquote_plus

from flask import Blueprint
from flask import Response
from flask import jsonify
from flask import request

from scim_bridge.auth.clients import ClientStore
from scim_bridge.auth.clients import VerifiedClient
from scim_bridge.guards import RateLimiter as Limiter
from scim_bridge.guards import retry_after_header

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth2/token"
FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class Refusals(Protocol):
    """What a refused client costs (``scim_bridge.auth.authenticator.Authenticator``)."""

    def pad(self, started: float) -> None:
        """Make the refusal that began at ``started`` take the failure floor."""
        ...

    def failed(self, source: str | None) -> float | None:
        """Count a failed authentication: None, or the seconds ``source`` must wait."""
        ...


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """client_secret_basic: both halves form-encoded, then base64 (RFC 6749 §2.3.1)."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
    client_id, separator, secret = decoded.partition(":")
    if not separator:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401)
    return unquote_plus(client_id), unquote_plus(secret)


def _form() -> dict[str, str]:
    if request.mimetype != FORM:
        raise OAuthError("invalid_request", f"the request body must be {FORM}")
    form = request.form
    repeated = sorted(key for key in form if len(form.getlist(key)) > 1)
    if repeated:
        raise OAuthError("invalid_request", f"parameter repeated: {', '.join(repeated)}")
    return {key: form[key] for key in form}


def _client_credentials(form: dict[str, str]) -> tuple[str, str]:
    basic = _basic_credentials(request.headers.get("Authorization"))
    posted = (form.get("client_id"), form.get("client_secret"))
    if basic and any(posted) and (posted[0] or basic[0], posted[1] or basic[1]) != basic:
        # Entra's "Both" sends the same pair twice; two different pairs are ambiguous.
        raise OAuthError("invalid_request", "the header and the body name different clients")
    if basic:
        return basic
    if posted[0] and posted[1]:
        return posted[0], posted[1]
    raise OAuthError("invalid_client", "client authentication is required", 401)


class TokenEndpoint:
    """Exchanges a client id and secret for an access token bound to this bridge."""

    def __init__(
        self,
        clients: ClientStore,
        *,
        lifetime: timedelta,
        allowed_scopes: tuple[str, ...],
        public_url: str | None,
        audience_path: str,
        refusals: Refusals,
        limiter: Limiter | None = None,
    ) -> None:
        self.clients = clients
        self.lifetime = lifetime
        self.allowed_scopes = allowed_scopes
        # Issuer: the public URL, else the one the request came in on; audience: its SCIM base.
        self.public_url = public_url
        self.audience_path = audience_path
        # Makes a refused client take as long as any other refusal, and counts it.
        self.refusals = refusals
        self.limiter = limiter

    def blueprint(self) -> Blueprint:
        blueprint = Blueprint("oauth2", __name__)
        blueprint.add_url_rule(TOKEN_PATH, "token", self._token, methods=["POST"])
        return blueprint

    def _token(self) -> Response:
        started = time.monotonic()
        try:
            form = _form()
            if form.get("grant_type") is None:
                raise OAuthError("invalid_request", "grant_type is required")
            if form["grant_type"] != "client_credentials":
                raise OAuthError(
                    "unsupported_grant_type", "only grant_type=client_credentials is supported"
                )
            client = self._client(form)
            scope = self._scope(form.get("scope"))
        except OAuthError as error:
            return self._refused(error, started, request.remote_addr)
        if self.limiter and (wait := self.limiter.take(f"token-client:{client.name}")) is not None:
            return _slow_down(wait)
        issuer = self.public_url or request.host_url.rstrip("/")
        issued = self.clients.issue_token(
            client,
            issuer=issuer,
            audience=f"{issuer}{self.audience_path}",
            scope=scope,
            lifetime=self.lifetime,
        )
        body: dict[str, Any] = {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": issued.scope or " ".join(self.allowed_scopes),
        }
        return _json(body, 200)

    def _refused(self, error: OAuthError, started: float, source: str | None) -> Response:
        """The error, or 429 when the address has failed (or sent bad requests) too often."""
        if error.error == "invalid_client":
            self.refusals.pad(started)
            wait = self.refusals.failed(source)
        else:
            wait = self.limiter.take(f"token:{source}") if self.limiter else None
        if wait is not None:
            return _slow_down(wait)
        return _error(error)

    def _client(self, form: dict[str, str]) -> VerifiedClient:
        client_id, secret = _client_credentials(form)
        client = self.clients.authenticate(client_id, secret)
        if client is None:
            log.info("token request refused: unknown client or wrong, expired or revoked secret")
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client

    def _scope(self, requested: str | None) -> str | None:
        """RFC 6749 §3.3: a space-separated list; every entry must be one this bridge grants."""
        if requested is None or not requested.strip():
            return None
        unknown = [item for item in requested.split() if item not in self.allowed_scopes]
        if unknown:
            raise OAuthError(
                "invalid_scope",
                f"unknown scope {' '.join(unknown)!r}; this bridge grants "
                f"{' '.join(self.allowed_scopes)!r}",
            )
        return " ".join(requested.split())


def _json(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers.update({**NO_STORE, **(headers or {})})
    return response


def _slow_down(wait: float) -> Response:
    error = OAuthError("slow_down", "too many token requests", 429)
    return _error(error, {"Retry-After": retry_after_header(wait)})


def _error(error: OAuthError, headers: dict[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="scim-bridge", charset="UTF-8"'
    body = {"error": error.error, "error_description": error.description}
    return _json(body, error.status, headers)
