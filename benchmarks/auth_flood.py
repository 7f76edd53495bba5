"""A valid caller's latency while 1000 connections from one other address send bad credentials.

    pip install . && python benchmarks/auth_flood.py [--connections 1000] [--requests 200]
                                                      [--baseline]

It runs the real `scim-bridge serve` (default settings: two gunicorn workers of `[server] threads`,
the 200 ms failure floor; SQLite in a temporary directory; dry-run) and creates a token with
`scim-bridge tokens create`. A valid caller then sends sequential `GET /scim/v2/Users?count=1`
from 127.0.0.1, first idle, then while an attacker process keeps `--connections` connections open
from 127.0.0.2, each sending requests with a wrong bearer token in a loop and reconnecting when
the bridge closes it. It prints the valid caller's p50/p99 in both runs and the ratio of the p99s
(the target is at most 5), and what the attacker got back, by status, with its rate.

`--baseline` runs gunicorn's plain gthread worker instead of the bridge's (refusals then sleep
in a request thread, and nothing caps an address), for comparison. `--never-close` makes the
attacker ask for `Connection: close` and then keep its end open (gthread closes such a connection
gracefully on its main loop, waiting up to 2 s for the peer).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

VALID_SOURCE = "127.0.0.1"
ATTACK_SOURCE = "127.0.0.2"
PATH = "/scim/v2/Users?count=1"
BAD_TOKEN = "sbt_0011223344556677_" + "x" * 43
TARGET_RATIO = 5.0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000, help="attacker connections")
    parser.add_argument("--requests", type=int, default=200, help="valid requests per phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of attack before timing")
    parser.add_argument("--baseline", action="store_true", help="gunicorn's plain gthread worker")
    parser.add_argument(
        "--never-close", action="store_true", help="attacker: Connection: close, then stay open"
    )
    parser.add_argument(
        "--attack", nargs=3, metavar=("PORT", "CONNECTIONS", "SECONDS_FILE"), help=argparse.SUPPRESS
    )  # the attacker process's own entry point
    return parser.parse_args()


# -- The server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`scim-bridge serve` in a process group of its own, with a token."""

    def __init__(self, directory: Path, *, baseline: bool) -> None:
        self.directory = directory
        self.port = free_port()
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("SCIM_BRIDGE_")
        }
        self.env["SCIM_BRIDGE_DATABASE_URL"] = f"sqlite:///{directory / 'bridge.db'}"
        if baseline:
            self.env["GUNICORN_CMD_ARGS"] = "--worker-class gthread"  # wins over the config file
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "scim_bridge", *args],
            env=self.env,
            cwd=self.directory,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def start(self) -> str:
        output = self.cli("tokens", "create", "benchmark")
        token = next(
            line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("token: ")
        )
        log = (self.directory / "serve.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scim_bridge", "serve", "--port", str(self.port)],
            env=self.env,
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    connection.close()
                    return token
            except OSError:
                time.sleep(0.1)
        raise SystemExit("scim-bridge serve did not start; see " + str(log.name))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


# -- The valid caller ---------------------------------------------------------------------------


def valid_latencies(port: int, token: str, count: int) -> list[float]:
    """Sequential requests on a kept-alive connection (reopened if the bridge closes it)."""
    headers = {"Authorization": f"Bearer {token}"}
    connection: http.client.HTTPConnection | None = None
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        for attempt in range(3):
            if connection is None:
                connection = http.client.HTTPConnection(
                    "127.0.0.1", port, timeout=60, source_address=(VALID_SOURCE, 0)
                )
            try:
                connection.request("GET", PATH, headers=headers)
                response = connection.getresponse()
                response.read()
                break
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = None
                if attempt == 2:
                    raise
        samples.append(time.perf_counter() - started)
        if response.status != 200:
            raise SystemExit(f"the valid caller got {response.status}: the benchmark is invalid")
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
            connection = None
    if connection is not None:
        connection.close()
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# -- The attacker (a process of its own, so its loop does not slow the valid caller's) ---------


def bad_request(close: bool) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return (
        f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n{connection}"
        f"Authorization: Bearer {BAD_TOKEN}\r\n\r\n"
    ).encode()


async def one_connection(
    port: int, counts: Counter[str], stop: asyncio.Event, never_close: list[Any] | None
) -> None:
    request = bad_request(close=never_close is not None)
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(ATTACK_SOURCE, 0)
            )
        except OSError:
            counts["connect failed"] += 1
            await asyncio.sleep(0.01)
            continue
        try:
            while not stop.is_set():
                writer.write(request)
                status_line = await reader.readline()
                if not status_line:
                    counts["closed by the bridge"] += 1
                    break
                length, close = 0, False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    elif name.lower() == "connection" and value.strip().lower() == "close":
                        close = True
                await reader.readexactly(length)
                counts[status_line.split()[1].decode()] += 1
                if close:
                    counts["closed by the bridge"] += 1
                    break
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            counts["reset"] += 1
        if never_close is None:
            writer.close()
            continue
        never_close.append(writer)  # kept open (the oldest closed past a few thousand)
        if len(never_close) > 4000:
            never_close.pop(0).close()


async def attack(port: int, connections: int, seconds_file: Path, never_close: bool) -> None:
    counts: Counter[str] = Counter()
    kept: list[Any] | None = [] if never_close else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    started = time.monotonic()
    tasks = [
        asyncio.create_task(one_connection(port, counts, stop, kept)) for _ in range(connections)
    ]
    await stop.wait()
    elapsed = time.monotonic() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    seconds_file.write_text(json.dumps({"seconds": elapsed, "counts": dict(counts)}))


def run_attacker(port: int, connections: int, seconds_file: Path, never_close: bool) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256 + (4000 if never_close else 0)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, wanted)), hard))
    asyncio.run(attack(port, connections, seconds_file, never_close))


# -- The run ------------------------------------------------------------------------------------


def main() -> None:
    args = parse()
    if args.attack:
        port, connections, result = args.attack
        run_attacker(int(port), int(connections), Path(result), args.never_close)
        return
    with tempfile.TemporaryDirectory(prefix="scim-bridge-auth-flood-") as temporary:
        directory = Path(temporary)
        server = Server(directory, baseline=args.baseline)
        token = server.start()
        attacker: subprocess.Popen[bytes] | None = None
        try:
            valid_latencies(server.port, token, 20)  # warm up: connections, caches
            idle = valid_latencies(server.port, token, args.requests)
            result = directory / "attack.json"
            attacker = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--attack",
                    str(server.port),
                    str(args.connections),
                    str(result),
                    *(["--never-close"] if args.never_close else []),
                ]
            )
            time.sleep(args.warmup)
            attacked = valid_latencies(server.port, token, args.requests)
            attacker.send_signal(signal.SIGTERM)
            attacker.wait(60)
            attack_result = json.loads(result.read_text())
        finally:
            if attacker is not None and attacker.poll() is None:
                attacker.kill()
            server.stop()
    report(args, idle, attacked, attack_result)


def report(
    args: argparse.Namespace,
    idle: list[float],
    attacked: list[float],
    attack_result: dict[str, object],
) -> None:
    worker = "gthread (baseline)" if args.baseline else "scim-bridge front door"
    idle_p99, attacked_p99 = percentile(idle, 0.99), percentile(attacked, 0.99)
    ratio = attacked_p99 / idle_p99
    behaviour = ", each closed by the bridge only" if args.never_close else ""
    print(
        f"worker: {worker}; {args.connections} attacker connections from {ATTACK_SOURCE}{behaviour}"
    )
    print(
        f"valid caller, idle:     p50 {statistics.median(idle) * 1000:8.1f} ms   "
        f"p99 {idle_p99 * 1000:8.1f} ms   ({len(idle)} requests)"
    )
    print(
        f"valid caller, attacked: p50 {statistics.median(attacked) * 1000:8.1f} ms   "
        f"p99 {attacked_p99 * 1000:8.1f} ms   ({len(attacked)} requests)"
    )
    verdict = "within" if ratio <= TARGET_RATIO else "ABOVE"
    print(f"p99 ratio attacked/idle: {ratio:.1f}x ({verdict} the {TARGET_RATIO:.0f}x target)")
    seconds = float(attack_result["seconds"])  # type: ignore[arg-type]
    counts: dict[str, int] = attack_result["counts"]  # type: ignore[assignment]
    answered = sum(count for name, count in counts.items() if name.isdigit())
    print(f"attacker: {answered} answers in {seconds:.1f} s ({answered / seconds:.0f}/s)")
    for name, count in sorted(counts.items()):
        print(f"  {name:>22}: {count:8d} ({count / seconds:8.1f}/s)")


if __name__ == "__main__":
    main()
