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
from sqlalchemy import func
from sqlalchemy import literal
from sqlalchemy import select
from sqlalchemy import union_all

from scim_bridge.store.db import Database
from scim_bridge.store.db import current_transaction
from scim_bridge.store.documents import DocumentStore
from scim_bridge.store.documents import StoredDocument
from scim_bridge.store.filters import filter_condition
from scim_bridge.store.groups import GroupStore
from scim_bridge.store.users import UserStore


class ScimStore(ScimStorage):
    def __init__(self, db: Database, users: UserStore, groups: GroupStore) -> None:
        self.db = db
        self.users = users
        self.groups = groups
        self._by_name: dict[str, DocumentStore] = {"User": users, "Group": groups}

    def of(self, resource_type: ResourceType) -> DocumentStore:
        name = resource_type.name
        if name is None:  # every type the provider serves has a name: unknown, like a wrong one
            raise KeyError(name)
        return self._by_name[name]

    def key_attributes(self, resource_type: ResourceType) -> tuple[str, str]:
        """The type's unique attribute and the attribute other rows hold (``stored_by_key``)."""
        store = self.of(resource_type)
        return store.unique_attribute, store.related_attribute

    def stored_by_key(
        self, resource_type: ResourceType, value: str, *, related: bool
    ) -> list[StoredDocument]:
        return self.of(resource_type).stored_by_key(value, related=related)

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
        if len(resource_types) == 1:
            (resource_type,) = resource_types
            return self.of(resource_type).search(resource_types, search_request, position=position)
        return self._search_root(resource_types, search_request)

    def _search_root(
        self, resource_types: list[ResourceType], search_request: SearchRequest[Any]
    ) -> SearchPage:
        """Users and Groups as one collection (RFC 7644 §3.4.2.1), paged in SQL by creation.

        Each type's filter is translated on its own table; an attribute a type lacks matches
        none of its resources. Sorting across types is not offered.
        """
        if search_request.sort_by is not None:
            raise NotImplementedException(detail="sortBy is supported on /Users and /Groups only")
        with self.operation():
            connection = current_transaction().connection
            selects = []
            for resource_type in resource_types:
                store = self.of(resource_type)
                condition = filter_condition(
                    search_request, store.filter_sql(connection, search_request)
                )
                table = store.table
                selects.append(
                    select(
                        literal(resource_type.name).label("kind"),
                        table.c.id.label("id"),
                        table.c.created.label("created"),
                    ).where(condition)
                )
            found = union_all(*selects).subquery()
            total = connection.execute(select(func.count()).select_from(found)).scalar_one()
            page = (
                select(found.c.kind, found.c.id)
                .order_by(found.c.created, found.c.id)
                .offset(search_request.start_index_0 or 0)
            )
            if search_request.count is not None:
                page = page.limit(search_request.count)
            types = {resource_type.name: resource_type for resource_type in resource_types}
            resources = [
                # The search's attributes decide whether a group's members are read.
                self.get(types[kind], resource_id, response_parameters=search_request)
                for kind, resource_id in connection.execute(page).all()
            ]
            return SearchPage(total=int(total), resources=resources)

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
