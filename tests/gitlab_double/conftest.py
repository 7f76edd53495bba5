"""Fixtures for testing the double itself: the root ``gitlab`` fixture and a python-gitlab client."""

from __future__ import annotations

import gitlab as python_gitlab
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.gitlab_double import GitLabDouble


@pytest.fixture
def double(gitlab: GitLabDouble) -> GitLabDouble:
    return gitlab


@pytest.fixture
def gl(double: GitLabDouble) -> python_gitlab.Gitlab:
    """An admin client; no python-gitlab retries, so every answer reaches the test."""
    return python_gitlab.Gitlab(double.url, private_token=ADMIN_TOKEN, timeout=5)
