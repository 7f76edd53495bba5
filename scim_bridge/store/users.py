"""SCIM Users kept whole in SQL: the desired state the reconciler makes GitLab match.

It implements scim2-server's :class:`~scim2_server.storage.ScimStorage` contract. Every write also
records an audit event and enqueues a reconcile job in the same transaction (DESIGN.md, "A SCIM
write commits desired state and work, atomically"), and notes the state before, so that a write
the target rejects for good can be undone before Entra is answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import contextmanager
from typing import Any

from scim2_models import InvalidFilterException
from scim2_models import Meta
from scim2_models import NotFoundException
from scim2_models import PreconditionFailedException
from scim2_models import Resource
from scim2_models import ResourceType
from scim2_models import ResponseParameters
from scim2_models import ScimPolicy
from scim2_models import SearchRequest
from scim2_models import UniquenessException
from scim2_models import default_comparison_key
from scim2_models.path import CompareOperator
from scim2_models.path import Comparison
from scim2_models.path import FilterNode
from scim2_models.path import LogicalExpr
from scim2_models.path import LogicalOperator
from scim2_server.storage import ScimStorage
from scim2_server.storage import SearchPage
from sqlalchemy import ColumnElement
from sqlalchemy import and_
from sqlalchemy import delete
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
from scim_bridge.store.db import _current as _current_transaction
from scim_bridge.store.db import current_transaction
from scim_bridge.store.schema import users

USER_JOB = "user"
CORE_USER_URN = "urn:ietf:params:scim:schemas:core:2.0:user"
# Attributes never kept: the bridge gives GitLab accounts random passwords of its own.
NEVER_STORED = ("password",)


def user_name_key(user_name: str) -> str:
    """The form userNames are compared in: NFC, lower case (RFC 7643 §4.1.1, caseExact false)."""
    return default_comparison_key(_CaseInsensitive, user_name)


class _CaseInsensitive:
    case_exact = False


def _version_tag(version: int) -> str:
    return f'W/"{version}"'


def _version_number(tag: str | None) -> int | None:
    if not tag:
        return None
    digits = tag.removeprefix("W/").strip('"')
    return int(digits) if digits.isdigit() else None


class _FilterToSql:
    """Turns the filters Entra sends for users into SQL, and refuses the rest (never post-filters)."""

    def __call__(self, node: FilterNode) -> ColumnElement[bool]:
        if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_:
            return and_(*(self(term) for term in node.terms))
        if isinstance(node, Comparison) and node.op == CompareOperator.eq:
            return self._equals(node)
        raise InvalidFilterException(
            detail="only 'eq' comparisons on userName, externalId and id, joined by 'and', "
            "are supported on Users"
        )

    def _equals(self, node: Comparison) -> ColumnElement[bool]:
        path = node.attr_path
        uri = (path.uri or CORE_USER_URN).lower()
        name = path.attr.lower()
        if uri != CORE_USER_URN or path.sub_attr is not None:
            raise InvalidFilterException(detail=f"filtering on {path} is not supported on Users")
        value = node.value
        if not isinstance(value, str):
            return users.c.id.is_(None) if value is None else ~true()
        if name == "username":
            return users.c.user_name_key == user_name_key(value)
        if name == "externalid":
            return users.c.external_id == value
        if name == "id":
            return users.c.id == value
        raise InvalidFilterException(detail=f"filtering on {path} is not supported on Users")


class UserStore(ScimStorage):
    """The Users resource type on SQL, for scim2-server's handler."""

    def __init__(self, db: Database, model: type[Resource[Any]], policy: ScimPolicy) -> None:
        self.db = db
        self.model = model
        self.policy = policy
        self._to_sql = _FilterToSql()

    # -- Transactions -----------------------------------------------------

    def operation(self) -> AbstractContextManager[None]:
        """Join the request's transaction, or open one when called on its own (e.g. contract tests)."""
        return self._operation()

    @contextmanager
    def _operation(self) -> Iterator[None]:
        if _current_transaction.get() is not None:
            yield
            return
        with self.db.transaction(write=True):
            yield

    # -- Reading ------------------------------------------------------------

    def _row(self, resource_id: str) -> Any:
        tx = current_transaction()
        statement = select(users).where(users.c.id == resource_id)
        if tx.write and not self.db.is_sqlite:
            # A read that precedes a write locks the row: concurrent PATCHes apply one after another.
            statement = statement.with_for_update()
        return tx.connection.execute(statement).mappings().first()

    def _resource(self, row: Any) -> Resource[Any]:
        resource = self.model.model_validate(row["data"], scim_policy=self.policy)
        resource.id = row["id"]
        resource.meta = Meta(
            resource_type="User",
            created=clock.aware(row["created"]),
            last_modified=clock.aware(row["last_modified"]),
            version=_version_tag(row["version"]),
        )
        return resource

    def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        with self.operation():
            row = self._row(resource_id)
            if row is None:
                raise NotFoundException(detail=f"User {resource_id} not found")
            return self._resource(row)

    def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        condition: ColumnElement[bool] = true()
        if search_request.filter is not None:
            condition = self._to_sql(search_request.filter.ast)
        with self.operation():
            connection = current_transaction().connection
            total = connection.execute(
                select(func.count()).select_from(users).where(condition)
            ).scalar_one()
            statement = (
                select(users)
                .where(condition)
                .order_by(users.c.created, users.c.id)
                .offset(search_request.start_index_0 or 0)
            )
            if search_request.count is not None:
                statement = statement.limit(search_request.count)
            rows = connection.execute(statement).mappings().all()
            return SearchPage(total=int(total), resources=[self._resource(row) for row in rows])

    def data(self, resource_id: str) -> dict[str, Any] | None:
        """The stored document of a user, as the reconciler reads it; None once deleted."""
        with self.db.transaction(write=False) as tx:
            row = tx.connection.execute(
                select(users.c.data).where(users.c.id == resource_id)
            ).first()
        return dict(row.data) if row is not None else None

    # -- Writing ------------------------------------------------------------

    def _document(self, resource: Resource[Any]) -> dict[str, Any]:
        document = resource.model_dump(scim_policy=self.policy)
        for key in ("id", "meta", *NEVER_STORED):
            document.pop(key, None)
        return document

    def _check_unique(self, user_name: str, resource_id: str | None) -> None:
        statement = select(users.c.id).where(users.c.user_name_key == user_name_key(user_name))
        if resource_id is not None:
            statement = statement.where(users.c.id != resource_id)
        if current_transaction().connection.execute(statement).first() is not None:
            raise UniquenessException(detail=f"userName {user_name!r} is already taken")

    def _written(self, change: Change, action: str, target: str) -> None:
        tx = current_transaction()
        tx.changes.append(change)
        jobs.enqueue(USER_JOB, change.resource_id)
        audit.record(action, target, {"changed": _changed(change.before, change.after)})

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        with self.operation():
            user_name = resource.user_name  # type: ignore[attr-defined]
            self._check_unique(user_name, None)
            resource_id = str(uuid.uuid4())
            now = clock.now()
            document = self._document(resource)
            try:
                current_transaction().connection.execute(
                    insert(users).values(
                        id=resource_id,
                        user_name=user_name,
                        user_name_key=user_name_key(user_name),
                        external_id=resource.external_id,
                        active=_active(document),
                        data=document,
                        created=now,
                        last_modified=now,
                        version=1,
                    )
                )
            except IntegrityError as error:  # a concurrent create won the race for the userName
                raise UniquenessException(
                    detail=f"userName {user_name!r} is already taken"
                ) from error
            self._written(
                Change("User", resource_id, None, document), "scim.user.create", resource_id
            )
            return self._resource(self._row(resource_id))

    def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        assert resource.id is not None
        with self.operation():
            row = self._row(resource.id)
            if row is None:
                raise NotFoundException(detail=f"User {resource.id} not found")
            expected = _version_number(expected_version)
            if expected is not None and expected != row["version"]:
                raise PreconditionFailedException(detail="the user was modified meanwhile")
            user_name = resource.user_name  # type: ignore[attr-defined]
            self._check_unique(user_name, resource.id)
            document = self._document(resource)
            self._write(resource.id, document, row["version"] + 1)
            self._written(
                Change("User", resource.id, dict(row["data"]), document),
                "scim.user.update",
                resource.id,
            )
            return self._resource(self._row(resource.id))

    def _write(self, resource_id: str, document: dict[str, Any], version: int) -> None:
        user_name = document["userName"]
        current_transaction().connection.execute(
            update(users)
            .where(users.c.id == resource_id)
            .values(
                user_name=user_name,
                user_name_key=user_name_key(user_name),
                external_id=document.get("externalId"),
                active=_active(document),
                data=document,
                last_modified=clock.now(),
                version=version,
            )
        )

    def delete(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        expected_version: str | None = None,
    ) -> None:
        with self.operation():
            row = self._row(resource_id)
            if row is None:
                raise NotFoundException(detail=f"User {resource_id} not found")
            expected = _version_number(expected_version)
            if expected is not None and expected != row["version"]:
                raise PreconditionFailedException(detail="the user was modified meanwhile")
            current_transaction().connection.execute(delete(users).where(users.c.id == resource_id))
            self._written(
                Change("User", resource_id, dict(row["data"]), None),
                "scim.user.delete",
                resource_id,
            )

    def revert(self, change: Change, reason: str) -> None:
        """Undo one write the target refused for good, inside the current transaction."""
        connection = current_transaction().connection
        if change.before is None:
            connection.execute(delete(users).where(users.c.id == change.resource_id))
        else:
            row = self._row(change.resource_id)
            if row is None:
                now = clock.now()
                connection.execute(
                    insert(users).values(
                        id=change.resource_id,
                        user_name=change.before["userName"],
                        user_name_key=user_name_key(change.before["userName"]),
                        external_id=change.before.get("externalId"),
                        active=_active(change.before),
                        data=change.before,
                        created=now,
                        last_modified=now,
                        version=1,
                    )
                )
            else:
                self._write(change.resource_id, change.before, row["version"] + 1)
        jobs.enqueue(USER_JOB, change.resource_id)
        audit.record("scim.user.revert", change.resource_id, {"reason": reason})


def _active(document: dict[str, Any]) -> bool | None:
    value = document.get("active")
    return value if isinstance(value, bool) else None


def _changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """The top-level attributes that differ, with their new values (None when removed)."""
    before = before or {}
    after = after or {}
    return {
        key: after.get(key)
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }
