"""Entra-issued JWTs: what Entra sends when the admin leaves the Secret Token blank.

entra.md §3.2 and Microsoft's access-token validation guide
(https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens, "Validate the signature",
"Validate the issuer") say what to check: an RS256 signature by a key from Entra's JWKS, found by
``kid``; ``iss`` exactly ``https://sts.windows.net/<tenant-id>/`` for a tenant the operator allows;
``aud`` one of the configured audiences; ``exp``/``nbf`` with a little clock skew.

A valid signature, tenant and audience are not enough: every app registered in an allowed tenant can
get a token for the shared non-gallery audience. So the calling application (``appid`` in v1 tokens,
``azp`` in v2) must be one of ``[auth.entra] app_ids`` too; with none configured, every token is
refused, and the refusal names the app id and tenant, so the operator learns what to allow.

The header's ``alg`` must be RS256 before anything else, so ``none`` and HMAC tokens (an HS256 token
"signed" with the public key, the classic key-confusion attack) never reach a key. Keys are cached;
an unknown ``kid`` refetches the JWKS at most once per ``jwks_refresh_floor_seconds``, so forged
``kid``s cannot make us hammer Microsoft. A failed fetch refuses the token; it never raises.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from scim_bridge.settings import EntraAuthSettings

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
ISSUER_PREFIX = "https://sts.windows.net/"


@dataclass(frozen=True)
class EntraCaller:
    tenant_id: str
    app_id: str  # the token's appid (v1) or azp (v2), one of ``[auth.entra] app_ids``


class _Refused(Exception):
    """Why a token is refused; the message never holds the token or any part of it."""


class EntraTokenVerifier:
    """Verifies Entra's bearer JWTs against the allowed tenants; one per process, thread-safe."""

    def __init__(
        self,
        settings: EntraAuthSettings,
        *,
        timeout: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._timeout = timeout
        self._monotonic = monotonic
        self._tenants = {f"{ISSUER_PREFIX}{tid}/": tid for tid in settings.tenant_ids}
        # Entra writes application ids as lower-case GUIDs; an operator may paste them otherwise.
        self._app_ids = frozenset(app_id.lower() for app_id in settings.app_ids)
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}  # kid → RSA public key
        self._loaded_at: float | None = None  # when the cached keys were fetched
        self._attempted_at: float | None = None  # the last fetch, successful or not

    def verify(self, token: str) -> EntraCaller | None:
        """The caller of a valid token from an allowed tenant and app, else None; never raises."""
        try:
            return self._verify(token)
        except _Refused as refusal:
            log.info("Entra token refused: %s", refusal)
        except jwt.PyJWTError as error:
            log.info("Entra token refused: %s", type(error).__name__)
        except Exception as error:  # a bug or a malformed token PyJWT did not expect
            log.warning("Entra token refused after an unexpected %s", type(error).__name__)
        return None

    def _verify(self, token: str) -> EntraCaller:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise _Refused("alg is not RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _Refused("no kid")
        # Unverified: only to pick the expected issuer and to skip the JWKS for other issuers.
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        tenant_id = self._tenants.get(issuer) if isinstance(issuer, str) else None
        if tenant_id is None:
            raise _Refused(f"issuer is not an allowed tenant: {_tenant_of(issuer)!r}")
        key = self._key(kid)
        if key is None:
            raise _Refused(f"no signing key with kid {kid[:64]!r} (tenant {tenant_id})")
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[ALGORITHM],
            audience=list(self._settings.audiences),
            issuer=issuer,
            leeway=self._settings.leeway_seconds,
            options={"require": ["exp", "iss", "aud"]},
        )
        if "tid" in claims and claims["tid"] != tenant_id:
            raise _Refused(f"tid does not match the issuer's tenant {tenant_id}")
        return EntraCaller(tenant_id, self._allowed_app(claims, tenant_id))

    def _allowed_app(self, claims: dict[str, Any], tenant_id: str) -> str:
        """The calling app's id, if ``app_ids`` allows it; read from the verified claims only."""
        app_id = claims.get("appid", claims.get("azp"))
        if not isinstance(app_id, str) or not app_id:
            raise _Refused(f"no appid or azp claim (tenant {tenant_id})")
        if app_id.lower() not in self._app_ids:
            allowed = "add it to" if self._app_ids else "no app is allowed: set"
            raise _Refused(
                f"app {app_id[:64]!r} of tenant {tenant_id} is not allowed; {allowed} "
                "[auth.entra] app_ids (SCIM_BRIDGE_AUTH_ENTRA_APP_IDS) if it is Entra's "
                "provisioning service for this bridge"
            )
        return app_id

    def _key(self, kid: str) -> Any | None:
        """The key for ``kid``, refetching the JWKS if it is unknown or stale (within the floor)."""
        with self._lock:
            now = self._monotonic()
            loaded_at = self._loaded_at
            if loaded_at is not None and now - loaded_at >= self._settings.jwks_cache_seconds:
                self._keys, self._loaded_at = {}, None  # expired: Microsoft may have dropped keys
            if kid not in self._keys and self._may_fetch(now):
                self._attempted_at = now
                keys = self._fetch()
                if keys is not None:
                    self._keys, self._loaded_at = keys, now
            return self._keys.get(kid)

    def _may_fetch(self, now: float) -> bool:
        floor = self._settings.jwks_refresh_floor_seconds
        return self._attempted_at is None or now - self._attempted_at >= floor

    def _fetch(self) -> dict[str, Any] | None:
        """The JWKS's RSA signing keys by kid, or None (logged) if it cannot be fetched."""
        url = self._settings.jwks_url
        try:
            response = requests.get(url, timeout=self._timeout)
            response.raise_for_status()
            entries = response.json()["keys"]
            if not isinstance(entries, list):
                raise TypeError("keys is not a list")
        except (requests.RequestException, ValueError, KeyError, TypeError) as error:
            log.warning("cannot fetch the Entra JWKS from %s: %s", url, type(error).__name__)
            return None
        keys = {}
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("kty") != "RSA":
                continue
            if entry.get("use", "sig") != "sig" or not isinstance(entry.get("kid"), str):
                continue
            try:
                keys[entry["kid"]] = jwt.PyJWK(entry, algorithm=ALGORITHM).key
            except Exception as error:  # one malformed key must not cost the others
                log.warning(
                    "skipping Entra JWKS key %r: %s", entry["kid"][:64], type(error).__name__
                )
        log.info("fetched the Entra JWKS from %s: %d RSA keys", url, len(keys))
        return keys


def _tenant_of(issuer: object) -> str:
    """The tenant part of an ``sts.windows.net`` issuer, for the log; nothing else of the token."""
    if isinstance(issuer, str) and issuer.startswith(ISSUER_PREFIX):
        return issuer[len(ISSUER_PREFIX) :].rstrip("/")[:64]
    return "(no Entra v1 issuer)"
