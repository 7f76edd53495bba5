"""`GitLabApi`: the interface provisioning holds GitLab by, one Protocol per API area.

The real client (`client.GitLab`) and the dry-run planner (`planned.PlannedGitLab`) both satisfy
it, and mypy checks that they do; a test or a reconciler may pass any other implementation, such
as an in-memory fake. Every method raises only `scim_bridge.gitlab.errors` errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from scim_bridge.gitlab.types import GitLabGroup
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.gitlab.types import Member
from scim_bridge.gitlab.types import Moderation


class UsersApi(Protocol):
    """`/users` (gitlab.md §1)."""

    def get(self, user_id: int) -> GitLabUser:
        """404 → NotFoundError."""
        ...

    def find_by_identity(self, provider: str, extern_uid: str) -> GitLabUser | None: ...

    def find_by_username(self, username: str) -> GitLabUser | None: ...

    def find_by_email(self, email: str) -> GitLabUser | None:
        """The user whose *primary* email is `email` (case-insensitive)."""
        ...

    def is_human(self, username: str) -> bool:
        """False for bots, service accounts and internal users."""
        ...

    def admins(self) -> list[GitLabUser]: ...

    def each_with_identity(self, provider: str) -> Iterator[GitLabUser]:
        """Active accounts with an identity under `provider`, a page at a time."""
        ...

    def create(
        self, *, username: str, email: str, name: str, provider: str | None, extern_uid: str | None
    ) -> GitLabUser: ...

    def update(
        self, user_id: int, *, name: str | None = None, username: str | None = None
    ) -> GitLabUser:
        """Only the given keys; nothing given is a plain `get`."""
        ...

    def set_identity(self, user_id: int, provider: str, extern_uid: str) -> None:
        """ConflictError when the identity did not take (linked to another account)."""
        ...

    def change_email(self, user_id: int, email: str) -> None: ...

    def moderate(self, user_id: int, action: Moderation) -> None: ...

    def block(self, user_id: int) -> None: ...

    def delete(self, user_id: int, *, hard: bool = False) -> None: ...


class GroupsApi(Protocol):
    """`/groups` (gitlab.md §1.9)."""

    def get(self, id_or_path: int | str) -> GitLabGroup:
        """404 → NotFoundError. The real client answers a full path it resolved before without
        a call, until GitLab answers 404 for that path or for a call on its id."""
        ...

    def find(self, full_path: str) -> GitLabGroup | None: ...

    def create(
        self, *, name: str, path: str, parent_id: int | None, visibility: str = "private"
    ) -> GitLabGroup: ...


class MembersApi(Protocol):
    """`/groups/:id/members` (gitlab.md §1.10)."""

    def list_direct(self, group_id: int, user_ids: list[int] | None = None) -> list[Member]: ...

    def list_all(self, group_id: int, user_ids: list[int] | None = None) -> list[Member]:
        """Direct and inherited members, each at its highest level."""
        ...

    def each_direct(self, group_id: int) -> Iterator[Member]:
        """Direct members, a page at a time."""
        ...

    def add_many(self, group_id: int, user_ids: list[int], access_level: int) -> None:
        """Add or overwrite members at `access_level`."""
        ...

    def update(self, group_id: int, user_id: int, access_level: int) -> None: ...

    def remove(self, group_id: int, user_id: int) -> None:
        """A member already gone is success; a missing group is NotFoundError."""
        ...


class GitLabApi(Protocol):
    """A GitLab instance, real or planned (`dry_run`: calls are recorded, not made)."""

    @property
    def dry_run(self) -> bool: ...

    @property
    def users(self) -> UsersApi: ...

    @property
    def groups(self) -> GroupsApi: ...

    @property
    def members(self) -> MembersApi: ...
