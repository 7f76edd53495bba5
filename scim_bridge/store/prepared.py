"""Hot reads run on the driver's own cursor, without SQLAlchemy Core's per-execution machinery.

Every SCIM request runs a few statements whose SQL never changes: the credential's lookup, a
resource by its key, a user's groups. SQLAlchemy Core spends about 50 µs on each execution
(its execution context, result objects, event dispatch) where the driver spends about 10; on a
filter GET that was a third of the bridge's own CPU (``benchmarks/load.py``, "bridge CPU per op",
and py-spy). A :class:`Prepared` statement is a Core ``SELECT`` compiled once per dialect. Each
run binds the parameters as Core would (the types' bind processors), runs the SQL on the
connection's DBAPI connection (the same connection and the same transaction: nothing about
isolation or locking changes) and converts the columns as Core would (the types' result
processors: SQLite hands back JSON as text and datetimes as strings).

What Core did and this keeps:

- the engine's ``before_cursor_execute`` listeners see each statement (tests count statements);
- a driver error is raised as SQLAlchemy's own exception class (``DBAPIError.instance``), and a
  connection the driver reports lost is invalidated, so the pool never hands it out again.

Only plain ``SELECT`` statements with scalar parameters qualify: an expanding ``IN`` list, whose
SQL depends on the values, is refused when the statement is first run on a dialect.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.interfaces import Compiled
from sqlalchemy.exc import DBAPIError

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Plan:
    """One statement on one dialect: its SQL and how its values cross the driver."""

    compiled: Compiled
    sql: str
    positional: tuple[str, ...] | None  # the parameters' order, for positional paramstyles
    binds: dict[str, Processor]  # parameter name -> bind processor, where the type has one
    results: tuple[Processor | None, ...]  # per selected column


class Prepared:
    """A ``SELECT`` compiled once per dialect, run on the transaction's driver connection."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self.keys = tuple(statement.selected_columns.keys())
        self._plans: dict[tuple[str, str], _Plan] = {}
        self._lock = threading.Lock()

    def all(self, connection: Connection, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row, each as a mapping of the statement's column keys (as ``.mappings()``)."""
        keys = self.keys
        return [dict(zip(keys, row, strict=True)) for row in self.tuples(connection, parameters)]

    def first(self, connection: Connection, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
        rows = self.all(connection, parameters)
        return rows[0] if rows else None

    def tuples(
        self, connection: Connection, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Every row as a tuple, its columns converted as Core converts them."""
        dialect = connection.dialect
        plan = self._plan(dialect)
        values = plan.compiled.construct_params(dict(parameters))
        for name, process in plan.binds.items():
            values[name] = process(values[name])
        bound: Any = values if plan.positional is None else [values[n] for n in plan.positional]
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None, "a connection inside a transaction"
        cursor = dbapi_connection.cursor()
        try:
            for listener in connection.dispatch.before_cursor_execute:
                listener(connection, cursor, plan.sql, bound, None, False)
            cursor.execute(plan.sql, bound)
            rows = cursor.fetchall()
        except dialect.loaded_dbapi.Error as error:
            lost = dialect.is_disconnect(error, dbapi_connection, cursor)
            if lost:
                connection.invalidate(error)
            raise DBAPIError.instance(
                plan.sql,
                bound,
                error,
                dialect.loaded_dbapi.Error,
                connection_invalidated=lost,
                dialect=dialect,
            ) from error
        finally:
            cursor.close()
        results = plan.results
        if not any(results):
            return [tuple(row) for row in rows]
        return [
            tuple(
                value if process is None else process(value)
                for process, value in zip(results, row, strict=True)
            )
            for row in rows
        ]

    def _plan(self, dialect: Dialect) -> _Plan:
        key = (dialect.name, dialect.driver)
        plan = self._plans.get(key)
        if plan is None:
            with self._lock:
                plan = self._plans.get(key) or self._build(dialect)
                self._plans[key] = plan
        return plan

    def _build(self, dialect: Dialect) -> _Plan:
        compiled = self.statement.compile(dialect=dialect)
        binds: dict[str, Processor] = {}
        for name, bind in compiled.binds.items():
            if bind.expanding:
                raise ValueError(f"{name!r} expands to a list: not a prepared statement")
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                binds[name] = process
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in self.statement.selected_columns
        )
        positional = (
            tuple(getattr(compiled, "positiontup", None) or ()) if compiled.positional else None
        )
        return _Plan(compiled, compiled.string, positional, binds, results)
