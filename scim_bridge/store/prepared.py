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

``SELECT``, ``UPDATE`` and ``DELETE`` statements with scalar parameters qualify. Refused when
first run on a dialect: an expanding ``IN`` list (its SQL depends on the values), and an
``UPDATE`` of a table with ``onupdate`` columns (Core computes those per execution). ``INSERT`` is
not offered: Core fills column defaults and the new primary key per execution.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import Delete
from sqlalchemy import Select
from sqlalchemy import Update
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
    """A statement compiled once per dialect, run on the transaction's driver connection."""

    def __init__(self, statement: Select[Any] | Update | Delete) -> None:
        if isinstance(statement, Update) and any(
            column.onupdate is not None for column in statement.table.c
        ):
            raise ValueError("an UPDATE of a table with onupdate columns: not prepared")
        self.statement = statement
        selected = statement.selected_columns if isinstance(statement, Select) else None
        self._columns = list(selected) if selected is not None else []
        self.keys = tuple(selected.keys()) if selected is not None else ()
        self._plans: dict[tuple[str, str], _Plan] = {}
        self._lock = threading.Lock()

    def all(self, connection: Connection, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row, each as a mapping of the statement's column keys (as ``.mappings()``)."""
        keys = self.keys
        return [dict(zip(keys, row, strict=True)) for row in self.tuples(connection, parameters)]

    def first(self, connection: Connection, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
        rows = self.all(connection, parameters)
        return rows[0] if rows else None

    def scalar(self, connection: Connection, parameters: Mapping[str, Any]) -> Any:
        """The first row's first column, or None when there is no row (as Core's ``scalar``)."""
        rows = self.tuples(connection, parameters)
        return rows[0][0] if rows else None

    def rowcount(self, connection: Connection, parameters: Mapping[str, Any]) -> int:
        """Run an ``UPDATE`` or ``DELETE``; the rows it matched."""
        count, _ = self._run(connection, parameters, fetch=False)
        return count

    def tuples(
        self, connection: Connection, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Every row as a tuple, its columns converted as Core converts them."""
        _, rows = self._run(connection, parameters, fetch=True)
        return rows

    def _run(
        self, connection: Connection, parameters: Mapping[str, Any], *, fetch: bool
    ) -> tuple[int, list[tuple[Any, ...]]]:
        """Run the statement: the rows it matched, and (``fetch``) its rows, converted."""
        dialect = connection.dialect
        plan = self._plan(dialect)
        values = plan.compiled.construct_params(dict(parameters))
        assert values is not None
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
            fetched = cursor.fetchall() if fetch else []
            count = cursor.rowcount
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
            return count, [tuple(row) for row in fetched]
        return count, [
            tuple(
                value if process is None else process(value)
                for process, value in zip(results, row, strict=True)
            )
            for row in fetched
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
            for column in self._columns
        )
        positional = (
            tuple(getattr(compiled, "positiontup", None) or ()) if compiled.positional else None
        )
        return _Plan(compiled, compiled.string, positional, binds, results)
