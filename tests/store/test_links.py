"""The link store: one live link per GitLab account, retired links let go, pending operator links."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge.store.db import Database
from scim_bridge.store.links import CLAIM_LIFETIME
from scim_bridge.store.links import LinkStore
from scim_bridge.store.links import LinkTaken
from scim_bridge.store.links import UserLink
from scim_bridge.store.schema import account_claims


def test_a_second_live_link_to_an_account_is_refused(db: Database) -> None:
    links = LinkStore(db)
    links.save(UserLink("a", 5, "jane", "jane@x", "adopted"))
    with pytest.raises(LinkTaken):
        links.save(UserLink("b", 5, "jane", "jane@x", "adopted"))
    assert links.get("b") is None
    links.save(UserLink("a", 5, "jane", "jane@x", "adopted", retired_at=clock.now()))
    links.save(UserLink("b", 5, "jane", "jane@x", "created"))
    retired = links.get("a")
    assert retired is not None and retired.gitlab_user_id is None, "the retired link lets go"


def race(attempt: Callable[[str], None], runners: int = 8) -> list[str]:
    """``attempt(user_id)`` by ``runners`` threads at once: "won" or "refused" (LinkTaken) each."""
    outcomes: list[str] = []
    start = threading.Barrier(runners)

    def run(user_id: str) -> None:
        start.wait()
        try:
            attempt(user_id)
            outcomes.append("won")
        except LinkTaken:
            outcomes.append("refused")

    threads = [threading.Thread(target=run, args=(f"user{n}",)) for n in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_concurrent_claims_of_one_account_leave_one_live_link(db: Database) -> None:
    links = LinkStore(db)
    outcomes = race(lambda user_id: links.save(UserLink(user_id, 42, "sam", "sam@x", "adopted")))
    assert outcomes == ["refused"] * 7 + ["won"]
    assert len([link for link in links.all() if link.gitlab_user_id == 42]) == 1


def test_pending_operator_links_are_found_by_user_name_in_any_case(db: Database) -> None:
    links = LinkStore(db)
    links.add_pending("Alice@Contoso.com", 7, "alice")
    pending = links.pending("alice@contoso.COM")
    assert pending is not None and pending.gitlab_user_id == 7
    assert links.pending_for_account(7) == pending
    links.save(
        UserLink("u1", 7, "alice", "Alice@Contoso.com", "operator"), consumed="ALICE@contoso.com"
    )
    assert links.pending("alice@contoso.com") is None


def test_an_account_claimed_for_one_run_is_refused_to_another_until_the_link_is_saved(
    db: Database,
) -> None:
    links = LinkStore(db)
    links.claim_account(5, "a", "jane")
    links.claim_account(5, "a", "jane")  # the same run, or the same user's next run: its own
    with pytest.raises(LinkTaken, match="being linked"):
        links.claim_account(5, "b", "jane")
    with pytest.raises(LinkTaken):
        links.save(UserLink("b", 5, "jane", "jane@x", "adopted"))
    links.save(UserLink("a", 5, "jane", "jane@x", "adopted"))
    with db.transaction(write=False) as tx:
        left = tx.connection.execute(select(account_claims)).all()
    assert left == [], "saving the link released the claim"
    with pytest.raises(LinkTaken, match="linked to another"):
        links.claim_account(5, "b", "jane")


def test_a_claim_older_than_any_run_is_a_dead_runs_and_can_be_taken(db: Database) -> None:
    links = LinkStore(db)
    links.claim_account(5, "a", "jane")
    with db.transaction(write=True) as tx:
        tx.connection.execute(
            update(account_claims).values(
                claimed_at=clock.now() - CLAIM_LIFETIME - timedelta(seconds=1)
            )
        )
    links.claim_account(5, "b", "jane")
    with pytest.raises(LinkTaken):
        links.claim_account(5, "a", "jane")


def test_concurrent_claims_of_one_account_let_one_run_write(db: Database) -> None:
    links = LinkStore(db)
    assert race(lambda user_id: links.claim_account(42, user_id, "sam")) == ["refused"] * 7 + [
        "won"
    ]
