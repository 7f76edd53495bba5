"""OAuth 2.0 clients for Entra's "OAuth2 client credentials grant" (RFC 6749 §4.4, entra.md §3.3).

A client has a public id (``sbc_…``) and one or more secrets (``sbs_<lookup>_<secret>``), each
stored hashed and expiring (Entra asks for 1-3 years), so a secret can be rotated: ``rotate`` adds
one while the old stays valid until it expires or is revoked. Access tokens (``sba_…``) are opaque,
stored hashed beside their client, secret, issuer and audience, and checked against all four on
every use: revoking the client or the secret that minted a token ends the token at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from scim_bridge import clock
from scim_bridge.auth import credentials
from scim_bridge.store import audit
from scim_bridge.store.db import Database
from scim_bridge.store.db import current_transaction
from scim_bridge.store.schema import oauth_access_tokens as tokens_table
from scim_bridge.store.schema import oauth_client_secrets as secrets_table
from scim_bridge.store.schema import oauth_clients as clients_table

CLIENT_ID_PREFIX = "sbc"
SECRET_PREFIX = "sbs"
ACCESS_TOKEN_PREFIX = "sba"


class ClientError(ValueError):
    """A client command that cannot be carried out (duplicate name, unknown name)."""


@dataclass(frozen=True)
class NewClient:
    client_id: str
    client_secret: str
    secret_expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class SecretInfo(credentials.Lifetime):
    id: int


@dataclass(frozen=True)
class ClientInfo:
    name: str
    client_id: str
    created_at: datetime
    revoked_at: datetime | None
    secrets: tuple[SecretInfo, ...]

    @property
    def status(self) -> str:
        return "revoked" if self.revoked_at is not None else "active"


@dataclass(frozen=True)
class VerifiedClient:
    """A client that proved it holds a valid secret: what a token is minted for."""

    id: int
    name: str
    secret_id: int


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int
    scope: str | None


class ClientStore:
    def __init__(self, db: Database, *, secret_days: int = 365) -> None:
        self.db = db
        self.secret_days = secret_days

    # -- Operator commands ----------------------------------------------------------

    def create(self, name: str) -> NewClient:
        """Create a client and its first secret; the secret is never shown again."""
        client_id = f"{CLIENT_ID_PREFIX}_{secrets.token_hex(12)}"
        try:
            with self.db.transaction(write=True) as tx:
                result = tx.connection.execute(
                    insert(clients_table).values(
                        name=name, client_id=client_id, created_at=clock.now()
                    )
                )
                client = result.inserted_primary_key[0]
                secret, expires_at = self._add_secret(client)
                audit.record(
                    "oauth.client.create",
                    name,
                    {"client_id": client_id, "secret_expires_at": expires_at.isoformat()},
                )
        except IntegrityError:
            raise ClientError(
                f"a client named {name!r} already exists (revoked clients keep their name, "
                "for the audit trail); choose another name"
            ) from None
        return NewClient(client_id, secret, expires_at)

    def rotate(self, name: str) -> tuple[str, datetime]:
        """Add a secret; the old ones stay valid until they expire or are revoked."""
        with self.db.transaction(write=True):
            client = self._active_client(name)
            secret, expires_at = self._add_secret(client["id"])
            audit.record("oauth.client.rotate", name, {"secret_expires_at": expires_at.isoformat()})
        return secret, expires_at

    def revoke_secret(self, name: str, secret_id: int | None = None) -> list[int]:
        """Revoke one secret by id, or every secret but the newest (the end of a rotation)."""
        with self.db.transaction(write=True) as tx:
            client = self._active_client(name)
            live = [
                row["id"]
                for row in tx.connection.execute(
                    select(secrets_table.c.id)
                    .where(secrets_table.c.client == client["id"])
                    .where(secrets_table.c.revoked_at.is_(None))
                    .order_by(secrets_table.c.id)
                ).mappings()
            ]
            if secret_id is None:
                doomed = live[:-1]
            elif secret_id in live:
                doomed = [secret_id]
            else:
                raise ClientError(f"client {name!r} has no unrevoked secret #{secret_id}")
            if doomed:
                tx.connection.execute(
                    update(secrets_table)
                    .where(secrets_table.c.id.in_(doomed))
                    .values(revoked_at=clock.now())
                )
                audit.record("oauth.client.revoke_secret", name, {"secrets": doomed})
            return doomed

    def revoke(self, name: str) -> None:
        """End the client and, at once, every token it holds."""
        with self.db.transaction(write=True) as tx:
            client = self._active_client(name)
            now = clock.now()
            tx.connection.execute(
                update(clients_table)
                .where(clients_table.c.id == client["id"])
                .values(revoked_at=now)
            )
            tx.connection.execute(delete(tokens_table).where(tokens_table.c.client == client["id"]))
            audit.record("oauth.client.revoke", name)

    def list(self) -> list[ClientInfo]:
        with self.db.transaction(write=False) as tx:
            clients = tx.connection.execute(
                select(clients_table).order_by(clients_table.c.id)
            ).mappings()
            all_secrets = tx.connection.execute(
                select(secrets_table).order_by(secrets_table.c.id)
            ).mappings()
            by_client: dict[int, list[SecretInfo]] = {}
            for row in all_secrets:
                by_client.setdefault(row["client"], []).append(
                    SecretInfo(id=row["id"], **credentials.lifetime(row))
                )
            return [
                ClientInfo(
                    name=row["name"],
                    client_id=row["client_id"],
                    created_at=clock.aware(row["created_at"]),  # type: ignore[arg-type]
                    revoked_at=clock.aware(row["revoked_at"]),
                    secrets=tuple(by_client.get(row["id"], [])),
                )
                for row in clients
            ]

    def _active_client(self, name: str) -> Any:
        row = (
            current_transaction()
            .connection.execute(
                select(clients_table).where(
                    clients_table.c.name == name, clients_table.c.revoked_at.is_(None)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise ClientError(f"no active client named {name!r}")
        return row

    def _add_secret(self, client: int) -> tuple[str, datetime]:
        issued = credentials.issue(SECRET_PREFIX)
        now = clock.now()
        expires_at = now + timedelta(days=self.secret_days)
        current_transaction().connection.execute(
            insert(secrets_table).values(
                client=client,
                lookup=issued.lookup,
                secret_hash=issued.secret_hash,
                created_at=now,
                expires_at=expires_at,
            )
        )
        return issued.presented, expires_at

    # -- The token endpoint ---------------------------------------------------------

    def authenticate(self, client_id: str, presented_secret: str) -> VerifiedClient | None:
        """The client, when ``presented_secret`` is one of its live secrets; same work either way."""
        row = credentials.find(
            self.db,
            SECRET_PREFIX,
            presented_secret,
            lambda lookup: (
                select(
                    secrets_table.c.id,
                    secrets_table.c.secret_hash,
                    secrets_table.c.expires_at,
                    secrets_table.c.revoked_at,
                    clients_table.c.id.label("client"),
                    clients_table.c.name,
                    clients_table.c.client_id,
                    clients_table.c.revoked_at.label("client_revoked_at"),
                )
                .join(clients_table, clients_table.c.id == secrets_table.c.client)
                .where(secrets_table.c.lookup == lookup)
            ),
        )
        if (
            row is None
            or row["client_id"] != client_id
            or row["revoked_at"] is not None
            or row["client_revoked_at"] is not None
            or credentials.expired(row["expires_at"])
        ):
            return None
        return VerifiedClient(id=row["client"], name=row["name"], secret_id=row["id"])

    def issue_token(
        self,
        client: VerifiedClient,
        *,
        issuer: str,
        audience: str,
        scope: str | None,
        lifetime: timedelta,
    ) -> AccessToken:
        """Mint an access token for ``audience`` (this bridge's SCIM base URL)."""
        issued = credentials.issue(ACCESS_TOKEN_PREFIX)
        now = clock.now()
        expires_at = now + lifetime
        with self.db.transaction(write=True) as tx:
            connection = tx.connection
            # Tokens expire hourly; drop the client's dead ones so the table stays small.
            connection.execute(
                delete(tokens_table).where(
                    tokens_table.c.client == client.id, tokens_table.c.expires_at <= now
                )
            )
            connection.execute(
                insert(tokens_table).values(
                    lookup=issued.lookup,
                    secret_hash=issued.secret_hash,
                    client=client.id,
                    client_secret=client.secret_id,
                    issuer=issuer,
                    audience=audience,
                    scope=scope,
                    issued_at=now,
                    expires_at=expires_at,
                )
            )
            connection.execute(
                update(secrets_table)
                .where(secrets_table.c.id == client.secret_id)
                .values(last_used_at=now)
            )
            audit.record(
                "oauth.token.issue",
                client.name,
                {"expires_at": expires_at.isoformat(), "scope": scope, "audience": audience},
            )
        return AccessToken(issued.presented, int(lifetime.total_seconds()), scope)

    def verify_token(self, presented: str, audience: str) -> str | None:
        """The client's name when ``presented`` is a live token minted for ``audience``."""
        row = credentials.find(
            self.db,
            ACCESS_TOKEN_PREFIX,
            presented,
            lambda lookup: (
                select(
                    tokens_table.c.secret_hash,
                    tokens_table.c.audience,
                    tokens_table.c.expires_at,
                    clients_table.c.name,
                    clients_table.c.revoked_at,
                    secrets_table.c.revoked_at.label("secret_revoked_at"),
                )
                .join(clients_table, clients_table.c.id == tokens_table.c.client)
                .join(secrets_table, secrets_table.c.id == tokens_table.c.client_secret)
                .where(tokens_table.c.lookup == lookup)
            ),
        )
        if (
            row is None
            or row["audience"] != audience
            or row["revoked_at"] is not None
            or row["secret_revoked_at"] is not None
            or credentials.expired(row["expires_at"])
        ):
            return None
        return str(row["name"])
