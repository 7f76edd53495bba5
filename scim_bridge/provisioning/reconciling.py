"""What every reconciler shares: its outcome, its deadline, and the two ways a run stops.

A reconciler makes GitLab agree with the store for one entity (a user, a SCIM group, a GitLab
group), level-triggered and idempotent. The :class:`~scim_bridge.provisioning.runner.JobRunner`
calls it through :class:`Reconciler`; it ends with an :class:`Outcome`, or stops with
:class:`Rejected` (for good) or :class:`Retry` (later).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal
from typing import Protocol

from scim_bridge.gitlab.errors import AuthenticationError
from scim_bridge.gitlab.errors import TransientError


class Rejected(Exception):
    """GitLab refused the desired state for good (no retry can cure it)."""

    def __init__(
        self, kind: Literal["conflict", "invalid"], detail: str, *, tell_client: bool = True
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        # False when the refusal is the operator's to fix (a rule naming a missing GitLab group),
        # not the client's: the client's write stands and the job is parked, visible.
        self.tell_client = tell_client


class Retry(Exception):
    """Try again later: GitLab is down, slow, rate limiting, or the deadline passed."""

    def __init__(
        self, detail: str, retry_after: float | None = None, *, paced: bool = False
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        # Waiting on purpose (pacing), not failing: it does not count towards parking the job.
        self.paced = paced


@dataclass
class Deadline:
    at: float | None = None

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        return cls(None if seconds is None else time.monotonic() + seconds)

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    def check(self) -> None:
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise Retry("the request's deadline passed; the worker continues")


@contextmanager
def gitlab_trouble_is_retry() -> Iterator[None]:
    """GitLab down, slow, rate limiting or refusing the bridge's token: worth trying again later."""
    try:
        yield
    except TransientError as error:
        raise Retry(f"GitLab: {error}", error.retry_after) from error
    except AuthenticationError as error:
        raise Retry(
            f"GitLab refused the bridge's token ({error}); check SCIM_BRIDGE_GITLAB_TOKEN"
        ) from error


@dataclass
class Outcome:
    actions: list[str] = field(default_factory=list)
    follow_up: list[str] = field(default_factory=list)  # job keys this run queued


class Reconciler(Protocol):
    """What the job runner calls: make GitLab agree with the store for one entity (its id, a
    SCIM user or group id or a GitLab group path, is positional: each reconciler names it)."""

    def reconcile(self, entity_id: str, /, deadline: Deadline | None = None) -> Outcome: ...


# How a reconciler records an audit event: (action, target, detail).
Audit = Callable[[str, str | None, dict[str, Any] | None], None]
