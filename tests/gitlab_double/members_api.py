"""The group Members API (gitlab.md §1.10), including multi-add and the delete rate limit."""

from __future__ import annotations

from typing import Any

from tests.gitlab_double import entities
from tests.gitlab_double.context import Call
from tests.gitlab_double.context import Reply
from tests.gitlab_double.context import present
from tests.gitlab_double.context import require
from tests.gitlab_double.context import to_int
from tests.gitlab_double.errors import ApiError
from tests.gitlab_double.errors import bad_params
from tests.gitlab_double.errors import conflict
from tests.gitlab_double.errors import invalid
from tests.gitlab_double.errors import not_found
from tests.gitlab_double.groups_api import find_group
from tests.gitlab_double.groups_api import require_owner
from tests.gitlab_double.pagination import paginate
from tests.gitlab_double.records import GroupRecord
from tests.gitlab_double.records import MemberRecord
from tests.gitlab_double.records import UserRecord
from tests.gitlab_double.state import ACCESS_LEVELS
from tests.gitlab_double.state import State

INVITE_LIMIT = 100
# `find_by!` raises RecordNotFound, which GitLab's API renders as this body.
RECORD_NOT_FOUND = ApiError(404, {"message": "404 Not found"})
RATE_LIMITED = "This endpoint has been requested too many times. Try again later."


def list_members(state: State, call: Call, ref: str, *, inherited: bool = False) -> Reply:
    """`GET /groups/:id/members[/all]`; `/all` reports each user's highest level."""
    group = find_group(state, call, ref)
    wanted = _user_ids_filter(call.params)
    rows: dict[int, MemberRecord] = {}
    for source in [group, *state.ancestors(group)] if inherited else [group]:
        for member in state.members[source.id].values():
            best = rows.get(member.user_id)
            if best is None or member.access_level > best.access_level:
                rows[member.user_id] = member
    chosen = [m for m in rows.values() if wanted is None or m.user_id in wanted]
    if present(call.params, "query"):
        term = str(call.params["query"]).lower()
        chosen = [m for m in chosen if _matches(state.users[m.user_id], term)]
    return paginate(call, chosen, lambda m: _render(state, call, m))


def get_member(state: State, call: Call, ref: str, user_id: str) -> Reply:
    group = find_group(state, call, ref)
    member = state.direct_member(group, to_int("user_id", user_id))
    if member is None:
        raise RECORD_NOT_FOUND
    return Reply(200, _render(state, call, member))


def add_member(state: State, call: Call, ref: str) -> Reply:
    """`POST /groups/:id/members`: one id → Member or 409; several → upsert with a status body."""
    p = call.params
    require(p, "access_level")
    level = _access_level(p["access_level"])
    if present(p, "user_id") and present(p, "username"):
        raise bad_params("user_id, username are mutually exclusive")
    if not (present(p, "user_id") or present(p, "username")):
        raise bad_params("user_id, username are missing, at least one parameter must be provided")
    group = find_group(state, call, ref)
    require_owner(state, call.caller, group)
    by_username = not present(p, "user_id")
    raw = str(p["username"] if by_username else p["user_id"])
    if "," in raw:
        return Reply(201, _add_many(state, group, raw, level, by_username=by_username))
    user = _resolve(state, raw, by_username=by_username)
    if user is None:
        raise not_found("User")
    if state.direct_member(group, user.id):
        raise conflict("Member already exists")
    error = _inherited_error(state, group, user, level)
    if error:
        raise invalid({"access_level": [error]})
    member = MemberRecord(user.id, level, expires_at=p.get("expires_at"))
    state.members[group.id][user.id] = member
    return Reply(201, _render(state, call, member))


def update_member(state: State, call: Call, ref: str, user_id: str) -> Reply:
    """`PUT /groups/:id/members/:user_id`: direct members only."""
    require(call.params, "access_level")
    level = _access_level(call.params["access_level"])
    group = find_group(state, call, ref)
    require_owner(state, call.caller, group)
    member = state.direct_member(group, to_int("user_id", user_id))
    if member is None:
        raise RECORD_NOT_FOUND
    error = _inherited_error(state, group, state.users[member.user_id], level)
    if error:
        raise invalid({"access_level": [error]})
    member.access_level = level
    if "expires_at" in call.params:
        member.expires_at = call.params["expires_at"]
    return Reply(200, _render(state, call, member))


def remove_member(state: State, call: Call, ref: str, user_id: str) -> Reply:
    """`DELETE /groups/:id/members/:user_id`: member lookup, then the 60/min limit, then 204.

    GitLab's `too_many_requests!` answers `{"message":{"error":"This endpoint has been
    requested too many times. Try again later."}}` with `Retry-After: <interval>`.
    """
    group = find_group(state, call, ref)
    member = state.direct_member(group, to_int("user_id", user_id))
    if member is None:
        raise RECORD_NOT_FOUND
    limiter = state.member_delete_limiter
    if not limiter.hit((group.id, call.caller.token.token)):
        raise ApiError(
            429,
            {"message": {"error": RATE_LIMITED}},
            {"Retry-After": str(limiter.retry_after)},
        )
    require_owner(state, call.caller, group)
    del state.members[group.id][member.user_id]
    return Reply(204)


def _add_many(
    state: State, group: GroupRecord, raw: str, level: int, *, by_username: bool
) -> dict[str, Any]:
    """`Members::CreateService`: unknown ids are dropped; errors come back in the body."""
    invites = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not invites:
        return {
            "status": "error",
            "message": "No users specified.",
            "reason": "blank_invites_error",
        }
    if len(invites) > INVITE_LIMIT:
        return {
            "status": "error",
            "message": f"Too many users specified (limit is {INVITE_LIMIT})",
            "reason": "too_many_invites_error",
        }
    errors = []
    for invite in invites:
        user = _resolve(state, invite, by_username=by_username)
        if user is None:
            continue
        error = _inherited_error(state, group, user, level)
        if error:
            errors.append(f"{user.username}: Access level {error}")
            continue
        existing = state.direct_member(group, user.id)
        if existing:
            existing.access_level = level  # upsert: overwritten up or down
        else:
            state.members[group.id][user.id] = MemberRecord(user.id, level)
    if errors:
        return {"status": "error", "message": _to_sentence(errors)}
    return {"status": "success"}


def _inherited_error(state: State, group: GroupRecord, user: UserRecord, level: int) -> str | None:
    """`Member#higher_access_level_than_group`: no direct level below an inherited one."""
    inherited = state.inherited(group, user.id)
    if inherited and inherited[0] > level:
        role = ACCESS_LEVELS[inherited[0]]
        return (
            f"should be greater than or equal to {role} inherited membership "
            f"from group {inherited[1].name}"
        )
    return None


def _access_level(value: Any) -> int:
    try:
        level = int(value)
    except (TypeError, ValueError):
        level = -1
    if level not in ACCESS_LEVELS:
        raise bad_params("access_level does not have a valid value")
    return level


def _resolve(state: State, invite: str, *, by_username: bool) -> UserRecord | None:
    if by_username:
        return state.user_by_username(invite)
    return state.users.get(int(invite)) if invite.isdigit() else None


def _user_ids_filter(params: dict[str, Any]) -> set[int] | None:
    """`user_ids` as `user_ids[]=1&user_ids[]=2`, repeated, or comma-separated."""
    raw = params.get("user_ids")
    if raw in (None, "", []):
        return None
    values = raw if isinstance(raw, list) else [raw]
    ids: set[int] = set()
    for value in values:
        for part in str(value).split(","):
            if part.strip():
                ids.add(to_int("user_ids", part.strip()))
    return ids


def _matches(user: UserRecord, term: str) -> bool:
    return term in user.username.lower() or term in user.name.lower()


def _render(state: State, call: Call, member: MemberRecord) -> dict[str, Any]:
    return entities.member(state.users[member.user_id], member, call.base_url)


def _to_sentence(items: list[str]) -> str:
    """Rails' `Array#to_sentence`."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]
