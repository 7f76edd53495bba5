"""Fixtures: the GitLab double (the root ``gitlab`` fixture) and the bridge's client talking to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scim_bridge.gitlab.client import GitLab
from scim_bridge.gitlab.types import CallRecord
from tests.conftest import ADMIN_TOKEN as TOKEN
from tests.gitlab_double import GitLabDouble

PROVIDER = "openid_connect"

__all__ = ["PROVIDER", "TOKEN"]


@pytest.fixture
def double(gitlab: GitLabDouble) -> GitLabDouble:
    return gitlab


@pytest.fixture
def records() -> list[CallRecord]:
    return []


@pytest.fixture
def client(double: GitLabDouble, records: list[CallRecord]) -> Iterator[GitLab]:
    client = GitLab(double.url, TOKEN, timeout=2.0, on_call=records.append)
    yield client
    client.close()
