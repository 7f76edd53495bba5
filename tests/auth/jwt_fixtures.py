"""Entra-style JWTs and a JWKS on a real local port, for the Entra token tests.

The tokens carry the claims Entra's provisioning tokens carry (entra.md §3.2: v1 issuer
``https://sts.windows.net/<tenant>/``, the non-gallery audience, ``tid``, ``appid``, ``oid``). Forged
tokens (``alg: none``, HS256 keyed with the public key) are built by hand: PyJWT refuses to make them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from scim_bridge.settings import ENTRA_NON_GALLERY_AUDIENCE

TENANT = "aaaabbbb-0000-cccc-1111-dddd2222eeee"
OTHER_TENANT = "99998888-7777-6666-5555-444433332222"
# The Entra provisioning service's app ID as it appears in ``appid``: undocumented for this flow
# (§3.2), so the operator allows it by name in ``[auth.entra] app_ids``.
PROVISIONING_APP_ID = "1e9ab15c-5e0a-4bd6-9a2a-7c4b4a2a5b9f"
# Another app registered in the same tenant, holding a token for the same shared audience.
OTHER_APP_ID = "7c0ffee0-1234-4abc-8def-0123456789ab"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class RsaKey:
    """A signing key pair, named by ``kid`` as Entra's JWKS names its keys."""

    kid: str
    private: rsa.RSAPrivateKey = field(repr=False)

    def jwk(self) -> dict[str, Any]:
        """The public half as Entra's JWKS lists it (no ``alg``; ``use: sig``)."""
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def new_key(kid: str | None = None) -> RsaKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return RsaKey(kid or f"kid-{uuid.uuid4().hex[:12]}", private)


def jwks(*keys: RsaKey) -> dict[str, Any]:
    return {"keys": [key.jwk() for key in keys]}


def entra_claims(
    tenant: str = TENANT,
    *,
    audience: str = ENTRA_NON_GALLERY_AUDIENCE,
    now: float | None = None,
    lifetime: int = 3600,
    **overrides: Any,
) -> dict[str, Any]:
    """Claims shaped like a v1 token Entra mints for a provisioning job; ``overrides`` win."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant}/",
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "aio": "E2ZgYJi2sHP7n+X0nUaRqWx5AAA=",
        "appid": PROVISIONING_APP_ID,
        "appidacr": "2",
        "idp": f"https://sts.windows.net/{tenant}/",
        "oid": str(uuid.uuid4()),
        "rh": "0.AAAAx",
        "sub": str(uuid.uuid4()),
        "tid": tenant,
        "uti": "b2c1a3Ld00mKgL4tCq0pAA",
        "ver": "1.0",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def sign(claims: dict[str, Any], key: RsaKey, *, kid: str | None = None) -> str:
    """An RS256 token with Entra's header (``typ``, ``x5t``, ``kid``)."""
    kid = key.kid if kid is None else kid
    return jwt.encode(claims, key.private, algorithm="RS256", headers={"x5t": kid, "kid": kid})


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def encode(part: dict[str, Any]) -> str:
        return b64url(json.dumps(part, separators=(",", ":")).encode())

    return f"{encode(header)}.{encode(claims)}"


def unsigned(claims: dict[str, Any], kid: str) -> str:
    """``alg: none`` with an empty signature (RFC 7519 §6.1)."""
    return _segments({"typ": "JWT", "alg": "none", "kid": kid}, claims) + "."


def hs256_keyed_with_public_key(claims: dict[str, Any], key: RsaKey) -> str:
    """HS256 with the RSA public key's PEM as the HMAC secret: the key-confusion forgery."""
    signing_input = _segments({"typ": "JWT", "alg": "HS256", "kid": key.kid}, claims)
    mac = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


class JwksServer:
    """A JWKS on a real local port: counts fetches; ``publish`` replaces the keys (rotation)."""

    def __init__(self, *keys: RsaKey) -> None:
        self._lock = threading.Lock()
        self._document: dict[str, Any] = jwks(*keys)
        self._fetches = 0
        self.status = 200  # set to e.g. 503 to make the endpoint fail
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, status = server._serve()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/common/discovery/keys"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def _serve(self) -> tuple[bytes, int]:
        with self._lock:
            self._fetches += 1
            if self.status != 200:
                return b'{"error": "unavailable"}', self.status
            return json.dumps(self._document).encode(), 200

    @property
    def fetches(self) -> int:
        with self._lock:
            return self._fetches

    def publish(self, *keys: RsaKey) -> None:
        """Replace the published key set, as Microsoft does when it rotates keys."""
        self.publish_document(jwks(*keys))

    def publish_document(self, document: Any) -> None:
        """Serve any JSON document at all (odd keys, a broken JWKS)."""
        with self._lock:
            self._document = document

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)


def unreachable_url() -> str:
    """A local URL nothing listens on (connection refused): the JWKS endpoint is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/common/discovery/keys"
