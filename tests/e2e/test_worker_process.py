"""`scim-bridge worker` as the operator runs it: SIGTERM lets the jobs in flight finish."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.conftest import ADMIN_TOKEN
from tests.conftest import BridgeUnderTest
from tests.conftest import cli_environment
from tests.conftest import entra_user


def test_sigterm_finishes_the_job_in_flight_then_exits(
    make_bridge: Callable[..., BridgeUnderTest], gitlab: Any, database_url: str
) -> None:
    bridge = make_bridge(gitlab, reconcile={"inline_deadline_seconds": 0})
    assert bridge.scim.post("/Users", entra_user(externalId="oid-jane")).status_code == 201
    release = threading.Event()
    gitlab.faults.add(method="POST", path_pattern=r"^/api/v4/users$", hold=release)
    env = {
        **cli_environment(database_url),
        "SCIM_BRIDGE_GITLAB_URL": gitlab.url,
        "SCIM_BRIDGE_GITLAB_TOKEN": ADMIN_TOKEN,
        "SCIM_BRIDGE_RECONCILE_WORKER_POLL_SECONDS": "0.05",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "scim_bridge", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        give_up = time.monotonic() + 60  # a wait for the event, not a measure of speed
        while gitlab.held() == 0 and worker.poll() is None and time.monotonic() < give_up:
            time.sleep(0.02)
        assert gitlab.held() == 1, "the worker is creating the account"
        worker.send_signal(signal.SIGTERM)
        release.set()
        output, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, output.decode()
    assert gitlab.users_with_identity("openid_connect", "oid-jane"), "the job was finished"
    assert bridge.bridge.queue.list() == []
    assert ADMIN_TOKEN not in output.decode()
