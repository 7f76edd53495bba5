"""The rules revisit: every group queued once per change of the rules' fingerprint."""

from __future__ import annotations

from scim_bridge.store import audit
from scim_bridge.store.db import Database
from scim_bridge.store.jobs import JobQueue
from scim_bridge.store.rules_revisit import RulesRevisitStore
from tests.store.group_rows import stored_group


def test_groups_are_revisited_when_the_fingerprint_changes(db: Database) -> None:
    revisit = RulesRevisitStore(db)
    assert revisit.revisit_if_changed("one") == 0  # no group yet; the fingerprint is kept
    assert revisit.revisit_if_changed("one") == 0
    first, second = stored_group(db, "A", []), stored_group(db, "B", [])
    assert revisit.revisit_if_changed("two") == 2
    assert revisit.revisit_if_changed("two") == 0
    keys = {job.key for job in JobQueue(db).list()}
    assert {f"scim_group:{first}", f"scim_group:{second}"} <= keys
    revisited = [e["detail"] for e in audit.events(db) if e["action"] == "rules.changed"]
    assert revisited == [{"groups_revisited": 2}]
