"""Fixtures: a GitLab double on a real port and the bridge's GitLab client talking to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scim_bridge.gitlab.client import GitLab
from scim_bridge.gitlab.types import CallRecord
from tests.gitlab_double import GitLabDouble

# Distinctive, so a leak into a record, log or message is easy to spot.
TOKEN = "glpat-SECRET-never-print-me"
PROVIDER = "openid_connect"


@pytest.fixture
def double() -> Iterator[GitLabDouble]:
    with GitLabDouble(admin_token=TOKEN) as running:
        yield running
        assert running.internal_errors == []


@pytest.fixture
def records() -> list[CallRecord]:
    return []


@pytest.fixture
def client(double: GitLabDouble, records: list[CallRecord]) -> Iterator[GitLab]:
    gitlab = GitLab(double.url, TOKEN, timeout=2.0, on_call=records.append)
    yield gitlab
    gitlab.close()
