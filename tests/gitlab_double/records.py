"""The double's rows: what GitLab keeps about users, emails, groups, members and tokens."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from dataclasses import field
from typing import Any


def now_iso() -> str:
    """GitLab's timestamp format, e.g. `2025-01-31T12:00:00.000Z`."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# GL:app/models/concerns/has_user_type.rb: which user types are bots, and which are internal.
BOT_USER_TYPES = frozenset(
    {
        "alert_bot",
        "project_bot",
        "support_bot",
        "visual_review_bot",
        "migration_bot",
        "security_bot",
        "automation_bot",
        "security_policy_bot",
        "admin_bot",
        "service_account",
        "llm_bot",
    }
)
INTERNAL_USER_TYPES = frozenset(
    {
        "ghost",
        "alert_bot",
        "support_bot",
        "visual_review_bot",
        "migration_bot",
        "security_bot",
        "automation_bot",
        "security_policy_bot",
        "admin_bot",
        "llm_bot",
    }
)
USER_TYPES = frozenset({"human", *BOT_USER_TYPES, *INTERNAL_USER_TYPES})


@dataclass
class IdentityRecord:
    provider: str
    extern_uid: str


@dataclass
class EmailRecord:
    """A secondary email; only confirmed ones count for `User.by_any_email` (gitlab.md §1.2)."""

    id: int
    email: str
    confirmed_at: str | None


@dataclass
class UserRecord:
    id: int
    username: str
    name: str
    email: str
    state: str = "active"
    is_admin: bool = False
    can_create_group: bool = True
    external: bool = False
    projects_limit: int = 100000
    created_at: str = field(default_factory=now_iso)
    confirmed_at: str | None = None
    unconfirmed_email: str | None = None
    identities: list[IdentityRecord] = field(default_factory=list)
    emails: list[EmailRecord] = field(default_factory=list)
    last_activity_on: dt.date | None = None
    password_automatically_set: bool = False
    reset_password_sent: bool = False
    note: str | None = None
    # GitLab's `user_type`: "human", or an internal/bot kind (gitlab.md §1.8).
    user_type: str = "human"

    @property
    def bot(self) -> bool:
        """The entity's `bot`: every bot type (token bots, service accounts, internal bots)."""
        return self.user_type in BOT_USER_TYPES

    @property
    def internal(self) -> bool:
        """`User.internal`: ghost and the internal bots (left out by `exclude_internal`)."""
        return self.user_type in INTERNAL_USER_TYPES

    def to_dict(self) -> dict[str, Any]:
        """A test-facing snapshot (not an API entity): every field plus `confirmed`."""
        data = dataclasses.asdict(self)
        data["confirmed"] = self.confirmed_at is not None
        data["bot"] = self.bot
        return data


@dataclass
class GroupRecord:
    id: int
    name: str
    path: str
    parent_id: int | None
    visibility: str = "private"
    description: str = ""
    created_at: str = field(default_factory=now_iso)
    marked_for_deletion_on: str | None = None


@dataclass
class MemberRecord:
    user_id: int
    access_level: int
    created_at: str = field(default_factory=now_iso)
    expires_at: str | None = None


@dataclass
class TokenRecord:
    id: int
    token: str
    user_id: int
    name: str
    scopes: list[str]
    active: bool = True
    expires_at: str | None = None  # YYYY-MM-DD, as GitLab gives it
    rotated_to: str | None = None  # the token its rotation minted (it is revoked then)


@dataclass(frozen=True)
class MailRecord:
    """A mail GitLab would have sent; tests assert that provisioning sends none."""

    to: str
    kind: str  # "reset_password" | "confirmation" | "reconfirmation"
    user_id: int
