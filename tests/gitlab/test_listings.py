"""Listings read a page at a time (``gitlab/paging.py``): every row, one call per page, audited."""

from __future__ import annotations

from scim_bridge.gitlab.client import GitLab
from scim_bridge.gitlab.types import CallRecord
from scim_bridge.gitlab.types import Member
from tests.gitlab.conftest import PROVIDER
from tests.gitlab_double import GitLabDouble


def test_each_with_identity_pages_through_active_accounts_with_one(
    client: GitLab, double: GitLabDouble, records: list[CallRecord]
) -> None:
    with_identity = [
        double.add_user(f"sso{n}", f"sso{n}@example.com", identities=[(PROVIDER, f"oid-{n}")])
        for n in range(230)
    ]
    double.add_user("local", "local@example.com")
    double.add_user("saml", "saml@example.com", identities=[("saml", "x")])
    blocked = double.add_user(
        "gone", "gone@example.com", state="blocked", identities=[(PROVIDER, "oid-gone")]
    )
    records.clear()

    found = list(client.users.each_with_identity(PROVIDER))

    assert [user.id for user in found] == [user["id"] for user in with_identity]
    assert blocked["id"] not in {user.id for user in found}
    assert found[5].identity(PROVIDER) is not None
    assert [record.method for record in records] == ["GET"] * 3  # 233 active, 100 a page
    assert all(record.path.startswith("/users?") for record in records)
    assert "pagination=keyset" in records[0].path and "active=true" in records[0].path
    # The next pages are GitLab's own links: a cursor, never a page number of the bridge's.
    assert all(
        "cursor=" in r.path and "page=" not in r.path.replace("per_page", "") for r in records[1:]
    )


def test_each_with_identity_misses_no_account_removed_while_it_reads(
    client: GitLab, double: GitLabDouble
) -> None:
    """Keyset pages start after the last row read: an account removed from a page already read
    shifts nothing (offset pages would skip the first row of the next page)."""
    users = [
        double.add_user(f"sso{n}", f"sso{n}@example.com", identities=[(PROVIDER, f"oid-{n}")])
        for n in range(150)
    ]
    listing = client.users.each_with_identity(PROVIDER)
    read_before = [next(listing) for _ in range(50)]  # within the first page
    double.remove_user(users[0]["id"])
    rest = list(listing)
    assert [u.id for u in read_before + rest] == [u["id"] for u in users]


def test_each_direct_pages_through_a_group_with_username_and_since(
    client: GitLab, double: GitLabDouble, records: list[CallRecord]
) -> None:
    group = double.add_group("acme")
    users = [double.add_user(f"u{n}", f"u{n}@example.com")["id"] for n in range(150)]
    for user in users:
        double.add_member("acme", user, 30)
    records.clear()

    members = list(client.members.each_direct(group["id"]))

    assert sorted(members, key=lambda m: m.user_id) == [Member(user, 30) for user in users]
    assert {m.username for m in members} == {f"u{n}" for n in range(150)}
    assert all(m.created_at for m in members)
    assert [record.method for record in records] == ["GET", "GET"]


def test_a_listing_is_read_lazily(
    client: GitLab, double: GitLabDouble, records: list[CallRecord]
) -> None:
    for n in range(150):
        double.add_user(f"sso{n}", f"sso{n}@example.com", identities=[(PROVIDER, f"oid-{n}")])
    records.clear()
    listing = client.users.each_with_identity(PROVIDER)
    assert records == []
    next(listing)
    assert len(records) == 1, "only the first page is read for the first account"


def test_a_token_replaced_during_a_listing_sends_its_next_page_with_the_new_one(
    double: GitLabDouble,
) -> None:
    for n in range(250):
        double.add_user(f"sso{n}", f"sso{n}@example.com", identities=[(PROVIDER, f"oid-{n}")])
    double.add_token("glpat-first", 1, ["api"])
    double.add_token("glpat-second", 1, ["api"])
    current = ["glpat-first"]
    client = GitLab(double.url, lambda: current[0])
    double.clear_requests()

    listing = client.users.each_with_identity(PROVIDER)
    next(listing)
    current[0] = "glpat-second"  # rotated elsewhere while the report reads
    rest = list(listing)

    assert len(rest) == 249
    assert [call.token for call in double.requests] == [
        "glpat-first",
        "glpat-second",
        "glpat-second",
    ]
