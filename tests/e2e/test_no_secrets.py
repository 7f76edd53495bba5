"""After a run of the real `scim-bridge serve`, no secret or token is in its logs or its database.

Every credential the run handles is distinctive; the test then reads everything the bridge wrote
(every table, and the output of gunicorn, the app and the worker at DEBUG) and looks for each one.
The database password is in no banner or log line either, and a SQLite database (with its ``-wal``
and ``-shm``) is readable by its owner only.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import MetaData
from sqlalchemy import create_engine
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import ADMIN_TOKEN
from tests.conftest import POSTGRES_URL
from tests.conftest import entra_user
from tests.conftest import run_cli
from tests.e2e.live_server import Server
from tests.e2e.live_server import free_port

pytestmark = pytest.mark.slow

SCIM_JSON = "application/scim+json"
PASSWORD = "Entra-Sent-Password-SECRET-9c1f"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
DATABASE_PASSWORD = "Db-Password-SECRET-5e2a"


def value(output: str, key: str) -> str:
    (line,) = [text for text in output.splitlines() if text.startswith(f"{key}: ")]
    return line.removeprefix(f"{key}: ")


def secret_half(credential: str) -> str:
    """``sbt_<lookup>_<secret>`` → ``<secret>``: the part that must never be kept."""
    return credential.split("_", 2)[2]


def database_text(database_url: str) -> str:
    engine = create_engine(database_url)
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        dump = "\n".join(
            repr(connection.execute(select(table)).all()) for table in metadata.sorted_tables
        )
    engine.dispose()
    return dump


def test_no_secret_or_token_in_the_database_or_the_logs(
    environment: dict[str, str],
    servers: list[Server],
    database_url: str,
    gitlab: Any,
    tmp_path: Path,
) -> None:
    env = {**environment, "SCIM_BRIDGE_LOG_LEVEL": "DEBUG"}
    bearer = value(run_cli(env, "tokens", "create", "entra").stdout, "token")
    created = run_cli(env, "clients", "create", "entra-oauth").stdout
    client_id, first_secret = value(created, "client_id"), value(created, "client_secret")
    second_secret = value(run_cli(env, "clients", "rotate", "entra-oauth").stdout, "client_secret")
    server = Server(env, tmp_path)
    servers.append(server)
    server.start()
    base = server.base

    def token(secret: str, in_header: bool) -> str:
        form = {"grant_type": "client_credentials", "scope": "scim"}
        headers = {}
        if in_header:
            pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
        else:
            form |= {"client_id": client_id, "client_secret": secret}
        response = requests.post(f"{base}/oauth2/token", data=form, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    access_tokens = [token(first_secret, True), token(second_secret, False)]

    def scim(credential: str, method: str, path: str, body: Any = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {credential}"}
        if body is not None:
            headers["Content-Type"] = SCIM_JSON
        return requests.request(
            method, f"{base}/scim/v2{path}", json=body, headers=headers, timeout=60
        )

    user = entra_user("secret.keeper@contoso.com", password=PASSWORD)
    user[f"{CORE_USER}:password"] = PASSWORD  # the URN-qualified spelling, once stored as sent
    created_user = scim(access_tokens[0], "POST", "/Users", user)
    assert created_user.status_code == 201, created_user.text
    user_id = created_user.json()["id"]
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "replace", "path": "password", "value": PASSWORD},
            {"op": "Add", "path": f"{CORE_USER}:Password", "value": PASSWORD},
            {"op": "Replace", "value": {f"{CORE_USER}:password": PASSWORD}},
            {"op": "replace", "path": "active", "value": False},
        ],
    }
    assert scim(bearer, "PATCH", f"/Users/{user_id}", patch).status_code in (200, 204)
    assert scim(access_tokens[1], "GET", f"/Users/{user_id}").status_code == 200
    # Wrong credentials: right lookup halves with wrong secret halves, and the bridge's own
    # secrets sent where they do not belong.
    wrong_bearer = bearer.rsplit("_", 1)[0] + "_Wrong-Bearer-Guess-SECRET"
    assert scim(wrong_bearer, "GET", "/Users").status_code == 401
    assert scim(first_secret, "GET", "/Users").status_code == 401
    wrong_secret = first_secret.rsplit("_", 1)[0] + "_Wrong-Client-Guess-SECRET"
    refused = requests.post(
        f"{base}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": wrong_secret,
        },
        timeout=30,
    )
    assert refused.status_code == 401
    assert scim(bearer, "DELETE", f"/Users/{user_id}").status_code == 204
    states = [user["state"] for user in gitlab.users() if user["username"] == "secret.keeper"]
    assert states == ["blocked"]
    server.stop()

    server.log.flush()
    logs = Path(server.log.name).read_text(encoding="utf-8", errors="replace")
    assert "POST /scim/v2/Users" in logs and "/oauth2/token" in logs, "the logs were captured"
    stored = database_text(database_url)
    assert "secret.keeper" in stored, "the database was read"
    secrets = {
        "bearer token": bearer,
        "bearer token's secret": secret_half(bearer),
        "first client secret": first_secret,
        "first client secret's secret": secret_half(first_secret),
        "second client secret's secret": secret_half(second_secret),
        "GitLab admin token": ADMIN_TOKEN,
        "password Entra sent": PASSWORD,
        "wrong bearer guess": "Wrong-Bearer-Guess-SECRET",
        "wrong client secret guess": "Wrong-Client-Guess-SECRET",
        **{f"access token {n}": secret_half(t) for n, t in enumerate(access_tokens)},
    }
    for name, secret in secrets.items():
        assert secret not in logs, f"{name} is in the logs"
        assert secret not in stored, f"{name} is in the database"


# -- The database password --------------------------------------------------------------------


def dry_run_environment(database_url: str) -> dict[str, str]:
    """`serve` with only this database (no GitLab: dry-run), logging everything."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCIM_BRIDGE_")}
    env.update(
        SCIM_BRIDGE_DATABASE_URL=database_url,
        SCIM_BRIDGE_LOG_LEVEL="DEBUG",
        SCIM_BRIDGE_RECONCILE_WORKER_POLL_SECONDS="0.2",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    return env


@pytest.fixture
def postgres_url_with_password() -> Iterator[str]:
    """A PostgreSQL role of its own, with a password, and a schema it may use."""
    if not POSTGRES_URL:
        pytest.skip("SCIM_BRIDGE_TEST_POSTGRES_URL is not set")
    suffix = uuid.uuid4().hex[:12]
    role, schema = f"scim_pw_{suffix}", f"t_pw_{suffix}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        try:
            connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{DATABASE_PASSWORD}'"))
        except Exception as error:  # a test database user that may not create roles
            pytest.skip(f"cannot create a PostgreSQL role: {type(error).__name__}")
        connection.execute(text(f"CREATE SCHEMA {schema} AUTHORIZATION {role}"))
    url = make_url(POSTGRES_URL).set(username=role, password=DATABASE_PASSWORD)
    url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            connection.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


def test_the_database_password_is_in_no_banner_or_log_line(
    postgres_url_with_password: str, tmp_path: Path
) -> None:
    env = dry_run_environment(postgres_url_with_password)
    printed = [run_cli(env, "db", "upgrade"), run_cli(env, "tokens", "create", "entra")]
    bearer = value(printed[-1].stdout, "token")
    server = Server(env, tmp_path)
    try:
        server.start()
        headers = {"Authorization": f"Bearer {bearer}", "Content-Type": SCIM_JSON}
        users = f"{server.base}/scim/v2/Users"
        created = requests.post(users, json=entra_user(), headers=headers, timeout=60)
        assert created.status_code == 201, created.text
        refused = requests.get(users, headers={"Authorization": "Bearer x"}, timeout=60)
        assert refused.status_code == 401
    finally:
        server.stop()
    printed.append(run_cli(env, "check", check=False))

    server.log.flush()
    logs = Path(server.log.name).read_text(encoding="utf-8", errors="replace")
    role = make_url(postgres_url_with_password).username
    assert f"Database: postgresql+psycopg://{role}:***@" in logs, "the banner was captured"
    assert "POST /scim/v2/Users" in logs, "the logs were captured"
    for output in [logs, *(done.stdout + done.stderr for done in printed)]:
        assert DATABASE_PASSWORD not in output


def test_a_database_that_cannot_be_reached_is_named_without_its_password(tmp_path: Path) -> None:
    """The start-up refusal names the URL, the password hidden; no PostgreSQL is needed."""
    url = f"postgresql+psycopg://bridge:{DATABASE_PASSWORD}@127.0.0.1:{free_port()}/bridge"
    env = dry_run_environment(url)
    for args in (("serve", "--port", str(free_port())), ("check",)):
        done = run_cli(env, *args, check=False)
        output = done.stdout + done.stderr
        assert done.returncode != 0, output
        assert "postgresql+psycopg://bridge:***@127.0.0.1" in output, output
        assert DATABASE_PASSWORD not in output
    done = run_cli(env, "db", "upgrade", check=False)
    assert done.returncode != 0
    assert DATABASE_PASSWORD not in done.stdout + done.stderr


# -- SQLite files ---------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files_of(database: Path) -> list[Path]:
    return [database.with_name(database.name + suffix) for suffix in ("", "-wal", "-shm")]


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022), under which files are world-readable unless created otherwise."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_sqlite_files_are_created_and_kept_owner_only(open_umask: None, tmp_path: Path) -> None:
    database = tmp_path / "bridge.db"
    env = dry_run_environment(f"sqlite:///{database}")
    bearer = value(run_cli(env, "tokens", "create", "entra").stdout, "token")
    assert mode(database) == 0o600  # created by the first command, before SQLite opened it
    server = Server(env, tmp_path)
    try:
        server.start()
        # An open reader keeps -wal and -shm in place (the last connection to close removes them).
        with closing(sqlite3.connect(database)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM users").fetchone()
            headers = {"Authorization": f"Bearer {bearer}", "Content-Type": SCIM_JSON}
            created = requests.post(
                f"{server.base}/scim/v2/Users", json=entra_user(), headers=headers, timeout=60
            )
            assert created.status_code == 201, created.text
            assert {path.name: oct(mode(path)) for path in files_of(database)} == {
                path.name: "0o600" for path in files_of(database)
            }
            reader.rollback()
    finally:
        server.stop()
    assert mode(database) == 0o600


def test_sqlite_files_an_older_version_left_readable_are_tightened(
    open_umask: None, tmp_path: Path
) -> None:
    database = tmp_path / "bridge.db"
    run_cli(dry_run_environment(f"sqlite:///{database}"), "db", "upgrade")
    # As an older version left them: readable by all, -wal and -shm held open by a reader.
    with closing(sqlite3.connect(database)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM users").fetchone()
        for path in files_of(database):
            path.chmod(0o644)
        run_cli(dry_run_environment(f"sqlite:///{database}"), "tokens", "list")
        assert {path.name: oct(mode(path)) for path in files_of(database)} == {
            path.name: "0o600" for path in files_of(database)
        }
        reader.rollback()
