"""Who is calling: one entry point for every credential Entra can present (entra.md §3).

``Authorization: Bearer`` carries one of three things, told apart by shape: a long-lived token
(``sbt_…``, Entra's Secret Token), an access token from ``/oauth2/token`` (``sba_…``), or, when the
operator enabled it, a JWT issued by Entra itself. Every refusal is the same 401 and takes at least
``failure_floor`` seconds, so neither the answer nor its timing tells a caller which part was wrong.
The wait costs no thread under the bridge's gunicorn worker: the answer is held and released by a
timer (``scim_bridge.server.hold``); elsewhere the request's thread sleeps.

Failed authentications are also counted per address (``[auth] failures_per_minute``): past that,
the address gets 429 instead of 401. Only failures count, so a valid credential is never refused
because of what else comes from its address.
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
from scim_bridge.guards import RateLimiter
from scim_bridge.server import hold

log = logging.getLogger(__name__)

# A throttled address's 429 is held at least this long (a tarpit: holding costs no thread).
THROTTLED_HOLD_SECONDS = 1.0


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
        failures: RateLimiter | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        release_at: Callable[[float], bool] = hold.release_at,
    ) -> None:
        self.tokens = tokens
        self.clients = clients
        self.entra = entra
        self.failure_floor = failure_floor
        # Failed authentications per address (None: not limited).
        self.failures = failures
        self.monotonic = monotonic
        self.sleep = sleep
        # Asks the worker to release the answer later; False where nothing can (then: sleep).
        self.release_at = release_at

    def caller(self, authorization: str | None, audience: str) -> str:
        """The verified caller's name (``token:NAME``, ``client:NAME``, ``entra:TENANT/APP``).

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
        """Let a refusal that began at ``started`` take the floor's time, whatever it checked.

        Held by the worker when it can (the thread returns at once), else slept here.
        """
        self._hold_until(started + self.failure_floor)

    def failed(self, source: str | None) -> float | None:
        """Count one failed authentication from ``source``: None while the address is within
        ``[auth] failures_per_minute``, else the seconds until it may fail again (answer 429).

        A throttled answer is held longer than the floor where holding costs no thread.
        """
        if self.failures is None:
            return None
        wait = self.failures.take(f"failed:{source}")
        if wait is not None:
            self.release_at(self.monotonic() + max(self.failure_floor, THROTTLED_HOLD_SECONDS))
        return wait

    def _hold_until(self, due: float) -> None:
        if self.release_at(due):
            return
        remaining = due - self.monotonic()
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
