"""Groups: read by id or full path, find, create (gitlab.md §1.9)."""

from __future__ import annotations

from scim_bridge.gitlab import endpoints
from scim_bridge.gitlab.endpoints import group_ref
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.transport import Transport
from scim_bridge.gitlab.transport import as_dict
from scim_bridge.gitlab.types import GitLabGroup

__all__ = ["GitLabGroup", "GroupManager", "group_ref"]


class GroupManager:
    """`/groups`. Every method raises only `scim_bridge.gitlab.errors` errors."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def get(self, id_or_path: int | str) -> GitLabGroup:
        """`GET /groups/:id` without the project list; 404 → NotFoundError."""
        return GitLabGroup.from_api(as_dict(self._t.send(endpoints.get_group(id_or_path))))

    def find(self, full_path: str) -> GitLabGroup | None:
        try:
            return self.get(full_path)
        except NotFoundError:
            return None

    def create(
        self, *, name: str, path: str, parent_id: int | None, visibility: str = "private"
    ) -> GitLabGroup:
        """`POST /groups`; a taken path is 400 "Failed to save group {...}" (InvalidError)."""
        request = endpoints.create_group(
            name=name, path=path, parent_id=parent_id, visibility=visibility
        )
        return GitLabGroup.from_api(as_dict(self._t.send(request)))
