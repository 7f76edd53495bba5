"""Groups: read by id or full path, find, create (gitlab.md §1.9); paths resolved once (`GroupIds`)."""

from __future__ import annotations

from scim_bridge.gitlab import endpoints
from scim_bridge.gitlab.endpoints import group_ref
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.group_ids import GroupIds
from scim_bridge.gitlab.transport import Transport
from scim_bridge.gitlab.transport import as_dict
from scim_bridge.gitlab.types import GitLabGroup

__all__ = ["GitLabGroup", "GroupManager", "group_ref"]


class GroupManager:
    """`/groups`. Every method raises only `scim_bridge.gitlab.errors` errors."""

    def __init__(self, transport: Transport, ids: GroupIds | None = None) -> None:
        self._t = transport
        self.ids = ids if ids is not None else GroupIds()

    def get(self, id_or_path: int | str) -> GitLabGroup:
        """`GET /groups/:id` without the project list; 404 → NotFoundError.

        A full path GitLab resolved before is answered from `ids`, without a call; a 404 forgets
        it (and everything cached for the id asked for).
        """
        path = None if group_ref(id_or_path).isdigit() else str(id_or_path)
        if path is not None:
            cached = self.ids.get(path)
            if cached is not None:
                return cached
        try:
            group = GitLabGroup.from_api(as_dict(self._t.send(endpoints.get_group(id_or_path))))
        except NotFoundError:
            if path is None:
                self.ids.forget_id(int(id_or_path))
            else:
                self.ids.forget_path(path)
            raise
        if path is not None:
            self.ids.remember(path, group)
        return group

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
        group = GitLabGroup.from_api(as_dict(self._t.send(request)))
        self.ids.remember(group.full_path, group)
        return group
