"""The one storage scim2-server's handler talks to: it hands each resource type to its table."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from scim2_models import NotImplementedException
from scim2_models import Resource
from scim2_models import ResourceType
from scim2_models import ResponseParameters
from scim2_models import SearchRequest
from scim2_server.storage import ScimStorage
from scim2_server.storage import SearchPage

from scim_bridge.store.db import Database
from scim_bridge.store.documents import DocumentStore
from scim_bridge.store.groups import GroupStore
from scim_bridge.store.users import UserStore


class ScimStore(ScimStorage):
    def __init__(self, db: Database, users: UserStore, groups: GroupStore) -> None:
        self.db = db
        self.users = users
        self.groups = groups
        self._by_name: dict[str, DocumentStore] = {"User": users, "Group": groups}

    def of(self, resource_type: ResourceType) -> DocumentStore:
        return self._by_name[resource_type.name]

    def operation(self) -> AbstractContextManager[None]:
        """Join the request's transaction, or open one when called on its own."""
        return self.db.operation()

    def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        return self.of(resource_type).get(
            resource_type, resource_id, response_parameters=response_parameters
        )

    def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        if len(resource_types) != 1:
            raise NotImplementedException(
                detail="search /Users or /Groups; a search across resource types is not supported"
            )
        (resource_type,) = resource_types
        return self.of(resource_type).search(resource_types, search_request, position=position)

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        return self.of(resource_type).create(resource_type, resource)

    def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        return self.of(resource_type).update(
            resource_type, resource, expected_version=expected_version
        )

    def delete(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        expected_version: str | None = None,
    ) -> None:
        self.of(resource_type).delete(resource_type, resource_id, expected_version=expected_version)

    def patch_group(self, resource_id: str, patch_op: Any, check: Any) -> Resource[Any]:
        """Group PATCH with members applied row by row (see ``GroupStore.patch``)."""
        return self.groups.patch(resource_id, patch_op, check)
