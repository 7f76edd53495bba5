"""What Users and Groups share in SQL: one row per resource, kept whole as a JSON document.

A subclass names its table, its unique display column and its reconcile job; this base gives the
scim2-server storage contract (versions, preconditions, uniqueness, paging) and the write
discipline of DESIGN.md 2: every write records its change, an audit event and a reconcile job in
the transaction of the request.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scim2_models import InvalidValueException
from scim2_models import Meta
from scim2_models import NotFoundException
from scim2_models import PreconditionFailedException
from scim2_models import Resource
from scim2_models import ScimPolicy
from scim2_models import SearchRequest
from scim2_models import UniquenessException
from scim2_models.path import AttrPath
from scim2_server.storage import ScimStorage
from sqlalchemy import Table
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from scim_bridge import clock
from scim_bridge.store import audit
from scim_bridge.store import jobs
from scim_bridge.store.db import Change
from scim_bridge.store.db import Database
from scim_bridge.store.db import current_transaction
from scim_bridge.store.filters import Column
from scim_bridge.store.filters import FilterSql
from scim_bridge.store.filters import Identifier
from scim_bridge.store.filters import KeyColumn
from scim_bridge.store.filters import MetaColumns
from scim_bridge.store.filters import SqlDialect
from scim_bridge.store.filters import Value
from scim_bridge.store.filters import dialect_of
from scim_bridge.store.filters import filter_condition
from scim_bridge.store.filters import fold
from scim_bridge.store.filters import sort_clauses
from scim_bridge.store.filters.scim2_adapter import bind_path
from scim_bridge.store.prepared import Prepared


def folded(value: str) -> str:
    """How caseExact=false strings compare (RFC 7643 §2.3.1): NFC, lower case."""
    key = fold(value)
    assert key is not None
    return key


# The most bytes an indexed text column takes. PostgreSQL's b-tree refuses an entry over about
# 2,700 bytes (after compression, so random text fails first); SQLite has no limit, but both
# databases answer the same so that a tenant can move between them.
MAX_INDEXED_BYTES = 2000


def check_indexable(attribute: str, value: object) -> None:
    """Refuse a value too long for its index with a 400 before any SQL sees it."""
    if isinstance(value, str) and len(value.encode("utf-8", "surrogatepass")) > MAX_INDEXED_BYTES:
        raise InvalidValueException(
            detail=f"{attribute} is too long: at most {MAX_INDEXED_BYTES} bytes in UTF-8"
        )


def version_tag(version: int) -> str:
    return f'W/"{version}"'


def version_number(tag: str | None) -> int | None:
    if not tag:
        return None
    digits = tag.removeprefix("W/").strip('"')
    return int(digits) if digits.isdigit() else None


# A resource's row: as read (SQLAlchemy's RowMapping) or as just written.
Row = Mapping[str, Any]


@dataclass(frozen=True)
class StoredDocument:
    """A resource as kept: its document (with what other rows hold of it, when asked for), and
    the columns its ``meta`` is made of. What ``_resource`` validates into a model, unvalidated."""

    id: str
    document: dict[str, Any]
    created: datetime
    last_modified: datetime
    version: str  # the ETag, as meta.version gives it


class DocumentStore(ScimStorage):
    """One SCIM resource type in one table; subclasses fill in the class attributes."""

    table: Table
    resource_type_name: str
    job_kind: str
    unique_attribute: str  # the SCIM attribute unique case-insensitively (userName, displayName)
    unique_column: str  # its folded form's column
    display_column: str  # its value's column
    related_attribute: str  # the attribute other rows hold (a user's groups, a group's members)
    # Attributes never kept, returned or audited, in lower case (see ``without_attributes``).
    never_stored: frozenset[str] = frozenset()

    def __init__(
        self,
        db: Database,
        model: type[Resource[Any]],
        policy: ScimPolicy,
        *,
        redact_values: bool = False,
    ) -> None:
        self.db = db
        self.model = model
        self.policy = policy
        # ``[audit] redact_values``: the trail names the attributes that changed, not their values.
        self.redact_values = redact_values
        self._dialect: SqlDialect | None = None
        # Built once; those every request runs are prepared (store/prepared.py).
        key_column = self.table.c[self.unique_column]
        self._by_key = Prepared(select(self.table).where(key_column == bindparam("key")))
        by_id = select(self.table).where(self.table.c.id == bindparam("row_id"))
        self._by_id = Prepared(by_id)
        self._by_id_locked = Prepared(by_id.with_for_update())
        self._data_by_id = Prepared(
            select(self.table.c.data).where(self.table.c.id == bindparam("row_id"))
        )
        self._insert = insert(self.table)
        # The SET clause comes from the parameters given (columns by name); the version read
        # must still be the row's, or nothing is written.
        self._bump_seen = update(self.table).where(
            self.table.c.id == bindparam("row_id"), self.table.c.version == bindparam("seen")
        )
        # Where the database itself keeps the value unique (a user's userName), an insert needs
        # no look first: the unique index refuses the second one, and that is the 409.
        self._unique_in_database = bool(key_column.unique)

    # -- Transactions -----------------------------------------------------

    def operation(self) -> AbstractContextManager[None]:
        """Join the request's transaction, or open one when called on its own."""
        return self.db.operation()

    # -- Reading ------------------------------------------------------------

    def _row(self, resource_id: str) -> Any:
        if len(resource_id) > self.table.c.id.type.length:  # type: ignore[attr-defined]
            return None  # longer than any id: no row to look for, nothing sent to SQL
        tx = current_transaction()
        # A read that precedes a write locks the row: concurrent writes apply one after another.
        locked = tx.write and not self.db.is_sqlite
        statement = self._by_id_locked if locked else self._by_id
        return statement.first(tx.connection, {"row_id": resource_id})

    def _existing_row(self, resource_id: str) -> Any:
        row = self._row(resource_id)
        if row is None:
            raise NotFoundException(detail=f"{self.resource_type_name} {resource_id} not found")
        return row

    def _resource(self, row: Any, entries: list[dict[str, Any]] | None = None) -> Resource[Any]:
        """The resource a row holds, with its ``related_attribute`` entries when given."""
        stored = self._stored(row, entries)
        resource = self.model.model_validate(stored.document, scim_policy=self.policy)
        resource.id = stored.id
        resource.meta = Meta(
            resource_type=self.resource_type_name,
            created=stored.created,
            last_modified=stored.last_modified,
            version=stored.version,
        )
        return resource

    def related(self, resource_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each resource's ``related_attribute`` entries, read from the rows that hold them."""
        raise NotImplementedError

    def stored_by_key(self, value: str, *, related: bool) -> list[StoredDocument]:
        """The resource whose unique attribute equals ``value`` as SCIM compares it
        (caseExact=false: NFC and lower case, RFC 7643 §2.3.1), read by its indexed key column.

        Entra looks a resource up this way before each write (entra.md §1.2). The answer is what
        a search with ``filter=<unique attribute> eq "value"`` finds, with its ``related``
        entries unless the caller leaves them out.
        """
        with self.operation():
            connection = current_transaction().connection
            rows = self._by_key.all(connection, {"key": folded(value)})
            found = self.related([row["id"] for row in rows]) if related and rows else {}
            return [self._stored(row, found.get(row["id"])) for row in rows]

    def _stored(self, row: Any, entries: list[dict[str, Any]] | None) -> StoredDocument:
        document = self.kept(row["data"])
        if entries:  # none: no attribute at all, never an empty list (as ``_resource``)
            document[self.related_attribute] = entries
        return StoredDocument(
            id=row["id"],
            document=document,
            created=clock.aware(row["created"]),
            last_modified=clock.aware(row["last_modified"]),
            version=version_tag(row["version"]),
        )

    def _check_version(self, row: Any, expected_version: str | None) -> None:
        expected = version_number(expected_version)
        if expected is not None and expected != row["version"]:
            raise PreconditionFailedException(
                detail=f"the {self.resource_type_name.lower()} was modified meanwhile"
            )

    # -- Searching ----------------------------------------------------------------------

    def filter_columns(self) -> dict[str, Value]:
        """The attributes read from columns rather than the document, by Python field name."""
        unique = bind_path(self.model, AttrPath(self.unique_attribute), strict=True)
        assert unique is not None
        return {
            "id": Identifier(self.table.c.id),
            "external_id": Column(self.table.c.external_id),
            "meta": MetaColumns(self.table, self.resource_type_name),
            unique.field_name: KeyColumn(self.table.c[self.unique_column]),
        }

    def filter_sql(self, connection: Any, search_request: SearchRequest[Any]) -> FilterSql:
        """The translator of this resource type's filters and sort orders (``store/filters/``)."""
        if self._dialect is None:
            self._dialect = dialect_of(connection)
        scim_filter = search_request.filter
        return FilterSql(
            self._dialect,
            self.model,
            self._dialect.document(self.table.c.data),
            self.filter_columns(),
            # A filter bound to several resource types (a root search) has an attribute this
            # type lacks match nothing (RFC 7644 §3.4.2.1); bound to this type only, it is 400.
            strict=scim_filter is None or len(scim_filter.models) <= 1,
            policy=self.policy,
        )

    def search_rows(self, search_request: SearchRequest[Any]) -> tuple[int, list[Any]]:
        """One page of rows: filtered and sorted in SQL, then paged (never post-filtered).

        The total is counted only when the page cannot tell it: a page that holds rows but fewer
        than it could, or a first page, ends the result set, so ``offset + rows`` is the total
        (both reads see one snapshot: they share the request's transaction). Entra's lookup by
        ``userName``/``externalId`` thus costs one query, not two.
        """
        connection = current_transaction().connection
        translator = self.filter_sql(connection, search_request)
        condition = filter_condition(search_request, translator)
        order = sort_clauses(search_request, translator, self.table.c.id)
        offset = search_request.start_index_0 or 0
        count = search_request.count
        rows: list[Any] = []
        if count != 0:
            statement = (
                select(self.table)
                .where(condition)
                .order_by(*(order or (self.table.c.created, self.table.c.id)))
                .offset(offset)
            )
            if count is not None:
                statement = statement.limit(count)
            rows = list(connection.execute(statement).mappings().all())
        if count != 0 and (count is None or len(rows) < count) and (rows or offset == 0):
            return offset + len(rows), rows
        total = connection.execute(
            select(func.count()).select_from(self.table).where(condition)
        ).scalar_one()
        return int(total), rows

    # -- Writing ------------------------------------------------------------

    def document(self, resource: Resource[Any]) -> dict[str, Any]:
        """What is kept of a resource: everything but what the store derives."""
        document: dict[str, Any] = resource.model_dump(scim_policy=self.policy)
        for key in ("id", "meta"):
            document.pop(key, None)
        return self.kept(document)

    def kept(self, document: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``document`` without the attributes this resource type never stores."""
        if not self.never_stored:
            return dict(document)
        return without_attributes(document, self.never_stored)

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
        key = folded(value)
        check_indexable(self.unique_attribute, key)
        external_id = document.get("externalId")
        check_indexable("externalId", external_id)
        return {
            self.display_column: value,
            self.unique_column: key,
            "external_id": external_id,
        }

    def extra_columns(self, document: dict[str, Any]) -> dict[str, Any]:
        return {}

    def written(self, change: Change, action: str, detail: dict[str, Any] | None = None) -> None:
        """Record a write: its change (for undo), its reconcile job and its audit event."""
        # Neither the trail nor an undo may carry what is never stored, even from an older row.
        change.before = None if change.before is None else self.kept(change.before)
        change.after = None if change.after is None else self.kept(change.after)
        current_transaction().changes.append(change)
        jobs.enqueue(self.job_kind, change.resource_id, new=change.before is None)
        difference = changed(change.before, change.after)
        if self.redact_values:
            difference = dict.fromkeys(difference, REDACTED)
        detail = {"changed": difference, **(detail or {})}
        audit.record(action, change.resource_id, detail)

    def insert_row(self, document: dict[str, Any], resource_id: str | None = None) -> Row:
        """Insert the resource; returns the row as written, so the answer needs no read back."""
        columns = self._columns(document)
        value = document[self.unique_attribute]
        if not self._unique_in_database:
            self._check_unique(value, None)
        now = clock.now()
        row: Row = {
            "id": resource_id or str(uuid.uuid4()),
            "data": document,
            "created": now,
            "last_modified": now,
            "version": 1,
            **columns,
            **self.extra_columns(document),
        }
        try:
            current_transaction().connection.execute(self._insert, row)
        except IntegrityError as error:  # a concurrent write won the race for the value
            raise UniquenessException(
                detail=f"{self.unique_attribute} {value!r} is already taken"
            ) from error
        return row

    def update_row(self, row: Row, document: dict[str, Any]) -> Row:
        """Replace the document of ``row`` and bump its version; returns the row as written, so
        the answer needs no read back."""
        columns = self._columns(document)
        self._check_unique(document[self.unique_attribute], row["id"])
        return self._bump(row, data=document, **columns, **self.extra_columns(document))

    def touch(self, row: Row) -> Row:
        """A change outside the document (a member) still changes the version and lastModified."""
        return self._bump(row)

    def _bump(self, row: Row, **values: Any) -> Row:
        """Write ``values`` to ``row`` with the next version and a new lastModified; returns the
        row as written.

        ``row`` was read in this transaction (locked on PostgreSQL, under SQLite's writer lock),
        so its version is the one to bump; the UPDATE checks it, so a row read elsewhere can never
        give two writes one version (one ETag).
        """
        values.update(version=row["version"] + 1, last_modified=clock.now())
        written = current_transaction().connection.execute(
            self._bump_seen, {"row_id": row["id"], "seen": row["version"], **values}
        )
        if written.rowcount != 1:
            raise RuntimeError(f"{self.resource_type_name} {row['id']} changed since it was read")
        return {**row, **values}

    def delete_row(self, resource_id: str) -> None:
        current_transaction().connection.execute(
            delete(self.table).where(self.table.c.id == resource_id)
        )

    def data(self, resource_id: str) -> dict[str, Any] | None:
        """The stored document, as the reconcilers read it; None once deleted."""
        with self.db.transaction(write=False) as tx:
            data = self._data_by_id.scalar(tx.connection, {"row_id": resource_id})
        return dict(data) if data is not None else None


REDACTED = "[redacted]"


def without_attributes(document: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """``document`` without the attributes ``names`` (lower case), however and wherever spelled.

    A key matches in any case, bare (``PASSWORD``), URN-qualified
    (``urn:ietf:params:scim:schemas:core:2.0:User:password``) or as the head of a dotted path
    (``password.value``), at any depth: inside a schema-URN object
    (``{"urn:ietf:params:scim:schemas:core:2.0:User": {"password": ...}}``), which the policy
    that keeps unknown attributes would otherwise store as sent, and inside extensions.
    """
    return {
        key: _without(value, names)
        for key, value in document.items()
        if not _names_one_of(key, names)
    }


def without_core_attributes(
    document: dict[str, Any], names: frozenset[str], urn: str
) -> dict[str, Any]:
    """``document`` without the core attributes ``names`` (lower case) of the schema ``urn``.

    A key matches in any case, bare (``Groups``), qualified (``urn:...:core:2.0:User:groups``),
    as the head of a dotted path (``groups.value``), or inside a ``urn`` object; an extension's
    attribute of the same name is another attribute, and stays.
    """
    prefix = urn.casefold() + ":"
    kept: dict[str, Any] = {}
    for key, value in document.items():
        if _core_attribute(key, prefix) in names:
            continue
        if _folded(key) == prefix[:-1] and isinstance(value, dict):
            value = {
                inner: item
                for inner, item in value.items()
                if _core_attribute(inner, prefix) not in names
            }
        kept[key] = value
    return kept


def wants_attribute(
    name: str,
    urn: str,
    attributes: Iterable[Any] | None,
    excluded_attributes: Iterable[Any] | None,
) -> bool:
    """Whether a response keeps the core attribute ``name`` of ``urn`` (RFC 7644 §3.4.2.5).

    An attribute the store computes from other rows (a group's ``members``, a user's ``groups``)
    is not even read when the answer would leave it out.
    """

    def mentions(attribute: Any) -> bool:
        spelled = str(attribute).lower().removeprefix(urn.lower() + ":")
        return spelled == name or spelled.startswith((f"{name}.", f"{name}["))

    if excluded_attributes and any(mentions(a) for a in excluded_attributes):
        return False
    return not attributes or any(mentions(a) for a in attributes)


def _without(value: Any, names: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return without_attributes(value, names)
    if isinstance(value, list):
        return [_without(item, names) for item in value]
    return value


def _names_one_of(key: str, names: frozenset[str]) -> bool:
    return _attribute(key) in names


# Every stored document is filtered on each read: its keys, a small set, are parsed once. Bounded,
# because a key is the client's to choose.
@functools.lru_cache(maxsize=4096)
def _attribute(key: str) -> str:
    """The attribute a key names, folded: ``urn:...:User:password.value`` -> ``password``."""
    return key.rsplit(":", 1)[-1].split(".", 1)[0].strip().casefold()


@functools.lru_cache(maxsize=4096)
def _core_attribute(key: str, prefix: str) -> str:
    """The attribute a key names in the schema whose URN, folded, is ``prefix`` minus its colon."""
    return _folded(key).removeprefix(prefix).split(".", 1)[0]


@functools.lru_cache(maxsize=4096)
def _folded(key: str) -> str:
    return key.strip().casefold()


def changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """The top-level attributes that differ, with their new values (None when removed)."""
    before = before or {}
    after = after or {}
    return {
        key: after.get(key)
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }
