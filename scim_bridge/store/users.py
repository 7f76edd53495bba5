"""SCIM Users kept whole in SQL: the desired state the reconciler makes GitLab match.

It implements scim2-server's :class:`~scim2_server.storage.ScimStorage` contract through
:class:`~scim_bridge.store.documents.DocumentStore`. Deleting a user also takes it out of every
group, so the grants it had through them go (DESIGN.md, Users: Delete).
"""

from __future__ import annotations

from typing import Any

from scim2_models import Resource
from scim2_models import ResourceType
from scim2_models import ResponseParameters
from scim2_models import SearchRequest
from scim2_server.storage import SearchPage

from scim_bridge.store import audit
from scim_bridge.store import jobs
from scim_bridge.store import memberships
from scim_bridge.store.db import Change
from scim_bridge.store.documents import DocumentStore
from scim_bridge.store.schema import users

USER_JOB = "user"
# Attributes never kept, returned or audited, however spelled (``documents.without_attributes``):
# the bridge gives GitLab accounts random passwords of its own, and a password Entra sends is
# accepted and dropped.
NEVER_STORED = frozenset({"password"})


class UserStore(DocumentStore):
    """The Users resource type on SQL."""

    table = users
    resource_type_name = "User"
    job_kind = USER_JOB
    unique_attribute = "userName"
    unique_column = "user_name_key"
    display_column = "user_name"
    never_stored = NEVER_STORED

    def extra_columns(self, document: dict[str, Any]) -> dict[str, Any]:
        active = document.get("active")
        return {"active": active if isinstance(active, bool) else None}

    def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        with self.operation():
            return self._resource(self._existing_row(resource_id))

    def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        with self.operation():
            total, rows = self.search_rows(search_request)
            return SearchPage(total=total, resources=[self._resource(row) for row in rows])

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        with self.operation():
            document = self.document(resource)
            resource_id = self.insert_row(document)
            self.written(Change("User", resource_id, None, document), "scim.user.create")
            return self._resource(self._existing_row(resource_id))

    def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        assert resource.id is not None
        with self.operation():
            row = self._existing_row(resource.id)
            self._check_version(row, expected_version)
            document = self.document(resource)
            self.update_row(resource.id, document, row["version"] + 1)
            change = Change("User", resource.id, dict(row["data"]), document)
            self.written(change, "scim.user.update")
            return self._resource(self._existing_row(resource.id))

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
            self.update_row(change.resource_id, change.before, row["version"] + 1)
        jobs.enqueue(USER_JOB, change.resource_id)
        audit.record("scim.user.revert", change.resource_id, {"reason": reason})
