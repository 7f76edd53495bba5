"""Who is calling: one entry point for every credential Entra can present (entra.md §3).

``Authorization: Bearer`` carries one of three things, told apart by shape: a long-lived token
(``sbt_…``, Entra's Secret Token), an access token from ``/oauth2/token`` (``sba_…``), or, when the
operator enabled it, a JWT issued by Entra itself. Every refusal is the same 401 and takes at least
``failure_floor`` seconds, so neither the answer nor its timing tells a caller which part was wrong.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from scim_bridge.auth.clients import ACCESS_TOKEN_PREFIX
from scim_bridge.auth.clients import ClientStore
from scim_bridge.auth.tokens import PREFIX as TOKEN_PREFIX
from scim_bridge.auth.tokens import TokenStore

log = logging.getLogger(__name__)


class Refused(Exception):
    """No valid credential; the message is for the operator's log, never for the caller."""


class JwtVerifier(Protocol):
    def verify(self, token: str) -> object | None: ...


class Authenticator:
    def __init__(
        self,
        tokens: TokenStore,
        clients: ClientStore,
        entra: JwtVerifier | None,
        *,
        failure_floor: float,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tokens = tokens
        self.clients = clients
        self.entra = entra
        self.failure_floor = failure_floor
        self.monotonic = monotonic
        self.sleep = sleep

    def caller(self, authorization: str | None, audience: str) -> str:
        """The verified caller's name (``token:NAME``, ``client:NAME``, ``entra:TENANT``).

        :raises Refused: after the failure floor has passed.
        """
        started = self.monotonic()
        try:
            return self._identify(authorization, audience)
        except Refused as refusal:
            log.info("authentication refused: %s", refusal)
            self.pad(started)
            raise

    def pad(self, started: float) -> None:
        """Let a refusal that began at ``started`` take the floor's time, whatever it checked."""
        remaining = self.failure_floor - (self.monotonic() - started)
        if remaining > 0:
            self.sleep(remaining)

    def _identify(self, authorization: str | None, audience: str) -> str:
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Refused("no bearer credential")
        if credential.startswith(f"{TOKEN_PREFIX}_"):
            name = self.tokens.verify(credential)
            if name is None:
                raise Refused("unknown, expired or revoked bearer token")
            return f"token:{name}"
        if credential.startswith(f"{ACCESS_TOKEN_PREFIX}_"):
            name = self.clients.verify_token(credential, audience)
            if name is None:
                raise Refused("unknown, expired or revoked access token, or another audience")
            return f"client:{name}"
        if self.entra is not None and credential.count(".") == 2:
            caller = self.entra.verify(credential)
            if caller is None:
                raise Refused("Entra JWT refused")
            return f"entra:{getattr(caller, 'tenant_id', '?')}/{getattr(caller, 'app_id', '?')}"
        raise Refused("unrecognised credential")  # the floor hides that it took no lookup
