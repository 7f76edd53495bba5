"""`PlannedGitLab`: dry-run. Same interface as `GitLab` (`GitLabApi`), no network.

Lookups find nothing, `get` raises NotFoundError, writes return synthetic objects (id 0).
Each method records the requests the real method would make (`endpoints`, the declarations both
share) as CallRecords: planned=True, status None, outcome "planned".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scim_bridge.gitlab import endpoints
from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.endpoints import Request
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.members import batches
from scim_bridge.gitlab.transport import OnCall
from scim_bridge.gitlab.types import CallRecord
from scim_bridge.gitlab.types import GitLabGroup
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.gitlab.types import Identity
from scim_bridge.gitlab.types import Member
from scim_bridge.gitlab.types import Moderation
from scim_bridge.gitlab.types import RotatedToken


class _Planner:
    def __init__(self, on_call: OnCall | None) -> None:
        self._on_call = on_call

    def plan(self, request: Request) -> None:
        if self._on_call is not None:
            record = CallRecord(request.method, request.audit_path(), None, "planned", 0.0, True)
            self._on_call(record)


class PlannedUserManager:
    def __init__(self, planner: _Planner) -> None:
        self._p = planner

    def get(self, user_id: int) -> GitLabUser:
        self._p.plan(endpoints.get_user(user_id))
        raise NotFoundError("dry-run: no GitLab user is read", status=None)

    def find_by_identity(self, provider: str, extern_uid: str) -> GitLabUser | None:
        self._p.plan(endpoints.users_by_identity(provider, extern_uid))
        return None

    def find_by_username(self, username: str) -> GitLabUser | None:
        self._p.plan(endpoints.users_by_username(username))
        return None

    def find_by_email(self, email: str) -> GitLabUser | None:
        self._p.plan(endpoints.users_matching(email))
        return None

    def is_human(self, username: str) -> bool:
        self._p.plan(endpoints.humans_by_username(username))
        return True

    def admins(self) -> list[GitLabUser]:
        self._p.plan(endpoints.admins())
        return []

    def each_with_identity(self, provider: str) -> Iterator[GitLabUser]:
        self._p.plan(endpoints.active_users())
        return iter(())

    def create(
        self, *, username: str, email: str, name: str, provider: str | None, extern_uid: str | None
    ) -> GitLabUser:
        self._p.plan(
            endpoints.create_user(
                username=username, email=email, name=name, provider=provider, extern_uid=extern_uid
            )
        )
        identities = (Identity(provider, extern_uid),) if provider and extern_uid else ()
        return GitLabUser(0, username, email, name, "active", False, identities)

    def update(
        self, user_id: int, *, name: str | None = None, username: str | None = None
    ) -> GitLabUser:
        changes = {k: v for k, v in (("name", name), ("username", username)) if v is not None}
        if not changes:
            return self.get(user_id)
        self._p.plan(endpoints.edit_user(user_id, changes))
        return GitLabUser(int(user_id), username or "", "", name or "", "active", False)

    def set_identity(self, user_id: int, provider: str, extern_uid: str) -> None:
        self._p.plan(endpoints.set_identity(user_id, provider, extern_uid))

    def change_email(self, user_id: int, email: str) -> None:
        self._p.plan(endpoints.add_email(user_id, email))
        self._p.plan(endpoints.make_primary_email(user_id, email))

    def moderate(self, user_id: int, action: Moderation) -> None:
        self._p.plan(endpoints.moderate_user(user_id, action))

    def block(self, user_id: int) -> None:
        self.moderate(user_id, "block")

    def delete(self, user_id: int, *, hard: bool = False) -> None:
        self._p.plan(endpoints.delete_user(user_id, hard=hard))


class PlannedGroupManager:
    def __init__(self, planner: _Planner) -> None:
        self._p = planner

    def get(self, id_or_path: int | str) -> GitLabGroup:
        self._p.plan(endpoints.get_group(id_or_path))
        raise NotFoundError("dry-run: no GitLab group is read", status=None)

    def find(self, full_path: str) -> GitLabGroup | None:
        try:
            return self.get(full_path)
        except NotFoundError:
            return None

    def create(
        self, *, name: str, path: str, parent_id: int | None, visibility: str = "private"
    ) -> GitLabGroup:
        self._p.plan(
            endpoints.create_group(name=name, path=path, parent_id=parent_id, visibility=visibility)
        )
        return GitLabGroup(0, path, name, parent_id)


class PlannedMemberManager:
    """Lists are planned as one call whatever `user_ids` holds: dry-run reads no member."""

    def __init__(self, planner: _Planner) -> None:
        self._p = planner

    def list_direct(self, group_id: int, user_ids: list[int] | None = None) -> list[Member]:
        self._p.plan(endpoints.list_members(group_id, inherited=False))
        return []

    def list_all(self, group_id: int, user_ids: list[int] | None = None) -> list[Member]:
        self._p.plan(endpoints.list_members(group_id, inherited=True))
        return []

    def each_direct(self, group_id: int) -> Iterator[Member]:
        self._p.plan(endpoints.list_members(group_id, inherited=False))
        return iter(())

    def add_many(self, group_id: int, user_ids: list[int], access_level: int) -> None:
        for batch in batches(user_ids):
            self._p.plan(endpoints.add_members(group_id, batch, access_level))

    def update(self, group_id: int, user_id: int, access_level: int) -> None:
        self._p.plan(endpoints.edit_member(group_id, user_id, access_level))

    def remove(self, group_id: int, user_id: int) -> None:
        self._p.plan(endpoints.remove_member(group_id, user_id))


class PlannedGitLab:
    """Dry-run stand-in for `GitLab`: nothing leaves the process."""

    dry_run: bool = True

    def __init__(self, *, on_call: OnCall | None = None, url: str | None = None) -> None:
        planner = _Planner(on_call)
        self._planner = planner
        self.url = url
        self.users = PlannedUserManager(planner)
        self.groups = PlannedGroupManager(planner)
        self.members = PlannedMemberManager(planner)

    def metadata(self) -> dict[str, Any]:
        self._planner.plan(endpoints.metadata())
        return {"version": None, "revision": None, "enterprise": None, "dry_run": True}

    def current_user(self) -> GitLabUser:
        self._planner.plan(endpoints.current_user())
        return GitLabUser(0, "dry-run", "", "dry-run", "active", False)

    def token_info(self) -> dict[str, Any]:
        self._planner.plan(endpoints.token_info())
        return {"scopes": [], "active": None, "user_id": 0}

    def rotate_token(self, expires_at: str | None) -> RotatedToken:
        """Planned, never made: a dry-run has no token, and nothing to store a new one in."""
        self._planner.plan(endpoints.rotate_token(expires_at))
        raise InvalidError("dry-run: no GitLab token to rotate", None)

    def close(self) -> None:
        """Nothing to close."""


# mypy proves the planner offers everything provisioning may call on the real client.
_: type[GitLabApi] = PlannedGitLab
