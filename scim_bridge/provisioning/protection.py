"""Resolving the protected accounts to GitLab user ids, and keeping the list current.

Administrators come from ``GET /users?admins=true``; each ``[users] protected_usernames`` entry is
resolved once and then followed by id: if the account it named is renamed, the protection stays
with it (the configured name keeps protecting whoever holds it, too: ``Protection.reason`` also
looks at the current username). The worker resolves at start; any process resolves when the list
is missing or older than ``REFRESH_SECONDS``; ``scim-bridge check`` resolves and reports without
writing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta

from scim_bridge import clock
from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.provisioning.ownership import Protection
from scim_bridge.store.protection import ADMIN
from scim_bridge.store.protection import NAMED
from scim_bridge.store.protection import ProtectedAccount
from scim_bridge.store.protection import ProtectedAccounts

log = logging.getLogger(__name__)

REFRESH_SECONDS = 15 * 60.0  # GitLab is asked again at most this often
CACHE_SECONDS = 10.0  # a process reads the stored list again at most this often


@dataclass(frozen=True)
class Resolution:
    """What resolving found: the protected accounts, and the configured names no account holds."""

    accounts: list[ProtectedAccount] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def resolve(gitlab: GitLabApi, names: tuple[str, ...], known: list[ProtectedAccount]) -> Resolution:
    """Ask GitLab (reads only). A name resolved before keeps its account while that still exists."""
    accounts = [
        ProtectedAccount(admin.id, ADMIN, admin.username) for admin in gitlab.users.admins()
    ]
    previous = {a.name.lower(): a.gitlab_user_id for a in known if a.reason == NAMED and a.name}
    missing = []
    for name in dict.fromkeys(names):
        account = _known_account(gitlab, previous.get(name.lower()))
        if account is None:
            account = gitlab.users.find_by_username(name)
        if account is None:
            missing.append(name)
            continue
        accounts.append(ProtectedAccount(account.id, NAMED, account.username, name))
    return Resolution(accounts, missing)


def _known_account(gitlab: GitLabApi, user_id: int | None) -> GitLabUser | None:
    if user_id is None:
        return None
    try:
        account: GitLabUser = gitlab.users.get(user_id)
    except NotFoundError:
        return None
    return account


class Protector:
    """The current :class:`Protection`, shared by every process through the store."""

    def __init__(
        self,
        gitlab: GitLabApi,
        store: ProtectedAccounts,
        names: tuple[str, ...],
        *,
        on_resolved: Callable[[Resolution], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gitlab = gitlab
        self.store = store
        self.names = names
        self.on_resolved = on_resolved
        self.monotonic = monotonic
        self._lock = threading.RLock()
        self._cached: tuple[float, Protection] | None = None

    def current(self) -> Protection:
        """The protection to decide with; resolves first when the list is missing or stale.

        A stale list that cannot be refreshed (GitLab down) is still used: administrators are
        also recognised by their live ``is_admin``. A list that was never resolved cannot be
        replaced that way, so then GitLab's error propagates and the work waits.
        """
        with self._lock:
            now = self.monotonic()
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            protection = self._load()
            self._cached = (now, protection)
            return protection

    def refresh(self) -> Resolution:
        """Resolve from GitLab now and store it (at worker start)."""
        resolution = resolve(self.gitlab, self.names, self.store.all())
        self.store.replace(resolution.accounts)
        with self._lock:
            self._cached = None
        if self.on_resolved is not None:
            self.on_resolved(resolution)
        return resolution

    def _load(self) -> Protection:
        if self.gitlab.dry_run:
            return Protection.of((), self.names)
        resolved_at = self.store.resolved_at()
        stale = resolved_at is None or clock.now() - resolved_at > timedelta(
            seconds=REFRESH_SECONDS
        )
        if stale:
            try:
                self.refresh()
            except Exception:
                if resolved_at is None:
                    raise
                log.warning(
                    "cannot refresh the protected accounts; using the list of %s", resolved_at
                )
        return Protection.of((a.gitlab_user_id for a in self.store.all()), self.names)
