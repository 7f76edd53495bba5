"""SCIM Groups in SQL, with members as rows so that huge groups stay cheap to change.

A PATCH that adds or removes members (Entra's only frequent group write) never loads the member
list: each operation becomes a few indexed statements (``patch`` below). Only a PUT, a ``replace``
of all members, or an unusual filter falls back to the whole list.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from scim2_models import InvalidValueException
from scim2_models import PatchOp
from scim2_models import Resource
from scim2_models import ResourceType
from scim2_models import ResponseParameters
from scim2_models import SearchRequest
from scim2_models.path import AttrPath
from scim2_models.path import CompareOperator
from scim2_models.path import Comparison
from scim2_models.path import FilterNode
from scim2_models.path import LogicalExpr
from scim2_models.path import LogicalOperator
from scim2_models.path import ValuePath
from scim2_server.storage import SearchPage
from scim2_server.utils import parametrize
from sqlalchemy import select

from scim_bridge.store import memberships
from scim_bridge.store.db import Change
from scim_bridge.store.db import current_transaction
from scim_bridge.store.documents import DocumentStore
from scim_bridge.store.documents import wants_attribute
from scim_bridge.store.filters import MemberRows
from scim_bridge.store.filters import Value
from scim_bridge.store.memberships import GROUP_JOB
from scim_bridge.store.schema import group_members
from scim_bridge.store.schema import groups
from scim_bridge.store.schema import users

CORE_GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
AUDITED_IDS = 1000  # beyond this many members, an audit event gives counts, not every id

Member = tuple[str, str | None]


def _is_members(path: AttrPath) -> bool:
    return path.attr.lower() == "members" and (path.uri or CORE_GROUP_URN).lower() == (
        CORE_GROUP_URN.lower()
    )


def wants_members(
    attributes: Iterable[Any] | None, excluded_attributes: Iterable[Any] | None
) -> bool:
    """Whether a response keeps ``members`` (RFC 7644 §3.4.2.5); if not, they are not even read."""
    return wants_attribute("members", CORE_GROUP_URN, attributes, excluded_attributes)


def _members_of(value: Any) -> list[Member]:
    """The (id, display) members of a ``members`` value; anything malformed is a 400.

    Entra sends ``[{"value": id, "$ref": null}, ...]``; a single object is accepted too. Each
    member must be an object whose ``value`` is a non-empty string (whether it names a User is
    checked when it is added: ``memberships.require_users``) and whose ``display``, if any, is a
    string. ``$ref`` and ``type`` are the server's to say (they follow from the stored User):
    what a client sends there is ignored.
    """
    items = value if isinstance(value, list) else [value]
    found: list[Member] = []
    refused: list[Any] = []
    for item in items:
        member = _member(item)
        if member is None:
            refused.append(item)
        else:
            found.append(member)
    if refused:
        raise InvalidValueException(
            detail="members must be objects whose value is a User's id (a string): "
            f"{len(refused)} {'entries are' if len(refused) > 1 else 'entry is'} not: "
            f"{memberships.listed(refused)}"
        )
    return found


def _member(item: Any) -> Member | None:
    if not isinstance(item, dict):
        return None
    keys = {key.lower(): key for key in item if isinstance(key, str)}
    member_id = item.get(keys["value"]) if "value" in keys else None
    display = item.get(keys["display"]) if "display" in keys else None
    if not isinstance(member_id, str) or not member_id:
        return None
    if display is not None and not isinstance(display, str):
        return None
    return member_id, display


def _value_ids(node: FilterNode) -> list[str] | None:
    """The ids of ``value eq "a" or value eq "b"``; None for any other filter."""
    if isinstance(node, Comparison):
        path = node.attr_path
        if node.op == CompareOperator.eq and path.attr.lower() == "value" and not path.sub_attr:
            return [str(node.value)]
        return None
    if isinstance(node, LogicalExpr) and node.op == LogicalOperator.or_:
        ids: list[str] = []
        for term in node.terms:
            term_ids = _value_ids(term)
            if term_ids is None:
                return None
            ids.extend(term_ids)
        return ids
    return None


class GroupStore(DocumentStore):
    """The Groups resource type on SQL."""

    table = groups
    resource_type_name = "Group"
    job_kind = GROUP_JOB
    unique_attribute = "displayName"
    unique_column = "display_name_key"
    display_column = "display_name"
    related_attribute = "members"

    def document(self, resource: Resource[Any]) -> dict[str, Any]:
        document = super().document(resource)
        document.pop("members", None)
        # Entra adds a schema URI of its own to new groups (entra.md §1.8); answer with ours only.
        document["schemas"] = [CORE_GROUP_URN]
        return document

    def filter_columns(self) -> dict[str, Value]:
        """``members`` are rows of group_members: filters on them are ``EXISTS`` over those rows."""
        return {**super().filter_columns(), "members": MemberRows(groups, group_members, users)}

    # -- Reading ------------------------------------------------------------

    def _members(self, group_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Members, read with the Users they are: ``type`` "User" and a ``$ref`` to the User,
        which the service makes absolute (RFC 7643 §4.2). A row whose User is gone (none should
        be: ``memberships``, migration 0005) is not a member.
        """
        found: dict[str, list[dict[str, Any]]] = {group_id: [] for group_id in group_ids}
        if not group_ids:
            return found
        statement = (
            select(group_members.c.group_id, users.c.id, group_members.c.display)
            .join(users, users.c.id == group_members.c.member_id)
            .where(group_members.c.group_id.in_(group_ids))
            .order_by(group_members.c.group_id, group_members.c.member_id)
        )
        for group_id, user_id, display in current_transaction().connection.execute(statement):
            reference = f"Users/{quote(user_id, safe='')}"
            member = {"value": user_id, "$ref": reference, "type": "User"}
            if display:
                member["display"] = display
            found[group_id].append(member)
        return found

    def related(self, resource_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        return self._members(resource_ids)

    def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        with self.operation():
            row = self._existing_row(resource_id)
            keep = response_parameters is None or wants_members(
                response_parameters.attributes, response_parameters.excluded_attributes
            )
            members = self._members([resource_id])[resource_id] if keep else None
            return self._resource(row, members)

    def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        with self.operation():
            total, rows = self.search_rows(search_request)
            keep = wants_members(search_request.attributes, search_request.excluded_attributes)
            members = self._members([row["id"] for row in rows]) if keep else {}
            resources = [self._resource(row, members.get(row["id"])) for row in rows]
            return SearchPage(total=total, resources=resources)

    # -- Writing ------------------------------------------------------------

    def _audit_members(self, added: list[str], removed: list[str]) -> dict[str, Any]:
        detail: dict[str, Any] = {}
        for key, ids in (("members_added", added), ("members_removed", removed)):
            if ids:
                detail[key] = ids if len(ids) <= AUDITED_IDS else f"{len(ids)} members"
        return detail

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        document = self.document(resource)  # before the write opens (see UserStore.create)
        with self.operation():
            row = self.insert_row(document)
            group_id = row["id"]
            added = memberships.add(group_id, _members_of(_dump_members(resource)))
            self.written(
                Change("Group", group_id, None, document),
                "scim.group.create",
                self._audit_members(added, []),
            )
            return self._resource(row, self._members([group_id])[group_id])

    def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        """A whole replacement (PUT): the member list is diffed, not rewritten."""
        assert resource.id is not None
        document = self.document(resource)  # before the write opens (see UserStore.create)
        wanted = dict(_members_of(_dump_members(resource)))
        with self.operation():
            row = self._existing_row(resource.id)
            self._check_version(row, expected_version)
            current = set(memberships.member_ids(resource.id))
            removed = memberships.remove(resource.id, current - set(wanted))
            added = memberships.add(
                resource.id, [(mid, shown) for mid, shown in wanted.items() if mid not in current]
            )
            written = self.update_row(row, document)
            self.written(
                Change("Group", resource.id, dict(row["data"]), document),
                "scim.group.update",
                self._audit_members(added, removed),
            )
            return self._resource(written, self._members([resource.id])[resource.id])

    def delete(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        expected_version: str | None = None,
    ) -> None:
        with self.operation():
            row = self._existing_row(resource_id)
            self._check_version(row, expected_version)
            removed = memberships.remove_all(resource_id)
            self.delete_row(resource_id)
            self.written(
                Change("Group", resource_id, dict(row["data"]), None),
                "scim.group.delete",
                self._audit_members([], removed),
            )

    def patch(
        self,
        resource_id: str,
        patch_op: PatchOp[Any],
        check_preconditions: Callable[[Resource[Any]], None],
    ) -> Resource[Any]:
        """Apply a PATCH (RFC 7644 §3.5.2) with member operations done row by row.

        Attribute operations run on the group without its members through scim2-models' PATCH
        engine; member operations become inserts and deletes of the members they name. The whole
        PATCH is one transaction, so it applies entirely or not at all.
        """
        with self.operation():
            row = self._existing_row(resource_id)
            group = self._resource(row, None)
            check_preconditions(group)
            before = self.document(group)
            attribute_operations: list[Any] = []
            added: list[str] = []
            removed: list[str] = []
            for operation in patch_op.operations or []:  # validated: never None
                handled = self._patch_members(resource_id, operation, added, removed)
                if handled is not None:
                    attribute_operations.extend(handled)
                else:
                    attribute_operations.append(operation)
            if attribute_operations:
                model = parametrize(PatchOp, self.model)
                model.model_construct(operations=attribute_operations).patch(group)
            after = self.document(group)
            if after != before:
                written = self.update_row(row, after)
            elif added or removed:
                written = self.touch(row)
            else:
                return group
            self.written(
                Change("Group", resource_id, before, after),
                "scim.group.update",
                self._audit_members(added, removed),
            )
            return self._resource(written, None)

    def _patch_members(
        self, group_id: str, operation: Any, added: list[str], removed: list[str]
    ) -> list[Any] | None:
        """Apply one operation if it is about members; returns what is left of it, or None."""
        op = str(operation.op.value if hasattr(operation.op, "value") else operation.op).lower()
        path = operation.path
        if path is None:
            return self._patch_members_without_path(group_id, op, operation, added, removed)
        node = path.ast
        if isinstance(node, AttrPath) and _is_members(node) and node.sub_attr is None:
            members = _members_of(operation.value) if operation.value is not None else []
            if op == "add":
                added.extend(memberships.add(group_id, members))
            elif op == "replace":
                self._replace_members(group_id, members, added, removed)
            elif members:  # remove with a value: Entra's default dialect removes exactly those
                removed.extend(memberships.remove(group_id, [mid for mid, _ in members]))
            else:  # remove without a value: every member (RFC 7644 §3.5.2.2)
                removed.extend(memberships.remove_all(group_id))
            return []
        if isinstance(node, ValuePath) and _is_members(node.attr_path) and node.sub_attr is None:
            ids = _value_ids(node.val_filter)
            if op == "remove" and ids is not None:
                removed.extend(memberships.remove(group_id, ids))
                return []
            return self._patch_members_in_full(group_id, operation, added, removed)
        if isinstance(node, AttrPath | ValuePath) and _is_members(
            node if isinstance(node, AttrPath) else node.attr_path
        ):
            return self._patch_members_in_full(group_id, operation, added, removed)
        return None

    def _patch_members_without_path(
        self, group_id: str, op: str, operation: Any, added: list[str], removed: list[str]
    ) -> list[Any] | None:
        value = operation.value
        if not isinstance(value, dict):
            return None
        keys = [
            key for key in value if key.lower() in ("members", f"{CORE_GROUP_URN}:members".lower())
        ]
        if not keys:
            return None
        members = _members_of(value[keys[0]])
        if op == "add":
            added.extend(memberships.add(group_id, members))
        else:
            self._replace_members(group_id, members, added, removed)
        rest = {key: item for key, item in value.items() if key not in keys}
        return [operation.model_copy(update={"value": rest})] if rest else []

    def _replace_members(
        self, group_id: str, members: list[Member], added: list[str], removed: list[str]
    ) -> None:
        wanted = dict(members)
        current = set(memberships.member_ids(group_id))
        removed.extend(memberships.remove(group_id, current - set(wanted)))
        added.extend(
            memberships.add(group_id, [(m, d) for m, d in wanted.items() if m not in current])
        )

    def _patch_members_in_full(
        self, group_id: str, operation: Any, added: list[str], removed: list[str]
    ) -> list[Any]:
        """An unusual member operation: apply it to the whole member list, then write the diff."""
        row = self._existing_row(group_id)
        members = self._members([group_id])[group_id]
        group = self._resource(row, members)
        parametrize(PatchOp, self.model).model_construct(operations=[operation]).patch(group)
        after = dict(_members_of(_dump_members(group)))
        before = {member["value"] for member in members}
        removed.extend(memberships.remove(group_id, before - set(after)))
        added.extend(
            memberships.add(group_id, [(m, d) for m, d in after.items() if m not in before])
        )
        return []


def _dump_members(resource: Resource[Any]) -> list[dict[str, Any]]:
    members = getattr(resource, "members", None) or []
    return [member.model_dump(by_alias=True, exclude_none=True) for member in members]
