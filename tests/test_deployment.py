"""The deployment files keep the promises of docs/operator-guide.md.

- The Dockerfile runs `scim-bridge serve` (so scim_bridge/gunicorn_conf.py applies) on all
  interfaces, as a user that is not root, with a HEALTHCHECK on /healthz and SQLite in a volume.
- docker-compose.yml runs two bridges on PostgreSQL after a one-off `scim-bridge db upgrade`,
  behind nginx, which deploy/nginx.conf makes round-robin over both.
- Every command, setting and environment variable the guide names exists.

These checks read the files. The build test at the end runs only where a Docker daemon is
available and SCIM_BRIDGE_TEST_DOCKER=1 asks for it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner
from werkzeug.serving import make_server

from scim_bridge import cli
from scim_bridge import settings as settings_module
from scim_bridge.app import create_app
from scim_bridge.cli import serving
from scim_bridge.settings import load_settings
from scim_bridge.settings import settings_from_toml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
NGINX = ROOT / "deploy" / "nginx.conf"
GUIDE = ROOT / "docs" / "operator-guide.md"
README = ROOT / "README.md"

BRIDGES = ("bridge-1", "bridge-2")
BRIDGE_PORT = 8000


# -- Dockerfile ---------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, as (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        assert stages, f"an instruction before the first FROM: {line}"
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def final_stage() -> list[tuple[str, str]]:
    return dockerfile_stages()[-1]


def arguments(instruction: str) -> list[str]:
    return [args for name, args in final_stage() if name == instruction]


def exec_form(text: str) -> list[str]:
    """A JSON-array (exec form) argument list, which runs without a shell."""
    value = json.loads(text)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), text
    return value


def image_environment() -> dict[str, str]:
    """The final stage's ENV, in the KEY=VALUE form."""
    environment: dict[str, str] = {}
    for args in arguments("ENV"):
        for pair in args.split():
            key, equals, value = pair.partition("=")
            assert equals, f"ENV in the legacy `ENV KEY VALUE` form: {args}"
            environment[key] = value
    return environment


def image_command() -> list[str]:
    (command,) = arguments("CMD")
    return exec_form(command)


def test_every_stage_builds_on_python_311_slim() -> None:
    stages = dockerfile_stages()
    for stage in stages:
        name, base = stage[0]
        assert base.split()[0] == "python:3.11-slim", f"{name} {base}"


def test_the_image_runs_scim_bridge_serve_on_all_interfaces() -> None:
    assert not arguments("ENTRYPOINT"), "an ENTRYPOINT would wrap or replace `scim-bridge serve`"
    command = image_command()
    assert command[:2] == ["scim-bridge", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = command[command.index("--port") + 1] if "--port" in command else None
    assert (port or image_environment()["SCIM_BRIDGE_SERVER_PORT"]) == str(BRIDGE_PORT)
    assert arguments("EXPOSE") == [str(BRIDGE_PORT)]


def test_the_image_command_starts_gunicorn_with_the_tested_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`scim-bridge serve`, as the image's CMD and ENV run it, starts gunicorn with gunicorn_conf."""
    for key in list(os.environ):
        if key.startswith("SCIM_BRIDGE_"):
            monkeypatch.delenv(key)
    for key, value in image_environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SCIM_BRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'bridge.db'}")
    started: list[list[str]] = []

    def supervise(commands: list[list[str]], *_: object, **__: object) -> None:
        started.extend(commands)

    monkeypatch.setattr(serving, "_supervise", supervise)
    result = CliRunner().invoke(cli.main, image_command()[1:], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    gunicorn = next(command for command in started if "gunicorn" in command)
    assert gunicorn[gunicorn.index("--config") + 1] == "python:scim_bridge.gunicorn_conf"
    assert gunicorn[gunicorn.index("--bind") + 1] == f"0.0.0.0:{BRIDGE_PORT}"
    assert gunicorn[-1] == "scim_bridge.app:create_app()"
    assert any(command[-2:] == ["scim_bridge", "worker"] for command in started), started


def test_the_image_runs_as_a_user_that_is_not_root() -> None:
    users = arguments("USER")
    assert users, "no USER: the container would run as root"
    user = users[-1].partition(":")[0]
    assert user not in ("root", "0")
    creation = " ".join(args for name, args in final_stage() if name == "RUN")
    assert re.search(rf"useradd\b.*\b{re.escape(user)}\b", creation), "the USER is never created"
    uid = re.search(r"--uid (\d+)", creation)
    assert uid is not None and int(uid[1]) != 0


def test_sqlite_lives_in_the_volume_by_default() -> None:
    url = image_environment()["SCIM_BRIDGE_DATABASE_URL"]
    assert url.startswith("sqlite:////")
    database = Path(url.removeprefix("sqlite:///"))
    volumes = [path for args in arguments("VOLUME") for path in exec_form(args)]
    assert str(database.parent) in volumes
    assert arguments("WORKDIR")[-1] == str(database.parent)


def test_the_image_includes_the_postgresql_driver() -> None:
    installs = " ".join(
        args for stage in dockerfile_stages() for name, args in stage if name == "RUN"
    )
    assert ".[postgres]" in installs
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r"^postgres = \[.*psycopg", pyproject, re.MULTILINE)


def health_check_command() -> list[str]:
    (check,) = arguments("HEALTHCHECK")
    _, cmd, command = check.partition("CMD ")
    assert cmd, f"HEALTHCHECK without CMD: {check}"
    return exec_form(command.strip())


@pytest.fixture
def serving_app(tmp_path: Path) -> Iterator[int]:
    """The bridge's WSGI app on a free local port, for the health check to call."""
    app = create_app(
        settings_from_toml({"database": {"url": f"sqlite:///{tmp_path / 'bridge.db'}"}})
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_the_health_check_calls_healthz_with_python_only(
    serving_app: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HEALTHCHECK is python's urllib (no curl in a slim image) on /healthz, and passes."""
    command = health_check_command()
    assert command[:2] == ["python", "-c"] and "/healthz" in command[2]
    monkeypatch.setenv("SCIM_BRIDGE_SERVER_PORT", str(serving_app))
    exec(compile(command[2], "HEALTHCHECK", "exec"), {})


def test_the_health_check_fails_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    # A port bound but not listening refuses connections for as long as it is held.
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        monkeypatch.setenv("SCIM_BRIDGE_SERVER_PORT", str(bound.getsockname()[1]))
        with pytest.raises(OSError):
            exec(compile(health_check_command()[2], "HEALTHCHECK", "exec"), {})


# -- docker-compose.yml -------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"no service {name!r} in docker-compose.yml"
    return dict(services[name])


def environment(name: str) -> dict[str, str]:
    value = service(name).get("environment") or {}
    if isinstance(value, list):
        value = dict(item.partition("=")[::2] for item in value)
    return {str(key): "" if item is None else str(item) for key, item in value.items()}


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` (the forms the file uses)."""

    def value(match: re.Match[str]) -> str:
        name, colon, kind, word = match.groups()
        present = name in env and (not colon or env[name] != "")
        if present:
            return env[name]
        if kind == "?":
            raise LookupError(f"{name}: {word}")
        return word or ""

    return _VARIABLE.sub(value, text)


DOTENV = {
    "POSTGRES_PASSWORD": "0123456789abcdef",
    "SCIM_BRIDGE_AUTH_PUBLIC_URL": "https://scim.example.com",
}


def test_compose_parses_and_names_every_service() -> None:
    assert set(compose()["services"]) >= {"postgres", "migrate", *BRIDGES, "proxy"}


@pytest.mark.parametrize("name", BRIDGES)
def test_each_bridge_runs_on_postgresql_after_the_migration(name: str) -> None:
    bridge = service(name)
    env = environment(name)
    url = env["SCIM_BRIDGE_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in url, "the database host must be the postgres service"
    assert env["SCIM_BRIDGE_DATABASE_AUTO_MIGRATE"] == "false"
    assert bridge["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "command" not in bridge, "the bridges run the image's CMD: scim-bridge serve"
    assert "ports" not in bridge, "the bridges are reached through the proxy only"
    assert "/healthz" in " ".join(bridge["healthcheck"]["test"])


def test_the_migration_is_a_one_off_before_the_bridges() -> None:
    migrate = service("migrate")
    assert migrate["command"] == ["scim-bridge", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in BRIDGES:
        assert service(name)["image"] == migrate["image"]
        assert (
            environment(name)["SCIM_BRIDGE_DATABASE_URL"]
            == (environment("migrate")["SCIM_BRIDGE_DATABASE_URL"])
        )


def test_postgresql_has_a_health_check_and_a_volume() -> None:
    postgres = service("postgres")
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volumes = [str(volume) for volume in postgres["volumes"]]
    named = [
        volume.partition(":")[0]
        for volume in volumes
        if volume.endswith(":/var/lib/postgresql/data")
    ]
    assert named and named[0] in compose()["volumes"]
    # The bridges log in as the user, to the database, that the postgres service creates.
    env = environment("postgres")
    url = environment(BRIDGES[0])["SCIM_BRIDGE_DATABASE_URL"]
    assert url.startswith(f"postgresql+psycopg://{env['POSTGRES_USER']}:")
    assert url.endswith(f"/{env['POSTGRES_DB']}")


def test_the_proxy_is_the_only_address_trusted_for_forwarded_headers() -> None:
    proxy = service("proxy")
    assert proxy["image"].startswith("nginx")
    assert any(str(volume).startswith("./deploy/nginx.conf:") for volume in proxy["volumes"])
    assert {name for name in proxy["depends_on"]} >= set(BRIDGES)
    ((network, attachment),) = proxy["networks"].items()
    address = ipaddress.ip_address(attachment["ipv4_address"])
    (subnet,) = [entry["subnet"] for entry in compose()["networks"][network]["ipam"]["config"]]
    assert address in ipaddress.ip_network(subnet)
    for name in BRIDGES:
        assert environment(name)["SCIM_BRIDGE_SERVER_TRUSTED_PROXIES"] == str(address)
        assert "FORWARDED_ALLOW_IPS" not in environment(name), "one list: trusted_proxies"
        assert network in service(name)["networks"]


def test_the_compose_environment_is_valid_bridge_settings() -> None:
    """With the .env the guide shows (GitLab left out: dry-run), the bridges' settings load."""
    for name in (*BRIDGES, "migrate"):
        env = {key: interpolate(value, DOTENV) for key, value in environment(name).items()}
        loaded = load_settings(env)
        assert loaded.database_url.startswith("postgresql+psycopg://scim_bridge:0123456789abcdef@")
        assert loaded.auto_migrate is False
        assert loaded.auth.public_url == "https://scim.example.com"
        assert loaded.gitlab.planned_only
        assert loaded.config_path is None


def test_the_compose_file_requires_the_password_and_the_public_url() -> None:
    for missing in DOTENV:
        env = {key: value for key, value in DOTENV.items() if key != missing}
        with pytest.raises(LookupError, match=missing):
            interpolate(COMPOSE.read_text(), env)


def test_the_compose_file_passes_gitlab_settings_through() -> None:
    dotenv = {
        **DOTENV,
        "SCIM_BRIDGE_GITLAB_URL": "https://gitlab.example.com",
        "SCIM_BRIDGE_GITLAB_TOKEN": "glpat-example",
        "SCIM_BRIDGE_GITLAB_IDENTITY_PROVIDER": "saml",
    }
    env = {key: interpolate(value, dotenv) for key, value in environment(BRIDGES[0]).items()}
    gitlab = load_settings(env).gitlab
    assert (gitlab.url, gitlab.token, gitlab.identity_provider) == (
        "https://gitlab.example.com",
        "glpat-example",
        "saml",
    )
    assert not gitlab.planned_only


def test_every_bridge_variable_in_compose_is_a_real_setting() -> None:
    for name in (*BRIDGES, "migrate"):
        for key in environment(name):
            if key.startswith("SCIM_BRIDGE_"):
                assert key in known_environment_variables(), f"{name}: {key} is no setting"


# -- deploy/nginx.conf --------------------------------------------------------------------------


def nginx_directives() -> str:
    """The configuration without comments."""
    return "\n".join(line.partition("#")[0] for line in NGINX.read_text().splitlines())


def upstreams() -> dict[str, list[str]]:
    text = nginx_directives()
    return {
        name: re.findall(r"^\s*server\s+(\S+?)(?:\s[^;]*)?;", body, re.MULTILINE)
        for name, body in re.findall(r"upstream\s+(\S+)\s*\{([^}]*)\}", text)
    }


def test_nginx_upstream_names_both_bridges() -> None:
    ((name, servers),) = upstreams().items()
    assert sorted(servers) == [f"{bridge}:{BRIDGE_PORT}" for bridge in BRIDGES]
    text = nginx_directives()
    assert re.search(rf"proxy_pass\s+http://{re.escape(name)}\s*;", text)
    assert not re.search(r"^\s*(ip_hash|hash|least_conn)\b", text, re.MULTILINE), "round-robin"


def test_nginx_passes_forwarded_headers() -> None:
    text = nginx_directives()
    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;", text)
    assert re.search(r"proxy_set_header\s+X-Forwarded-Proto\s+\S+;", text)


def test_nginx_body_limit_matches_the_bridge() -> None:
    (limit,) = re.findall(r"client_max_body_size\s+(\d+)m;", nginx_directives())
    assert int(limit) * 1024 * 1024 == load_settings({}).server.max_body_bytes


def test_nginx_waits_longer_than_entra_for_an_answer() -> None:
    (timeout,) = re.findall(r"proxy_read_timeout\s+(\d+)s;", nginx_directives())
    assert int(timeout) >= 60, "Entra waits 60 s; the proxy must not cut a request before it"


def test_nginx_listens_on_the_port_compose_publishes() -> None:
    (listen,) = re.findall(r"^\s*listen\s+(\d+)\s*;", nginx_directives(), re.MULTILINE)
    published = [str(port).rpartition(":")[2] for port in service("proxy")["ports"]]
    assert published == [listen]


# -- docs/operator-guide.md ---------------------------------------------------------------------


def known_environment_variables() -> set[str]:
    """Every settings key's variable, and the process variables the code reads."""
    names = {
        settings_module._env_name(section, key)
        for section, schema in settings_module.SECTIONS.items()
        for key, field in schema().fields.items()
        if not field.metadata.get("subsection") and not field.metadata.get("file_only")
    }
    for source in (ROOT / "scim_bridge").rglob("*.py"):
        names.update(re.findall(r"[\"'](SCIM_BRIDGE_[A-Z0-9_]+)[\"']", source.read_text()))
    names.update(re.findall(r"\b(SCIM_BRIDGE_[A-Z0-9_]+)\b", (ROOT / "README.md").read_text()))
    names.add(f"{settings_module.ENV_PREFIX}GITLAB_TOKEN")
    names.add(f"{settings_module.ENV_PREFIX}CONFIG")
    return names


def guide() -> str:
    return GUIDE.read_text()


# Words that follow `scim-bridge` in the guide without being a command: a user name, the image.
NOT_COMMANDS = {"sh", "scim-bridge"}
# What the guide must explain (the operator interface of DESIGN.md and the README).
REQUIRED_COMMANDS = {
    ("serve",),
    ("check",),
    ("db", "upgrade"),
    ("db", "current"),
    ("tokens", "create"),
    ("clients", "create"),
    ("clients", "rotate"),
    ("jobs",),
    ("jobs", "retry"),
    ("reconcile",),
    ("audit",),
    ("audit", "verify"),
    ("audit", "export"),
}


def guide_commands() -> set[tuple[str, ...]]:
    mentions = re.findall(
        r"(?=(?<![\w/.-])scim-bridge ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?)", guide()
    )
    commands: set[tuple[str, ...]] = set()
    for name, sub in mentions:
        if name in NOT_COMMANDS:
            continue
        command = cli.main.commands.get(name)
        assert command is not None, f"the guide names `scim-bridge {name}`, which does not exist"
        if isinstance(command, click.Group) and sub:
            assert sub in command.commands, f"`scim-bridge {name} {sub}` does not exist"
            commands.add((name, sub))
        else:
            commands.add((name,))
    return commands


def test_every_command_the_guide_names_exists() -> None:
    missing = REQUIRED_COMMANDS - guide_commands()
    assert not missing, f"the guide does not explain {sorted(missing)}"


def test_every_option_the_guide_gives_exists() -> None:
    """`--flags` written after a command, up to the end of its code span or a comment."""
    checked = 0
    for line in guide().splitlines():
        for match in re.finditer(
            r"(?<![\w.-])scim-bridge ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", line
        ):
            name, sub = match.groups()
            if name in NOT_COMMANDS:
                continue
            command = cli.main.commands[name]
            if isinstance(command, click.Group) and sub in command.commands:
                command = command.commands[sub]
            rest = re.split(r"[`#|']", line[match.end() :], maxsplit=1)[0]
            options = {opt for param in command.params for opt in getattr(param, "opts", [])}
            for flag in re.findall(r"(?<!\S)--[a-z][a-z-]*", rest):
                assert flag in options, f"`scim-bridge {name} {sub or ''}` has no {flag}"
                checked += 1
    assert checked >= 6, "the guide's command lines were not found"


def test_every_environment_variable_the_guide_names_exists() -> None:
    named = set(re.findall(r"\b(SCIM_BRIDGE_[A-Z0-9_]*[A-Z0-9])\b", guide()))
    unknown = named - known_environment_variables()
    assert not unknown, f"the guide names variables the bridge never reads: {sorted(unknown)}"


def test_every_setting_the_guide_names_exists() -> None:
    for section, key in re.findall(r"\[([a-z.]+)\] `?([a-z_]+)", guide()):
        assert section in settings_module.SECTIONS, f"[{section}]"
        assert key in settings_module.SECTIONS[section]().fields, f"[{section}] {key}"


def test_the_settings_reference_lists_every_setting() -> None:
    text = guide()
    for section, schema in settings_module.SECTIONS.items():
        for key, field in schema().fields.items():
            if field.metadata.get("subsection"):
                continue
            assert f"`[{section}] {key}`" in text or f"`[[{section}.{key}]]`" in text, (
                f"[{section}] {key} is missing from the settings reference"
            )


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_guide_links_only_to_its_own_headings() -> None:
    text = guide()
    anchors = {github_anchor(title) for title in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in anchors, f"#{target} is no heading of the guide"


def test_the_guide_names_the_deployment_files_that_exist() -> None:
    text = guide()
    for path in ("Dockerfile", "docker-compose.yml", "deploy/nginx.conf"):
        assert f"`{path}`" in text and (ROOT / path).is_file()


def test_the_readme_points_to_the_guide() -> None:
    readme = README.read_text()
    assert "## Deploy and operate" in readme
    assert "(docs/operator-guide.md)" in readme


# -- optional: a real build and run -------------------------------------------------------------


def docker_available() -> bool:
    if os.environ.get("SCIM_BRIDGE_TEST_DOCKER") != "1" or shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(
    not docker_available(), reason="needs a Docker daemon and SCIM_BRIDGE_TEST_DOCKER=1"
)
def test_the_image_builds_and_becomes_healthy() -> None:
    tag = f"scim-bridge-test:{uuid.uuid4().hex[:8]}"
    name = f"scim-bridge-test-{uuid.uuid4().hex[:8]}"
    # e.g. "--add-host pypi.org:10.0.0.5" where PyPI is reached through a mirror.
    extra = shlex.split(os.environ.get("SCIM_BRIDGE_TEST_DOCKER_BUILD_ARGS", ""))
    subprocess.run(["docker", "build", *extra, "-t", tag, str(ROOT)], check=True, timeout=900)
    try:
        subprocess.run(
            ["docker", "run", "-d", "--name", name, "-p", "127.0.0.1::8000", tag],
            check=True,
            capture_output=True,
            timeout=60,
        )
        mapped = subprocess.run(
            ["docker", "port", name, "8000/tcp"], check=True, capture_output=True, text=True
        ).stdout.split()[0]
        url = f"http://{mapped}/healthz"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    assert json.load(response) == {"status": "ok"}
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the container never answered /healthz"
                time.sleep(1)
        user = subprocess.run(
            ["docker", "exec", name, "id", "-u"], check=True, capture_output=True, text=True
        ).stdout.strip()
        assert user != "0"
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
