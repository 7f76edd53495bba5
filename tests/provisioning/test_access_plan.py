"""One user's membership of one GitLab group: ``access_plan.decide`` (README, "Map Entra groups to
GitLab roles"; DESIGN.md, Groups).

``decide`` is a pure decision table, so it is checked here over its whole table: every
combination of the grant, what the bridge remembers, and the direct and inherited levels GitLab
reports, against an oracle written from the documented rules (not from the code). The named
examples below it show each rule on its own, and a multi-run story shows them working together.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from scim_bridge.provisioning.access_plan import NO_ACCESS
from scim_bridge.provisioning.access_plan import Decision
from scim_bridge.provisioning.access_plan import decide
from scim_bridge.store.gitlab_memberships import Managed

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
# Four distinct levels: enough for every ordering of the four levels that can matter (the grant,
# the prior level, the direct level, the inherited level) against one another. The level the
# bridge set last time takes every value too, and the oracle ignores it: a hand change is undone.
LEVELS = (GUEST, REPORTER, DEVELOPER, MAINTAINER)


@dataclass(frozen=True)
class State:
    """One row of the table: what the bridge wants, remembers, and finds in GitLab."""

    desired: int  # the highest mapped level, or NO_ACCESS
    managed: Managed | None
    direct: int | None
    inherited: int | None  # the level from parent groups alone, if any

    @property
    def effective(self) -> int | None:
        """What ``members/all`` reports: each member at its highest level, direct or inherited."""
        levels = [level for level in (self.direct, self.inherited) if level is not None]
        return max(levels) if levels else None

    def decide(self) -> Decision:
        return decide(self.desired, self.managed, self.direct, self.effective)


def every_managed() -> Iterator[Managed | None]:
    """Not managed; made by the bridge; found in place at ``prior`` (any remembered level)."""
    yield None
    for level in LEVELS:
        yield Managed(level, None)
        for prior in LEVELS:
            yield Managed(level, prior)


def every_state() -> Iterator[State]:
    optional_levels = (None, *LEVELS)
    for desired, managed, direct, inherited in itertools.product(
        (NO_ACCESS, *LEVELS), every_managed(), optional_levels, optional_levels
    ):
        yield State(desired, managed, direct, inherited)


TABLE = list(every_state())


def keep_or_set(level: int, direct: int | None, remember: Managed | None) -> Decision:
    """The membership at exactly ``level``: nothing to call when it is there already."""
    if direct == level:
        return Decision("none", remember=remember)
    return Decision("set", level, remember)


def oracle(state: State) -> Decision:
    """The documented rules, in the order a reader would apply them.

    - With no direct membership there is nothing to remove or restore (a membership found in
      place that someone removed by hand is not the bridge's to bring back): a grant creates a
      membership the bridge owns, unless the user inherits that level (or more) already.
    - A direct membership the bridge made is set exactly to the grant, and removed without one.
    - A direct membership found in place (remembered with its prior level, or not managed at all)
      never goes below the level it was found at: a higher grant raises it (and the bridge
      remembers the prior level), a lower one or none gives it back that level and lets it go.
    - What level the bridge set last time does not matter: a level changed by hand is set back.
    """
    desired, managed, direct = state.desired, state.managed, state.direct
    if direct is None:
        inherited = state.inherited
        if desired == NO_ACCESS or (inherited is not None and inherited >= desired):
            return Decision("none")
        return Decision("set", desired, Managed(desired, None))
    found = direct if managed is None else managed.prior
    if found is None:  # the bridge's own membership
        if desired == NO_ACCESS:
            return Decision("remove")
        return keep_or_set(desired, direct, Managed(desired, None))
    level = max(desired, found)
    if level == found:
        return keep_or_set(found, direct, None)
    return keep_or_set(level, direct, Managed(level, found))


def found_level(state: State) -> int | None:
    """The level a membership was found at before the bridge touched it, if it was."""
    if state.direct is None:
        return None
    return state.direct if state.managed is None else state.managed.prior


def test_the_table_is_whole() -> None:
    assert len(TABLE) == 5 * 21 * 5 * 5  # grants x remembered states x direct x inherited
    decisions = {oracle(state) for state in TABLE}
    kinds = {(d.action, d.remember is not None) for d in decisions}
    # Every kind of decision occurs: the table reaches every rule.
    assert kinds == {
        ("none", False),
        ("none", True),
        ("set", False),
        ("set", True),
        ("remove", False),
    }


def test_decide_follows_the_rules_over_the_whole_table() -> None:
    wrong = 0
    examples: list[tuple[State, Decision, Decision]] = []
    for state in TABLE:
        got, want = state.decide(), oracle(state)
        if got != want:
            wrong += 1
            if len(examples) < 3:
                examples.append((state, got, want))
    assert not wrong, f"{wrong} of {len(TABLE)} states decided wrongly (got, wanted): {examples}"


def test_never_removes_a_membership_found_in_place() -> None:
    for state in TABLE:
        if found_level(state) is not None:
            assert state.decide().action != "remove", (
                f"removed a membership found in place: {state}"
            )


def test_never_sets_a_level_below_the_one_found_in_place() -> None:
    for state in TABLE:
        decision, found = state.decide(), found_level(state)
        if decision.action == "set" and found is not None:
            assert decision.level is not None
            assert decision.level >= found, (
                f"set below the level found in place: {state} {decision}"
            )


def test_a_level_is_set_only_to_the_grant_or_the_level_found_in_place() -> None:
    for state in TABLE:
        decision = state.decide()
        if decision.action == "set":
            assert decision.level == max(state.desired, found_level(state) or NO_ACCESS), state


def test_deciding_again_after_the_decision_is_carried_out_changes_nothing() -> None:
    """Level-triggered: a second run over the state the first one left makes no call."""
    for state in TABLE:
        first = state.decide()
        direct = {"none": state.direct, "set": first.level, "remove": None}[first.action]
        after = State(state.desired, first.remember, direct, state.inherited)
        second = after.decide()
        assert second.action == "none", (state, first, second)
        assert second.remember == first.remember, (state, first, second)


# The rules one by one (README, "Map Entra groups to GitLab roles").


def test_a_grant_creates_a_membership_the_bridge_then_owns() -> None:
    assert decide(DEVELOPER, None, None, None) == Decision(
        "set", DEVELOPER, Managed(DEVELOPER, None)
    )


def test_the_level_is_set_exactly_up_and_down() -> None:
    owned = Managed(DEVELOPER, None)
    assert decide(MAINTAINER, owned, DEVELOPER, DEVELOPER) == Decision(
        "set", MAINTAINER, Managed(MAINTAINER, None)
    )
    assert decide(REPORTER, owned, DEVELOPER, DEVELOPER) == Decision(
        "set", REPORTER, Managed(REPORTER, None)
    )
    assert decide(DEVELOPER, owned, DEVELOPER, DEVELOPER) == Decision("none", remember=owned)


def test_a_level_changed_by_hand_on_a_bridge_membership_is_set_back() -> None:
    owned = Managed(DEVELOPER, None)
    assert decide(DEVELOPER, owned, OWNER, OWNER) == Decision("set", DEVELOPER, owned)


def test_the_bridge_removes_its_own_membership_when_the_grant_goes() -> None:
    assert decide(NO_ACCESS, Managed(DEVELOPER, None), DEVELOPER, DEVELOPER) == Decision("remove")


def test_a_membership_found_in_place_is_never_removed() -> None:
    assert decide(NO_ACCESS, None, DEVELOPER, DEVELOPER) == Decision("none")
    # Raised by the bridge, then the grant goes: back to the level it was found at, not removed.
    assert decide(NO_ACCESS, Managed(MAINTAINER, DEVELOPER), MAINTAINER, MAINTAINER) == Decision(
        "set", DEVELOPER
    )


def test_a_higher_grant_raises_a_found_membership_and_remembers_the_prior_level() -> None:
    assert decide(MAINTAINER, None, REPORTER, REPORTER) == Decision(
        "set", MAINTAINER, Managed(MAINTAINER, REPORTER)
    )


def test_the_prior_level_is_restored_when_the_grant_goes() -> None:
    raised = Managed(MAINTAINER, REPORTER)
    restored = decide(NO_ACCESS, raised, MAINTAINER, MAINTAINER)
    assert restored == Decision("set", REPORTER)
    assert restored.remember is None  # restored, the membership is no longer the bridge's
    # A grant that falls to or below the prior level restores it too.
    assert decide(GUEST, raised, MAINTAINER, MAINTAINER) == Decision("set", REPORTER)
    assert decide(REPORTER, raised, MAINTAINER, MAINTAINER) == Decision("set", REPORTER)
    # A grant still above it is set exactly, and the prior level stays remembered.
    assert decide(DEVELOPER, raised, MAINTAINER, MAINTAINER) == Decision(
        "set", DEVELOPER, Managed(DEVELOPER, REPORTER)
    )


def test_a_lower_or_equal_grant_leaves_a_found_membership_alone() -> None:
    assert decide(REPORTER, None, MAINTAINER, MAINTAINER) == Decision("none")
    assert decide(MAINTAINER, None, MAINTAINER, MAINTAINER) == Decision("none")


@pytest.mark.parametrize("direct", [None, *LEVELS])
def test_members_the_bridge_never_saw_are_untouched(direct: int | None) -> None:
    """No grant and nothing remembered: no call, and nothing to remember."""
    for inherited in (None, *LEVELS):
        state = State(NO_ACCESS, None, direct, inherited)
        assert state.decide() == Decision("none"), state


def test_an_inherited_level_creates_no_direct_membership() -> None:
    assert decide(DEVELOPER, None, None, DEVELOPER) == Decision("none")
    assert decide(DEVELOPER, None, None, OWNER) == Decision("none")
    # An inherited level below the grant does not cover it.
    assert decide(DEVELOPER, None, None, REPORTER) == Decision(
        "set", DEVELOPER, Managed(DEVELOPER, None)
    )


def test_a_bridge_membership_that_went_away_is_not_recreated_when_inherited() -> None:
    assert decide(DEVELOPER, Managed(DEVELOPER, None), None, MAINTAINER) == Decision("none")
    assert decide(DEVELOPER, Managed(DEVELOPER, None), None, None) == Decision(
        "set", DEVELOPER, Managed(DEVELOPER, None)
    )


def test_a_found_membership_removed_by_hand_is_not_restored() -> None:
    raised = Managed(MAINTAINER, REPORTER)
    assert decide(NO_ACCESS, raised, None, None) == Decision("none")
    # A grant that remains makes a membership of the bridge's own: nothing to restore later.
    assert decide(MAINTAINER, raised, None, None) == Decision(
        "set", MAINTAINER, Managed(MAINTAINER, None)
    )


def test_raised_restored_and_let_go_over_several_runs() -> None:
    """Jane is a reporter in place; two Entra groups grant her more, then both grants go."""
    direct: int | None = REPORTER
    managed: Managed | None = None
    calls: list[tuple[str, int | None]] = []
    for desired in (MAINTAINER, MAINTAINER, DEVELOPER, NO_ACCESS, NO_ACCESS, GUEST):
        decision = decide(desired, managed, direct, direct)
        if decision.action != "none":
            calls.append((decision.action, decision.level))
        if decision.action == "set":
            direct = decision.level
        managed = decision.remember
    assert calls == [("set", MAINTAINER), ("set", DEVELOPER), ("set", REPORTER)]
    assert (direct, managed) == (REPORTER, None)
