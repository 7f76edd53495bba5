"""OAuth clients, their secrets and the access tokens minted for them, as the store keeps them.

See ``store/credentials.py`` for what is stored of a secret, and ``auth/clients.py`` for the
checks. Revoking a client deletes its access tokens in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update

from scim_bridge import clock
from scim_bridge.store import audit
from scim_bridge.store.credentials import HashedSecret
from scim_bridge.store.credentials import Lifetime
from scim_bridge.store.credentials import NotActive
from scim_bridge.store.credentials import aware
from scim_bridge.store.credentials import lifetime_columns
from scim_bridge.store.credentials import unique_name
from scim_bridge.store.db import Database
from scim_bridge.store.db import current_transaction
from scim_bridge.store.schema import oauth_access_tokens as access_tokens
from scim_bridge.store.schema import oauth_client_secrets as client_secrets
from scim_bridge.store.schema import oauth_clients as clients


class NoSuchSecret(Exception):
    """The client has no unrevoked secret with that id."""


@dataclass(frozen=True, kw_only=True)
class ClientSecret(Lifetime):
    id: int


@dataclass(frozen=True)
class Client:
    name: str
    client_id: str
    created_at: datetime
    revoked_at: datetime | None
    secrets: tuple[ClientSecret, ...]


@dataclass(frozen=True)
class SecretCandidate:
    """A client secret found by its lookup, with its client: what the token endpoint checks."""

    secret_id: int
    secret_hash: str = field(repr=False)
    expires_at: datetime
    revoked_at: datetime | None
    client: int
    name: str
    client_id: str
    client_revoked_at: datetime | None


@dataclass(frozen=True)
class AccessTokenCandidate:
    """An access token found by its lookup, with what ends it: its client and its secret."""

    secret_hash: str = field(repr=False)
    audience: str
    expires_at: datetime
    client_name: str
    client_revoked_at: datetime | None
    secret_revoked_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class NewAccessToken:
    token: HashedSecret
    client: int
    client_name: str
    client_secret: int
    issuer: str
    audience: str
    scope: str | None
    issued_at: datetime
    expires_at: datetime


class OAuthClientRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- Operator commands --------------------------------------------------------------

    def create_client(
        self, name: str, client_id: str, secret: HashedSecret, secret_lifetime: timedelta
    ) -> datetime:
        """Store a client with its first secret; its expiry. :class:`NameTaken` when in use."""
        with unique_name(name), self.db.transaction(write=True) as tx:
            result = tx.connection.execute(
                insert(clients).values(name=name, client_id=client_id, created_at=clock.now())
            )
            inserted = result.inserted_primary_key
            assert inserted is not None  # a one-row INSERT always has its key
            expires_at = self._add_secret(inserted[0], secret, secret_lifetime)
            audit.record(
                "oauth.client.create",
                name,
                {"client_id": client_id, "secret_expires_at": expires_at.isoformat()},
            )
        return expires_at

    def add_secret(self, name: str, secret: HashedSecret, lifetime: timedelta) -> datetime:
        """Give the live client ``name`` another secret; its expiry. :class:`NotActive`."""
        with self.db.transaction(write=True):
            expires_at = self._add_secret(self._active_client(name), secret, lifetime)
            audit.record("oauth.client.rotate", name, {"secret_expires_at": expires_at.isoformat()})
        return expires_at

    def revoke_secrets(self, name: str, secret_id: int | None) -> list[int]:
        """Revoke secret ``secret_id``, or every live one but the newest; the ids revoked.

        :class:`NotActive` for no live client ``name``, :class:`NoSuchSecret` for a secret id
        that is not one of its live secrets.
        """
        with self.db.transaction(write=True) as tx:
            client = self._active_client(name)
            live = list(
                tx.connection.execute(
                    select(client_secrets.c.id)
                    .where(client_secrets.c.client == client)
                    .where(client_secrets.c.revoked_at.is_(None))
                    .order_by(client_secrets.c.id)
                ).scalars()
            )
            if secret_id is None:
                doomed = live[:-1]
            elif secret_id in live:
                doomed = [secret_id]
            else:
                raise NoSuchSecret(secret_id)
            if doomed:
                tx.connection.execute(
                    update(client_secrets)
                    .where(client_secrets.c.id.in_(doomed))
                    .values(revoked_at=clock.now())
                )
                audit.record("oauth.client.revoke_secret", name, {"secrets": doomed})
            return doomed

    def revoke_client(self, name: str) -> None:
        """End the live client ``name`` and delete its access tokens at once. :class:`NotActive`."""
        with self.db.transaction(write=True) as tx:
            client = self._active_client(name)
            tx.connection.execute(
                update(clients).where(clients.c.id == client).values(revoked_at=clock.now())
            )
            tx.connection.execute(delete(access_tokens).where(access_tokens.c.client == client))
            audit.record("oauth.client.revoke", name)

    def all(self) -> list[Client]:
        """Every client, revoked ones too, with its secrets in the order they were made."""
        with self.db.transaction(write=False) as tx:
            rows = tx.connection.execute(select(clients).order_by(clients.c.id)).mappings().all()
            secret_rows = tx.connection.execute(
                select(client_secrets).order_by(client_secrets.c.id)
            ).mappings()
            by_client: dict[int, list[ClientSecret]] = {}
            for row in secret_rows:
                by_client.setdefault(row["client"], []).append(
                    ClientSecret(id=row["id"], **lifetime_columns(row))
                )
        return [
            Client(
                name=row["name"],
                client_id=row["client_id"],
                created_at=aware(row["created_at"]),
                revoked_at=clock.aware(row["revoked_at"]),
                secrets=tuple(by_client.get(row["id"], [])),
            )
            for row in rows
        ]

    def _active_client(self, name: str) -> int:
        client: int | None = (
            current_transaction()
            .connection.execute(
                select(clients.c.id).where(clients.c.name == name, clients.c.revoked_at.is_(None))
            )
            .scalar()
        )
        if client is None:
            raise NotActive(name)
        return client

    def _add_secret(self, client: int, secret: HashedSecret, lifetime: timedelta) -> datetime:
        now = clock.now()
        expires_at = now + lifetime
        current_transaction().connection.execute(
            insert(client_secrets).values(
                client=client,
                lookup=secret.lookup,
                secret_hash=secret.secret_hash,
                created_at=now,
                expires_at=expires_at,
            )
        )
        return expires_at

    # -- The token endpoint and the SCIM front door -------------------------------------

    def find_secret_by_lookup(self, lookup: str) -> SecretCandidate | None:
        """The secret whose lookup half is ``lookup``, live or not: the caller checks the rest."""
        query = (
            select(
                client_secrets.c.id,
                client_secrets.c.secret_hash,
                client_secrets.c.expires_at,
                client_secrets.c.revoked_at,
                clients.c.id.label("client"),
                clients.c.name,
                clients.c.client_id,
                clients.c.revoked_at.label("client_revoked_at"),
            )
            .join(clients, clients.c.id == client_secrets.c.client)
            .where(client_secrets.c.lookup == lookup)
        )
        with self.db.transaction(write=False) as tx:
            row = tx.connection.execute(query).mappings().first()
        if row is None:
            return None
        return SecretCandidate(
            secret_id=row["id"],
            secret_hash=row["secret_hash"],
            expires_at=aware(row["expires_at"]),
            revoked_at=clock.aware(row["revoked_at"]),
            client=row["client"],
            name=row["name"],
            client_id=row["client_id"],
            client_revoked_at=clock.aware(row["client_revoked_at"]),
        )

    def issue_token(self, token: NewAccessToken) -> None:
        """Store a minted access token and mark its secret used; the client's dead tokens go."""
        with self.db.transaction(write=True) as tx:
            connection = tx.connection
            # Tokens expire hourly; drop the client's dead ones so the table stays small.
            connection.execute(
                delete(access_tokens).where(
                    access_tokens.c.client == token.client,
                    access_tokens.c.expires_at <= token.issued_at,
                )
            )
            connection.execute(
                insert(access_tokens).values(
                    lookup=token.token.lookup,
                    secret_hash=token.token.secret_hash,
                    client=token.client,
                    client_secret=token.client_secret,
                    issuer=token.issuer,
                    audience=token.audience,
                    scope=token.scope,
                    issued_at=token.issued_at,
                    expires_at=token.expires_at,
                )
            )
            connection.execute(
                update(client_secrets)
                .where(client_secrets.c.id == token.client_secret)
                .values(last_used_at=token.issued_at)
            )
            audit.record(
                "oauth.token.issue",
                token.client_name,
                {
                    "expires_at": token.expires_at.isoformat(),
                    "scope": token.scope,
                    "audience": token.audience,
                },
            )

    def find_token_by_lookup(self, lookup: str) -> AccessTokenCandidate | None:
        """The access token whose lookup half is ``lookup``, live or not, with its client."""
        query = (
            select(
                access_tokens.c.secret_hash,
                access_tokens.c.audience,
                access_tokens.c.expires_at,
                clients.c.name,
                clients.c.revoked_at,
                client_secrets.c.revoked_at.label("secret_revoked_at"),
            )
            .join(clients, clients.c.id == access_tokens.c.client)
            .join(client_secrets, client_secrets.c.id == access_tokens.c.client_secret)
            .where(access_tokens.c.lookup == lookup)
        )
        with self.db.transaction(write=False) as tx:
            row = tx.connection.execute(query).mappings().first()
        if row is None:
            return None
        return AccessTokenCandidate(
            secret_hash=row["secret_hash"],
            audience=row["audience"],
            expires_at=aware(row["expires_at"]),
            client_name=row["name"],
            client_revoked_at=clock.aware(row["revoked_at"]),
            secret_revoked_at=clock.aware(row["secret_revoked_at"]),
        )
