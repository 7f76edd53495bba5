"""The bridge's own GitLab token, read as the worker reads it (scim_bridge/gitlab_token.py): its
expiry becomes a metric, and what needs an operator goes to the log. Against the GitLab double
over HTTP; `check` says the same (tests/test_check.py)."""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading

import pytest

from scim_bridge import clock
from scim_bridge.gitlab.client import GitLab
from scim_bridge.gitlab_token import TokenWatch
from scim_bridge.metrics.instruments import REGISTRY
from tests.conftest import ADMIN_TOKEN
from tests.gitlab_double import GitLabDouble

EXPIRY = "scim_bridge_gitlab_token_expiry_timestamp_seconds"


def expiry_metric() -> float | None:
    return REGISTRY.get_sample_value(EXPIRY)


def midnight_utc(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def watch(gitlab: GitLabDouble, token: str = ADMIN_TOKEN) -> TokenWatch:
    return TokenWatch(GitLab(gitlab.url, token).token_info)


def test_a_token_expiring_in_29_days_is_a_metric_and_a_warning(
    gitlab: GitLabDouble, caplog: pytest.LogCaptureFixture
) -> None:
    day = clock.now().date() + dt.timedelta(days=29)
    gitlab.set_token_expiry(ADMIN_TOKEN, day)
    with caplog.at_level(logging.WARNING, logger="scim_bridge.gitlab_token"):
        state = watch(gitlab).check()
    assert state is not None and state.expires_on == day
    assert expiry_metric() == midnight_utc(day)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warned] == [
        f"the GitLab token expires on {day.isoformat()} (in 29 day(s)): rotate it and update "
        "SCIM_BRIDGE_GITLAB_TOKEN before then"
    ]


def test_a_token_with_time_or_no_expiry_warns_of_nothing(
    gitlab: GitLabDouble, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="scim_bridge.gitlab_token"):
        gitlab.set_token_expiry(ADMIN_TOKEN, clock.now().date() + dt.timedelta(days=31))
        watch(gitlab).check()
        gitlab.set_token_expiry(ADMIN_TOKEN, None)
        watch(gitlab).check()
    assert expiry_metric() == math.inf
    assert not caplog.records


def test_a_token_without_the_api_scope_is_an_error(
    gitlab: GitLabDouble, caplog: pytest.LogCaptureFixture
) -> None:
    gitlab.set_token_scopes(ADMIN_TOKEN, ["read_api"])
    with caplog.at_level(logging.ERROR, logger="scim_bridge.gitlab_token"):
        watch(gitlab).check()
    assert [r.getMessage() for r in caplog.records] == [
        "the GitLab token lacks the api scope (it has: read_api): the bridge cannot write"
    ]


def test_a_token_gitlab_refuses_is_an_error_and_leaves_the_metric(
    gitlab: GitLabDouble, caplog: pytest.LogCaptureFixture
) -> None:
    day = clock.now().date() + dt.timedelta(days=200)
    gitlab.set_token_expiry(ADMIN_TOKEN, day)
    watch(gitlab).check()
    with caplog.at_level(logging.ERROR, logger="scim_bridge.gitlab_token"):
        assert watch(gitlab, token="glpat-revoked-or-unknown").check() is None
    assert expiry_metric() == midnight_utc(day), "the last reading stands"
    (record,) = caplog.records
    assert record.getMessage().startswith("cannot read the GitLab token")
    assert "glpat-revoked-or-unknown" not in caplog.text, "a token is never logged"


def test_the_watch_reads_again_on_its_interval(gitlab: GitLabDouble) -> None:
    readings: list[dict[str, object]] = []
    done = threading.Event()
    client = GitLab(gitlab.url, ADMIN_TOKEN)

    def read() -> dict[str, object]:
        info = client.token_info()
        readings.append(info)
        if len(readings) == 3:
            done.set()
        return info

    stop = threading.Event()
    thread = TokenWatch(read, interval=0.01).start(stop)
    try:
        assert done.wait(30), "the watch did not read again"
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
