"""The credential repositories: one credential per name under concurrency, and what each unit of
work changes together (the token endpoint and the front door end to end are in tests/auth/)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from scim_bridge import clock
from scim_bridge.store import audit
from scim_bridge.store.api_tokens import ApiTokenRepository
from scim_bridge.store.credentials import HashedSecret
from scim_bridge.store.credentials import NameTaken
from scim_bridge.store.credentials import NotActive
from scim_bridge.store.db import Database
from scim_bridge.store.oauth_clients import NewAccessToken
from scim_bridge.store.oauth_clients import NoSuchSecret
from scim_bridge.store.oauth_clients import OAuthClientRepository
from scim_bridge.store.oauth_clients import SecretCandidate

YEAR = timedelta(days=365)
RACERS = 6


def race(create: Callable[[int], object]) -> list[str]:
    """Run ``create(n)`` for n in 0..RACERS-1 at once; each outcome, sorted."""
    outcomes: list[str] = []
    start = threading.Barrier(RACERS)

    def attempt(n: int) -> None:
        start.wait()
        try:
            create(n)
            outcomes.append("created")
        except NameTaken:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def hashed(lookup: str) -> HashedSecret:
    return HashedSecret(lookup, f"hash-of-{lookup}")


# -- Bearer tokens ----------------------------------------------------------------------


def test_concurrent_creates_of_one_name_leave_one_token(db: Database) -> None:
    tokens = ApiTokenRepository(db)
    outcomes = race(lambda n: tokens.add("entra", hashed(f"lookup{n}"), None))
    assert outcomes == ["created"] + ["refused"] * (RACERS - 1)
    assert [token.name for token in tokens.all()] == ["entra"]
    assert len(list(audit.events(db, action_prefix="token.create"))) == 1


def test_a_token_is_found_by_its_lookup_whatever_its_state(db: Database) -> None:
    tokens = ApiTokenRepository(db)
    tokens.add("portal", hashed("abc"), timedelta(days=90))
    found = tokens.find_by_lookup("abc")
    assert found is not None and found.secret_hash == "hash-of-abc"
    assert found.expires_at == found.created_at + timedelta(days=90)
    assert "hash-of-abc" not in repr(found)
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


# -- OAuth clients ---------------------------------------------------------------------


def secret(clients: OAuthClientRepository, lookup: str) -> SecretCandidate:
    found = clients.find_secret_by_lookup(lookup)
    assert found is not None
    return found


def mint(
    clients: OAuthClientRepository, owner: SecretCandidate, lookup: str, expires_in: timedelta
) -> None:
    now = clock.now()
    clients.issue_token(
        NewAccessToken(
            token=hashed(lookup),
            client=owner.client,
            client_name=owner.name,
            client_secret=owner.secret_id,
            issuer="https://bridge",
            audience="https://bridge/scim/v2",
            scope=None,
            issued_at=now,
            expires_at=now + expires_in,
        )
    )


def test_concurrent_creates_of_one_name_leave_one_client(db: Database) -> None:
    clients = OAuthClientRepository(db)
    outcomes = race(lambda n: clients.create_client("entra", f"sbc_{n}", hashed(f"l{n}"), YEAR))
    assert outcomes == ["created"] + ["refused"] * (RACERS - 1)
    (client,) = clients.all()
    assert len(client.secrets) == 1, "a refused create leaves no secret behind"
    assert len(list(audit.events(db, action_prefix="oauth.client.create"))) == 1


def test_a_secret_lives_as_long_as_asked_and_its_hash_stays_out_of_reprs(db: Database) -> None:
    clients = OAuthClientRepository(db)
    expires_at = clients.create_client("entra", "sbc_1", hashed("one"), YEAR)
    (client,) = clients.all()
    (first,) = client.secrets
    assert first.expires_at == expires_at == first.created_at + YEAR
    found = secret(clients, "one")
    assert (found.client_id, found.name, found.secret_id) == ("sbc_1", "entra", first.id)
    assert "hash-of-one" not in repr(found) and "hash-of-one" not in repr(hashed("one"))
    assert clients.find_secret_by_lookup("nothing") is None


def test_revoking_secrets_keeps_the_newest_or_the_ones_not_named(db: Database) -> None:
    clients = OAuthClientRepository(db)
    clients.create_client("entra", "sbc_1", hashed("one"), YEAR)
    clients.add_secret("entra", hashed("two"), YEAR)
    clients.add_secret("entra", hashed("three"), YEAR)
    one, two, three = (secret(clients, lookup).secret_id for lookup in ("one", "two", "three"))
    assert clients.revoke_secrets("entra", two) == [two]
    with pytest.raises(NoSuchSecret):
        clients.revoke_secrets("entra", two)
    assert clients.revoke_secrets("entra", None) == [one]
    assert clients.revoke_secrets("entra", None) == [], "the newest live secret stays"
    assert [s.revoked_at is None for s in clients.all()[0].secrets] == [False, False, True]
    assert secret(clients, "three").secret_id == three
    with pytest.raises(NotActive):
        clients.revoke_secrets("nobody", None)


def test_issuing_a_token_drops_only_that_clients_dead_tokens(db: Database) -> None:
    clients = OAuthClientRepository(db)
    clients.create_client("a", "sbc_a", hashed("a"), YEAR)
    clients.create_client("b", "sbc_b", hashed("b"), YEAR)
    a, b = secret(clients, "a"), secret(clients, "b")
    mint(clients, a, "a-dead", -timedelta(seconds=1))
    mint(clients, b, "b-dead", -timedelta(seconds=1))
    mint(clients, a, "a-live", timedelta(hours=1))
    assert clients.find_token_by_lookup("a-dead") is None
    assert clients.find_token_by_lookup("b-dead") is not None, "another client's stay"
    live = clients.find_token_by_lookup("a-live")
    assert live is not None and live.client_name == "a" and live.client_revoked_at is None
    assert clients.all()[0].secrets[0].last_used_at is not None, "the secret was used"
    assert [e["target"] for e in audit.events(db, action_prefix="oauth.token.issue")] == [
        "a",
        "b",
        "a",
    ]


def test_revoking_a_client_ends_its_tokens_in_the_same_unit(db: Database) -> None:
    clients = OAuthClientRepository(db)
    clients.create_client("entra", "sbc_1", hashed("one"), YEAR)
    mint(clients, secret(clients, "one"), "token", timedelta(hours=1))
    clients.revoke_client("entra")
    assert clients.find_token_by_lookup("token") is None
    revoked = secret(clients, "one")
    assert revoked.client_revoked_at is not None, "found, for the caller to refuse"
    for again in (
        lambda: clients.revoke_client("entra"),
        lambda: clients.add_secret("entra", hashed("two"), YEAR),
    ):
        with pytest.raises(NotActive):
            again()
    with pytest.raises(NameTaken):
        clients.create_client("entra", "sbc_2", hashed("two"), YEAR)
