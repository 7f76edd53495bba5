"""An Entra provisioning cycle while GitLab fails: 20% 5xx, 10% 429 and latency on every call.

Entra retries a 5xx or 429 answer; the bridge should never need it to (GitLab's trouble goes to the
worker, Entra gets its 2xx). When the faults stop, the worker converges and GitLab holds exactly
the accounts, states and memberships the replay asked for: nothing lost, nothing twice.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from scim_bridge.gitlab.access import DEVELOPER
from scim_bridge.gitlab.access import GUEST
from scim_bridge.gitlab.access import MAINTAINER
from scim_bridge.gitlab.access import REPORTER
from scim_bridge.settings import GroupRule
from tests.conftest import BridgeUnderTest
from tests.conftest import entra_user

pytestmark = pytest.mark.slow

USERS = 60
RULES = (
    GroupRule(None, "Developers", "acme/dev", DEVELOPER),
    GroupRule(None, "Maintainers", "acme/dev", MAINTAINER),
    GroupRule(None, "Ops", "acme/ops", REPORTER),
    GroupRule(None, "Readers", "acme/readers", GUEST),
)
# Who is in which Entra group (two are mapped to no GitLab group).
MEMBERSHIP = {
    "Developers": lambda i: i % 2 == 0,
    "Maintainers": lambda i: i % 5 == 0,
    "Ops": lambda i: i % 3 == 0,
    "Readers": lambda i: i % 4 == 0,
    "Contractors": lambda i: i % 7 == 0,
    "All Staff": lambda i: True,
}
DISABLED = {i for i in range(USERS) if i % 10 == 9}
DELETED = {i for i in range(USERS) if i % 15 == 14}
LEFT_OPS = {i for i in range(USERS) if i % 6 == 0}


class Entra:
    """Sends as Entra does, retrying a 5xx or 429 after Retry-After (capped for the test)."""

    def __init__(self, bridge: BridgeUnderTest) -> None:
        self.scim = bridge.scim
        self.statuses: Counter[int] = Counter()

    def send(self, method: str, path: str, body: Any = None) -> Any:
        for _ in range(10):
            if method == "PATCH":
                response = self.scim.patch(path, body)
            else:
                response = self.scim.request(method, path, body)
            self.statuses[response.status_code] += 1
            if response.status_code < 500 and response.status_code != 429:
                return response
            time.sleep(min(float(response.headers.get("Retry-After", "0.1")), 0.2))
        raise AssertionError(f"{method} {path}: still failing after Entra's retries")


def expected_level(i: int, path: str) -> int | None:
    if i in DELETED:
        return None  # a deleted user leaves every group, and its grants go
    levels = [
        rule.access_level
        for rule in RULES
        if rule.gitlab_group == path
        and MEMBERSHIP[str(rule.display_name)](i)
        and not (rule.display_name == "Ops" and i in LEFT_OPS)
    ]
    return max(levels, default=None)


def test_a_replay_under_gitlab_faults_converges_exactly(make_bridge: Any, gitlab: Any) -> None:
    for path in ("acme", "acme/dev", "acme/ops", "acme/readers"):
        gitlab.add_group(path)
    bridge = make_bridge(gitlab, groups={"rules": RULES})
    gitlab.faults.add(latency=0.005)
    gitlab.faults.add(status=500, probability=0.2)
    gitlab.faults.add(status=429, retry_after=1, probability=0.1)
    entra = Entra(bridge)

    ids = []
    for i in range(USERS):
        body = entra_user(f"user{i:02d}@contoso.com", displayName=f"User {i}")
        response = entra.send("POST", "/Users", body)
        assert response.status_code == 201, response.get_data(as_text=True)
        ids.append(response.json["id"])
    groups = {}
    for name, includes in MEMBERSHIP.items():
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "externalId": f"oid-{name}",
        }
        groups[name] = entra.send("POST", "/Groups", body).json["id"]
        members = [{"value": ids[i]} for i in range(USERS) if includes(i)]
        for start in range(0, len(members), 20):  # Entra batches member adds
            add = [{"op": "Add", "path": "members", "value": members[start : start + 20]}]
            assert entra.send("PATCH", f"/Groups/{groups[name]}", add).status_code == 204
    for i in sorted(DISABLED):
        disable = [{"op": "Replace", "path": "active", "value": "False"}]
        assert entra.send("PATCH", f"/Users/{ids[i]}", disable).status_code in (200, 204)
    for i in sorted(LEFT_OPS):
        remove = [{"op": "Remove", "path": f'members[value eq "{ids[i]}"]'}]
        assert entra.send("PATCH", f"/Groups/{groups['Ops']}", remove).status_code == 204
    for i in sorted(DELETED):
        assert entra.send("DELETE", f"/Users/{ids[i]}").status_code == 204

    assert gitlab.faults.candidates("GET", "/users")[1].fired > 0, "GitLab did fail"
    assert not any(status >= 500 for status in entra.statuses), entra.statuses
    gitlab.faults.clear()
    bridge.run_worker(rounds=50)
    assert bridge.bridge.queue.list() == [], "the worker finished every job"

    accounts = {u["username"]: u for u in gitlab.users() if u["username"] != "root"}
    kept = {f"user{i:02d}" for i in range(USERS) if i not in DELETED}
    assert kept <= set(accounts), "an account for every user Entra kept"
    # A user deleted before its account was made (GitLab failed until then) needs none.
    assert set(accounts) - kept <= {f"user{i:02d}" for i in DELETED}, "and no other account"
    for i in range(USERS):
        wanted = "blocked" if i in DISABLED | DELETED else "active"
        if f"user{i:02d}" in accounts:
            assert accounts[f"user{i:02d}"]["state"] == wanted, i
    by_id = {account["id"]: name for name, account in accounts.items()}
    for path in ("acme/dev", "acme/ops", "acme/readers"):
        actual = {by_id[m["user_id"]]: m["access_level"] for m in gitlab.members(path)}
        expected = {
            f"user{i:02d}": level
            for i in range(USERS)
            if (level := expected_level(i, path)) is not None
        }
        assert actual == expected, path
    assert gitlab.members("acme") == [], "unmapped groups grant nothing"


def test_scim_reads_never_call_gitlab(make_bridge: Any, gitlab: Any) -> None:
    """Entra's lookups are answered from the store, even while GitLab is down."""
    bridge = make_bridge(gitlab)
    user_id = bridge.scim.post("/Users", entra_user("reader@contoso.com")).json["id"]
    gitlab.clear_requests()
    gitlab.down()
    for path in (
        "/Users",
        f"/Users/{user_id}",
        '/Users?filter=userName eq "reader@contoso.com"',
        "/Groups",
        "/",
        "/ServiceProviderConfig",
    ):
        assert bridge.scim.get(path).status_code == 200, path
    assert gitlab.requests == []
