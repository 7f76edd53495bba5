"""What Users and Groups share in SQL: one row per resource, kept whole as a JSON document.

A subclass names its table, its unique display column and its reconcile job; this base gives the
scim2-server storage contract (versions, preconditions, uniqueness, paging) and the write
discipline of DESIGN.md 2: every write records its change, an audit event and a reconcile job in
the transaction of the request.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from scim2_models import InvalidFilterException
from scim2_models import InvalidValueException
from scim2_models import Meta
from scim2_models import NotFoundException
from scim2_models import PreconditionFailedException
from scim2_models import Resource
from scim2_models import ScimPolicy
from scim2_models import SearchRequest
from scim2_models import UniquenessException
from scim2_models import default_comparison_key
from scim2_models.path import AttrPath
from scim2_models.path import CompareOperator
from scim2_models.path import Comparison
from scim2_models.path import FilterNode
from scim2_models.path import LogicalExpr
from scim2_models.path import LogicalOperator
from scim2_server.storage import ScimStorage
from sqlalchemy import ColumnElement
from sqlalchemy import Table
from sqlalchemy import and_
from sqlalchemy import delete
from sqlalchemy import false
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import true
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from scim_bridge import clock
from scim_bridge.store import audit
from scim_bridge.store import jobs
from scim_bridge.store.db import Change
from scim_bridge.store.db import Database
from scim_bridge.store.db import current_transaction

# An ``attr eq value`` condition, keyed by the lower-cased attribute name.
Equality = Callable[[str], ColumnElement[bool]]


def folded(value: str) -> str:
    """How caseExact=false strings compare (RFC 7643 §2.3.1): NFC, lower case."""
    return default_comparison_key(_CaseInsensitive, value)


class _CaseInsensitive:
    case_exact = False


def version_tag(version: int) -> str:
    return f'W/"{version}"'


def version_number(tag: str | None) -> int | None:
    if not tag:
        return None
    digits = tag.removeprefix("W/").strip('"')
    return int(digits) if digits.isdigit() else None


class DocumentStore(ScimStorage):
    """One SCIM resource type in one table; subclasses fill in the class attributes."""

    table: Table
    resource_type_name: str
    core_urn: str
    job_kind: str
    unique_attribute: str  # the SCIM attribute unique case-insensitively (userName, displayName)
    unique_column: str  # its folded form's column
    display_column: str  # its value's column

    def __init__(self, db: Database, model: type[Resource[Any]], policy: ScimPolicy) -> None:
        self.db = db
        self.model = model
        self.policy = policy

    # -- Transactions -----------------------------------------------------

    def operation(self) -> AbstractContextManager[None]:
        """Join the request's transaction, or open one when called on its own."""
        return self.db.operation()

    # -- Reading ------------------------------------------------------------

    def _row(self, resource_id: str) -> Any:
        tx = current_transaction()
        statement = select(self.table).where(self.table.c.id == resource_id)
        if tx.write and not self.db.is_sqlite:
            # A read that precedes a write locks the row: concurrent writes apply one after another.
            statement = statement.with_for_update()
        return tx.connection.execute(statement).mappings().first()

    def _existing_row(self, resource_id: str) -> Any:
        row = self._row(resource_id)
        if row is None:
            raise NotFoundException(detail=f"{self.resource_type_name} {resource_id} not found")
        return row

    def _resource(self, row: Any, extra: dict[str, Any] | None = None) -> Resource[Any]:
        document = dict(row["data"])
        if extra:
            document.update(extra)
        resource = self.model.model_validate(document, scim_policy=self.policy)
        resource.id = row["id"]
        resource.meta = Meta(
            resource_type=self.resource_type_name,
            created=clock.aware(row["created"]),
            last_modified=clock.aware(row["last_modified"]),
            version=version_tag(row["version"]),
        )
        return resource

    def _check_version(self, row: Any, expected_version: str | None) -> None:
        expected = version_number(expected_version)
        if expected is not None and expected != row["version"]:
            raise PreconditionFailedException(
                detail=f"the {self.resource_type_name.lower()} was modified meanwhile"
            )

    # -- Filters ------------------------------------------------------------

    def equalities(self) -> dict[str, Equality]:
        """``attr eq "value"`` conditions this resource type can search on."""
        columns = self.table.c
        return {
            "id": lambda value: columns.id == value,
            "externalid": lambda value: columns.external_id == value,
            self.unique_attribute.lower(): lambda value: (
                columns[self.unique_column] == folded(value)
            ),
        }

    def to_sql(self, node: FilterNode) -> ColumnElement[bool]:
        """Translate the filters Entra sends; refuse the rest (never post-filter a page)."""
        if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_:
            return and_(*(self.to_sql(term) for term in node.terms))
        if isinstance(node, Comparison) and node.op == CompareOperator.eq:
            return self._equals(node.attr_path, node.value)
        supported = ", ".join(sorted(self.equalities()))
        raise InvalidFilterException(
            detail=f"only 'eq' comparisons ({supported}), joined by 'and', "
            f"are supported on {self.resource_type_name}s"
        )

    def _equals(self, path: AttrPath, value: Any) -> ColumnElement[bool]:
        uri = (path.uri or self.core_urn).lower()
        name = path.attr.lower() + (f".{path.sub_attr.lower()}" if path.sub_attr else "")
        equality = self.equalities().get(name) if uri == self.core_urn.lower() else None
        if equality is None:
            raise InvalidFilterException(
                detail=f"filtering on {path} is not supported on {self.resource_type_name}s"
            )
        if not isinstance(value, str):
            return false()
        return equality(value)

    def search_rows(self, search_request: SearchRequest[Any]) -> tuple[int, list[Any]]:
        condition: ColumnElement[bool] = true()
        if search_request.filter is not None:
            condition = self.to_sql(search_request.filter.ast)
        connection = current_transaction().connection
        total = connection.execute(
            select(func.count()).select_from(self.table).where(condition)
        ).scalar_one()
        statement = (
            select(self.table)
            .where(condition)
            .order_by(self.table.c.created, self.table.c.id)
            .offset(search_request.start_index_0 or 0)
        )
        if search_request.count is not None:
            statement = statement.limit(search_request.count)
        return int(total), list(connection.execute(statement).mappings().all())

    # -- Writing ------------------------------------------------------------

    def document(self, resource: Resource[Any]) -> dict[str, Any]:
        """What is kept of a resource: everything but what the store derives."""
        document: dict[str, Any] = resource.model_dump(scim_policy=self.policy)
        for key in ("id", "meta"):
            document.pop(key, None)
        return document

    def _check_unique(self, value: str, resource_id: str | None) -> None:
        column = self.table.c[self.unique_column]
        statement = select(self.table.c.id).where(column == folded(value))
        if resource_id is not None:
            statement = statement.where(self.table.c.id != resource_id)
        if current_transaction().connection.execute(statement).first() is not None:
            raise UniquenessException(detail=f"{self.unique_attribute} {value!r} is already taken")

    def _columns(self, document: dict[str, Any]) -> dict[str, Any]:
        value = document.get(self.unique_attribute)
        if not isinstance(value, str) or not value.strip():
            # A PATCH can blank what creation required (RFC 7643: userName/displayName REQUIRED).
            raise InvalidValueException(detail=f"{self.unique_attribute} must not be empty")
        return {
            self.display_column: value,
            self.unique_column: folded(value),
            "external_id": document.get("externalId"),
        }

    def extra_columns(self, document: dict[str, Any]) -> dict[str, Any]:
        return {}

    def written(self, change: Change, action: str, detail: dict[str, Any] | None = None) -> None:
        """Record a write: its change (for undo), its reconcile job and its audit event."""
        current_transaction().changes.append(change)
        jobs.enqueue(self.job_kind, change.resource_id)
        detail = {"changed": changed(change.before, change.after), **(detail or {})}
        audit.record(action, change.resource_id, detail)

    def insert_row(self, document: dict[str, Any], resource_id: str | None = None) -> str:
        columns = self._columns(document)
        value = document[self.unique_attribute]
        self._check_unique(value, None)
        resource_id = resource_id or str(uuid.uuid4())
        now = clock.now()
        try:
            current_transaction().connection.execute(
                insert(self.table).values(
                    id=resource_id,
                    data=document,
                    created=now,
                    last_modified=now,
                    version=1,
                    **columns,
                    **self.extra_columns(document),
                )
            )
        except IntegrityError as error:  # a concurrent write won the race for the value
            raise UniquenessException(
                detail=f"{self.unique_attribute} {value!r} is already taken"
            ) from error
        return resource_id

    def update_row(self, resource_id: str, document: dict[str, Any], version: int) -> None:
        columns = self._columns(document)
        self._check_unique(document[self.unique_attribute], resource_id)
        current_transaction().connection.execute(
            update(self.table)
            .where(self.table.c.id == resource_id)
            .values(
                data=document,
                last_modified=clock.now(),
                version=version,
                **columns,
                **self.extra_columns(document),
            )
        )

    def touch(self, resource_id: str) -> None:
        """A change outside the document (a member) still changes the version and lastModified."""
        current_transaction().connection.execute(
            update(self.table)
            .where(self.table.c.id == resource_id)
            .values(version=self.table.c.version + 1, last_modified=clock.now())
        )

    def delete_row(self, resource_id: str) -> None:
        current_transaction().connection.execute(
            delete(self.table).where(self.table.c.id == resource_id)
        )

    def data(self, resource_id: str) -> dict[str, Any] | None:
        """The stored document, as the reconcilers read it; None once deleted."""
        with self.db.transaction(write=False) as tx:
            row = tx.connection.execute(
                select(self.table.c.data).where(self.table.c.id == resource_id)
            ).first()
        return dict(row.data) if row is not None else None


def changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """The top-level attributes that differ, with their new values (None when removed)."""
    before = before or {}
    after = after or {}
    return {
        key: after.get(key)
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }
