"""After a 429 GitLab gets no call from the process until the pause ends: the transport's gate.

The gate's arithmetic runs on an injected clock; against the double, the calls it holds back are
counted in the double's request log.
"""

from __future__ import annotations

import threading
import time

import pytest

from scim_bridge.gitlab import transport
from scim_bridge.gitlab.client import GitLab
from scim_bridge.gitlab.errors import TransientError
from scim_bridge.gitlab.transport import DEFAULT_PAUSE_SECONDS
from scim_bridge.gitlab.transport import Gate
from tests.gitlab_double import GitLabDouble


class Clock:
    """time.monotonic and time.sleep, simulated: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 500.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gate(clock: Clock) -> Gate:
    return Gate(monotonic=clock.monotonic, sleep=clock.sleep, max_hold=10.0)


def test_a_call_waits_out_the_pause(gate: Gate, clock: Clock) -> None:
    gate.wait()
    assert clock.slept == [], "no pause, no wait"
    gate.pause(3.0)
    gate.wait()
    assert clock.slept == [3.0]
    gate.wait()
    assert clock.slept == [3.0], "the pause is over"


def test_a_later_shorter_pause_does_not_shorten_it(gate: Gate, clock: Clock) -> None:
    gate.pause(8.0)
    clock.now += 1
    gate.pause(2.0)
    assert gate.remaining() == 7.0


def test_a_pause_extended_while_waiting_is_waited_out_too(gate: Gate, clock: Clock) -> None:
    gate.pause(2.0)
    first_sleep = clock.sleep

    def sleep(seconds: float) -> None:
        first_sleep(seconds)
        if len(clock.slept) == 1:
            gate.pause(4.0)  # another thread met a 429 meanwhile

    gate._sleep = sleep
    gate.wait()
    assert clock.slept == [2.0, 4.0]


def test_a_call_that_would_wait_past_its_deadline_fails_at_once(gate: Gate, clock: Clock) -> None:
    gate.pause(5.0)
    with pytest.raises(TransientError) as raised:
        gate.wait(deadline=clock.now + 4.9)
    assert (raised.value.status, raised.value.retry_after) == (429, 5.0)
    assert clock.slept == [], "it did not wait for nothing"
    gate.wait(deadline=clock.now + 5.0)
    assert clock.slept == [5.0]


def test_without_a_deadline_a_long_pause_fails_the_call_at_once(gate: Gate, clock: Clock) -> None:
    gate.pause(60.0)
    with pytest.raises(TransientError) as raised:
        gate.wait()
    assert raised.value.retry_after == 60.0
    assert clock.slept == [], "the worker's thread is freed: its job comes back after the pause"


def test_an_unannounced_429_pauses_by_default_doubling_until_an_answer(
    gate: Gate, clock: Clock
) -> None:
    assert gate.pause(None) == DEFAULT_PAUSE_SECONDS
    assert gate.pause(None) == 2 * DEFAULT_PAUSE_SECONDS
    assert gate.pause(0) == 4 * DEFAULT_PAUSE_SECONDS
    gate.answered()
    assert gate.pause(None) == DEFAULT_PAUSE_SECONDS


# -- Through the transport, against the double ---------------------------------------------------


def test_after_a_429_no_thread_reaches_gitlab_until_the_pause_ends(
    client: GitLab, double: GitLabDouble
) -> None:
    double.faults.add(status=429, retry_after=30, times=1)
    with pytest.raises(TransientError):
        client.users.get(1)
    failures: list[BaseException] = []

    def another_thread() -> None:
        try:
            client.users.get(1)
        except TransientError as error:
            failures.append(error)

    thread = threading.Thread(target=another_thread)
    thread.start()
    thread.join()
    (failure,) = failures
    assert isinstance(failure, TransientError) and failure.status == 429
    assert 25 < (failure.retry_after or 0) <= 30
    assert len(double.requests) == 1, "only the call that met the 429 reached GitLab"


def test_a_5xx_with_retry_after_pauses_too(client: GitLab, double: GitLabDouble) -> None:
    double.down(status=503, retry_after=30)
    with pytest.raises(TransientError):
        client.metadata()
    double.up()
    with pytest.raises(TransientError):
        client.users.get(1)
    assert len(double.requests) == 1


def test_a_short_pause_is_waited_out_then_the_call_goes(
    client: GitLab, double: GitLabDouble
) -> None:
    double.faults.add(status=429, retry_after=1, times=1)
    with pytest.raises(TransientError):
        client.users.get(1)
    assert client.users.get(1) is not None
    assert [r.status for r in double.requests] == [429, 200]


def test_an_inline_call_does_not_wait_past_its_deadline(
    client: GitLab, double: GitLabDouble
) -> None:
    double.faults.add(status=429, retry_after=1, times=1)
    with pytest.raises(TransientError):
        client.users.get(1)
    with transport.deadline(time.monotonic()), pytest.raises(TransientError) as raised:
        client.users.get(1)
    assert raised.value.status == 429
    assert len(double.requests) == 1


# -- Patient reads: an operator's report waits and sends a refused read again --------------------


def test_a_patient_read_waits_out_a_429_and_a_5xx_then_goes(
    client: GitLab, double: GitLabDouble
) -> None:
    user = double.add_user("jane", "jane@example.com")
    double.faults.add(method="GET", status=429, retry_after=1, times=1)
    double.faults.add(method="GET", status=502, times=1)
    with transport.patient(30):
        assert client.users.get(user["id"]).username == "jane"
    assert [r.status for r in double.requests] == [429, 502, 200]


def test_a_patient_read_is_sent_again_after_no_answer(client: GitLab, double: GitLabDouble) -> None:
    user = double.add_user("jane", "jane@example.com")
    double.faults.add(method="GET", latency=2.5, times=1)  # past the client's 2 s timeout
    with transport.patient(30):
        assert client.users.get(user["id"]).username == "jane"
    assert len(double.requests) == 2


def test_a_read_is_not_sent_again_outside_patience(client: GitLab, double: GitLabDouble) -> None:
    double.faults.add(method="GET", status=502, times=1)
    with pytest.raises(TransientError):
        client.users.get(1)
    assert len(double.requests) == 1


def test_a_patient_read_gives_up_on_a_pause_longer_than_its_patience(
    client: GitLab, double: GitLabDouble
) -> None:
    double.faults.add(method="GET", status=429, retry_after=60)
    with transport.patient(2), pytest.raises(TransientError) as raised:
        client.users.get(1)
    assert raised.value.status == 429
    assert len(double.requests) == 1, "nothing sent while GitLab asked for quiet"


def test_patience_never_sends_a_write_again(client: GitLab, double: GitLabDouble) -> None:
    user = double.add_user("jane", "jane@example.com")
    double.faults.add(method="POST", status=503, times=1)
    with transport.patient(30), pytest.raises(TransientError):
        client.users.block(user["id"])
    assert [(r.method, r.status) for r in double.requests] == [("POST", 503)]
    assert double.user(user["id"])["state"] == "active"  # type: ignore[index]
