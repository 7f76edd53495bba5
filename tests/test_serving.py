"""`scim-bridge serve` sizes gunicorn from [server] workers and threads, its options override them,
and gunicorn_conf reads the same settings (so the TOML keys work however gunicorn is started)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from scim_bridge import cli
from scim_bridge.cli import serving

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[list[str], dict[str, str]]]:
    """What `serve` would run (commands and their environment), without running it."""
    for key in list(os.environ):
        if key.startswith("SCIM_BRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SCIM_BRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'bridge.db'}")
    runs: list[tuple[list[str], dict[str, str]]] = []

    def supervise(commands: list[list[str]], env: dict[str, str] | None = None) -> None:
        runs.extend((command, dict(env or {})) for command in commands)

    monkeypatch.setattr(serving, "_supervise", supervise)
    return runs


def gunicorn_run(runs: list[tuple[list[str], dict[str, str]]]) -> tuple[list[str], dict[str, str]]:
    return next((command, env) for command, env in runs if "gunicorn" in command)


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_default_serve_runs_4_processes_of_32_threads(
    started: list[tuple[list[str], dict[str, str]]],
) -> None:
    result = CliRunner().invoke(cli.main, ["serve"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    command, env = gunicorn_run(started)
    assert (option(command, "--workers"), option(command, "--threads")) == ("4", "32")
    assert "SCIM_BRIDGE_SERVER_THREADS" not in env
    assert "4 process(es) x 32 threads (one address: 16 on threads per process" in result.output
    assert "per caller 1000 requests/s per process, bursts of 200" in result.output


def test_threads_from_the_file_and_from_the_option(
    started: list[tuple[list[str], dict[str, str]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "scim-bridge.toml"
    config.write_text("[server]\nthreads = 24\nworkers = 3\n")
    monkeypatch.setenv("SCIM_BRIDGE_CONFIG", str(config))
    assert CliRunner().invoke(cli.main, ["serve"]).exit_code == 0
    command, _ = gunicorn_run(started)
    assert (option(command, "--workers"), option(command, "--threads")) == ("3", "24")
    started.clear()
    result = CliRunner().invoke(cli.main, ["serve", "--threads", "48", "--workers", "4"])
    assert result.exit_code == 0, result.output
    for _, env in started:  # gunicorn and the background worker alike
        assert env["SCIM_BRIDGE_SERVER_THREADS"] == "48"
        assert env["SCIM_BRIDGE_SERVER_WORKERS"] == "4"
    command, _ = gunicorn_run(started)
    assert (option(command, "--workers"), option(command, "--threads")) == ("4", "48")


def test_threads_the_settings_refuse_stop_serve_before_gunicorn(
    started: list[tuple[list[str], dict[str, str]]],
) -> None:
    result = CliRunner().invoke(cli.main, ["serve", "--threads", "300"])
    assert result.exit_code != 0
    assert "rate_limit_burst = 200 is below [server] threads = 300" in result.output
    assert not started
    result = CliRunner().invoke(cli.main, ["serve", "--threads", "0"])
    assert result.exit_code != 0 and not started


def test_gunicorn_conf_reads_workers_and_threads_from_the_file(tmp_path: Path) -> None:
    """gunicorn imports its configuration in each process: the TOML keys apply there too."""
    config = tmp_path / "scim-bridge.toml"
    config.write_text("[server]\nthreads = 12\nworkers = 3\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCIM_BRIDGE_")}
    env.update(SCIM_BRIDGE_CONFIG=str(config), PYTHONPATH=str(ROOT))
    script = "from scim_bridge import gunicorn_conf as c; print(c.workers, c.threads)"
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert run.stdout.split() == ["3", "12"]
    env["SCIM_BRIDGE_SERVER_THREADS"] = "6"  # the environment wins, as for every setting
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert run.stdout.split() == ["3", "6"]
