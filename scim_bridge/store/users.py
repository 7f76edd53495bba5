"""SCIM Users kept whole in SQL: the desired state the reconciler makes GitLab match.

It implements scim2-server's :class:`~scim2_server.storage.ScimStorage` contract through
:class:`~scim_bridge.store.documents.DocumentStore`. Deleting a user also takes it out of every
group, so the grants it had through them go (DESIGN.md, Users: Delete).

A user's ``groups`` (RFC 7643 §4.1.2, read-only) are its ``group_members`` rows, read with their
groups when an answer keeps them (one query for a whole page); they are never stored in the
user's document, whatever a client sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from scim2_models import Resource
from scim2_models import ResourceType
from scim2_models import ResponseParameters
from scim2_models import SearchRequest
from scim2_server.storage import SearchPage
from sqlalchemy import bindparam
from sqlalchemy import select

from scim_bridge.store import audit
from scim_bridge.store import jobs
from scim_bridge.store import memberships
from scim_bridge.store.db import Change
from scim_bridge.store.db import current_transaction
from scim_bridge.store.documents import DocumentStore
from scim_bridge.store.documents import wants_attribute
from scim_bridge.store.documents import without_core_attributes
from scim_bridge.store.filters import GroupRows
from scim_bridge.store.filters import Value
from scim_bridge.store.memberships import BATCH
from scim_bridge.store.prepared import Prepared
from scim_bridge.store.schema import group_members
from scim_bridge.store.schema import groups
from scim_bridge.store.schema import users

CORE_USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
USER_JOB = "user"
# Attributes never kept, returned or audited, however spelled (``documents.without_attributes``):
# the bridge gives GitLab accounts random passwords of its own, and a password Entra sends is
# accepted and dropped.
NEVER_STORED = frozenset({"password"})
# Core attributes computed from other rows: never kept in the document (a PATCH or PUT passes
# back the resource as read, ``groups`` included), always read afresh.
COMPUTED = frozenset({"groups"})


def wants_groups(
    attributes: Iterable[Any] | None, excluded_attributes: Iterable[Any] | None
) -> bool:
    """Whether a response keeps ``groups`` (RFC 7644 §3.4.2.5); if not, they are not even read."""
    return wants_attribute("groups", CORE_USER_URN, attributes, excluded_attributes)


# Built once: SQLAlchemy caches the compiled form of a statement object it has seen (the lookup
# answering Entra's GET spends less on building SQL than on running it).
_GROUP_ROWS = select(group_members.c.member_id, groups.c.id, groups.c.display_name).join(
    groups, groups.c.id == group_members.c.group_id
)
GROUPS_OF_USERS = _GROUP_ROWS.where(
    group_members.c.member_id.in_(bindparam("ids", expanding=True))
).order_by(group_members.c.member_id, groups.c.id)
GROUPS_OF_USER = Prepared(
    _GROUP_ROWS.where(group_members.c.member_id == bindparam("id")).order_by(groups.c.id)
)


class UserStore(DocumentStore):
    """The Users resource type on SQL."""

    table = users
    resource_type_name = "User"
    job_kind = USER_JOB
    unique_attribute = "userName"
    unique_column = "user_name_key"
    display_column = "user_name"
    never_stored = NEVER_STORED
    related_attribute = "groups"

    def extra_columns(self, document: dict[str, Any]) -> dict[str, Any]:
        active = document.get("active")
        return {"active": active if isinstance(active, bool) else None}

    def kept(self, document: dict[str, Any]) -> dict[str, Any]:
        return without_core_attributes(super().kept(document), COMPUTED, CORE_USER_URN)

    def filter_columns(self) -> dict[str, Value]:
        """``groups`` are rows of group_members: filters on them are ``EXISTS`` over those rows."""
        return {**super().filter_columns(), "groups": GroupRows(users, group_members, groups)}

    # -- Reading ------------------------------------------------------------

    def _groups(self, user_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each user's groups, in group id order: ``value``, ``display`` (the group's
        displayName), ``type`` "direct" and a ``$ref`` the service makes absolute (RFC 7643
        §4.1.2). One query for up to ``BATCH`` users.
        """
        found: dict[str, list[dict[str, Any]]] = {user_id: [] for user_id in user_ids}
        connection = current_transaction().connection
        for start in range(0, len(user_ids), BATCH):
            batch = user_ids[start : start + BATCH]
            rows: Iterable[Any]
            if len(batch) == 1:  # Entra's lookup: no IN list to expand
                rows = GROUPS_OF_USER.tuples(connection, {"id": batch[0]})
            else:
                rows = connection.execute(GROUPS_OF_USERS, {"ids": batch})
            for user_id, group_id, display in rows:
                entry = {"value": group_id, "$ref": f"Groups/{quote(group_id, safe='')}"}
                if display:
                    entry["display"] = display
                entry["type"] = "direct"
                found[user_id].append(entry)
        return found

    def related(self, resource_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        return self._groups(resource_ids)

    def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        with self.operation():
            row = self._existing_row(resource_id)
            keep = response_parameters is None or wants_groups(
                response_parameters.attributes, response_parameters.excluded_attributes
            )
            return self._resource(row, self._groups([resource_id])[resource_id] if keep else None)

    def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        with self.operation():
            total, rows = self.search_rows(search_request)
            keep = wants_groups(search_request.attributes, search_request.excluded_attributes)
            found = self._groups([row["id"] for row in rows]) if keep and rows else {}
            resources = [self._resource(row, found.get(row["id"])) for row in rows]
            return SearchPage(total=total, resources=resources)

    # -- Writing ------------------------------------------------------------

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        # Serialised before the write opens, and the answer built after it commits: on SQLite the
        # transaction holds the one writer lock, and every other writer waits for it.
        document = self.document(resource)
        with self.operation():
            row = self.insert_row(document)
            self.written(Change("User", row["id"], None, document), "scim.user.create")
        # A new id is in no group yet: there are no groups to read.
        return self._resource(row)

    def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        assert resource.id is not None
        document = self.document(resource)  # before the write opens (see create)
        with self.operation():
            row = self._existing_row(resource.id)
            self._check_version(row, expected_version)
            written = self.update_row(row, document)
            change = Change("User", resource.id, dict(row["data"]), document)
            self.written(change, "scim.user.update")
            return self._resource(written, self._groups([resource.id])[resource.id])

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
            memberships.leave_every_group(resource_id)
            self.delete_row(resource_id)
            self.written(Change("User", resource_id, dict(row["data"]), None), "scim.user.delete")

    def revert(self, change: Change, reason: str) -> None:
        """Undo one write the target refused for good, inside the current transaction."""
        if change.before is None:
            self.delete_row(change.resource_id)
        elif (row := self._row(change.resource_id)) is None:
            self.insert_row(change.before, change.resource_id)
        else:
            self.update_row(row, change.before)
        jobs.enqueue(USER_JOB, change.resource_id)
        audit.record("scim.user.revert", change.resource_id, {"reason": reason})
