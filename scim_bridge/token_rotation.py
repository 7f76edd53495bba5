"""Replacing the stored GitLab token: a rotation (`scim-bridge gitlab rotate-token`, or the worker
when fewer than ``[gitlab] rotate_days_before_expiry`` days remain), or an operator's new token
(`scim-bridge gitlab store-token`).

Two facts of GitLab shape a rotation (gitlab.md, the token's lifecycle):

- ``POST /personal_access_tokens/self/rotate`` revokes the old token at once, and rotating that
  old token again makes GitLab revoke the new one too (reuse detection). So exactly one instance
  may rotate a given version: it first *claims* the version, a conditional update that only one
  caller can win (``GitLabTokenStore.claim``). An instance that loses, or finds the version
  moved, does nothing.
- From the claim on, no instance sends the old token (``TokenVault.current`` waits while the row
  is marked), and the new token is stored, under the next version, before anything uses it.

If the rotation's answer is lost (GitLab did not answer in time), GitLab may have revoked the old
token without the bridge ever seeing the new one; the mark is dropped, the message says so, and
the way out is a new token given to ``store-token``. Every rotation, refused or done, is in the
audit trail (``gitlab.token.rotate``), beside the audited GitLab call itself.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from datetime import timedelta
from typing import Any

from scim_bridge import clock
from scim_bridge.gitlab import GitLab
from scim_bridge.gitlab import GitLabError
from scim_bridge.gitlab import TransientError
from scim_bridge.gitlab_token import REQUIRED_SCOPE
from scim_bridge.gitlab_token import TokenState
from scim_bridge.gitlab_token import expiry_date
from scim_bridge.store import audit
from scim_bridge.store.gitlab_token import GitLabTokenStore
from scim_bridge.token_vault import TOKEN_VARIABLE
from scim_bridge.token_vault import TokenCipher
from scim_bridge.token_vault import actor
from scim_bridge.token_vault import rotation_stale_before

log = logging.getLogger(__name__)

# A client of GitLab that sends exactly the token given (not the vault's): the rotation must
# be made with the version it claimed.
Connect = Callable[[str], GitLab]


class RotationError(Exception):
    """The token was not replaced; the message says why and what to do."""


@dataclass(frozen=True)
class Replaced:
    """The outcome: ``done`` False when another instance had replaced ``from_version`` first."""

    done: bool
    version: int
    expires_on: date | None


class TokenRotation:
    def __init__(
        self,
        store: GitLabTokenStore,
        cipher: TokenCipher,
        connect: Connect,
        *,
        lifetime_days: int,
    ) -> None:
        self.store = store
        self.cipher = cipher
        self.connect = connect
        self.lifetime_days = lifetime_days
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"

    def rotate(self, from_version: int, expires_on: date | None = None) -> Replaced:
        """Rotate the token of ``from_version``, if it is still the stored one and nobody else
        is rotating it. ``expires_on``: the new token's last day (default: the lifetime)."""
        expires_on = expires_on or clock.now().date() + timedelta(days=self.lifetime_days)
        if not self.store.claim(from_version, self.owner, rotation_stale_before()):
            return self._not_mine(from_version)
        row = self.store.read()
        if row is None or row.version != from_version:  # cannot happen once claimed
            self.store.release(from_version)
            return self._not_mine(from_version)
        gitlab = self.connect(self.cipher.decrypt(row.token))
        try:
            answer = gitlab.rotate_token(expires_on.isoformat())
        except GitLabError as error:
            self._refused(from_version, error)
            raise RotationError(_refusal(error)) from None
        finally:
            gitlab.close()
        new_expiry = expiry_date(answer.expires_at)
        with self.store.db.transaction(write=True):
            version = self.store.replace(
                from_version,
                self.cipher.encrypt(answer.token),
                expires_on=new_expiry,
                actor=actor(),
                how="rotated",
            )
            if version is None:  # cannot happen: the claim holds the version
                raise RotationError("the stored token moved during the rotation")
            audit.record(
                "gitlab.token.rotate",
                None,
                {"version": version, "expires_on": _iso(new_expiry), "outcome": "rotated"},
            )
        log.warning("the GitLab token was rotated: version %d, expires on %s", version, new_expiry)
        return Replaced(True, version, new_expiry)

    def rotate_if_due(self, days_before: int) -> Replaced | None:
        """Rotate when the stored token expires within ``days_before`` days (None: not due)."""
        row = self.store.read()
        if row is None:
            return None
        gitlab = self.connect(self.cipher.decrypt(row.token))
        try:
            state = TokenState.from_api(gitlab.token_info())
        finally:
            gitlab.close()
        days = state.days_left(clock.now().date())
        if days is None or days > days_before:
            return None
        log.warning("the GitLab token expires in %d day(s): rotating it", days)
        return self.rotate(row.version)

    def store_given(self, token: str) -> Replaced:
        """Make ``token`` (an operator's new one) the stored token, once GitLab accepts it."""
        row = self.store.read()
        if row is None:
            raise RotationError(f"no GitLab token is stored yet: {TOKEN_VARIABLE} seeds it")
        gitlab = self.connect(token)
        try:
            state = TokenState.from_api(gitlab.token_info())
        except GitLabError as error:
            raise RotationError(
                f"GitLab does not accept the token in {TOKEN_VARIABLE} ({error}): nothing stored"
            ) from None
        finally:
            gitlab.close()
        if not state.active or REQUIRED_SCOPE not in state.scopes:
            raise RotationError(
                f"the token in {TOKEN_VARIABLE} is inactive or lacks the {REQUIRED_SCOPE} "
                "scope: nothing stored"
            )
        encrypted = self.cipher.encrypt(token)
        # Claimed as a rotation claims it: a rotation under way elsewhere would otherwise find
        # its version replaced after GitLab had revoked the old token, and lose the new one.
        if not self.store.claim(row.version, self.owner, rotation_stale_before()):
            raise RotationError(
                "the stored token is being rotated or replaced by another instance: nothing "
                "stored; run the command again once that is done"
            )
        with self.store.db.transaction(write=True):
            version = self.store.replace(
                row.version,
                encrypted,
                expires_on=state.expires_on,
                actor=actor(),
                how="stored",
                seed=encrypted,
            )
            if version is None:
                raise RotationError("the stored token changed meanwhile: run the command again")
            audit.record(
                "gitlab.token.store",
                None,
                {"version": version, "expires_on": _iso(state.expires_on), "from": TOKEN_VARIABLE},
            )
        return Replaced(True, version, state.expires_on)

    def _not_mine(self, from_version: int) -> Replaced:
        row = self.store.read()
        assert row is not None
        log.info("GitLab token version %d: replaced or being rotated elsewhere", from_version)
        return Replaced(False, row.version, row.expires_on)

    def _refused(self, from_version: int, error: GitLabError) -> None:
        """Drop the mark, and audit a rotation that did not happen (or whose answer was lost)."""
        with self.store.db.transaction(write=True):
            self.store.release(from_version)
            detail: dict[str, Any] = {"version": from_version, "outcome": "failed"}
            detail["error"] = str(error)
            audit.record("gitlab.token.rotate", None, detail)


def _refusal(error: GitLabError) -> str:
    if isinstance(error, TransientError) and error.status is None:
        return (
            f"GitLab's answer to the rotation was lost ({error.message}): GitLab may have "
            "rotated the token and revoked the stored one. If GitLab calls now fail with 401, "
            f"create a new token, put it in {TOKEN_VARIABLE} and run "
            "`scim-bridge gitlab store-token`"
        )
    return f"GitLab refused the rotation ({error}): the stored token is unchanged"


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()
