"""Group members: list, batched add, update, remove (gitlab.md §1.10)."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from scim_bridge.gitlab import endpoints
from scim_bridge.gitlab.api import MembersApi
from scim_bridge.gitlab.endpoints import Request
from scim_bridge.gitlab.errors import ConflictError
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.errors import group_missing
from scim_bridge.gitlab.group_ids import GroupIds
from scim_bridge.gitlab.paging import each_row
from scim_bridge.gitlab.transport import Transport
from scim_bridge.gitlab.transport import as_dict
from scim_bridge.gitlab.types import Member

__all__ = ["BATCH", "Member", "MemberManager", "batches", "chunks"]

BATCH = 100  # GitLab's invite limit per call: "Too many users specified (limit is 100)"


def chunks(ids: list[int], size: int = BATCH) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def batches(user_ids: list[int]) -> list[list[int]]:
    """The calls an add makes: each user once, at most `BATCH` per call."""
    return chunks(list(dict.fromkeys(int(u) for u in user_ids)))


class MemberManager:
    """`/groups/:id/members`. Every method raises only `scim_bridge.gitlab.errors` errors."""

    def __init__(self, transport: Transport, group_ids: GroupIds | None = None) -> None:
        self._t = transport
        self._group_ids = group_ids if group_ids is not None else GroupIds()

    def list_direct(self, group_id: int, user_ids: list[int] | None = None) -> list[Member]:
        """Direct members (all pages); `user_ids` narrows the answer, 100 ids per call."""
        return self._list(group_id, user_ids, inherited=False)

    def list_all(self, group_id: int, user_ids: list[int] | None = None) -> list[Member]:
        """Direct and inherited members, each at its highest level."""
        return self._list(group_id, user_ids, inherited=True)

    def each_direct(self, group_id: int) -> Iterator[Member]:
        """Direct members a page at a time (a report over a group of any size)."""
        request = endpoints.list_members(group_id, inherited=False)
        with self._forgetting_if_gone(group_id):
            for row in each_row(self._t, request):
                yield Member.from_api(row)

    def add_many(self, group_id: int, user_ids: list[int], access_level: int) -> None:
        """Add or overwrite members at `access_level`, 100 users per call.

        Several ids go as one comma-separated `user_id`: GitLab upserts them and answers 201
        with `{"status": "error", "message": ...}` for per-user failures, so the body is read.
        A single id would take GitLab's single-member path (409 "Member already exists"),
        so that case adds, and on 409 updates instead.
        """
        for batch in batches(user_ids):
            if len(batch) == 1:
                self._add_one(group_id, batch[0], access_level)
                continue
            answer = as_dict(
                self._send(group_id, endpoints.add_members(group_id, batch, access_level))
            )
            if answer.get("status") == "error":
                raise InvalidError(str(answer.get("message", "member add failed")), status=201)

    def update(self, group_id: int, user_id: int, access_level: int) -> None:
        """`PUT /groups/:id/members/:user_id`; 404 when not a direct member."""
        self._send(group_id, endpoints.edit_member(group_id, user_id, access_level))

    def remove(self, group_id: int, user_id: int) -> None:
        """`DELETE /groups/:id/members/:user_id`; a member already gone is success.

        GitLab allows 60 deletions per minute per group and token: 429 → TransientError
        with `retry_after`. A missing *group* is still NotFoundError.
        """
        try:
            self._send(group_id, endpoints.remove_member(group_id, user_id))
        except NotFoundError as error:
            if group_missing(error):
                raise

    def _add_one(self, group_id: int, user_id: int, access_level: int) -> None:
        try:
            self._send(group_id, endpoints.add_members(group_id, [user_id], access_level))
        except ConflictError:
            self.update(group_id, user_id, access_level)

    def _list(self, group_id: int, user_ids: list[int] | None, *, inherited: bool) -> list[Member]:
        if user_ids is None:
            calls = [endpoints.list_members(group_id, inherited=inherited)]
        else:
            calls = [
                endpoints.list_members(group_id, inherited=inherited, user_ids=chunk)
                for chunk in chunks(user_ids)
            ]
        members: list[Member] = []
        for request in calls:
            rows = self._rows(group_id, request)
            members.extend(Member.from_api(row) for row in rows)
        return members

    # A 404 naming the group means its id is stale (deleted, or transferred away): the path
    # that led to it must be resolved again next time.

    def _send(self, group_id: int, request: Request) -> Any:
        with self._forgetting_if_gone(group_id):
            return self._t.send(request)

    def _rows(self, group_id: int, request: Request) -> list[dict[str, Any]]:
        with self._forgetting_if_gone(group_id):
            return self._t.rows(request, get_all=True)

    @contextmanager
    def _forgetting_if_gone(self, group_id: int) -> Iterator[None]:
        try:
            yield
        except NotFoundError as error:
            if group_missing(error):
                self._group_ids.forget_id(group_id)
            raise


def held(
    members: MembersApi,
    group_id: int,
    user_ids: list[int],
    *,
    between: Callable[[], None] | None = None,
) -> tuple[dict[int, Member], dict[int, Member]]:
    """The direct and the effective membership of each of ``user_ids`` that GitLab has, looked
    up by ``user_ids`` (100 per call): the group itself is never listed, whatever its size.

    ``/members/all`` first: a user it does not report has no membership at all, direct or
    inherited, which settles the common case (a new member) in one lookup. Only the users it
    reports are looked up in ``/members``, since the level it gives may be inherited, and only a
    direct level may be changed, removed or remembered as found in place. ``between`` runs
    before the second lookup (a caller's deadline).
    """
    effective = {m.user_id: m for m in members.list_all(group_id, user_ids)}
    present = [user_id for user_id in user_ids if user_id in effective]
    if not present:
        return {}, effective
    if between is not None:
        between()
    return {m.user_id: m for m in members.list_direct(group_id, present)}, effective
