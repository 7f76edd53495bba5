"""Plain values the GitLab module returns: users, identities, groups, members, call records."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal


@dataclass(frozen=True)
class Identity:
    provider: str
    extern_uid: str


@dataclass(frozen=True)
class GitLabUser:
    id: int
    username: str
    email: str
    name: str
    state: str
    is_admin: bool
    identities: tuple[Identity, ...] = ()
    # `bot`: token bots, service accounts and internal bots (gitlab.md §1.8); never a person.
    bot: bool = False
    created_at: str | None = None

    def identity(self, provider: str) -> Identity | None:
        """The user's identity for an OmniAuth provider (GitLab keeps at most one per provider)."""
        return next((i for i in self.identities if i.provider == provider), None)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> GitLabUser:
        """From a `UserWithAdmin` entity; missing admin-only fields read as empty/False."""
        return cls(
            id=int(data["id"]),
            username=str(data["username"]),
            email=str(data.get("email") or ""),
            name=str(data.get("name") or ""),
            state=str(data.get("state") or ""),
            is_admin=bool(data.get("is_admin", False)),
            identities=tuple(
                Identity(provider=str(i["provider"]), extern_uid=str(i["extern_uid"]))
                for i in data.get("identities") or ()
            ),
            bot=bool(data.get("bot", False)),
            created_at=str(data["created_at"]) if data.get("created_at") else None,
        )


@dataclass(frozen=True)
class GitLabGroup:
    id: int
    full_path: str
    name: str
    parent_id: int | None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> GitLabGroup:
        parent_id = data.get("parent_id")
        return cls(
            id=int(data["id"]),
            full_path=str(data["full_path"]),
            name=str(data["name"]),
            parent_id=int(parent_id) if parent_id is not None else None,
        )


@dataclass(frozen=True)
class Member:
    user_id: int
    access_level: int
    # Read by the access report only; a member is its user and level, so they are not compared.
    username: str | None = field(default=None, compare=False)
    created_at: str | None = field(default=None, compare=False)  # when the membership was made

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Member:
        return cls(
            user_id=int(data["id"]),
            access_level=int(data["access_level"]),
            username=str(data["username"]) if data.get("username") else None,
            created_at=str(data["created_at"]) if data.get("created_at") else None,
        )


@dataclass(frozen=True)
class CallRecord:
    """One HTTP call to GitLab (or one planned call in dry-run), for the audit log.

    `path` is relative to `/api/v4` and never holds the token; bodies are left out (the
    caller audits attribute changes itself).
    """

    method: str
    path: str
    status: int | None
    outcome: str  # "ok" | "error:<status>" | "timeout" | "connection-error" | "planned"
    duration_ms: float
    planned: bool


#: The moderation actions of `POST /users/:id/<action>` (gitlab.md §1.5).
Moderation = Literal["block", "unblock", "deactivate", "activate", "ban", "unban"]


@dataclass(frozen=True)
class RotatedToken:
    """What `POST /personal_access_tokens/self/rotate` answers: the new token (never printed)."""

    token: str = field(repr=False)
    expires_at: str | None = None  # YYYY-MM-DD, as GitLab gives it
