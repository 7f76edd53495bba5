"""The bridge's parts, built once from the settings and shared by the web app, the worker and the CLI."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from datetime import timedelta
from functools import cached_property
from typing import Any

from scim2_models import Group
from scim2_models import UnauthorizedException

from scim_bridge.auth.authenticator import Authenticator
from scim_bridge.auth.authenticator import Refused
from scim_bridge.auth.clients import ClientStore
from scim_bridge.auth.oauth import TokenEndpoint
from scim_bridge.auth.tokens import TokenStore
from scim_bridge.gitlab.client import GitLab
from scim_bridge.gitlab.planned import PlannedGitLab
from scim_bridge.gitlab.transport import deadline as gitlab_deadline
from scim_bridge.gitlab.types import CallRecord
from scim_bridge.guards import RateLimiter
from scim_bridge.metrics import gitlab_calls
from scim_bridge.provisioning import journal
from scim_bridge.provisioning.drift import DriftFinder
from scim_bridge.provisioning.drift_repair import DriftRepair
from scim_bridge.provisioning.group_mapping import ScimGroupReconciler
from scim_bridge.provisioning.memberships import GitLabGroupReconciler
from scim_bridge.provisioning.operator_links import OperatorLinks
from scim_bridge.provisioning.ownership import ADMIN_REASON
from scim_bridge.provisioning.ownership import PROTECTED_REASON
from scim_bridge.provisioning.pacing import SharedWindow
from scim_bridge.provisioning.protection import Protector
from scim_bridge.provisioning.protection import Resolution
from scim_bridge.provisioning.reconciler import UserReconciler
from scim_bridge.provisioning.reconciling import Reconciler
from scim_bridge.provisioning.reconciling import Rejected
from scim_bridge.provisioning.rules import GroupMapper
from scim_bridge.provisioning.runner import InlineWork
from scim_bridge.provisioning.runner import JobRunner
from scim_bridge.scim.blueprint import URL_PREFIX as SCIM_PATH
from scim_bridge.scim.blueprint import ScimEndpoints
from scim_bridge.scim.blueprint import WriteRejected
from scim_bridge.scim.handler import BridgeScimHandler
from scim_bridge.scim.models import ENTRA_POLICY
from scim_bridge.scim.models import UserResource
from scim_bridge.scim.models import build_provider
from scim_bridge.scim.service import BridgeScimService
from scim_bridge.settings import Settings
from scim_bridge.store import audit
from scim_bridge.store.db import Change
from scim_bridge.store.db import Database
from scim_bridge.store.db import Transaction
from scim_bridge.store.drift import DriftStore
from scim_bridge.store.gitlab_memberships import GITLAB_GROUP_JOB
from scim_bridge.store.gitlab_memberships import GitLabMembershipStore
from scim_bridge.store.gitlab_token import GitLabTokenStore
from scim_bridge.store.group_targets import GroupTargetStore
from scim_bridge.store.groups import GroupStore
from scim_bridge.store.jobs import JobQueue
from scim_bridge.store.links import LinkStore
from scim_bridge.store.memberships import GROUP_JOB
from scim_bridge.store.migrate import ensure_schema
from scim_bridge.store.pacing import CallWindowStore
from scim_bridge.store.protection import ADMIN
from scim_bridge.store.protection import ProtectedAccounts
from scim_bridge.store.resources import ScimStore
from scim_bridge.store.rules_revisit import RulesRevisitStore
from scim_bridge.store.users import USER_JOB
from scim_bridge.store.users import UserStore
from scim_bridge.token_rotation import TokenRotation
from scim_bridge.token_vault import TokenCipher
from scim_bridge.token_vault import TokenVault

log = logging.getLogger(__name__)

# How a permanent GitLab refusal reads to Entra (RFC 7644 §3.12).
REJECTION_ERRORS = {"conflict": (409, "uniqueness"), "invalid": (400, "invalidValue")}
# Connections beyond the threads that use the database at once (a scrape, the CLI, a probe).
POOL_MARGIN = 4


def pool_connections(settings: Settings) -> int:
    """Enough connections for the threads of one process that hold a transaction at once: a web
    worker's request threads or the background worker's concurrent jobs, whichever is more. A
    pool opens its connections as they are needed, so an idle process holds few.
    """
    return max(settings.server.threads, settings.reconcile.worker_concurrency) + POOL_MARGIN


class Bridge:
    def __init__(self, settings: Settings, *, migrate: bool = True) -> None:
        self.settings = settings
        self.db = Database(settings.database_url, connections=pool_connections(settings))
        if migrate:
            ensure_schema(self.db, auto_migrate=settings.auto_migrate)

    # -- Store ------------------------------------------------------------------

    @cached_property
    def users(self) -> UserStore:
        redact = self.settings.audit.redact_values
        return UserStore(self.db, UserResource, ENTRA_POLICY, redact_values=redact)

    @cached_property
    def groups(self) -> GroupStore:
        redact = self.settings.audit.redact_values
        return GroupStore(self.db, Group, ENTRA_POLICY, redact_values=redact)

    @cached_property
    def resources(self) -> ScimStore:
        return ScimStore(self.db, self.users, self.groups)

    @cached_property
    def links(self) -> LinkStore:
        return LinkStore(self.db)

    @cached_property
    def group_targets(self) -> GroupTargetStore:
        return GroupTargetStore(self.db)

    @cached_property
    def gitlab_memberships(self) -> GitLabMembershipStore:
        return GitLabMembershipStore(self.db)

    @cached_property
    def drift_records(self) -> DriftStore:
        return DriftStore(self.db)

    @cached_property
    def rules_revisit(self) -> RulesRevisitStore:
        return RulesRevisitStore(self.db)

    @cached_property
    def paced_calls(self) -> CallWindowStore:
        return CallWindowStore(self.db)

    @cached_property
    def protected(self) -> ProtectedAccounts:
        return ProtectedAccounts(self.db)

    @cached_property
    def queue(self) -> JobQueue:
        return JobQueue(self.db)

    @cached_property
    def tokens(self) -> TokenStore:
        return TokenStore(self.db)

    @cached_property
    def clients(self) -> ClientStore:
        return ClientStore(self.db, secret_days=self.settings.auth.client_secret_days)

    def audit(self, action: str, target: str | None, detail: dict[str, Any] | None) -> None:
        """Record an event: within a reconcile run, kept for the transaction that ends it."""
        journal.audit_event(self.db, action, target, detail)

    def reading(self) -> AbstractContextManager[Transaction]:
        """One read transaction for a reconciler's reads of the store."""
        return self.db.transaction(write=False)

    # -- GitLab -----------------------------------------------------------------

    def _on_gitlab_call(self, call: CallRecord) -> None:
        gitlab_calls.record(call)  # first: counted even when the audit write below fails
        self.audit(
            "gitlab.planned" if call.planned else "gitlab.call",
            f"{call.method} {self._audited_path(call.path)}",
            {
                "status": call.status,
                "outcome": call.outcome,
                "duration_ms": round(call.duration_ms, 1),
            },
        )

    def _audited_path(self, path: str) -> str:
        """A lookup's query holds values (an email, a username): kept unless values are redacted."""
        if self.settings.audit.redact_values and "?" in path:
            return path.partition("?")[0] + "?[redacted]"
        return path

    @cached_property
    def gitlab(self) -> GitLab | PlannedGitLab:
        config = self.settings.gitlab
        if config.planned_only:
            return PlannedGitLab(on_call=self._on_gitlab_call)
        assert config.url
        vault = self.token_vault
        token = (config.token or "") if vault is None else vault.current
        return GitLab(
            config.url, token, timeout=config.timeout_seconds, on_call=self._on_gitlab_call
        )

    def gitlab_with(self, token: str) -> GitLab:
        """A client that sends exactly ``token`` (a rotation's, or a token to be stored),
        its calls audited like every other."""
        config = self.settings.gitlab
        return GitLab(
            config.url or "", token, timeout=config.timeout_seconds, on_call=self._on_gitlab_call
        )

    @cached_property
    def token_vault(self) -> TokenVault | None:
        """The token kept in the database (``SCIM_BRIDGE_GITLAB_TOKEN_KEY`` set), else None."""
        config = self.settings.gitlab
        if not config.token_key:
            return None
        return TokenVault(GitLabTokenStore(self.db), TokenCipher(config.token_key), config.token)

    @cached_property
    def token_rotation(self) -> TokenRotation | None:
        """Rotations of the stored token; None when the token only comes from the environment."""
        vault = self.token_vault
        if vault is None or self.settings.gitlab.planned_only:
            return None
        return TokenRotation(
            vault.store,
            vault.cipher,
            self.gitlab_with,
            lifetime_days=self.settings.gitlab.rotated_token_lifetime_days,
        )

    # -- Provisioning -------------------------------------------------------------

    @cached_property
    def protector(self) -> Protector:
        """Administrators and protected usernames as GitLab ids (DESIGN.md, Ownership)."""
        return Protector(
            self.gitlab,
            self.protected,
            self.settings.users.protected_usernames,
            on_resolved=self._on_protection_resolved,
        )

    def _on_protection_resolved(self, resolution: Resolution) -> None:
        """Links to protected accounts become operator links: the bridge stops writing them."""
        with self.db.transaction(write=True):
            protected = {a.gitlab_user_id: a for a in resolution.accounts}
            for link in self.links.to_operator(protected):
                account = protected[link.gitlab_user_id or 0]
                reason = ADMIN_REASON if account.reason == ADMIN else PROTECTED_REASON
                audit.record(
                    "user.link.operator",
                    link.user_id,
                    {
                        "gitlab_user_id": account.gitlab_user_id,
                        "account": account.username,
                        "reason": reason,
                    },
                )
        for name in resolution.missing:
            log.info("protected username %r: no GitLab account has it (yet)", name)

    @cached_property
    def drift_finder(self) -> DriftFinder:
        """Where GitLab no longer matches the store (`reconcile`, and the scheduled repair)."""
        return DriftFinder(
            self.drift_records,
            self.gitlab_memberships,
            self.gitlab,
            self.links,
            self.settings.users,
            self.protector,
        )

    def drift_repair(self) -> DriftRepair | None:
        """The worker's scheduled drift repair; None when it is off (interval 0, or dry-run)."""
        minutes = self.settings.reconcile.drift_interval_minutes
        if minutes <= 0 or self.settings.gitlab.planned_only:
            return None
        return DriftRepair(
            self.drift_finder,
            self.drift_records,
            self.queue,
            self.db,
            interval=timedelta(minutes=minutes),
            owner=self.runner.owner,
            redact_values=self.settings.audit.redact_values,
        )

    @cached_property
    def operator_links(self) -> OperatorLinks:
        return OperatorLinks(self.db, self.gitlab, self.links, self.protector)

    @cached_property
    def runner(self) -> JobRunner:
        users = UserReconciler(
            self.gitlab,
            self.users.data,
            self.links,
            self.settings.users,
            self.settings.gitlab,
            self.audit,
            self.protector,
            on_linked=self.gitlab_memberships.note_user_linked,
            reading=self.reading,
        )
        scim_groups = ScimGroupReconciler(
            self.group_targets,
            self.groups.data,
            self.settings.groups,
            self.gitlab,
            self.audit,
            reading=self.reading,
        )
        reconcile = self.settings.reconcile
        per_minute = reconcile.member_deletions_per_minute
        window = reconcile.member_deletion_window_seconds
        gitlab_groups = GitLabGroupReconciler(
            self.gitlab_memberships,
            self.group_targets,
            self.gitlab,
            scim_groups.creator,
            self.audit,
            deletions=SharedWindow(self.paced_calls, per_minute, window) if per_minute else None,
        )
        reconcilers: dict[str, Reconciler] = {
            USER_JOB: users,
            GROUP_JOB: scim_groups,
            GITLAB_GROUP_JOB: gitlab_groups,
        }
        return JobRunner(self.queue, reconcilers, self.settings.reconcile, self.audit)

    def revisit_groups_if_rules_changed(self) -> int:
        """At worker start: if the operator changed the rules, look at every group's mapping again.

        Entra only sends changes, so a new rule would otherwise wait for the group's next change.
        Returns how many groups were queued.
        """
        fingerprint = GroupMapper(self.settings.groups).fingerprint()
        return self.rules_revisit.revisit_if_changed(fingerprint)

    def claim_inline(self, job_keys: list[str]) -> InlineWork:
        """In a SCIM write's transaction: claim its jobs for the request's inline run."""
        return self.runner.claim_inline(job_keys, self.settings.reconcile.inline_deadline_seconds)

    def run_committed(self, changes: list[Change], claimed: object) -> None:
        """After a SCIM write commits: reconcile inline within the deadline."""
        work = claimed
        assert isinstance(work, InlineWork)
        try:
            # GitLab's pauses (429) are waited out only within the request's own deadline, the
            # one its claims were made with.
            with gitlab_deadline(work.deadline.at):
                self.runner.run_claimed(work)
        except Rejected as rejection:
            status, scim_type = REJECTION_ERRORS[rejection.kind]
            raise WriteRejected(status, scim_type, rejection.detail) from rejection
        except Exception:
            # The write is committed and its jobs are queued: Entra gets its answer, and the
            # worker finishes the work once whatever failed here (the database?) is back.
            keys = [claim.key for claim in work.claims]
            log.exception("inline reconcile failed; the worker will retry %s", keys)

    def revert(self, changes: list[Change], reason: str) -> None:
        with self.db.transaction(write=True):
            for change in reversed(changes):
                # Only user writes are ever refused back to Entra; a group's stand (jobs park).
                if change.resource_type == "User":
                    self.users.revert(change, reason)

    # -- SCIM ---------------------------------------------------------------------

    @cached_property
    def authenticator(self) -> Authenticator:
        entra = None
        if self.settings.auth.entra.enabled:
            from scim_bridge.auth.entra_jwt import EntraTokenVerifier

            entra = EntraTokenVerifier(self.settings.auth.entra)
        per_minute = self.settings.auth.failures_per_minute
        return Authenticator(
            self.tokens,
            self.clients,
            entra,
            failure_floor=self.settings.auth.failure_floor_ms / 1000,
            # Failed authentications per address: a bucket of a minute's allowance.
            failures=RateLimiter(per_minute / 60, per_minute),
        )

    @cached_property
    def limiter(self) -> RateLimiter:
        server = self.settings.server
        return RateLimiter(server.rate_limit_per_second, server.rate_limit_burst)

    @property
    def public_scim_url(self) -> str | None:
        """``[auth] public_url``'s SCIM base: what Entra calls, whatever host a proxy forwards."""
        public = self.settings.auth.public_url
        return f"{public}{SCIM_PATH}" if public else None

    def authenticate(self, authorization: str | None, base_url: str) -> str:
        try:
            # ``base_url`` is the public one when set: tokens are bound to it (their audience).
            return self.authenticator.caller(authorization, base_url)
        except Refused:
            raise UnauthorizedException(detail="a valid bearer token is required") from None

    def token_endpoint(self) -> TokenEndpoint:
        """``/oauth2/token``: its tokens are bound to this bridge's SCIM base URL."""
        auth = self.settings.auth
        return TokenEndpoint(
            self.clients,
            lifetime=timedelta(minutes=auth.access_token_minutes),
            allowed_scopes=auth.oauth_scopes,
            public_url=auth.public_url,
            audience_path=SCIM_PATH,
            refusals=self.authenticator,
            limiter=self.limiter,
        )

    def scim_endpoints(self) -> ScimEndpoints:
        handler = BridgeScimHandler(BridgeScimService(build_provider()), self.resources)
        return ScimEndpoints(
            handler,
            transaction=lambda write: self.db.transaction(write=write),
            write_scope=self.db.write_scope,
            authenticate=self.authenticate,
            claim=self.claim_inline,
            committed=self.run_committed,
            revert=self.revert,
            limiter=self.limiter,
            failures=self.authenticator,
            public_base_url=self.public_scim_url,
        )
