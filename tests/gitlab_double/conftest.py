"""Fixtures for testing the double itself: a started double and an admin python-gitlab client."""

from __future__ import annotations

from collections.abc import Iterator

import gitlab
import pytest

from tests.gitlab_double import GitLabDouble

ADMIN_TOKEN = "glpat-admin"


@pytest.fixture
def double() -> Iterator[GitLabDouble]:
    with GitLabDouble(admin_token=ADMIN_TOKEN) as running:
        yield running
        assert running.internal_errors == []


@pytest.fixture
def gl(double: GitLabDouble) -> gitlab.Gitlab:
    """An admin client; no python-gitlab retries, so every answer reaches the test."""
    return gitlab.Gitlab(double.url, private_token=ADMIN_TOKEN, timeout=5)
