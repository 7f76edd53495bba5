"""Fault injection and outages of the double: what the bridge's retry paths are tested with."""

from __future__ import annotations

import threading
import time
from typing import Any

import gitlab
import pytest
import requests
from gitlab.exceptions import GitlabError

from tests.gitlab_double import GitLabDouble

NEW_USER = {
    "username": "alice",
    "email": "alice@example.com",
    "name": "Alice",
    "force_random_password": True,
}


def status_of(gl: gitlab.Gitlab, path: str = "/version") -> int:
    try:
        gl.http_get(path, obey_rate_limit=False)
    except GitlabError as error:
        return error.response_code or 0
    return 200


def raw_get(double: GitLabDouble, path: str) -> requests.Response:
    return requests.get(
        f"{double.url}/api/v4{path}", headers={"PRIVATE-TOKEN": double.admin_token}, timeout=5
    )


def in_background(action: Any) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(action())
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def wait_until(predicate: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_status_rule_matches_method_and_path(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    double.faults.add(method="GET", path_pattern=r"^/api/v4/users$", status=503)
    with pytest.raises(GitlabError) as info:
        gl.users.list(get_all=False)
    assert (info.value.response_code, info.value.error_message) == (503, "503 Service Unavailable")
    assert status_of(gl, "/version") == 200
    assert gl.users.create(NEW_USER).username == "alice"  # POST is not matched
    assert double.calls("GET", "/api/v4/users")[0].status == 503


def test_429_is_plain_text_with_retry_after(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    double.faults.add(status=429, retry_after=7)
    response = raw_get(double, "/version")
    assert response.status_code == 429
    assert (response.text, response.headers["Retry-After"]) == ("Retry later", "7")
    assert response.headers["Content-Type"].startswith("text/plain")
    with pytest.raises(GitlabError) as info:
        gl.http_get("/version", obey_rate_limit=False)
    assert info.value.error_message == "Retry later"


def test_times_limits_a_rule(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    rule = double.faults.add(status=500, times=2)
    assert [status_of(gl) for _ in range(3)] == [500, 500, 200]
    assert rule.fired == 2


def test_a_faulted_request_is_not_processed(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    double.faults.add(method="POST", status=502)
    with pytest.raises(GitlabError):
        gl.users.create(NEW_USER)
    assert double.user_by_username("alice") is None


def test_latency_delays_then_processes(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    double.faults.add(latency=0.3)
    started = time.monotonic()
    assert gl.users.create(NEW_USER).username == "alice"
    assert time.monotonic() - started >= 0.3


def test_rules_apply_in_order(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    double.faults.add(latency=0.2)
    double.faults.add(status=503)
    double.faults.add(latency=5)  # never reached: the 503 answered first
    started = time.monotonic()
    assert status_of(gl) == 503
    assert 0.2 <= time.monotonic() - started < 2


def test_probability_is_reproducible_with_a_seed(gl: gitlab.Gitlab) -> None:
    def pattern(seed: int) -> list[int]:
        with GitLabDouble(seed=seed) as double:
            double.faults.add(status=503, probability=0.5)
            client = gitlab.Gitlab(double.url, private_token=double.admin_token)
            return [status_of(client) for _ in range(20)]

    first = pattern(7)
    assert first == pattern(7)
    assert set(first) == {200, 503}


def test_hold_without_status_waits_then_processes(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    release = threading.Event()
    double.faults.add(method="POST", hold=release)
    thread, outcome = in_background(lambda: gl.users.create(NEW_USER))
    wait_until(lambda: double.held() == 1)
    assert double.user_by_username("alice") is None
    release.set()
    thread.join(5)
    assert outcome[0].username == "alice" and double.held() == 0


def test_hold_with_status_answers_it_unprocessed(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    release = threading.Event()
    double.faults.add(method="POST", hold=release, status=503)
    thread, outcome = in_background(lambda: gl.users.create(NEW_USER))
    wait_until(lambda: double.held() == 1)
    release.set()
    thread.join(5)
    assert isinstance(outcome[0], GitlabError) and outcome[0].response_code == 503
    assert double.user_by_username("alice") is None


def test_stop_releases_held_requests() -> None:
    double = GitLabDouble().start()
    double.faults.add(hold=threading.Event())
    client = gitlab.Gitlab(double.url, private_token=double.admin_token, timeout=5)
    thread, _ = in_background(lambda: client.http_get("/version"))
    wait_until(lambda: double.held() == 1)
    started = time.monotonic()
    double.stop()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2


def test_down_and_up(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    double.down()
    assert status_of(gl) == 503
    double.down(status=502)
    assert status_of(gl) == 502
    double.up()
    assert status_of(gl) == 200


def test_clear_removes_rules(double: GitLabDouble, gl: gitlab.Gitlab) -> None:
    double.faults.add(status=500)
    double.faults.clear()
    assert status_of(gl) == 200
