"""Fixtures for the conformance suites: the bridge in dry-run (no GitLab), on each database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import SUMMARY
from tests.conftest import BridgeUnderTest
from tests.gitlab_double import GitLabDouble

SCIM_BASE_URL = "http://localhost/scim/v2"


@pytest.fixture
def bridge(make_bridge: Callable[..., BridgeUnderTest]) -> BridgeUnderTest:
    """The bridge with GitLab unconfigured: every GitLab call is planned, none is made."""
    return make_bridge()


@pytest.fixture
def live_bridge(
    make_bridge: Callable[..., BridgeUnderTest], gitlab: GitLabDouble
) -> BridgeUnderTest:
    """The bridge provisioning the GitLab double, as a deployment Microsoft validates runs."""
    return make_bridge(gitlab)


def backend(bridge: BridgeUnderTest) -> str:
    """The database the bridge runs on, for summary lines: ``sqlite`` or ``postgresql``."""
    return bridge.settings.database_url.split(":", 1)[0].split("+", 1)[0]


@pytest.fixture
def summary(record_property: Callable[[str, object], None]) -> Callable[[str], None]:
    """A line for the end of the run (CI shows it), also from xdist's worker processes: it
    travels with the test's report and ``tests/conftest.py`` prints it in the summary."""

    def emit(line: str) -> None:
        record_property(SUMMARY, line)

    return emit


def scim_json(response: Any) -> Any:
    """The body of a SCIM response, which must be JSON under ``application/scim+json``."""
    assert response.mimetype == "application/scim+json", (
        f"{response.status_code} {response.content_type}: {response.get_data(as_text=True)[:300]}"
    )
    return response.get_json(force=True)
