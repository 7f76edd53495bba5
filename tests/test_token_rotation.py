"""The GitLab token kept in the database and rotated (scim_bridge/token_vault.py,
token_rotation.py, `scim-bridge gitlab ...`), against the GitLab double over HTTP, on SQLite and
PostgreSQL.

Each `Bridge` here is one instance: its own database handle and GitLab client, sharing only the
database with the others, as instances behind a load balancer do. The double records the token
of every request, so "the old token is never used again" is read from what GitLab received.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from scim_bridge import clock
from scim_bridge.bridge import Bridge
from scim_bridge.cli.serving import TOKEN_WATCH_ACTOR
from scim_bridge.cli.serving import token_watch
from scim_bridge.metrics.instruments import REGISTRY
from scim_bridge.store.schema import gitlab_token
from scim_bridge.token_vault import TokenCipher
from scim_bridge.token_vault import new_key
from tests.conftest import ADMIN_TOKEN
from tests.conftest import cli_environment
from tests.conftest import make_settings
from tests.conftest import run_cli
from tests.gitlab_double import GitLabDouble

ROTATE = "/api/v4/personal_access_tokens/self/rotate"
KEY = new_key()


@pytest.fixture
def instances(database_url: str, gitlab: GitLabDouble) -> Iterator[list[Bridge]]:
    """Start instances with ``start(n)``; each keeps the token in the shared database."""
    started: list[Bridge] = []
    yield started
    for bridge in started:
        bridge.db.dispose()


def start(
    instances: list[Bridge], database_url: str, gitlab: GitLabDouble, n: int = 1, **config: object
) -> list[Bridge]:
    for _ in range(n):
        settings = make_settings(database_url, gitlab.url)
        settings = replace(settings, gitlab=replace(settings.gitlab, token_key=KEY, **config))
        instances.append(Bridge(settings))
    return instances[-n:]


def environment(
    database_url: str, gitlab: GitLabDouble, token: str = ADMIN_TOKEN
) -> dict[str, str]:
    env = cli_environment(database_url)
    env.update(
        SCIM_BRIDGE_GITLAB_URL=gitlab.url,
        SCIM_BRIDGE_GITLAB_TOKEN=token,
        SCIM_BRIDGE_GITLAB_TOKEN_KEY=KEY,
    )
    return env


def successor(gitlab: GitLabDouble, token: str) -> str:
    minted = gitlab.state.tokens[token].rotated_to
    assert minted is not None, "the token was not rotated"
    return minted


def tokens_sent(gitlab: GitLabDouble, since: int = 0) -> list[str | None]:
    return [call.token for call in gitlab.requests[since:]]


def audit_events(env: dict[str, str], action: str) -> list[dict[str, object]]:
    lines = run_cli(env, "audit", "export").stdout.splitlines()
    return [event for event in map(json.loads, lines) if event["action"] == action]


def test_the_token_is_stored_encrypted_at_the_first_call_never_in_plain_text(
    instances: list[Bridge], database_url: str, gitlab: GitLabDouble, tmp_path: Path
) -> None:
    (bridge,) = start(instances, database_url, gitlab)
    assert bridge.gitlab.token_info()["active"] is True
    assert tokens_sent(gitlab) == [ADMIN_TOKEN]
    with bridge.db.transaction(write=False) as tx:
        row = tx.connection.execute(select(gitlab_token)).one()._mapping
    assert row["version"] == 1 and row["how"] == "seeded"
    assert ADMIN_TOKEN not in json.dumps({key: str(value) for key, value in row.items()})
    assert TokenCipher(KEY).decrypt(row["token"]) == ADMIN_TOKEN
    if bridge.db.sqlite_file is not None:
        for path in bridge.db.sqlite_file.parent.glob(bridge.db.sqlite_file.name + "*"):
            assert ADMIN_TOKEN.encode() not in path.read_bytes(), path
    (seeded,) = audit_events(environment(database_url, gitlab), "gitlab.token.seed")
    assert seeded["detail"] == {"version": 1, "from": "SCIM_BRIDGE_GITLAB_TOKEN"}


def test_rotate_token_swaps_the_token_on_every_instance_and_the_old_is_never_used_again(
    instances: list[Bridge], database_url: str, gitlab: GitLabDouble
) -> None:
    first, second = start(instances, database_url, gitlab, n=2)
    for bridge in (first, second):
        bridge.gitlab.current_user()
    assert tokens_sent(gitlab) == [ADMIN_TOKEN, ADMIN_TOKEN]
    env = environment(database_url, gitlab)
    before = len(gitlab.requests)

    day = clock.now().date() + dt.timedelta(days=90)
    done = run_cli(env, "gitlab", "rotate-token", "--expires-at", day.isoformat())

    new = successor(gitlab, ADMIN_TOKEN)
    assert done.stdout.startswith(f"rotated: token version 2, expiring on {day.isoformat()}")
    assert new not in done.stdout + done.stderr and ADMIN_TOKEN not in done.stdout + done.stderr
    (rotation,) = gitlab.calls("POST", ROTATE)
    assert rotation.token == ADMIN_TOKEN and rotation.json == {"expires_at": day.isoformat()}
    assert gitlab.state.tokens[new].expires_at == day.isoformat()
    after = len(gitlab.requests)
    for bridge in (first, second, first):
        assert bridge.gitlab.current_user().username == "root"
        assert bridge.gitlab.token_info()["active"] is True
    assert tokens_sent(gitlab, after) == [new] * 6
    assert ADMIN_TOKEN not in tokens_sent(gitlab, before + 1)
    assert [call.status for call in gitlab.requests[after:]] == [200] * 6
    (audited,) = audit_events(env, "gitlab.token.rotate")
    assert audited["actor"].startswith("cli:")
    assert audited["detail"] == {"version": 2, "expires_on": day.isoformat(), "outcome": "rotated"}
    assert any(
        event["target"] == "POST /personal_access_tokens/self/rotate"
        for event in audit_events(env, "gitlab.call")
    )


def test_instances_racing_to_rotate_the_same_token_make_exactly_one_rotation(
    instances: list[Bridge], database_url: str, gitlab: GitLabDouble
) -> None:
    racers = start(instances, database_url, gitlab, n=4)
    racers[0].gitlab.current_user()  # stores the first token: version 1 for everyone
    rotations = [bridge.token_rotation for bridge in racers]
    barrier = threading.Barrier(len(racers))
    outcomes: list[bool] = []

    def race(index: int) -> None:
        rotation = rotations[index]
        assert rotation is not None
        barrier.wait()
        outcomes.append(rotation.rotate(1).done)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(racers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(outcomes) == [False, False, False, True]
    assert len(gitlab.calls("POST", ROTATE)) == 1
    new = successor(gitlab, ADMIN_TOKEN)
    assert gitlab.state.tokens[new].active, "a second rotation revoked the new token"
    after = len(gitlab.requests)
    for bridge in racers:
        bridge.gitlab.current_user()
    assert tokens_sent(gitlab, after) == [new] * 4


def test_no_instance_sends_the_old_token_while_a_rotation_is_under_way(
    instances: list[Bridge], database_url: str, gitlab: GitLabDouble
) -> None:
    rotating, other = start(instances, database_url, gitlab, n=2)
    other.gitlab.current_user()
    hold = threading.Event()
    gitlab.faults.add("POST", "/personal_access_tokens/self/rotate", hold=hold)
    rotation = rotating.token_rotation
    assert rotation is not None
    rotator = threading.Thread(target=rotation.rotate, args=(1,))
    rotator.start()
    deadline = time.monotonic() + 30
    while gitlab.held() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gitlab.held() == 1, "the rotation never reached GitLab"
    sent = len(gitlab.requests)
    caller = threading.Thread(target=other.gitlab.current_user)
    caller.start()
    caller.join(0.5)
    assert caller.is_alive(), "a call went out while GitLab was rotating the token"
    assert len(gitlab.requests) == sent
    hold.set()
    rotator.join(30)
    caller.join(30)
    new = successor(gitlab, ADMIN_TOKEN)
    # The rotation itself (logged once answered), then the held call, with the new token.
    assert [(call.method, call.path, call.token) for call in gitlab.requests[sent:]] == [
        ("POST", ROTATE, ADMIN_TOKEN),
        ("GET", "/api/v4/user", new),
    ]


def test_a_rotation_gitlab_refuses_changes_nothing_and_is_audited(
    instances: list[Bridge], database_url: str, gitlab: GitLabDouble
) -> None:
    (bridge,) = start(instances, database_url, gitlab)
    bridge.gitlab.current_user()
    gitlab.set_token_scopes(ADMIN_TOKEN, ["read_api"])
    env = environment(database_url, gitlab)

    done = run_cli(env, "gitlab", "rotate-token", check=False)

    assert done.returncode == 2
    assert "GitLab refused the rotation (403" in done.stderr
    assert "the stored token is unchanged" in done.stderr
    assert gitlab.state.tokens[ADMIN_TOKEN].active
    row = bridge.token_vault.store.read() if bridge.token_vault else None
    assert row is not None and row.version == 1 and row.rotating_since is None
    (refused,) = audit_events(env, "gitlab.token.rotate")
    assert refused["detail"]["outcome"] == "failed"  # type: ignore[index]
    gitlab.set_token_scopes(ADMIN_TOKEN, ["api"])
    bridge.gitlab.current_user()  # calls go on with the same token
    assert gitlab.requests[-1].token == ADMIN_TOKEN


def test_store_token_takes_an_operators_new_token_and_refuses_one_gitlab_refuses(
    instances: list[Bridge], database_url: str, gitlab: GitLabDouble
) -> None:
    (bridge,) = start(instances, database_url, gitlab)
    bridge.gitlab.current_user()
    gitlab.add_token("glpat-operator-made-this-one", 1, ["api", "admin_mode"])

    refused = run_cli(
        environment(database_url, gitlab, "glpat-nobody-knows-this"),
        "gitlab",
        "store-token",
        check=False,
    )
    assert refused.returncode == 2 and "GitLab does not accept the token" in refused.stderr
    assert "glpat-nobody" not in refused.stderr

    done = run_cli(
        environment(database_url, gitlab, "glpat-operator-made-this-one"), "gitlab", "store-token"
    )
    assert done.stdout.strip() == "stored SCIM_BRIDGE_GITLAB_TOKEN as token version 2"
    bridge.gitlab.current_user()
    assert gitlab.requests[-1].token == "glpat-operator-made-this-one"


def test_the_worker_rotates_once_when_the_configured_days_remain_whatever_the_instances(
    instances: list[Bridge], database_url: str, gitlab: GitLabDouble
) -> None:
    gitlab.set_token_expiry(ADMIN_TOKEN, clock.now().date() + dt.timedelta(days=5))
    watchers = start(instances, database_url, gitlab, n=3, rotate_days_before_expiry=10)
    watches = [token_watch(bridge) for bridge in watchers]
    states = [watch.check() for watch in watches]

    assert len(gitlab.calls("POST", ROTATE)) == 1
    new = successor(gitlab, ADMIN_TOKEN)
    lifetime = clock.now().date() + dt.timedelta(days=365)
    assert gitlab.state.tokens[new].expires_at == lifetime.isoformat()
    assert [state.expires_on if state else None for state in states] == [lifetime] * 3
    metric = REGISTRY.get_sample_value("scim_bridge_gitlab_token_expiry_timestamp_seconds")
    assert (
        metric
        == dt.datetime(lifetime.year, lifetime.month, lifetime.day, tzinfo=dt.UTC).timestamp()
    )
    (audited,) = audit_events(environment(database_url, gitlab), "gitlab.token.rotate")
    assert audited["actor"] == TOKEN_WATCH_ACTOR


def test_a_token_given_only_in_the_environment_cannot_be_rotated_and_check_says_so(
    database_url: str, gitlab: GitLabDouble
) -> None:
    env = environment(database_url, gitlab)
    del env["SCIM_BRIDGE_GITLAB_TOKEN_KEY"]
    run_cli(env, "db", "upgrade")

    done = run_cli(env, "gitlab", "rotate-token", check=False)
    assert done.returncode == 2
    assert "the GitLab token comes only from SCIM_BRIDGE_GITLAB_TOKEN" in done.stderr
    assert gitlab.calls("POST", ROTATE) == []
    check = run_cli(env, "check", check=False).stdout
    assert (
        "INFO token    the GitLab token comes only from SCIM_BRIDGE_GITLAB_TOKEN: the bridge "
        "cannot rotate it" in check
    ), check


def test_check_reports_the_stored_token_a_token_not_stored_and_a_wrong_key(
    instances: list[Bridge], database_url: str, gitlab: GitLabDouble
) -> None:
    env = environment(database_url, gitlab)
    run_cli(env, "db", "upgrade")
    fresh = run_cli(env, "check", check=False).stdout
    assert "is stored, encrypted, at the bridge's first GitLab call" in fresh, fresh

    (bridge,) = start(instances, database_url, gitlab)
    bridge.gitlab.current_user()
    run_cli(env, "gitlab", "rotate-token")
    rotated = run_cli(env, "check").stdout
    assert "OK   token    kept in the database, encrypted: version 2, rotated on" in rotated
    assert "check passed" in rotated

    gitlab.add_token("glpat-a-new-one-not-stored", 1, ["api", "admin_mode"])
    other = run_cli(environment(database_url, gitlab, "glpat-a-new-one-not-stored"), "check")
    assert "WARN token    SCIM_BRIDGE_GITLAB_TOKEN holds a token the bridge has not stored" in (
        other.stdout
    )

    wrong = run_cli({**env, "SCIM_BRIDGE_GITLAB_TOKEN_KEY": new_key()}, "check", check=False)
    assert wrong.returncode == 1
    assert "FAIL token    the stored GitLab token does not open with" in wrong.stdout

    no_key = {key: value for key, value in env.items() if key != "SCIM_BRIDGE_GITLAB_TOKEN_KEY"}
    lost = run_cli(no_key, "check", check=False)
    assert lost.returncode == 1
    assert "FAIL token    the database holds GitLab token version 2 (rotated on" in lost.stdout


def test_a_key_that_is_not_a_key_stops_the_command_naming_the_variable(
    database_url: str, gitlab: GitLabDouble
) -> None:
    env = {**environment(database_url, gitlab), "SCIM_BRIDGE_GITLAB_TOKEN_KEY": "hunter2"}
    done = run_cli(env, "check", check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("error: SCIM_BRIDGE_GITLAB_TOKEN_KEY holds something that is not")
    assert "hunter2" not in done.stderr


def test_store_token_waits_for_a_rotation_under_way_elsewhere(
    instances: list[Bridge], database_url: str, gitlab: GitLabDouble
) -> None:
    """A rotation claimed by another instance keeps its version: store-token replacing it would
    make that rotation's new token unstorable after GitLab revoked the old one."""
    (bridge,) = start(instances, database_url, gitlab)
    bridge.gitlab.current_user()
    vault = bridge.token_vault
    assert vault is not None
    assert vault.store.claim(1, "another-instance", clock.now() - dt.timedelta(minutes=2))
    gitlab.add_token("glpat-operator-made-this-one", 1, ["api", "admin_mode"])

    refused = run_cli(
        environment(database_url, gitlab, "glpat-operator-made-this-one"),
        "gitlab",
        "store-token",
        check=False,
    )

    assert refused.returncode == 2
    assert "being rotated or replaced by another instance: nothing stored" in refused.stderr
    row = vault.store.read()
    assert row is not None and (row.version, row.rotating_by) == (1, "another-instance")
