"""What to do with one user's membership of one GitLab group (DESIGN.md, Groups).

The rules, as GitLab's own SAML/LDAP group sync applies them (gitlab.md §4), plus the bridge's
promise to leave alone what it did not create:

- the level is the highest among the mapped Entra groups that contain the user, set exactly (up
  and down) on memberships the bridge manages;
- a membership found in place is never removed; a grant above it raises it, and the prior level
  is restored when the grant goes; a grant below it leaves it as it is;
- a level the user already inherits from a parent group needs no direct membership.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What the bridge remembers of a membership it manages: kept by the store, decided on here.
from scim_bridge.store.gitlab_memberships import Managed

NO_ACCESS = 0


@dataclass(frozen=True)
class Decision:
    action: Literal["none", "set", "remove"]
    level: int | None = None
    remember: Managed | None = None  # what to remember afterwards; None forgets


def decide(
    desired: int, managed: Managed | None, direct: int | None, effective: int | None
) -> Decision:
    """Decide for one (GitLab group, user).

    :param desired: the highest mapped level, or ``NO_ACCESS``.
    :param managed: what the bridge remembers, if it manages this membership.
    :param direct: the user's direct membership level in GitLab now, if any.
    :param effective: the user's level including inherited memberships, if any.
    """
    if managed is not None and managed.prior is not None and direct is None:
        # The membership found in place was removed by hand: it is no longer the bridge's to restore.
        managed = None
    if managed is None:
        return _unmanaged(desired, direct, effective)
    target = max(desired, managed.prior or NO_ACCESS)
    if target == NO_ACCESS:
        return Decision("none") if direct is None else Decision("remove")
    if managed.prior is not None and target == managed.prior:
        return Decision("none") if direct == target else Decision("set", target)
    remember = Managed(target, managed.prior)
    if direct == target:
        return Decision("none", remember=remember)
    if direct is None and effective is not None and effective >= target:
        return Decision("none")  # the bridge's membership is gone, and inheritance covers it
    return Decision("set", target, remember)


def _unmanaged(desired: int, direct: int | None, effective: int | None) -> Decision:
    if desired == NO_ACCESS:
        return Decision("none")
    if direct is None:
        if effective is not None and effective >= desired:
            return Decision("none")
        return Decision("set", desired, Managed(desired, None))
    if desired > direct:
        return Decision("set", desired, Managed(desired, direct))
    return Decision("none")  # a membership found in place at this level or above stays as it is
