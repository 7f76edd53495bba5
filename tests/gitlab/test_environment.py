"""The proxy variables of the bridge's environment still decide how each GitLab call travels.

The client works them out once per GitLab origin (requests would on every call): these tests run
the calls against a GitLab known only by a name that does not resolve, so a call that did not go
through the proxy (the double, on its real port) could not be answered at all.
"""

from __future__ import annotations

import pytest

from scim_bridge.gitlab.client import GitLab
from scim_bridge.gitlab.errors import TransientError
from tests.gitlab.conftest import TOKEN
from tests.gitlab_double import GitLabDouble

UNRESOLVABLE = "http://gitlab.bridge-test.invalid"


@pytest.fixture(autouse=True)
def _no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


def test_every_call_goes_through_the_proxy_the_environment_names(
    double: GitLabDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", double.url)
    double.add_user("jane", "jane@example.com")
    client = GitLab(UNRESOLVABLE, TOKEN, timeout=2.0)
    try:
        for _ in range(3):  # the first call works the settings out, the others reuse them
            assert client.users.find_by_username("jane") is not None
    finally:
        client.close()
    assert len(double.calls("GET", "/api/v4/users")) == 3


def test_no_proxy_still_sends_the_call_direct(
    double: GitLabDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", double.url)
    monkeypatch.setenv("NO_PROXY", "gitlab.bridge-test.invalid")
    client = GitLab(UNRESOLVABLE, TOKEN, timeout=2.0)
    try:
        with pytest.raises(TransientError):
            client.users.find_by_username("jane")
    finally:
        client.close()
    assert double.calls("GET", "/api/v4/users") == []
