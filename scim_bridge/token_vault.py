"""Where the bridge's GitLab token lives when the bridge may rotate it: the database, encrypted.

With ``SCIM_BRIDGE_GITLAB_TOKEN_KEY`` set, the token is kept in the ``gitlab_token`` row, encrypted
with that key by ``cryptography``'s Fernet (AES-128-CBC and HMAC-SHA256, authenticated: a
ciphertext changed in the database does not decrypt). ``SCIM_BRIDGE_GITLAB_TOKEN`` only seeds the
row the first time; from then on the row is the token. Why the database and not a file: every
instance of a deployment shares the database, while each container has its own file system (and
Kubernetes mounts its secrets read-only), so a rotation by one instance would reach none of the
others. The reasons in full are in docs/operator-guide.md, "The GitLab token".

The key may be a comma-separated list (``MultiFernet``): the first encrypts, any decrypts, so an
operator can replace the key without a moment when the stored token is unreadable.

:meth:`TokenVault.current` is asked before every GitLab call. It reads the row's version (one
small indexed read) and decrypts again only when the version moved, so the call after a rotation
by any instance goes out with the new token, and none with the old.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from cryptography.fernet import MultiFernet

from scim_bridge import clock
from scim_bridge import context
from scim_bridge.store import audit
from scim_bridge.store.gitlab_token import GitLabTokenStore
from scim_bridge.store.gitlab_token import StoredTokenRow

KEY_VARIABLE = "SCIM_BRIDGE_GITLAB_TOKEN_KEY"
#: A rotation mark older than this is a rotation that died (its GitLab call has a timeout well
#: below it): calls go out again with the stored token.
ROTATION_STALE_SECONDS = 120.0
#: How long a GitLab call waits for a rotation under way elsewhere, and how often it looks.
HOLD_SECONDS = 15.0
HOLD_POLL_SECONDS = 0.05
TOKEN_VARIABLE = "SCIM_BRIDGE_GITLAB_TOKEN"


class TokenVaultError(Exception):
    """The stored token cannot be had: no token to seed it with, or the key does not open it."""


def new_key() -> str:
    """A fresh key for ``SCIM_BRIDGE_GITLAB_TOKEN_KEY``."""
    return Fernet.generate_key().decode("ascii")


def key_problem(keys: str) -> str | None:
    """Why ``keys`` (comma-separated) cannot serve as the key; None when every one can."""
    for key in _split(keys):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            return (
                f"{KEY_VARIABLE} holds something that is not a key (32 url-safe base64-encoded "
                "bytes): make one with `scim-bridge gitlab new-key`"
            )
    return None if _split(keys) else f"{KEY_VARIABLE} is empty"


def _split(keys: str) -> list[str]:
    return [key.strip() for key in keys.split(",") if key.strip()]


class TokenCipher:
    """Encrypts with the first key, decrypts with any of them."""

    def __init__(self, keys: str) -> None:
        problem = key_problem(keys)
        if problem is not None:
            raise TokenVaultError(problem)
        self._fernet = MultiFernet([Fernet(key) for key in _split(keys)])

    def encrypt(self, token: str) -> str:
        return self._fernet.encrypt(token.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise TokenVaultError(
                f"the stored GitLab token does not open with {KEY_VARIABLE}: the key is not the "
                "one it was stored with (keep the old key after the new one, comma-separated, "
                "while you change it)"
            ) from None


@dataclass(frozen=True)
class VaultState:
    """What `check` says of the stored token (read only: `check` stores nothing)."""

    row: StoredTokenRow | None
    token: str | None  # the token in use: the stored one, or the one the first start will store
    given_is_seed: bool  # SCIM_BRIDGE_GITLAB_TOKEN is the token the row was seeded from
    given_is_current: bool  # ... or the token in use


class TokenVault:
    """The token in use, from the store: :meth:`current` is the GitLab client's token source."""

    def __init__(self, store: GitLabTokenStore, cipher: TokenCipher, given: str | None) -> None:
        self.store = store
        self.cipher = cipher
        self.given = given  # SCIM_BRIDGE_GITLAB_TOKEN: stored if nothing is yet
        self._lock = threading.Lock()
        self._cached: tuple[int, str] | None = None

    def current(self) -> str:
        """The token to send now: the stored one, decrypted again only when its version moved.

        While another instance rotates the token (its mark is on the row), GitLab may already
        have revoked the one stored: the call waits for the new version, up to
        ``HOLD_SECONDS``, and is not sent at all if it does not come.
        """
        version = self._settled_version()
        with self._lock:
            cached = self._cached
        if cached is not None and cached[0] == version:
            return cached[1]
        row = self.store.read()
        if row is None:  # dropped under us: never expected, but never send a stale token
            raise TokenVaultError("the stored GitLab token is gone")
        token = self.cipher.decrypt(row.token)
        with self._lock:
            self._cached = (row.version, token)
        return token

    def _settled_version(self) -> int:
        give_up = time.monotonic() + HOLD_SECONDS
        while True:
            found = self.store.peek()
            if found is None:
                self.seed()
                continue
            if found.rotating_since is None or found.rotating_since < rotation_stale_before():
                return found.version
            if time.monotonic() >= give_up:
                raise TokenVaultError(
                    "the GitLab token is being rotated by another instance: the call waits "
                    "for the new token"
                )
            time.sleep(HOLD_POLL_SECONDS)

    def seed(self) -> None:
        """Store ``SCIM_BRIDGE_GITLAB_TOKEN`` as the first token, unless a token is stored."""
        if not self.given:
            raise TokenVaultError(
                f"no GitLab token is stored yet: set {TOKEN_VARIABLE} once, and the bridge "
                "stores it encrypted at its first GitLab call"
            )
        encrypted = self.cipher.encrypt(self.given)
        with self.store.db.transaction(write=True):
            if self.store.seed(encrypted, encrypted, actor()):
                audit.record("gitlab.token.seed", None, {"version": 1, "from": TOKEN_VARIABLE})

    def state(self) -> VaultState:
        """The row and how ``SCIM_BRIDGE_GITLAB_TOKEN`` stands to it; decrypting may raise."""
        row = self.store.read()
        if row is None:
            return VaultState(None, self.given, given_is_seed=False, given_is_current=False)
        token = self.cipher.decrypt(row.token)
        given = self.given or ""
        return VaultState(
            row,
            token,
            given_is_seed=bool(given) and _same(given, self.cipher.decrypt(row.seed)),
            given_is_current=bool(given) and _same(given, token),
        )


def rotation_stale_before() -> datetime:
    return clock.now() - timedelta(seconds=ROTATION_STALE_SECONDS)


def actor() -> str:
    """Who changes the stored token, for its row: the bound caller, else the bridge itself."""
    return context.current().actor or "bridge"


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
