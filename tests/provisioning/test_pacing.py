"""The member-deletion pacer admits what GitLab's rolling window admits, on a simulated clock."""

from __future__ import annotations

from scim_bridge.provisioning.pacing import MARGIN_SECONDS
from scim_bridge.provisioning.pacing import SlidingWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_never_more_than_the_limit_in_any_window() -> None:
    clock = Clock()
    pacer = SlidingWindow(60, 60.0, monotonic=clock)
    admitted: list[float] = []
    for _ in range(3000):  # one attempt every 0.1 s for 300 s
        if pacer.take("acme/eng") is None:
            admitted.append(clock.now)
        clock.now += 0.1
    assert len(admitted) == 60 * 5
    for index, at in enumerate(admitted):
        in_window = [t for t in admitted[index:] if t < at + 60.0]
        assert len(in_window) <= 60, "61 deletions inside one of GitLab's minutes"


def test_the_wait_is_until_the_oldest_call_leaves_the_window() -> None:
    clock = Clock()
    pacer = SlidingWindow(2, 60.0, monotonic=clock)
    assert pacer.take("g") is None
    clock.now += 10
    assert pacer.take("g") is None
    assert pacer.take("g") == 60.0 + MARGIN_SECONDS - 10
    assert pacer.take("other group") is None, "each group has its own window"
    clock.now += 60.0 + MARGIN_SECONDS - 10
    assert pacer.take("g") is None
