"""The group rules last applied (their fingerprint), and the revisit of every group when they change.

Entra only sends changes, so a new rule would otherwise wait for the group's next change.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select

from scim_bridge.store import audit
from scim_bridge.store import jobs
from scim_bridge.store.db import Database
from scim_bridge.store.db import upsert
from scim_bridge.store.memberships import GROUP_JOB
from scim_bridge.store.schema import bridge_state
from scim_bridge.store.schema import groups

RULES_FINGERPRINT = "groups.rules.fingerprint"


class RulesRevisit(Protocol):
    def revisit_if_changed(self, fingerprint: str) -> int: ...


class RulesRevisitStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def revisit_if_changed(self, fingerprint: str) -> int:
        """If the rules' fingerprint differs from the one last applied, queue every SCIM group's
        reconcile and remember it, in one transaction; returns how many groups were queued."""
        with self.db.transaction(write=True) as tx:
            connection = tx.connection
            known = connection.execute(
                select(bridge_state.c.value).where(bridge_state.c.key == RULES_FINGERPRINT)
            ).scalar()
            if known == fingerprint:
                return 0
            group_ids = list(connection.execute(select(groups.c.id)).scalars())
            for group_id in group_ids:
                jobs.enqueue(GROUP_JOB, group_id)
            upsert(
                bridge_state, [{"key": RULES_FINGERPRINT, "value": fingerprint}], ["key"], ["value"]
            )
            if group_ids:
                audit.record("rules.changed", None, {"groups_revisited": len(group_ids)})
            return len(group_ids)
