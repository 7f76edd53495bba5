"""Fixtures shared by the SCIM tests: a bridge with no GitLab configured (dry-run)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def bridge(make_bridge: Any) -> Any:
    return make_bridge()


@pytest.fixture
def scim(bridge: Any) -> Any:
    return bridge.scim
