"""The proxy variables of the bridge's environment still decide how each GitLab call travels.

The client works them out once per GitLab origin (requests would on every call): these tests run
the calls against a GitLab known only by a name that does not resolve, so a call that did not go
through the proxy (the double, on its real port) could not be answered at all.
"""

from __future__ import annotations

from collections.abc import Iterator

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


@pytest.fixture
def proxied(double: GitLabDouble, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitLab]:
    """A client of the unresolvable GitLab, with the double named as the HTTP proxy."""
    monkeypatch.setenv("HTTP_PROXY", double.url)
    client = GitLab(UNRESOLVABLE, TOKEN, timeout=2.0)
    yield client
    client.close()


def test_every_call_goes_through_the_proxy_the_environment_names(
    proxied: GitLab, double: GitLabDouble
) -> None:
    double.add_user("jane", "jane@example.com")
    for _ in range(3):  # the first call works the settings out, the others reuse them
        assert proxied.users.find_by_username("jane") is not None
    assert len(double.calls("GET", "/api/v4/users")) == 3


def test_no_proxy_still_sends_the_call_direct(
    proxied: GitLab, double: GitLabDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "gitlab.bridge-test.invalid")
    with pytest.raises(TransientError):
        proxied.users.find_by_username("jane")
    assert double.calls("GET", "/api/v4/users") == []
