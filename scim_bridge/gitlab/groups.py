"""Groups: read by id or full path, find, create (gitlab.md §1.9)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.transport import Transport
from scim_bridge.gitlab.transport import as_dict
from scim_bridge.gitlab.types import GitLabGroup

__all__ = ["GitLabGroup", "GroupManager", "group_ref"]


def group_ref(id_or_path: int | str) -> str:
    """A URL segment for a group: its id, or its full path URL-encoded (`acme%2Fdev`)."""
    if isinstance(id_or_path, int) or str(id_or_path).isdigit():
        return str(int(id_or_path))
    return quote(str(id_or_path), safe="")


class GroupManager:
    """`/groups`. Every method raises only `scim_bridge.gitlab.errors` errors."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def get(self, id_or_path: int | str) -> GitLabGroup:
        """`GET /groups/:id` without the project list; 404 → NotFoundError."""
        path = f"/groups/{group_ref(id_or_path)}"
        data = self._t.call(lambda gl: gl.http_get(path, query_data={"with_projects": False}))
        return GitLabGroup.from_api(as_dict(data))

    def find(self, full_path: str) -> GitLabGroup | None:
        try:
            return self.get(full_path)
        except NotFoundError:
            return None

    def create(
        self, *, name: str, path: str, parent_id: int | None, visibility: str = "private"
    ) -> GitLabGroup:
        """`POST /groups`; a taken path is 400 "Failed to save group {...}" (InvalidError)."""
        body: dict[str, Any] = {"name": name, "path": path, "visibility": visibility}
        if parent_id is not None:
            body["parent_id"] = parent_id
        data = self._t.call(lambda gl: gl.http_post("/groups", post_data=body))
        return GitLabGroup.from_api(as_dict(data))
