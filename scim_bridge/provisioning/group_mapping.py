"""Step 1 of group provisioning: which GitLab groups a SCIM group maps to (job ``scim_group:<id>``).

:class:`ScimGroupReconciler` maps the SCIM group now (rules, or a group the bridge creates with
:class:`GroupCreator` when ``unmapped = "create"``), compares it with what it mapped to last time,
and marks the members whose grant may have changed in each GitLab group concerned; step 2
(``memberships.GitLabGroupReconciler``) then makes those memberships right. The remap is the run's
final write: it commits with the job's completion (``journal.at_end``), and the runner claims the
``gitlab_group`` jobs it queued in that same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from contextlib import nullcontext
from typing import Any

from scim_bridge.gitlab.access import access_level_name
from scim_bridge.gitlab.api import GitLabApi
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.types import GitLabGroup
from scim_bridge.provisioning.journal import at_end
from scim_bridge.provisioning.reconciling import Audit
from scim_bridge.provisioning.reconciling import Deadline
from scim_bridge.provisioning.reconciling import Outcome
from scim_bridge.provisioning.reconciling import Rejected
from scim_bridge.provisioning.reconciling import gitlab_trouble_is_retry
from scim_bridge.provisioning.rules import GroupMapper
from scim_bridge.provisioning.rules import created_group_candidates
from scim_bridge.provisioning.rules import full_path
from scim_bridge.settings import GroupsSettings
from scim_bridge.store.group_targets import AuditEvent
from scim_bridge.store.group_targets import GroupTargets
from scim_bridge.store.group_targets import Target


class ScimGroupReconciler:
    """Step 1: one SCIM group's mapping, and the members whose grant may have changed."""

    def __init__(
        self,
        targets: GroupTargets,
        documents: Callable[[str], dict[str, Any] | None],
        settings: GroupsSettings,
        gitlab: GitLabApi,
        audit: Audit,
        *,
        reading: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self.targets = targets
        self.documents = documents
        # One read transaction for the run's reads of the store, not one each.
        self.reading = reading
        self.settings = settings
        self.mapper = GroupMapper(settings)
        self.creator = GroupCreator(gitlab, settings.parent, audit, targets.record_created)
        self.audit = audit

    def reconcile(self, group_id: str, deadline: Deadline | None = None) -> Outcome:
        deadline = deadline or Deadline()
        with self.reading():
            document = self.documents(group_id)
            old = self.targets.recorded(group_id)
        new = self._targets(group_id, document, old, deadline)
        outcome = Outcome()
        # A GitLab group whose level changed concerns every member; one that kept its level,
        # only the members that changed.
        retargeted = {path for path in {*old, *new} if _level(old, path) != _level(new, path)}
        kept = {*old, *new} - retargeted
        event = None
        if old != new:
            outcome.actions.append(f"maps to {_describe(new) or 'nothing'}")
            # Recorded by the remap: the new mapping and its record commit together.
            detail = {"targets": _describe(new), "before": _describe(old)}
            event = AuditEvent("reconcile.group", group_id, detail)

        def remap() -> None:
            outcome.follow_up.extend(
                self.targets.remap(
                    group_id,
                    retargeted=retargeted,
                    kept=kept,
                    targets=new if old != new else None,
                    event=event,
                )
            )

        at_end(remap)
        return outcome

    def _targets(
        self,
        group_id: str,
        document: dict[str, Any] | None,
        old: dict[str, Target],
        deadline: Deadline,
    ) -> dict[str, Target]:
        """GitLab path → (level, created by the bridge) for the group as it is now."""
        if document is None:
            return {}
        display_name, external_id = document.get("displayName"), document.get("externalId")
        mapped = self.mapper.targets(display_name, external_id)
        if mapped:
            return {path: Target(level, False) for path, level in mapped.items()}
        if self.settings.unmapped != "create":
            return {}
        created = [path for path, (_, by_bridge) in old.items() if by_bridge]
        level = self.settings.default_access_level
        if created:
            return {created[0]: Target(level, True)}
        return {self.creator.create_for(str(display_name), deadline): Target(level, True)}


class GroupCreator:
    """Creates the GitLab groups the bridge owns (``unmapped = "create"``) under ``parent``."""

    def __init__(
        self,
        gitlab: GitLabApi,
        parent: str,
        audit: Audit,
        record: Callable[[str, int], None] | None = None,
    ) -> None:
        self.gitlab = gitlab
        self.parent = parent
        self.audit = audit
        # Remembers the id of each group made (``GroupTargets.record_created``): a group made
        # later at the same path by someone else is then told apart from the bridge's.
        self.record = record

    def create_for(self, display_name: str, deadline: Deadline) -> str:
        """A new group for an Entra group: its path from the display name, suffixed on collision."""
        with gitlab_trouble_is_retry():
            parent = self._parent(deadline)
            for slug in created_group_candidates(display_name):
                path = full_path(self.parent, slug)
                deadline.check()
                if self.gitlab.groups.find(path) is not None:
                    continue
                if self._create(display_name, slug, parent, path) is not None:
                    return path
        raise Rejected(
            "conflict", f"no free GitLab group path for {display_name!r}", tell_client=False
        )

    def recreate(self, path: str, name: str, deadline: Deadline) -> GitLabGroup:
        """A group the bridge recorded but GitLab lacks (say, planned in dry-run): make it now.

        If the path was taken meanwhile, the group there is someone else's: refused."""
        with gitlab_trouble_is_retry():
            parent = self._parent(deadline)
            slug = path.removeprefix(f"{self.parent}/")
            deadline.check()
            created = self._create(name, slug, parent, path)
        if created is None:
            raise Rejected(
                "conflict",
                f"GitLab group {path!r} was made by someone else since the bridge's was removed; "
                "it is left alone (move or delete it, and the bridge makes its own again)",
                tell_client=False,
            )
        return created

    def _create(self, name: str, slug: str, parent: GitLabGroup, path: str) -> GitLabGroup | None:
        """The group made, or None when the path is taken (created meanwhile, or reserved)."""
        try:
            group = self.gitlab.groups.create(name=name, path=slug, parent_id=parent.id)
        except InvalidError as error:
            if "taken" in error.message.lower():
                return None
            raise Rejected(
                "invalid", f"GitLab refused group {path!r}: {error.message}", tell_client=False
            ) from error
        self.audit("gitlab.group.create", path, {"name": name})
        if self.record is not None and not self.gitlab.dry_run:
            self.record(path, group.id)
        return group

    def _parent(self, deadline: Deadline) -> GitLabGroup:
        deadline.check()
        found: GitLabGroup | None = self.gitlab.groups.find(self.parent)
        if found is not None:
            return found
        if "/" in self.parent:
            raise Rejected(
                "invalid",
                f"the parent group {self.parent!r} for created groups does not exist in GitLab",
                tell_client=False,
            )
        deadline.check()
        created: GitLabGroup = self.gitlab.groups.create(
            name=self.parent, path=self.parent, parent_id=None
        )
        self.audit(
            "gitlab.group.create", self.parent, {"name": self.parent, "for": "[groups] parent"}
        )
        return created


def _describe(targets: dict[str, Target]) -> str:
    return ", ".join(
        f"{path} as {access_level_name(level)}" for path, (level, _) in sorted(targets.items())
    )


def _level(targets: dict[str, Target], path: str) -> int | None:
    target = targets.get(path)
    return None if target is None else target.access_level
