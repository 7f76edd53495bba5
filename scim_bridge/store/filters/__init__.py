"""SCIM filters (RFC 7644 §3.4.2.2) and sort orders (§3.4.2.3) as SQL over the document tables.

A resource is a row: a few columns (``id``, the folded ``userName``/``displayName``, ``created``,
``last_modified``, ``version``) and the rest of the resource as a JSON document (``data``); a
group's members are rows of ``group_members``, and a user's groups are read from the same rows.
:class:`FilterSql` walks a filter that scim2-models parsed and bound to the resource model, and
gives one SQL condition that keeps exactly the rows for which ``ScimFilter.match`` holds on the
resource the store returns. Nothing is filtered in Python and nothing is left out: a filter this
package cannot translate raises ``InvalidFilterException`` (400 invalidFilter), never a condition
that matches everything.

One module per job:

- ``folding``: case folding as scim2-models does it, also registered as SQLite functions;
- ``dialects``: what differs between SQLite and PostgreSQL, and their JSON accessors;
- ``values``: what a filter compares (columns, ``meta``, join-table lists) as SQL reads it;
- ``translation``: the filter visitor (:class:`FilterSql`) and :func:`filter_condition`;
- ``sorting``: :func:`sort_clauses`;
- ``scim2_adapter``: the one place that reaches into scim2-models beyond its public API.
"""

from scim_bridge.store.filters.dialects import ICU_COLLATION
from scim_bridge.store.filters.dialects import PostgresDialect
from scim_bridge.store.filters.dialects import PostgresJson
from scim_bridge.store.filters.dialects import SqlDialect
from scim_bridge.store.filters.dialects import SqliteDialect
from scim_bridge.store.filters.dialects import SqliteJson
from scim_bridge.store.filters.dialects import dialect_of
from scim_bridge.store.filters.folding import SQLITE_FUNCTIONS
from scim_bridge.store.filters.folding import comparison_key
from scim_bridge.store.filters.folding import fold
from scim_bridge.store.filters.folding import nfc
from scim_bridge.store.filters.sorting import sort_clauses
from scim_bridge.store.filters.sorting import sort_key
from scim_bridge.store.filters.translation import BINARY
from scim_bridge.store.filters.translation import BOOLEAN
from scim_bridge.store.filters.translation import COMPLEX
from scim_bridge.store.filters.translation import DATETIME
from scim_bridge.store.filters.translation import NUMBER
from scim_bridge.store.filters.translation import STRING
from scim_bridge.store.filters.translation import FilterSql
from scim_bridge.store.filters.translation import ItemSql
from scim_bridge.store.filters.translation import LogicSql
from scim_bridge.store.filters.translation import filter_condition
from scim_bridge.store.filters.translation import json_key
from scim_bridge.store.filters.translation import kind_of
from scim_bridge.store.filters.values import Column
from scim_bridge.store.filters.values import Condition
from scim_bridge.store.filters.values import Constant
from scim_bridge.store.filters.values import Derived
from scim_bridge.store.filters.values import Elements
from scim_bridge.store.filters.values import GroupRows
from scim_bridge.store.filters.values import Identifier
from scim_bridge.store.filters.values import Instant
from scim_bridge.store.filters.values import KeyColumn
from scim_bridge.store.filters.values import MemberRows
from scim_bridge.store.filters.values import MetaColumns
from scim_bridge.store.filters.values import Nothing
from scim_bridge.store.filters.values import RelatedRow
from scim_bridge.store.filters.values import RelatedRows
from scim_bridge.store.filters.values import Value
from scim_bridge.store.filters.values import definite

__all__ = [
    "BINARY",
    "BOOLEAN",
    "COMPLEX",
    "DATETIME",
    "ICU_COLLATION",
    "NUMBER",
    "SQLITE_FUNCTIONS",
    "STRING",
    "Column",
    "Condition",
    "Constant",
    "Derived",
    "Elements",
    "FilterSql",
    "GroupRows",
    "Identifier",
    "Instant",
    "ItemSql",
    "KeyColumn",
    "LogicSql",
    "MemberRows",
    "MetaColumns",
    "Nothing",
    "PostgresDialect",
    "PostgresJson",
    "RelatedRow",
    "RelatedRows",
    "SqlDialect",
    "SqliteDialect",
    "SqliteJson",
    "Value",
    "comparison_key",
    "definite",
    "dialect_of",
    "filter_condition",
    "fold",
    "json_key",
    "kind_of",
    "nfc",
    "sort_clauses",
    "sort_key",
]
