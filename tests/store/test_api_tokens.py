"""The bearer token repository: one token per name under concurrency, revocation, last use."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from scim_bridge import clock
from scim_bridge.store import audit
from scim_bridge.store.api_tokens import ApiTokenRepository
from scim_bridge.store.credentials import HashedSecret
from scim_bridge.store.credentials import NameTaken
from scim_bridge.store.credentials import NotActive
from scim_bridge.store.db import Database


def test_concurrent_creates_of_one_name_leave_one_token(db: Database) -> None:
    tokens = ApiTokenRepository(db)
    outcomes: list[str] = []
    start = threading.Barrier(6)

    def add(n: int) -> None:
        start.wait()
        try:
            tokens.add("entra", HashedSecret(f"lookup{n}", f"hash{n}"), None)
            outcomes.append("created")
        except NameTaken:
            outcomes.append("refused")

    threads = [threading.Thread(target=add, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] + ["refused"] * 5
    assert [token.name for token in tokens.all()] == ["entra"]
    assert len(list(audit.events(db, action_prefix="token.create"))) == 1


def test_a_token_is_found_by_its_lookup_whatever_its_state(db: Database) -> None:
    tokens = ApiTokenRepository(db)
    tokens.add("portal", HashedSecret("abc", "secret-hash"), timedelta(days=90))
    found = tokens.find_by_lookup("abc")
    assert found is not None and found.secret_hash == "secret-hash"
    assert found.expires_at == found.created_at + timedelta(days=90)
    assert "secret-hash" not in repr(found)
    assert found.last_used_at is None
    used_at = clock.now()
    tokens.mark_used(found.id, used_at)
    tokens.revoke("portal")
    with pytest.raises(NotActive):
        tokens.revoke("portal")
    revoked = tokens.find_by_lookup("abc")
    assert revoked is not None and revoked.revoked_at is not None, "the caller refuses it"
    assert revoked.last_used_at == used_at
    assert tokens.find_by_lookup("") is None
