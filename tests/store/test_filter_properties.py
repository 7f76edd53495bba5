"""The SQL translation of filters and sort orders agrees with scim2-models, on SQLite and PostgreSQL.

Hypothesis generates users and groups, stores them through the stores, then generates filters from
a grammar (every operator, ``and``/``or``/``not``, parentheses, sub-attributes, value paths, core
and extension URNs, names and keywords in any case) with operands taken from the stored data and
bent (other case, NFD instead of NFC, prefixes and suffixes, ``%``/``_``/``\\``, null, the wrong
type, instants in other offsets or without one). Each filter runs as SQL; the ids found must be
exactly those for which ``ScimFilter[Model](filter).match(resource)`` holds on the resources the
store returns, and the count must agree. Sorting and paging are compared the same way with
``SearchRequest.sort``.

Strings are drawn from every Unicode character except NUL (PostgreSQL text cannot hold it) and
surrogates (not encodable in UTF-8), weighted towards the ones folding gets wrong: ASCII of both
cases, dotted and dotless I, sharp s, the three Greek sigmas, title-case digraphs, the Kelvin and
Angstrom signs (NFC changes them), combining marks (text that is not NFC), and the LIKE wildcards.
The alphabet is not restricted further: on PostgreSQL the translation folds with ICU
(``filters.py``), which agreed with Python for every code point on PostgreSQL 15 / ICU 72. A
database without ICU folds with its own ``lower()`` and fails this test (on ``İ`` for C.UTF-8).
"""

from __future__ import annotations

import base64
import json
import unicodedata
from collections.abc import Iterator
from collections.abc import Sequence
from datetime import UTC
from datetime import timedelta
from datetime import timezone
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import given
from hypothesis import note
from hypothesis import settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scim2_models import Context
from scim2_models import Group
from scim2_models import ResourceType
from scim2_models import ScimFilter
from scim2_models import SearchRequest
from scim2_server.utils import parametrize
from sqlalchemy import delete

from scim_bridge.scim.models import ENTERPRISE_USER_URN
from scim_bridge.scim.models import ENTRA_POLICY
from scim_bridge.scim.models import UserResource
from scim_bridge.store import migrate
from scim_bridge.store.db import Database
from scim_bridge.store.documents import folded
from scim_bridge.store.groups import GroupStore
from scim_bridge.store.schema import metadata
from scim_bridge.store.users import UserStore

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
USER_TYPE = ResourceType.from_resource(UserResource)
GROUP_TYPE = ResourceType.from_resource(Group)
USER_SEARCH = parametrize(SearchRequest, UserResource)
GROUP_SEARCH = parametrize(SearchRequest, Group)

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    # The database is made once per test (the fixture) and emptied before every example.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


# -- The stores ---------------------------------------------------------------------------------


class Stores:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.users = UserStore(db, UserResource, ENTRA_POLICY)
        self.groups = GroupStore(db, Group, ENTRA_POLICY)

    def empty(self) -> None:
        with self.db.transaction(write=True) as tx:
            for table in reversed(metadata.sorted_tables):
                tx.connection.execute(delete(table))


@pytest.fixture
def stores(database_url: str) -> Iterator[Stores]:
    db = Database(database_url)
    migrate.upgrade(db)
    yield Stores(db)
    db.dispose()


# -- Data ---------------------------------------------------------------------------------------

TRICKY = (
    "aAzZ09 .-"
    "%_\\"
    "\u00e9\u00c9\u00df\u1e9e\u0130\u0131Ii\u03a3\u03c3\u03c2\u0391\u03ac"
    "\u01c5\u01c4\u01c6\u015e\u015f\u00d6\u00f6"
    "\u212a\u212b\u2126"  # Kelvin, Angstrom and Ohm signs: NFC turns them into K, A-ring, Omega
    "\u0301\u0308\u0327"  # combining marks
    "\u65e5\u672c\uff71\U0001f642"
)
# Sequences that NFC or lower-casing change: decomposed letters, dotted capital I, final sigma.
TRAPS = [
    "e\u0301",
    "A\u030a",
    "I\u0307",
    "\u0130",
    "\u03a3",
    "\u039f\u03a3",
    "\u1e9e",
    "%",
    "_",
    "\\",
]
CHARACTERS = st.one_of(
    st.sampled_from(TRICKY),
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
)
PIECES = st.one_of(st.sampled_from(TRAPS), CHARACTERS, CHARACTERS)
# "" often: an empty string is a value (it equals "") but is not present (pr), unlike a missing one.
texts = st.one_of(st.just(""), st.lists(PIECES, max_size=4).map("".join))
names = (
    st.lists(PIECES, min_size=1, max_size=5).map("".join).filter(lambda value: value.strip() != "")
)

EMAIL_LOCAL = st.text(st.sampled_from("aAbZ09_%+-éÜ"), min_size=1, max_size=4)
EMAIL_DOMAINS = ["contoso.com", "EXAMPLE.org", "fabrikam.co.uk", "exämple.de"]
emails = st.builds(
    lambda parts, domain: ".".join(parts) + "@" + domain,
    st.lists(EMAIL_LOCAL, min_size=1, max_size=2),
    st.sampled_from(EMAIL_DOMAINS),
)
TYPES = ["work", "Work", "home", "other", "custom Ş"]


def optional_dict(**fields: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


email_entries = optional_dict(
    value=emails, type=st.sampled_from(TYPES), primary=st.booleans(), display=texts
)
phone_entries = optional_dict(value=texts, type=st.sampled_from(TYPES), primary=st.booleans())
address_entries = optional_dict(
    locality=texts, country=texts, type=st.sampled_from(TYPES), primary=st.booleans()
)
role_entries = optional_dict(value=texts, display=texts, primary=st.booleans())
certificates = optional_dict(
    value=st.binary(max_size=6).map(lambda raw: base64.b64encode(raw).decode()), display=texts
)

users = st.lists(
    st.fixed_dictionaries(
        {"userName": names},
        optional={
            "externalId": texts,
            "displayName": texts,
            "title": texts,
            "nickName": texts,
            "active": st.booleans(),
            "password": texts,
            "profileUrl": st.builds(lambda path: f"https://example.com/{path}", texts),
            "name": optional_dict(familyName=texts, givenName=texts, formatted=texts),
            "emails": st.lists(email_entries, max_size=3),
            "phoneNumbers": st.lists(phone_entries, max_size=2),
            "addresses": st.lists(address_entries, max_size=2),
            "roles": st.lists(role_entries, max_size=2),
            "x509Certificates": st.lists(certificates, max_size=2),
            ENTERPRISE_USER_URN: optional_dict(
                employeeNumber=texts,
                department=texts,
                manager=st.builds(lambda value: {"value": value}, names),
            ),
        },
    ),
    min_size=2,
    max_size=6,
    unique_by=lambda user: folded(user["userName"]),
)


def valid_user(document: dict[str, Any]) -> Any:
    try:
        return UserResource.model_validate(document, scim_policy=ENTRA_POLICY)
    except ValidationError:
        event("a generated user is refused by the model")
        return None  # e.g. a profileUrl the model refuses: leave that user out


# Group members: a stored user, by index (a member must be an existing User).
members = st.lists(
    st.fixed_dictionaries({"value": st.integers(0, 5)}, optional={"display": texts}),
    max_size=4,
)
groups = st.lists(
    st.fixed_dictionaries(
        {"displayName": names}, optional={"externalId": texts, "members": members}
    ),
    min_size=2,
    max_size=5,
    unique_by=lambda group: folded(group["displayName"]),
)


def with_members(document: dict[str, Any], user_ids: list[str]) -> dict[str, Any]:
    """Member indexes become the ids of stored users (left out when there are none)."""
    chosen: dict[str, dict[str, Any]] = {}
    for member in document.get("members", []):
        if user_ids:
            value = user_ids[member["value"] % len(user_ids)]
            chosen.setdefault(value, {**member, "value": value})
    return {**document, "members": list(chosen.values())}


# -- Operands taken from the stored data ----------------------------------------------------------


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def variants(value: str) -> list[str]:
    """A value as a filter may spell it: another case, another normal form, a part of it."""
    middle = len(value) // 2
    return [
        value,
        value.upper(),
        value.lower(),
        value.swapcase(),
        unicodedata.normalize("NFD", value),
        unicodedata.normalize("NFC", value),
        value[:middle],
        value[middle:],
        value[1:-1],
        value + "%",
        "_" + value,
    ]


FAR_INSTANTS = [
    "2000-01-01T00:00:00Z",
    "2999-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
    "2024-05-01",  # no offset: compares to no instant
]
SHIFTS = [timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1)]
# None: an instant written without an offset, which Python compares with no aware datetime.
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8)), None, None]


def pick(values: list[Any], index: int) -> Any:
    return values[index % len(values)]


class Pools:
    """What operands are taken from: the values stored, seen from the resources the store returns.

    The filter strategies are built once (building strategies per example is slow); they draw
    operand *specs* such as ``("own", 3, 5)`` ("the 3rd value stored at this attribute, spelled
    in its 5th variant"), which are resolved here against the stored data.
    """

    def __init__(self, resources: list[Any], extra_ids: Sequence[str] = ()) -> None:
        self.documents = [resource.model_dump(mode="json") for resource in resources]
        self.strings = sorted({text for doc in self.documents for text in strings_in(doc)}) or ["x"]
        self.ids = sorted({*(resource.id for resource in resources), *extra_ids}) or ["none"]
        self.instants = [
            instant
            for resource in resources
            for instant in (resource.meta.created, resource.meta.last_modified)
        ]

    def values_at(self, name: str) -> list[str]:
        """The strings stored at an attribute (``emails.type``, ``urn:...:manager.value``)."""
        uri = None
        if ":" in name:
            uri, _, name = name.rpartition(":")
        head, _, sub = name.partition(".")
        found: set[str] = set()
        for document in self.documents:
            host = document.get(uri, {}) if uri else document
            value = host.get(head) if isinstance(host, dict) else None
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    item = item.get(sub or "value")
                if isinstance(item, str):
                    found.add(item)
        return sorted(found)

    def resolve(self, spec: tuple[Any, ...], name: str) -> Any:
        how, *args = spec
        if how == "own":
            values = self.values_at(name) or self.strings
            return pick(variants(pick(values, args[0])), args[1])
        if how == "any":
            return pick(variants(pick(self.strings, args[0])), args[1])
        if how == "id":
            value = pick(self.ids, args[0])
            return value.upper() if args[1] else value
        if how == "instant":
            if not self.instants:
                return pick(FAR_INSTANTS, args[0])
            instant = pick(self.instants, args[0]) + pick(SHIFTS, args[1])
            zone = pick(ZONES, args[2])
            if zone is None:
                return instant.replace(tzinfo=None).isoformat()  # naive
            return instant.astimezone(zone).isoformat()
        if how == "far":
            return pick(FAR_INSTANTS, args[0])
        assert how == "literal"
        return args[0]


# -- Filters ------------------------------------------------------------------------------------

ALL_OPERATORS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
EQUALITY = ["eq", "ne"]
INDEX = st.integers(0, 1000)


def literal(values: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return values.map(lambda value: ("literal", value))


NONE = literal(st.none())
OWN = st.tuples(st.just("own"), INDEX, INDEX)
ANY = st.tuples(st.just("any"), INDEX, INDEX)
TEXT = st.one_of(
    OWN,
    OWN,
    ANY,
    literal(texts),
    literal(st.sampled_from(["", "%", "_", "\\", "a%", "%_", "\\%"])),
    literal(st.sampled_from(["%", "_", "\\"])),  # LIKE's wildcards and escape, alone
)
WRONG_TYPE = literal(st.one_of(st.integers(-3, 3), st.booleans()))


def operands(kind: str, op: str) -> st.SearchStrategy[tuple[Any, ...]]:
    if kind == "boolean":
        return st.one_of(literal(st.booleans()), NONE, literal(st.sampled_from(["true", "False"])))
    if kind == "binary":
        return st.one_of(OWN, NONE)
    if op in ("co", "sw", "ew"):
        return st.one_of(TEXT, WRONG_TYPE)
    if kind == "datetime":
        instants = st.tuples(st.just("instant"), INDEX, INDEX, INDEX)
        return st.one_of(instants, instants, st.tuples(st.just("far"), INDEX), NONE)
    if kind == "email":  # an address: anything else is refused for eq/gt/...
        whole = st.tuples(st.just("own"), INDEX, st.sampled_from([0, 1, 2]))  # as is, upper, lower
        return st.one_of(whole, NONE)
    if kind == "id":
        return st.one_of(st.tuples(st.just("id"), INDEX, st.booleans()), OWN, NONE)
    return st.one_of(TEXT, NONE)


def operators(kind: str) -> list[str]:
    if kind == "derived":  # a $ref the service completes: present, never compared in SQL
        return []
    if kind in ("boolean", "binary", "password"):
        return EQUALITY
    return ALL_OPERATORS


def spelled(word: str) -> st.SearchStrategy[str]:
    """Attribute names and keywords are case-insensitive."""
    return st.sampled_from(sorted({word, word.lower(), word.upper(), word[:1].upper() + word[1:]}))


def attribute(
    name: str, uri: str | None = None, *, qualified: bool = False
) -> st.SearchStrategy[str]:
    """``name`` or ``name.sub``, qualified by its schema URN or not (unless it must be), any case."""
    if ":" in name:
        uri, _, name = name.rpartition(":")
        qualified = True
    head, _, sub = name.partition(".")
    spelled_name = st.builds(
        lambda a, b: f"{a}.{b}" if b else a, spelled(head), spelled(sub) if sub else st.just("")
    )
    if uri is None:
        return spelled_name
    urns = st.sampled_from([uri, uri.upper(), uri.lower()])
    qualified_name = st.builds(lambda u, n: f"{u}:{n}", urns, spelled_name)
    return qualified_name if qualified else st.one_of(spelled_name, qualified_name)


def comparison(path: st.SearchStrategy[str], kind: str, name: str) -> st.SearchStrategy[Any]:
    """A tree leaf: ``("cmp", path, name, keyword, spec)`` or ``("pr", path, keyword)``."""
    present = st.tuples(st.just("pr"), path, spelled("pr"))
    if not operators(kind):
        return present
    compared = st.sampled_from(operators(kind)).flatmap(
        lambda op: st.tuples(
            st.just("cmp"), path, st.just(name), spelled(op), operands(kind, op), st.booleans()
        )
    )
    return st.one_of(compared, compared, present)


def logic(leaves: st.SearchStrategy[Any], max_leaves: int) -> st.SearchStrategy[Any]:
    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.tuples(st.just("and"), children, spelled("and"), children),
            st.tuples(st.just("or"), children, spelled("or"), children),
            st.tuples(st.just("not"), spelled("not"), children),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


def value_path(name: str, inner: list[tuple[str, str]], uri: str) -> st.SearchStrategy[Any]:
    leaves = st.one_of(*(comparison(attribute(sub), kind, f"{name}.{sub}") for sub, kind in inner))
    return st.tuples(st.just("vp"), attribute(name, uri), logic(leaves, 3))


def render(tree: Any, pools: Pools) -> str:
    """A filter tree as filter text, its operands taken from the stored data."""
    how = tree[0]
    if how == "cmp":
        _, path, name, keyword, spec, ascii_only = tree
        value = pools.resolve(spec, name)
        if isinstance(value, str) and not ascii_only:
            quoted = json.dumps(value, ensure_ascii=False)
        else:
            quoted = ScimFilter.quote(value)
        return f"{path} {keyword} {quoted}"
    if how == "pr":
        return f"{tree[1]} {tree[2]}"
    if how == "vp":
        return f"{tree[1]}[{render(tree[2], pools)}]"
    if how == "and":
        return f"({render(tree[1], pools)}) {tree[2]} ({render(tree[3], pools)})"
    if how == "or":  # no parentheses: "and" binds tighter, the parser has to know
        return f"{render(tree[1], pools)} {tree[2]} {render(tree[3], pools)}"
    assert how == "not"
    return f"{tree[1]} ({render(tree[2], pools)})"


# Attributes of Users: (name, kind). Extension attributes are listed with their URN apart.
USER_ATTRIBUTES = [
    ("userName", "string"),
    ("displayName", "string"),
    ("title", "string"),
    ("nickName", "string"),
    ("externalId", "string"),
    ("externalId", "string"),  # twice: caseExact / kept in rows, easy to get wrong
    ("profileUrl", "string"),
    ("password", "password"),
    ("id", "id"),
    ("active", "boolean"),
    ("name", "complex"),
    ("name.familyName", "string"),
    ("name.givenName", "string"),
    ("emails", "email"),
    ("emails.value", "email"),
    ("emails.type", "string"),
    ("emails.primary", "boolean"),
    ("emails.display", "string"),
    ("phoneNumbers", "string"),
    ("phoneNumbers.type", "string"),
    ("addresses", "complex"),
    ("addresses.locality", "string"),
    ("addresses.primary", "boolean"),
    ("roles", "string"),
    ("roles.display", "string"),
    ("x509Certificates", "binary"),
    ("x509Certificates.display", "string"),
    ("groups", "id"),
    ("groups.value", "id"),
    ("groups.display", "string"),
    ("groups.display", "string"),  # twice: read from the groups' rows, easy to get wrong
    ("groups.type", "string"),
    ("groups.$ref", "derived"),
    ("schemas", "string"),
    ("meta", "complex"),
    ("meta.created", "datetime"),
    ("meta.lastModified", "datetime"),
    ("meta.resourceType", "string"),
    ("meta.version", "string"),
]
ENTERPRISE_ATTRIBUTES = [
    ("employeeNumber", "string"),
    ("department", "string"),
    ("manager", "complex"),
    ("manager.value", "string"),
    ("manager.value", "string"),  # twice: caseExact / kept in rows, easy to get wrong
]
USER_LISTS = {
    "emails": [
        ("value", "email"),
        ("type", "string"),
        ("primary", "boolean"),
        ("display", "string"),
    ],
    "phoneNumbers": [("value", "string"), ("type", "string"), ("primary", "boolean")],
    "addresses": [("locality", "string"), ("country", "string"), ("primary", "boolean")],
    "roles": [("value", "string"), ("display", "string"), ("primary", "boolean")],
    "x509Certificates": [("value", "binary"), ("display", "string")],
    "groups": [("value", "id"), ("display", "string"), ("type", "string"), ("$ref", "derived")],
    "schemas": [("value", "string"), ("other", "string")],  # a list of strings: value is the item
}
GROUP_ATTRIBUTES = [
    ("displayName", "string"),
    ("externalId", "string"),
    ("externalId", "string"),  # twice: caseExact / kept in rows, easy to get wrong
    ("id", "id"),
    ("members", "id"),
    ("members.value", "id"),
    ("members.display", "string"),
    ("members.display", "string"),  # twice: caseExact / kept in rows, easy to get wrong
    ("members.type", "string"),
    ("members.type", "string"),  # twice: caseExact / kept in rows, easy to get wrong
    ("members.$ref", "derived"),
    ("schemas", "string"),
    ("meta.created", "datetime"),
    ("meta.lastModified", "datetime"),
    ("meta.version", "string"),
    ("meta", "complex"),
]
GROUP_LISTS = {
    "members": [("value", "id"), ("display", "string"), ("type", "string"), ("$ref", "derived")],
    "schemas": [("value", "string")],
}

USER_FILTERS = logic(
    st.one_of(
        *(comparison(attribute(name, CORE_USER), kind, name) for name, kind in USER_ATTRIBUTES),
        *(
            comparison(
                attribute(name, ENTERPRISE_USER_URN, qualified=True),
                kind,
                f"{ENTERPRISE_USER_URN}:{name}",
            )
            for name, kind in ENTERPRISE_ATTRIBUTES
        ),
        *(value_path(name, inner, CORE_USER) for name, inner in USER_LISTS.items()),
    ),
    4,
)
GROUP_FILTERS = logic(
    st.one_of(
        *(comparison(attribute(name, CORE_GROUP), kind, name) for name, kind in GROUP_ATTRIBUTES),
        *(value_path(name, inner, CORE_GROUP) for name, inner in GROUP_LISTS.items()),
    ),
    4,
)

USER_SORTS = [
    "userName",
    "displayName",
    "title",
    "externalId",
    "name.familyName",
    "active",
    "emails",
    "emails.type",
    "emails.primary",
    "phoneNumbers",
    "addresses.locality",
    "roles.display",
    "schemas",
    "groups",
    "groups.display",
    "groups.type",
    "id",
    "meta.created",
    "meta.lastModified",
    "meta.version",
    "meta.resourceType",
    f"{ENTERPRISE_USER_URN}:employeeNumber",
    f"{ENTERPRISE_USER_URN}:manager.value",
]
GROUP_SORTS = [
    "displayName",
    "externalId",
    "members",
    "members.display",
    "members.type",
    "id",
    "meta.created",
]
SORTS = {
    "User": st.sampled_from(USER_SORTS).flatmap(attribute),
    "Group": st.sampled_from(GROUP_SORTS).flatmap(attribute),
}
PAGES = st.tuples(
    st.integers(1, 4), st.integers(0, 7), st.sampled_from([None, "ascending", "descending"])
)


# -- The properties -----------------------------------------------------------------------------


def check_filters(
    store: Any, resource_type: ResourceType, search: Any, stored: list[Any], expressions: list[str]
) -> list[str]:
    """Every filter finds in SQL what ScimFilter.match finds in memory; returns the valid ones."""
    model = store.model
    valid = []
    for expression in expressions:
        note(f"filter: {expression}")
        try:
            request = search.model_validate({"filter": expression}, scim_ctx=Context.SEARCH_REQUEST)
        except ValidationError as error:
            # The filter is wrong for its attribute (e.g. "emails.value eq" a non-address):
            # scim2-models refuses it as 400 invalidFilter before the store sees it.
            assert {e["type"] for e in error.errors()} == {"scim_invalidFilter"}, error
            event("filter refused by scim2-models")
            continue
        evaluator = ScimFilter[model](expression)  # type: ignore[valid-type]
        expected = sorted(resource.id for resource in stored if evaluator.match(resource))
        page = store.search([resource_type], request)
        assert sorted(resource.id for resource in page.resources) == expected, expression
        assert page.total == len(expected), expression
        share = "none" if not expected else "all" if len(expected) == len(stored) else "some"
        event(f"a filter matches {share}")
        valid.append(expression)
    return valid


def check_sort(
    data: Any,
    store: Any,
    resource_type: ResourceType,
    search: Any,
    stored: list[Any],
    valid: list[str],
) -> None:
    """A sorted page holds the resources SearchRequest.sort puts there, ties in id order."""
    start_index, count, order = data.draw(PAGES, label="page")
    parameters: dict[str, Any] = {
        "sortBy": data.draw(SORTS[resource_type.name], label="sortBy"),
        "startIndex": start_index,
        "count": count,
    }
    if order:
        parameters["sortOrder"] = order
    if valid and data.draw(st.booleans(), label="filtered"):
        parameters["filter"] = data.draw(st.sampled_from(valid), label="filter")
    note(f"search: {parameters}")
    request = search.model_validate(parameters, scim_ctx=Context.SEARCH_REQUEST)
    candidates = sorted(stored, key=lambda resource: resource.id)
    if request.filter is not None:
        candidates = [resource for resource in candidates if request.filter.match(resource)]
    ordered = request.sort(candidates)
    start = request.start_index_0 or 0
    expected = ordered[start : start + request.count]
    page = store.search([resource_type], request)
    assert [r.id for r in page.resources] == [r.id for r in expected], [
        request.sort_value(r) for r in ordered
    ]
    assert page.total == len(candidates)


def create_users(stores: Stores, documents: list[dict[str, Any]]) -> list[str]:
    ids = []
    with stores.db.transaction(write=True):  # one commit for all of them
        for document in documents:
            user = valid_user(document)
            if user is not None:
                ids.append(stores.users.create(USER_TYPE, user).id)
    return ids


def create_groups(
    stores: Stores, documents: list[dict[str, Any]], user_ids: list[str]
) -> list[str]:
    ids = []
    with stores.db.transaction(write=True):
        for document in documents:
            group = Group.model_validate(with_members(document, user_ids), scim_policy=ENTRA_POLICY)
            ids.append(stores.groups.create(GROUP_TYPE, group).id)
    return ids


@PROPERTY_SETTINGS
@given(data=st.data())
def test_user_filters_and_sorts_agree_with_scim2_models(stores: Stores, data: Any) -> None:
    stores.empty()
    user_ids = create_users(stores, data.draw(users, label="users"))
    # Users are in groups: their ``groups`` are read from the member rows.
    group_ids = create_groups(stores, data.draw(groups, label="groups"), user_ids)
    stored = stores.users.search([USER_TYPE], USER_SEARCH()).resources
    pools = Pools(stored, extra_ids=group_ids)
    trees = data.draw(st.lists(USER_FILTERS, min_size=3, max_size=12), label="filters")
    expressions = [render(tree, pools) for tree in trees]
    valid = check_filters(stores.users, USER_TYPE, USER_SEARCH, stored, expressions)
    for _ in range(2):
        check_sort(data, stores.users, USER_TYPE, USER_SEARCH, stored, valid)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_group_filters_and_sorts_agree_with_scim2_models(stores: Stores, data: Any) -> None:
    stores.empty()
    user_ids = create_users(stores, data.draw(users.map(lambda found: found[:3]), label="users"))
    create_groups(stores, data.draw(groups, label="groups"), user_ids)
    stored = stores.groups.search([GROUP_TYPE], GROUP_SEARCH()).resources
    pools = Pools(stored, extra_ids=user_ids)
    trees = data.draw(st.lists(GROUP_FILTERS, min_size=3, max_size=12), label="filters")
    expressions = [render(tree, pools) for tree in trees]
    valid = check_filters(stores.groups, GROUP_TYPE, GROUP_SEARCH, stored, expressions)
    for _ in range(2):
        check_sort(data, stores.groups, GROUP_TYPE, GROUP_SEARCH, stored, valid)
