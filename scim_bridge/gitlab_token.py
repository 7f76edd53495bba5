"""The bridge's own GitLab token: read at start and daily, its expiry a metric, trouble in the log.

GitLab caps personal access tokens at a year by default, and a bridge whose token expires simply
stops provisioning that day (issue 14). The background worker reads the token (``GET
/personal_access_tokens/self``: its scopes, whether it is active, its expiry date) when it starts
and once a day. It sets ``scim_bridge_gitlab_token_expiry_timestamp_seconds`` (midnight UTC of the
expiry date; +Inf for a token without one; absent from `serve`'s /metrics until the first reading),
so an alert can fire weeks ahead. It logs a warning within ``EXPIRY_WARNING_DAYS`` of the date, and
an error when the token cannot be read, is inactive, or lacks the ``api`` scope. `scim-bridge
check` says the same from the same reading (``scim_bridge.checks.instance``).

Reads only; it writes nothing to GitLab.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from datetime import date
from datetime import datetime
from typing import Any

from scim_bridge import clock
from scim_bridge.metrics.instruments import GITLAB_TOKEN_EXPIRY
from scim_bridge.periodic import every

log = logging.getLogger(__name__)

#: A token expiring within this many days is worth a warning (`check`, and the worker's log).
EXPIRY_WARNING_DAYS = 30
#: How often the worker reads the token again.
READ_INTERVAL_SECONDS = 24 * 3600.0
#: The scope every write needs (gitlab.md §1.1).
REQUIRED_SCOPE = "api"


@dataclass(frozen=True)
class TokenState:
    """What ``GET /personal_access_tokens/self`` says of the token."""

    scopes: tuple[str, ...]
    active: bool
    expires_on: date | None

    @classmethod
    def from_api(cls, info: dict[str, Any]) -> TokenState:
        revoked = bool(info.get("revoked"))
        return cls(
            scopes=tuple(str(scope) for scope in info.get("scopes") or []),
            active=bool(info.get("active", True)) and not revoked,
            expires_on=expiry_date(info.get("expires_at")),
        )

    def days_left(self, today: date) -> int | None:
        return None if self.expires_on is None else (self.expires_on - today).days

    def expiry_timestamp(self) -> float:
        """Midnight UTC of the expiry date (GitLab expires a token as that day begins); +Inf
        for a token that does not expire."""
        if self.expires_on is None:
            return math.inf
        midnight = datetime(
            self.expires_on.year, self.expires_on.month, self.expires_on.day, tzinfo=UTC
        )
        return midnight.timestamp()


def expiry_date(value: Any) -> date | None:
    """GitLab's ``expires_at`` (``YYYY-MM-DD``, or an ISO timestamp): its date, or None."""
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def expiry_warning(state: TokenState, today: date, *, stored: bool = False) -> str | None:
    """What to tell an operator whose token expires within ``EXPIRY_WARNING_DAYS``; ``stored``:
    the bridge keeps the token in its database, and can rotate it."""
    days = state.days_left(today)
    if state.expires_on is None or days is None or days > EXPIRY_WARNING_DAYS:
        return None
    if days < 0:
        return f"the GitLab token expired on {state.expires_on.isoformat()}"
    advice = (
        "run `scim-bridge gitlab rotate-token` (or set [gitlab] rotate_days_before_expiry)"
        if stored
        else "rotate it and update SCIM_BRIDGE_GITLAB_TOKEN"
    )
    return (
        f"the GitLab token expires on {state.expires_on.isoformat()} (in {days} day(s)): "
        f"{advice} before then"
    )


class TokenWatch:
    """Reads the token (``read``: ``GitLab.token_info``) now and every ``interval`` seconds.

    With ``rotate`` (the stored token's ``TokenRotation.rotate_if_due``, bound to ``[gitlab]
    rotate_days_before_expiry``), a reading within ``rotate_days`` of the expiry rotates the
    token; the rotation decides again for itself, so one instance of several rotates.
    """

    def __init__(
        self,
        read: Callable[[], dict[str, Any]],
        *,
        interval: float = READ_INTERVAL_SECONDS,
        rotate: Callable[[], object] | None = None,
        rotate_days: int = 0,
        stored: bool = False,
    ) -> None:
        self.read = read
        self.stored = stored  # the token is the bridge's to rotate: the warning says how
        self.interval = interval
        self.rotate = rotate
        self.rotate_days = rotate_days

    def check(self) -> TokenState | None:
        """One reading: the metric set, and the log told of what needs an operator."""
        try:
            state = TokenState.from_api(self.read())
        except Exception as error:  # GitLab down, or a token GitLab no longer accepts
            log.error("cannot read the GitLab token (GET /personal_access_tokens/self): %s", error)
            return None
        if self._due(state):
            state = self._rotated() or state
        GITLAB_TOKEN_EXPIRY.set(state.expiry_timestamp())
        if not state.active:
            log.error("the GitLab token is revoked or inactive: provisioning stops")
        if REQUIRED_SCOPE not in state.scopes:
            log.error(
                "the GitLab token lacks the %s scope (it has: %s): the bridge cannot write",
                REQUIRED_SCOPE,
                ", ".join(state.scopes) or "none",
            )
        warning = expiry_warning(state, clock.now().date(), stored=self.stored)
        if warning is not None:
            log.warning("%s", warning)
        return state

    def _due(self, state: TokenState) -> bool:
        days = state.days_left(clock.now().date())
        return self.rotate is not None and days is not None and days <= self.rotate_days

    def _rotated(self) -> TokenState | None:
        """Rotate, and read the token in use afterwards (None: the rotation failed)."""
        assert self.rotate is not None
        try:
            self.rotate()
            return TokenState.from_api(self.read())
        except Exception as error:  # GitLab refused, or its answer was lost: say so, loudly
            log.error("the GitLab token could not be rotated: %s", error)
            return None

    def start(self, stop: threading.Event) -> threading.Thread:
        """Read now, then every ``interval`` until ``stop`` is set."""
        return every(self.interval, self.check, stop, name="gitlab-token-watch", now=True)
