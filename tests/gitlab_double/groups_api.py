"""The Groups API (gitlab.md §1.9): create, read, list, update, delete (marked for deletion)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import unquote

from tests.gitlab_double import entities
from tests.gitlab_double.context import Call
from tests.gitlab_double.context import Caller
from tests.gitlab_double.context import Reply
from tests.gitlab_double.context import present
from tests.gitlab_double.context import require
from tests.gitlab_double.context import to_bool
from tests.gitlab_double.context import to_int
from tests.gitlab_double.errors import ApiError
from tests.gitlab_double.errors import bad_params
from tests.gitlab_double.errors import forbidden
from tests.gitlab_double.errors import invalid
from tests.gitlab_double.errors import not_found
from tests.gitlab_double.pagination import paginate
from tests.gitlab_double.records import GroupRecord
from tests.gitlab_double.records import MemberRecord
from tests.gitlab_double.state import OWNER
from tests.gitlab_double.state import State
from tests.gitlab_double.validation import namespace_path_errors

VISIBILITIES = ("private", "internal", "public")


def find_group(state: State, call: Call, ref: str) -> GroupRecord:
    """`find_group!`: id or URL-encoded full path; invisible groups are 404 too."""
    group = state.group_by_ref(unquote(ref))
    if group is None or not _can_read(state, call.caller, group):
        raise not_found("Group")
    return group


def require_owner(state: State, caller: Caller, group: GroupRecord) -> None:
    """`admin_group` / `admin_group_member`: instance admins, or Owners (direct or inherited)."""
    if caller.is_admin:
        return
    level = state.effective_level(group, caller.user.id)
    if level is None or level < OWNER:
        raise forbidden()


def create_group(state: State, call: Call) -> Reply:
    """`POST /groups`: 400 `Failed to save group {...}` on a taken or invalid path."""
    p = call.params
    require(p, "name", "path")
    visibility = str(p.get("visibility", "private"))
    if visibility not in VISIBILITIES:
        raise bad_params("visibility does not have a valid value")
    parent = None
    if present(p, "parent_id"):
        parent = state.groups.get(to_int("parent_id", p["parent_id"]))
        if parent is None or not _can_read(state, call.caller, parent):
            raise not_found("Group")
        require_owner(state, call.caller, parent)
    elif not (call.caller.is_admin or call.caller.user.can_create_group):
        raise forbidden()
    path, name = str(p["path"]), str(p["name"])
    errors = _path_errors(state, path, parent.id if parent else None)
    if errors:
        raise ApiError(400, {"message": f"Failed to save group {_ruby_hash({'path': errors})}"})
    group = GroupRecord(
        id=state.next_group_id(),
        name=name,
        path=path,
        parent_id=parent.id if parent else None,
        visibility=visibility,
        description=str(p.get("description") or ""),
    )
    state.groups[group.id] = group
    # Groups::CreateService adds the creator as Owner.
    state.members[group.id] = {call.caller.user.id: MemberRecord(call.caller.user.id, OWNER)}
    return Reply(201, entities.group(state, group, call.base_url))


def get_group(state: State, call: Call, ref: str) -> Reply:
    group = find_group(state, call, ref)
    body = entities.group(state, group, call.base_url)
    if to_bool(call.params.get("with_projects", True)):
        body.update(projects=[], shared_projects=[])
    return Reply(200, body)


def list_groups(state: State, call: Call) -> Reply:
    """`GET /groups`: `search` on name or path, `top_level_only`; ordered by name."""
    p = call.params
    groups = [g for g in state.groups.values() if _can_read(state, call.caller, g)]
    if present(p, "search"):
        term = str(p["search"]).lower()
        groups = [g for g in groups if term in g.name.lower() or term in g.path.lower()]
    if to_bool(p.get("top_level_only", False)):
        groups = [g for g in groups if g.parent_id is None]
    groups.sort(key=lambda g: (g.name.lower(), g.id), reverse=p.get("sort") == "desc")
    return paginate(call, groups, lambda g: entities.group(state, g, call.base_url))


def update_group(state: State, call: Call, ref: str) -> Reply:
    """`PUT /groups/:id`: validation errors as `{"message": {"path": [...]}}`."""
    group = find_group(state, call, ref)
    require_owner(state, call.caller, group)
    p = call.params
    if present(p, "path") and str(p["path"]) != group.path:
        errors = _path_errors(state, str(p["path"]), group.parent_id, exclude=group)
        if errors:
            raise invalid({"path": errors})
        group.path = str(p["path"])
    if present(p, "name"):
        group.name = str(p["name"])
    if present(p, "visibility"):
        if p["visibility"] not in VISIBILITIES:
            raise bad_params("visibility does not have a valid value")
        group.visibility = str(p["visibility"])
    if "description" in p:
        group.description = str(p["description"] or "")
    return Reply(200, entities.group(state, group, call.base_url))


def delete_group(state: State, call: Call, ref: str) -> Reply:
    """`DELETE /groups/:id`: 202, the group is only marked for deletion (gitlab.md §1.9)."""
    group = find_group(state, call, ref)
    require_owner(state, call.caller, group)
    if group.marked_for_deletion_on:
        raise ApiError(400, {"message": "Group has been already marked for deletion"})
    group.marked_for_deletion_on = dt.date.today().isoformat()
    return Reply(202, {"message": "202 Accepted"})


def _can_read(state: State, caller: Caller, group: GroupRecord) -> bool:
    if caller.is_admin or group.visibility != "private":
        return True
    return state.effective_level(group, caller.user.id) is not None


def _path_errors(
    state: State, path: str, parent_id: int | None, exclude: GroupRecord | None = None
) -> list[str]:
    """Format, reserved top-level names, siblings, and (top level) user namespaces."""
    errors = namespace_path_errors(path, top_level=parent_id is None)
    siblings = [g for g in state.children(parent_id) if g is not exclude]
    taken = any(g.path.lower() == path.lower() for g in siblings)
    if parent_id is None and state.user_by_username(path):
        taken = True
    if taken:
        errors.append("has already been taken")
    return errors


def _ruby_hash(errors: dict[str, Any]) -> str:
    """`errors.messages.to_s` as Ruby prints it: `{:path=>["has already been taken"]}`."""
    return "{" + ", ".join(f":{k}=>{json.dumps(v)}" for k, v in errors.items()) + "}"
