"""Filters and sort orders translated to SQL (store/filters/): the cases that are easy to get wrong.

Each case runs on SQLite and, when configured, on PostgreSQL; ``ScimFilter.match`` is asked too,
so an expectation written here cannot drift from scim2-models' reading.
"""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any
from typing import Union

import pytest
from scim2_models import URN
from scim2_models import Context
from scim2_models import Group
from scim2_models import InvalidFilterException
from scim2_models import InvalidValueException
from scim2_models import Resource
from scim2_models import ResourceType
from scim2_models import ScimFilter
from scim2_models import ScimPolicy
from scim2_models import SearchRequest
from scim2_server.utils import parametrize
from sqlalchemy import ARRAY
from sqlalchemy import Text
from sqlalchemy import column
from sqlalchemy import func
from sqlalchemy import literal
from sqlalchemy import select

from scim_bridge.scim.models import ENTERPRISE_USER_URN
from scim_bridge.scim.models import ENTRA_POLICY
from scim_bridge.scim.models import UserResource
from scim_bridge.store.db import Database
from scim_bridge.store.filters import SQLITE_FUNCTIONS
from scim_bridge.store.filters import FilterSql
from scim_bridge.store.filters import SqliteDialect
from scim_bridge.store.filters import dialect_of
from scim_bridge.store.groups import GroupStore
from scim_bridge.store.users import UserStore

USER_TYPE = ResourceType.from_resource(UserResource)
GROUP_TYPE = ResourceType.from_resource(Group)
USER_SEARCH = parametrize(SearchRequest, UserResource)
GROUP_SEARCH = parametrize(SearchRequest, Group)


@pytest.fixture
def users(db: Database) -> UserStore:
    return UserStore(db, UserResource, ENTRA_POLICY)


@pytest.fixture
def groups(db: Database) -> GroupStore:
    return GroupStore(db, Group, ENTRA_POLICY)


def add_users(store: UserStore, *documents: dict[str, Any]) -> dict[str, str]:
    """userName -> id."""
    created = {}
    for document in documents:
        user = store.create(USER_TYPE, UserResource.model_validate(document))
        created[document["userName"]] = user.id
    return created


def found(store: Any, expression: str, **parameters: Any) -> list[str]:
    """The userNames/displayNames the SQL search finds, checked against ScimFilter.match."""
    search = USER_SEARCH if isinstance(store, UserStore) else GROUP_SEARCH
    resource_type = USER_TYPE if isinstance(store, UserStore) else GROUP_TYPE
    request = search.model_validate(
        {"filter": expression, **parameters}, scim_ctx=Context.SEARCH_REQUEST
    )
    everything = store.search([resource_type], search()).resources
    page = store.search([resource_type], request)
    expected = [r.id for r in everything if ScimFilter[store.model](expression).match(r)]
    assert sorted(r.id for r in page.resources) == sorted(expected), expression
    assert page.total == len(expected)
    return sorted(getattr(r, "user_name", None) or r.display_name for r in page.resources)


def in_order(store: Any, **parameters: Any) -> list[str]:
    """The names of a sorted page, checked against SearchRequest.sort (ties in id order)."""
    search = USER_SEARCH if isinstance(store, UserStore) else GROUP_SEARCH
    resource_type = USER_TYPE if isinstance(store, UserStore) else GROUP_TYPE
    request = search.model_validate(parameters, scim_ctx=Context.SEARCH_REQUEST)
    everything = sorted(store.search([resource_type], search()).resources, key=lambda r: r.id)
    start = request.start_index_0 or 0
    stop = None if request.count is None else start + request.count
    expected = request.sort(everything)[start:stop]
    page = store.search([resource_type], request).resources
    assert [r.id for r in page] == [r.id for r in expected], parameters
    return [getattr(r, "user_name", None) or r.display_name for r in page]


def test_like_wildcards_match_literally(users: UserStore) -> None:
    add_users(
        users,
        {"userName": "pct", "title": "50% off"},
        {"userName": "plain", "title": "50 off"},
        {"userName": "under", "title": "a_b"},
        {"userName": "any", "title": "axb"},
        {"userName": "back", "title": "C:\\temp"},
        {"userName": "slash", "title": "C:/temp"},
    )
    assert found(users, 'title co "%"') == ["pct"]
    assert found(users, 'title co "0% "') == ["pct"]
    assert found(users, 'title sw "a_"') == ["under"]
    assert found(users, 'title ew "_b"') == ["under"]
    assert found(users, 'title co "\\\\"') == ["back"]
    assert found(users, 'title co ":\\\\t"') == ["back"]
    assert found(users, 'title co "/"') == ["slash"]
    assert found(users, 'userName co "_"') == []
    assert found(users, 'title sw ""') == ["any", "back", "pct", "plain", "slash", "under"]


def test_case_rules_follow_the_schema(users: UserStore) -> None:
    add_users(
        users,
        {"userName": "Jane.Doe@Contoso.com", "externalId": "0A21F0F2"},
        {"userName": "\u0130stanbul", "externalId": "caf\u0065\u0301"},  # İ, and é decomposed
        # Capital omicron, delta, omicron, sigma: the sigma lower-cases to a final sigma.
        {"userName": "\u039f\u0394\u039f\u03a3", "externalId": "x"},
    )
    # userName is caseExact=false, externalId caseExact=true (RFC 7643 §4.1).
    assert found(users, 'userName eq "jane.doe@contoso.com"') == ["Jane.Doe@Contoso.com"]
    assert found(users, 'externalId eq "0a21f0f2"') == []
    assert found(users, 'externalId eq "0A21F0F2"') == ["Jane.Doe@Contoso.com"]
    # Python lower-cases a dotted capital I to i + combining dot (full case mapping).
    assert found(users, 'userName eq "i\u0307stanbul"') == ["\u0130stanbul"]
    assert found(users, 'userName eq "istanbul"') == []
    # Final sigma: a capital sigma ending a word folds to a final sigma, alone to a medial one.
    assert found(users, 'userName eq "\u03bf\u03b4\u03bf\u03c2"') == ["\u039f\u0394\u039f\u03a3"]
    assert found(users, 'userName eq "\u03bf\u03b4\u03bf\u03c3"') == []
    assert found(users, 'userName ew "\u03c2"') == ["\u039f\u0394\u039f\u03a3"]
    assert found(users, 'userName ew "\u03a3"') == []
    # caseExact still compares in NFC: a composed é equals a decomposed one.
    assert found(users, 'externalId eq "caf\u00e9"') == ["\u0130stanbul"]
    assert found(users, 'externalId ew "\u00e9"') == ["\u0130stanbul"]
    assert found(users, 'externalId ew "\u0301"') == []


def test_dates_compare_as_instants(users: UserStore) -> None:
    add_users(users, {"userName": "first"})
    created = users.search([USER_TYPE], USER_SEARCH()).resources[0].meta.created
    east = created.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    west = (created - timedelta(microseconds=1)).astimezone(timezone(-timedelta(hours=8)))
    assert found(users, f'meta.created eq "{east}"') == ["first"]
    assert found(users, f'meta.created gt "{west.isoformat()}"') == ["first"]
    assert found(users, f'meta.created le "{west.isoformat()}"') == []
    assert found(users, 'meta.lastModified ge "2000-01-01T00:00:00Z"') == ["first"]
    # Without an offset a dateTime is naive: Python compares it with no instant, only "ne" holds.
    naive = created.astimezone(UTC).replace(tzinfo=None).isoformat()
    assert found(users, f'meta.created eq "{naive}"') == []
    assert found(users, f'meta.created ne "{naive}"') == ["first"]
    assert found(users, f'meta.created lt "{naive}"') == []
    # Beyond the years a datetime holds once moved to UTC.
    assert found(users, 'meta.created gt "0001-01-01T00:00:00+01:00"') == ["first"]
    assert found(users, 'meta.created lt "9999-12-31T23:59:59-05:00"') == ["first"]
    assert found(users, 'meta.created co "20"') == []  # not a string: never contains anything


def test_absent_empty_and_null(users: UserStore) -> None:
    add_users(
        users,
        {"userName": "empty", "title": "", "name": {"givenName": ""}, "emails": []},
        {"userName": "none"},
        {
            "userName": "full",
            "title": "Boss",
            "name": {"givenName": "Ann"},
            "emails": [{"value": "ann@contoso.com", "type": "work"}, {"primary": False}],
        },
    )
    assert found(users, "title pr") == ["full"]
    assert found(users, "title eq null") == ["none"]
    assert found(users, 'title eq ""') == ["empty"]
    assert found(users, 'title ne "boss"') == ["empty", "none"]
    assert found(users, "name pr") == ["full"]
    assert found(users, "emails pr") == ["full"]
    # "emails eq" compares emails.value: [] is stored as absent (None), and the second email of
    # "full" has no value (None) either.
    assert found(users, "emails eq null") == ["empty", "full", "none"]
    assert found(users, "emails pr and not (emails.value eq null)") == []
    assert found(users, 'emails ne "ann@contoso.com"') == ["empty", "none"]
    assert found(users, "emails.type eq null") == ["empty", "full", "none"]
    assert found(users, "emails.primary eq false") == ["full"]
    assert found(users, 'name eq "Ann"') == []  # a complex value equals no string
    assert found(users, 'name ne "Ann"') == ["empty", "full", "none"]


def test_value_paths_extensions_and_logic(users: UserStore) -> None:
    add_users(
        users,
        {
            "userName": "a",
            "emails": [
                {"value": "a@contoso.com", "type": "work"},
                {"value": "a@home.example.org", "type": "home", "primary": True},
            ],
            ENTERPRISE_USER_URN: {"employeeNumber": "100", "manager": {"value": "boss"}},
        },
        {
            "userName": "b",
            "emails": [{"value": "b@contoso.com", "type": "home"}],
            ENTERPRISE_USER_URN: {"employeeNumber": "20"},
        },
    )
    assert found(users, 'emails[type eq "work" and value co "@contoso"]') == ["a"]
    assert found(users, 'emails[type eq "home"] and emails co "contoso"') == ["a", "b"]
    assert found(users, 'emails[not (type eq "work")]') == ["a", "b"]
    assert found(users, 'not (emails[type eq "work"])') == ["b"]
    assert found(users, f'{ENTERPRISE_USER_URN}:employeeNumber gt "10"') == ["a", "b"]  # strings
    assert found(users, f'{ENTERPRISE_USER_URN.upper()}:EMPLOYEENUMBER lt "2"') == ["a"]
    assert found(users, f"{ENTERPRISE_USER_URN}:manager pr") == ["a"]
    assert found(users, 'userName eq "a" or userName eq "b" and emails.primary eq true') == ["a"]
    assert found(users, '(userName eq "a" or userName eq "b") and emails.primary eq true') == ["a"]
    assert found(users, 'schemas[value eq "URN:ietf:params:scim:schemas:core:2.0:USER"]') == [
        "a",
        "b",
    ]


def test_group_members_are_rows(users: UserStore, groups: GroupStore) -> None:
    ids = add_users(users, {"userName": "u1"}, {"userName": "u2"})
    for name, members in (
        (
            "both",
            [{"value": ids["u1"], "display": "Ünal"}, {"value": ids["u2"], "display": "Ünal"}],
        ),
        ("one", [{"value": ids["u2"], "display": ""}]),
        ("none", []),
    ):
        group = Group.model_validate({"displayName": name, "members": members})
        groups.create(GROUP_TYPE, group)
    assert found(groups, f'members eq "{ids["u1"]}"') == ["both"]
    assert found(groups, f'members.value eq "{ids["u2"]}"') == ["both", "one"]
    assert found(groups, f'members.value eq "{ids["u2"].upper()}"') == []  # caseExact
    assert found(groups, 'members[display co "ÜN"]') == ["both"]
    assert found(groups, "members.display pr") == ["both"]
    assert found(groups, 'members[display eq "ünal"]') == ["both"]
    assert found(groups, "members eq null") == ["none"]
    # GET gives members a type ("User" here) and a $ref the service makes absolute.
    assert found(groups, "members.type eq null") == ["none"]
    assert found(groups, 'members[type eq "user"]') == ["both", "one"]
    assert found(groups, "members.$ref pr") == ["both", "one"]
    refs = GROUP_SEARCH.model_validate(
        {"filter": 'members.$ref co "Users/"'}, scim_ctx=Context.SEARCH_REQUEST
    )
    with pytest.raises(InvalidFilterException):
        groups.search([GROUP_TYPE], refs)
    assert found(groups, f'not (members ne "{ids["u1"]}")') == ["both"]
    ordered = in_order(groups, sortBy="members.display", sortOrder="descending")
    assert sorted(ordered[:2]) == ["none", "one"]  # no value ("" counts as none): first
    assert ordered[2] == "both"
    assert in_order(groups, sortBy="members.display")[0] == "both"
    # Members are Users: a group cannot be one, so no member has the type "Group".
    one = groups.search([GROUP_TYPE], GROUP_SEARCH()).resources
    one_id = next(group.id for group in one if group.display_name == "one")
    parent = Group.model_validate({"displayName": "parent", "members": [{"value": one_id}]})
    with pytest.raises(InvalidValueException):
        groups.create(GROUP_TYPE, parent)
    assert found(groups, 'members[type eq "GROUP"]') == []
    assert found(groups, 'members.type ne "group"') == ["both", "none", "one"]


def test_user_groups_are_rows(users: UserStore, groups: GroupStore) -> None:
    """A user's ``groups`` are the group_members rows naming it, each with its group's name."""
    ids = add_users(users, {"userName": "both"}, {"userName": "one"}, {"userName": "none"})
    made = {}
    for name, members in (("Ünal Team", ["both", "one"]), ("ops", ["both"])):
        group = Group.model_validate(
            {"displayName": name, "members": [{"value": ids[m]} for m in members]}
        )
        made[name] = groups.create(GROUP_TYPE, group).id
    assert found(users, f'groups eq "{made["ops"]}"') == ["both"]
    assert found(users, f'groups.value eq "{made["Ünal Team"]}"') == ["both", "one"]
    assert found(users, f'groups.value eq "{made["ops"].upper()}"') == []  # caseExact
    assert found(users, 'groups.display co "ÜN"') == ["both", "one"]
    assert found(users, 'groups[display eq "OPS"]') == ["both"]
    assert found(users, "groups pr") == ["both", "one"]
    assert found(users, "groups eq null") == ["none"]
    assert found(users, 'groups[type eq "direct"]') == ["both", "one"]
    assert found(users, "groups.$ref pr") == ["both", "one"]
    assert found(users, f'not (groups ne "{made["ops"]}")') == ["both"]
    refs = USER_SEARCH.model_validate(
        {"filter": 'groups.$ref co "Groups/"'}, scim_ctx=Context.SEARCH_REQUEST
    )
    with pytest.raises(InvalidFilterException):
        users.search([USER_TYPE], refs)
    assert in_order(users, sortBy="groups.display")[-1] == "none"  # no value: last
    assert in_order(users, sortBy="groups.value", sortOrder="descending")[0] == "none"


def test_sorting_puts_missing_values_last_ascending(users: UserStore) -> None:
    add_users(
        users,
        {"userName": "b", "title": "beta"},
        {"userName": "c"},
        {"userName": "a", "title": "Alpha"},
        {"userName": "d", "title": "alpha"},
    )

    ids = {u.user_name: u.id for u in users.search([USER_TYPE], USER_SEARCH()).resources}
    alphas = sorted(["a", "d"], key=ids.__getitem__)  # "Alpha" and "alpha" tie: by id
    assert in_order(users, sortBy="title") == [*alphas, "b", "c"]
    assert in_order(users, sortBy="title", sortOrder="descending") == ["c", "b", *alphas]
    assert in_order(users, sortBy="userName", sortOrder="descending", startIndex=2, count=2) == [
        "c",
        "b",
    ]


def test_unknown_attributes_and_refusals_are_invalid_filters(users: UserStore) -> None:
    with pytest.raises(Exception) as unknown:
        USER_SEARCH.model_validate({"filter": "nope eq 1"}, scim_ctx=Context.SEARCH_REQUEST)
    assert "scim_invalidFilter" in str(unknown.value)
    # The store refuses what it cannot translate instead of matching everything.
    location = USER_SEARCH.model_validate(
        {"filter": 'meta.location co "Users"'}, scim_ctx=Context.SEARCH_REQUEST
    )
    with pytest.raises(InvalidFilterException):
        users.search([USER_TYPE], location)


def test_a_datetime_in_the_document_or_a_custom_comparison_key_is_refused() -> None:
    class Thing(Resource):  # type: ignore[type-arg]
        __schema__ = URN("urn:example:params:scim:schemas:Thing")
        when: datetime | None = None

    dialect = SqliteDialect()
    translator = FilterSql(dialect, Thing, dialect.document(column("data")))
    with pytest.raises(InvalidFilterException):
        translator.visit(ScimFilter[Thing]('when gt "2020-01-01T00:00:00Z"').ast)
    custom = ScimPolicy(comparison_key=lambda binding, value: value)
    with pytest.raises(InvalidFilterException):
        FilterSql(dialect, Thing, dialect.document(column("data")), policy=custom)


def test_sqlite_functions_fold_as_scim2_models() -> None:
    fold, nfc = SQLITE_FUNCTIONS["scim_fold"], SQLITE_FUNCTIONS["scim_nfc"]
    assert fold("\u0130") == "i\u0307"
    assert fold("\u039f\u0394\u039f\u03a3") == "\u03bf\u03b4\u03bf\u03c2"
    assert nfc("e\u0301") == "\u00e9"
    assert fold(None) is None and nfc(3) is None


def test_a_filter_bound_to_several_types_matches_nothing_on_what_a_type_lacks(
    users: UserStore, groups: GroupStore
) -> None:
    """A root search binds the filter to Users and Groups; each table answers for its own type."""
    add_users(users, {"userName": "alice", "title": "Boss"})
    groups.create(GROUP_TYPE, Group.model_validate({"displayName": "admins"}))
    search = parametrize(SearchRequest, Union[UserResource, Group])  # noqa: UP007
    expression = 'userName sw "a" or displayName sw "A" or members pr or title pr'
    request = search.model_validate({"filter": expression}, scim_ctx=Context.SEARCH_REQUEST)
    for store, resource_type, name in ((users, USER_TYPE, "alice"), (groups, GROUP_TYPE, "admins")):
        page = store.search([resource_type], request)
        everything = store.search([resource_type], search()).resources
        assert [r.id for r in page.resources] == [
            r.id for r in everything if request.filter.match(r)
        ]
        assert [getattr(r, "user_name", None) or r.display_name for r in page.resources] == [name]
    only_users = search.model_validate(
        {"filter": 'title eq "Boss"'}, scim_ctx=Context.SEARCH_REQUEST
    )
    assert groups.search([GROUP_TYPE], only_users).total == 0
    assert users.search([USER_TYPE], only_users).total == 1


def test_the_database_folds_every_character_as_python(db: Database) -> None:
    """Case folding in SQL is the same function as in scim2-models, for every code point.

    On PostgreSQL this checks the ICU collation against this Python's Unicode tables: an upgrade
    of either (or a database without ICU) that changes a single mapping fails here.
    """
    fold, nfc = SQLITE_FUNCTIONS["scim_fold"], SQLITE_FUNCTIONS["scim_nfc"]
    characters = [chr(c) for c in range(1, 0x30000) if not 0xD800 <= c <= 0xDFFF]
    samples = [*characters, "\u039f\u03a3", "\u03a3\u039f", "e\u0301", "I\u0307", "\u0130i"]
    with db.transaction(write=False) as tx:
        dialect = dialect_of(tx.connection)
        for start in range(0, len(samples), 20000):
            chunk = samples[start : start + 20000]
            if db.is_sqlite:
                source = func.json_each(json.dumps(chunk)).table_valued("value").alias("t")
            else:
                array = literal(chunk, ARRAY(Text))
                source = func.unnest(array).table_valued("value").render_derived(name="t")
            text = source.c.value
            statement = select(text, dialect.fold(text), dialect.nfc(text)).select_from(source)
            for value, folded_value, composed in tx.connection.execute(statement):
                assert (folded_value, composed) == (fold(value), nfc(value)), ascii(value)
