"""Group members: list, batched add, update, remove (gitlab.md §1.10)."""

from __future__ import annotations

from typing import Any

from scim_bridge.gitlab.errors import ConflictError
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.transport import Transport
from scim_bridge.gitlab.transport import as_dict
from scim_bridge.gitlab.transport import list_rows
from scim_bridge.gitlab.types import Member

__all__ = ["BATCH", "Member", "MemberManager", "chunks"]

BATCH = 100  # GitLab's invite limit per call: "Too many users specified (limit is 100)"


def chunks(ids: list[int], size: int = BATCH) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


class MemberManager:
    """`/groups/:id/members`. Every method raises only `scim_bridge.gitlab.errors` errors."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list_direct(self, group_id: int, user_ids: list[int] | None = None) -> list[Member]:
        """Direct members (all pages); `user_ids` narrows the answer, 100 ids per call."""
        return self._list(f"/groups/{int(group_id)}/members", user_ids)

    def list_all(self, group_id: int, user_ids: list[int] | None = None) -> list[Member]:
        """Direct and inherited members, each at its highest level."""
        return self._list(f"/groups/{int(group_id)}/members/all", user_ids)

    def add_many(self, group_id: int, user_ids: list[int], access_level: int) -> None:
        """Add or overwrite members at `access_level`, 100 users per call.

        Several ids go as one comma-separated `user_id`: GitLab upserts them and answers 201
        with `{"status": "error", "message": ...}` for per-user failures, so the body is read.
        A single id would take GitLab's single-member path (409 "Member already exists"),
        so that case adds, and on 409 updates instead.
        """
        path = f"/groups/{int(group_id)}/members"
        for chunk in chunks(list(dict.fromkeys(int(u) for u in user_ids))):
            if len(chunk) == 1:
                self._add_one(group_id, chunk[0], access_level)
                continue
            body = {"user_id": ",".join(str(u) for u in chunk), "access_level": access_level}
            answer = as_dict(self._t.call(lambda gl, b=body: gl.http_post(path, post_data=b)))
            if answer.get("status") == "error":
                raise InvalidError(str(answer.get("message", "member add failed")), status=201)

    def update(self, group_id: int, user_id: int, access_level: int) -> None:
        """`PUT /groups/:id/members/:user_id`; 404 when not a direct member."""
        path = f"/groups/{int(group_id)}/members/{int(user_id)}"
        body = {"access_level": access_level}
        self._t.call(lambda gl: gl.http_put(path, post_data=body))

    def remove(self, group_id: int, user_id: int) -> None:
        """`DELETE /groups/:id/members/:user_id`; a member already gone is success.

        GitLab allows 60 deletions per minute per group and token: 429 → TransientError
        with `retry_after`. A missing *group* is still NotFoundError.
        """
        path = f"/groups/{int(group_id)}/members/{int(user_id)}"
        try:
            self._t.call(lambda gl: gl.http_delete(path))
        except NotFoundError as error:
            if "group" in error.message.lower():
                raise

    def _add_one(self, group_id: int, user_id: int, access_level: int) -> None:
        body = {"user_id": user_id, "access_level": access_level}
        path = f"/groups/{int(group_id)}/members"
        try:
            self._t.call(lambda gl: gl.http_post(path, post_data=body))
        except ConflictError:
            self.update(group_id, user_id, access_level)

    def _list(self, path: str, user_ids: list[int] | None) -> list[Member]:
        if user_ids is not None and not user_ids:
            return []
        queries: list[dict[str, Any]] = (
            [{}] if user_ids is None else [{"user_ids[]": c} for c in chunks(user_ids)]
        )
        members: list[Member] = []
        for query in queries:
            rows = self._t.call(lambda gl, q=query: list_rows(gl, path, q, get_all=True))
            members.extend(Member.from_api(row) for row in rows)
        return members
