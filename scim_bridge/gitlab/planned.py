"""`PlannedGitLab`: dry-run. Same surface as `GitLab`, no network; every call is recorded.

Lookups find nothing, `get` raises NotFoundError, writes return synthetic objects (id 0).
Each method emits the CallRecords (planned=True, status None, outcome "planned") of the
HTTP calls the real method would make.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.groups import group_ref
from scim_bridge.gitlab.members import chunks
from scim_bridge.gitlab.transport import OnCall
from scim_bridge.gitlab.types import CallRecord
from scim_bridge.gitlab.types import GitLabGroup
from scim_bridge.gitlab.types import GitLabUser
from scim_bridge.gitlab.types import Identity
from scim_bridge.gitlab.types import Member


class _Planner:
    def __init__(self, on_call: OnCall | None) -> None:
        self._on_call = on_call

    def plan(self, method: str, path: str, query: dict[str, Any] | None = None) -> None:
        if query:
            path = f"{path}?{urlencode(query, safe='[]@,')}"
        if self._on_call is not None:
            self._on_call(CallRecord(method, path, None, "planned", 0.0, planned=True))


class PlannedUserManager:
    def __init__(self, planner: _Planner) -> None:
        self._p = planner

    def get(self, user_id: int) -> GitLabUser:
        self._p.plan("GET", f"/users/{int(user_id)}")
        raise NotFoundError("dry-run: no GitLab user is read", status=None)

    def find_by_identity(self, provider: str, extern_uid: str) -> GitLabUser | None:
        self._p.plan("GET", "/users", {"extern_uid": extern_uid, "provider": provider})
        return None

    def find_by_username(self, username: str) -> GitLabUser | None:
        self._p.plan("GET", "/users", {"username": username})
        return None

    def find_by_email(self, email: str) -> GitLabUser | None:
        self._p.plan("GET", "/users", {"search": email})
        return None

    def is_human(self, username: str) -> bool:
        self._p.plan("GET", "/users", {"username": username, "humans": "true"})
        return True

    def admins(self) -> list[GitLabUser]:
        self._p.plan("GET", "/users", {"admins": "true"})
        return []

    def create(
        self,
        *,
        username: str,
        email: str,
        name: str,
        provider: str | None,
        extern_uid: str | None,
    ) -> GitLabUser:
        if (provider is None) != (extern_uid is None):
            raise ValueError("provider and extern_uid go together")
        self._p.plan("POST", "/users")
        identities = (Identity(provider, extern_uid),) if provider and extern_uid else ()
        return GitLabUser(0, username, email, name, "active", False, identities)

    def update(
        self, user_id: int, *, name: str | None = None, username: str | None = None
    ) -> GitLabUser:
        if name is None and username is None:
            return self.get(user_id)
        self._p.plan("PUT", f"/users/{int(user_id)}")
        return GitLabUser(int(user_id), username or "", "", name or "", "active", False)

    def set_identity(self, user_id: int, provider: str, extern_uid: str) -> None:
        self._p.plan("PUT", f"/users/{int(user_id)}")

    def change_email(self, user_id: int, email: str) -> None:
        self._p.plan("POST", f"/users/{int(user_id)}/emails")
        self._p.plan("PUT", f"/users/{int(user_id)}")

    def block(self, user_id: int) -> None:
        self._p.plan("POST", f"/users/{int(user_id)}/block")

    def unblock(self, user_id: int) -> None:
        self._p.plan("POST", f"/users/{int(user_id)}/unblock")

    def deactivate(self, user_id: int) -> None:
        self._p.plan("POST", f"/users/{int(user_id)}/deactivate")

    def activate(self, user_id: int) -> None:
        self._p.plan("POST", f"/users/{int(user_id)}/activate")

    def ban(self, user_id: int) -> None:
        self._p.plan("POST", f"/users/{int(user_id)}/ban")

    def unban(self, user_id: int) -> None:
        self._p.plan("POST", f"/users/{int(user_id)}/unban")

    def delete(self, user_id: int, *, hard: bool = False) -> None:
        self._p.plan("DELETE", f"/users/{int(user_id)}", {"hard_delete": "true"} if hard else None)


class PlannedGroupManager:
    def __init__(self, planner: _Planner) -> None:
        self._p = planner

    def get(self, id_or_path: int | str) -> GitLabGroup:
        self._p.plan("GET", f"/groups/{group_ref(id_or_path)}", {"with_projects": "False"})
        raise NotFoundError("dry-run: no GitLab group is read", status=None)

    def find(self, full_path: str) -> GitLabGroup | None:
        try:
            return self.get(full_path)
        except NotFoundError:
            return None

    def create(
        self, *, name: str, path: str, parent_id: int | None, visibility: str = "private"
    ) -> GitLabGroup:
        self._p.plan("POST", "/groups")
        return GitLabGroup(0, path, name, parent_id)


class PlannedMemberManager:
    def __init__(self, planner: _Planner) -> None:
        self._p = planner

    def list_direct(self, group_id: int, user_ids: list[int] | None = None) -> list[Member]:
        self._p.plan("GET", f"/groups/{int(group_id)}/members")
        return []

    def list_all(self, group_id: int, user_ids: list[int] | None = None) -> list[Member]:
        self._p.plan("GET", f"/groups/{int(group_id)}/members/all")
        return []

    def add_many(self, group_id: int, user_ids: list[int], access_level: int) -> None:
        for _ in chunks(list(dict.fromkeys(user_ids))):
            self._p.plan("POST", f"/groups/{int(group_id)}/members")

    def update(self, group_id: int, user_id: int, access_level: int) -> None:
        self._p.plan("PUT", f"/groups/{int(group_id)}/members/{int(user_id)}")

    def remove(self, group_id: int, user_id: int) -> None:
        self._p.plan("DELETE", f"/groups/{int(group_id)}/members/{int(user_id)}")


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
        self._planner.plan("GET", "/metadata")
        return {"version": None, "revision": None, "enterprise": None, "dry_run": True}

    def current_user(self) -> GitLabUser:
        self._planner.plan("GET", "/user")
        return GitLabUser(0, "dry-run", "", "dry-run", "active", False)

    def token_info(self) -> dict[str, Any]:
        self._planner.plan("GET", "/personal_access_tokens/self")
        return {"scopes": [], "active": None, "user_id": 0}

    def close(self) -> None:
        """Nothing to close."""
