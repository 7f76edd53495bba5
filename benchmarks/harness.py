"""What the benchmarks share: the processes they start, the load generator, and their arithmetic.

- :class:`Double`: the GitLab double in its own process (``gitlab_double_server.py``), steered
  through its stdin (latency, outage, stats).
- :class:`BridgeServer`: ``scim-bridge serve`` started as an operator would, on a fresh SQLite file
  in a temporary directory (or a given database URL), with a token made by ``tokens create``.
- :class:`HelloApp`: a one-route Flask app under gunicorn's gthread worker, with the workers,
  threads and keep-alive that ``scim_bridge/gunicorn_conf.py`` gives the bridge.
- :func:`run_load`: N clients on kept-alive HTTP/1.1 connections (threads in a few processes, raw
  ``http.client``), each request's latency and status recorded.
- :class:`Metrics`: one scrape of the bridge's ``/metrics``, for counts read from the bridge itself.

Figures are counts and ratios measured in the same run; nothing here sleeps to shape them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

BENCHMARKS = Path(__file__).resolve().parent
SCIM_JSON = "application/scim+json; charset=utf-8"
# The per-caller limit, raised for the runs: at 16 clients a filter GET meets the default (100/s)
# and the benchmark would measure the limiter (issue 13).
RAISED_RATE_LIMIT = "100000"
TRANSACTIONS = "scim_bridge_db_transactions_total"
GITLAB_CALLS = "scim_bridge_gitlab_calls_total"
GITLAB_SECONDS = "scim_bridge_gitlab_call_duration_seconds_sum"
OWN_SETTINGS = frozenset(
    f"SCIM_BRIDGE_{name}" for name in ("DATABASE_URL", "GITLAB_URL", "GITLAB_TOKEN", "CONFIG")
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(port: int, path: str, what: str, log: Path | None, seconds: float = 60.0) -> None:
    """Until ``GET path`` answers 200, or exit naming the log to read."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start" + (f"; see {log}" if log else ""))


def stop_group(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the process group started with ``start_new_session``, then SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


# -- The GitLab double --------------------------------------------------------------------------


class Double:
    """``gitlab_double_server.py`` in its own process; ``command`` steers it through its stdin."""

    def __init__(self, latency_ms: float, groups: Sequence[str] = (), down: bool = False) -> None:
        command = [sys.executable, str(BENCHMARKS / "gitlab_double_server.py")]
        command += ["--latency-ms", str(latency_ms)]
        for group in groups:
            command += ["--group", group]
        if down:
            command.append("--down")
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        if not first:
            raise SystemExit("the GitLab double did not start")
        hello = json.loads(first)
        self.url: str = hello["url"]
        self.token: str = hello["token"]
        self.latency_ms = latency_ms

    def command(self, line: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    def set_latency(self, milliseconds: float) -> None:
        self.command(f"latency {milliseconds}")
        self.latency_ms = milliseconds

    def get(self, path: str) -> tuple[Any, dict[str, str]]:
        """A GitLab API call as the admin, for checking what the bridge did."""
        host, port = self.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        connection.request("GET", f"/api/v4{path}", headers={"PRIVATE-TOKEN": self.token})
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
        if response.status != 200:
            raise SystemExit(f"GitLab double: GET {path} answered {response.status}: {body}")
        return body, {key.lower(): value for key, value in response.getheaders()}

    def get_all(self, path: str) -> list[Any]:
        """Every page of a list (100 a page)."""
        items: list[Any] = []
        page: str | None = "1"
        separator = "&" if "?" in path else "?"
        while page:
            body, headers = self.get(f"{path}{separator}per_page=100&page={page}")
            items.extend(body)
            page = headers.get("x-next-page") or None
        return items

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.command("quit")
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# -- /metrics -----------------------------------------------------------------------------------


@dataclass
class Metrics:
    """One scrape: every sample as (name, labels) -> value, taken at ``at`` (monotonic)."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    at: float

    @classmethod
    def parse(cls, text: str, at: float) -> Metrics:
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                samples[key] = samples.get(key, 0.0) + sample.value
        return cls(samples, at)

    def has(self, name: str) -> bool:
        return any(key[0] == name for key in self.samples)

    def total(self, name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(
            value
            for (sample, sample_labels), value in self.samples.items()
            if sample == name and wanted <= set(sample_labels)
        )

    def by_label(self, name: str, label: str) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for (sample, labels), value in self.samples.items():
            if sample == name:
                totals[dict(labels).get(label, "")] += value
        return dict(totals)


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """Per-label increase, the labels that did not move left out."""
    keys = set(after) | set(before)
    moved = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in keys}
    return {key: value for key, value in sorted(moved.items()) if value}


# -- The bridge ---------------------------------------------------------------------------------


class BridgeServer:
    """``scim-bridge serve`` in a process group of its own, configured through its environment."""

    def __init__(
        self,
        directory: Path,
        double: Double | None,
        *,
        database_url: str | None = None,
        rules: Sequence[tuple[str, str, str]] = (),
        settings: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.log = directory / "serve.log"
        self.database_url = database_url or f"sqlite:///{directory / 'bridge.db'}"
        # The caller's own SCIM_BRIDGE_* settings apply (as HelloApp.shape reads them), but for
        # those the run sets: the database, GitLab, the config file.
        self.env = {key: value for key, value in os.environ.items() if key not in OWN_SETTINGS}
        self.env["SCIM_BRIDGE_DATABASE_URL"] = self.database_url
        self.env["SCIM_BRIDGE_SERVER_RATE_LIMIT_PER_SECOND"] = RAISED_RATE_LIMIT
        self.env["SCIM_BRIDGE_SERVER_RATE_LIMIT_BURST"] = RAISED_RATE_LIMIT
        if double is not None:
            self.env["SCIM_BRIDGE_GITLAB_URL"] = double.url
            self.env["SCIM_BRIDGE_GITLAB_TOKEN"] = double.token
        if rules:  # [[groups.rules]] are read only from the file
            config = directory / "scim-bridge.toml"
            config.write_text(
                "".join(
                    f'[[groups.rules]]\ndisplay_name = "{name}"\n'
                    f'gitlab_group = "{group}"\naccess_level = "{level}"\n\n'
                    for name, group, level in rules
                )
            )
            self.env["SCIM_BRIDGE_CONFIG"] = str(config)
        self.env.update(settings or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""
        self._connection: http.client.HTTPConnection | None = None

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "scim_bridge", *args],
            env=self.env,
            cwd=self.directory,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise SystemExit(f"scim-bridge {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def start(self) -> None:
        output = self.cli("tokens", "create", "benchmark")
        self.token = next(
            line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("token: ")
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scim_bridge", "serve", "--port", str(self.port)],
            env=self.env,
            cwd=self.directory,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(self.port, "/healthz", "scim-bridge serve", self.log)
        self.settle()
        inherited = sorted(
            key for key in os.environ if key.startswith("SCIM_BRIDGE_") and key not in OWN_SETTINGS
        )
        if inherited:  # names only: a value may be a secret
            print(f"settings from the environment: {', '.join(inherited)}", flush=True)

    def settle(self, timeout: float = 30.0) -> None:
        """Until the background worker's start-up GitLab calls (protected accounts) are made, so
        no measurement counts them: some call counted, and no new one for a second."""
        deadline = time.monotonic() + timeout
        last = -1.0
        while time.monotonic() < deadline:
            calls = self.metrics().total(GITLAB_CALLS)
            if calls > 0 and calls == last:
                return
            last = calls
            time.sleep(1.0)

    def stop(self) -> None:
        stop_group(self.process)
        if self._connection is not None:
            self._connection.close()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request on the harness's own connection (setup and checks, not measured)."""
        headers = self.headers
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers = {**headers, "Content-Type": SCIM_JSON}
        for attempt in range(2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self._connection.request(method, path, data, headers)
                response = self._connection.getresponse()
                raw = response.read()
                break
            except (OSError, http.client.HTTPException):
                self._connection.close()
                self._connection = None
                if attempt:
                    raise
        return response.status, json.loads(raw) if raw else None

    def metrics(self) -> Metrics:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        text = response.read().decode()
        at = time.monotonic()
        connection.close()
        if response.status != 200:
            raise SystemExit(f"/metrics answered {response.status}")
        return Metrics.parse(text, at)

    def wait_queue_empty(self, timeout: float, poll: float = 0.2) -> tuple[bool, Metrics]:
        """Until no job is pending (parked ones do not count: they wait for an operator)."""
        deadline = time.monotonic() + timeout
        while True:
            scrape = self.metrics()
            readable = scrape.total("scim_bridge_jobs_stats_ok") == 1
            if readable and scrape.total("scim_bridge_jobs_pending") == 0:
                return True, scrape
            if time.monotonic() > deadline:
                return False, scrape
            time.sleep(poll)

    def pids(self) -> list[int]:
        """The supervisor and every process under it (gunicorn's master and workers, the worker)."""
        if self.process is None:
            return []
        children: dict[int, list[int]] = defaultdict(list)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children[parent].append(int(entry.name))
        found, stack = [], [self.process.pid]
        while stack:
            pid = stack.pop()
            found.append(pid)
            stack.extend(children.get(pid, []))
        return found

    def cpu_seconds(self) -> float | None:
        """User + system CPU the bridge's processes have used so far (Linux ``/proc``)."""
        ticks = 0
        try:
            per_second = os.sysconf("SC_CLK_TCK")
        except (AttributeError, ValueError, OSError):
            return None
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / per_second if ticks else None

    def peak_rss_kib(self) -> tuple[int, int]:
        """(sum, largest) of VmHWM, the peak resident set, over the bridge's processes."""
        peaks = []
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]))
        return sum(peaks), max(peaks, default=0)


@dataclass
class IdleRates:
    """Transactions per second of an idle bridge (the worker polling, a scrape): subtracted."""

    write: float | None
    read: float | None

    @classmethod
    def measure(cls, bridge: BridgeServer, seconds: float = 3.0) -> IdleRates:
        before = bridge.metrics()
        time.sleep(seconds)
        after = bridge.metrics()
        if not after.has(TRANSACTIONS):
            return cls(None, None)
        elapsed = after.at - before.at
        rates = [
            (after.total(TRANSACTIONS, mode=mode) - before.total(TRANSACTIONS, mode=mode)) / elapsed
            for mode in ("write", "read")
        ]
        return cls(rates[0], rates[1])


# -- The hello-world baseline -------------------------------------------------------------------


class HelloApp:
    """``hello_app.py`` under gunicorn: the bridge's workers, threads and keep-alive, plain gthread."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.log = directory / "hello.log"
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def shape() -> tuple[int, int, int]:
        """(workers, threads, keepalive) as the bridge's gunicorn configuration reads them."""
        from scim_bridge import gunicorn_conf  # reads the same environment as `serve`

        return gunicorn_conf.workers, gunicorn_conf.threads, gunicorn_conf.keepalive

    def start(self) -> None:
        from scim_bridge import gunicorn_conf

        workers, threads, keepalive = self.shape()
        command = [sys.executable, "-m", "gunicorn", "--worker-class", "gthread"]
        command += ["--workers", str(workers), "--threads", str(threads)]
        command += ["--keep-alive", str(keepalive), "--bind", f"127.0.0.1:{self.port}"]
        # An access log line per request, as the bridge writes them (to a log file here too).
        command += ["--access-logfile", "-", "--access-logformat", gunicorn_conf.access_log_format]
        logger = getattr(gunicorn_conf, "logger_class", None)  # JSON lines, unless text is asked
        if logger is not None:
            command += ["--logger-class", f"{logger.__module__}.{logger.__qualname__}"]
        command += ["--chdir", str(BENCHMARKS), "hello_app:app"]
        self.process = subprocess.Popen(
            command,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(self.port, "/", "the hello-world app", self.log)

    def stop(self) -> None:
        stop_group(self.process)


# -- The load generator -------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None


def scim_request(method: str, path: str, body: Any = None) -> Request:
    return Request(method, path, json.dumps(body).encode() if body is not None else None)


@dataclass
class LoadResult:
    """Per request, in the order given: latency (s), status (0: no answer), the answer's ``id``."""

    latencies: list[float]
    statuses: list[int]
    ids: list[str | None]
    started: float
    ended: float

    @property
    def seconds(self) -> float:
        return max(self.ended - self.started, 1e-9)

    @classmethod
    def joined(cls, parts: Sequence[LoadResult]) -> LoadResult:
        """Several runs as one: their requests in order, and their own time only (what ran
        between them, another server measured, is not counted in the rate)."""
        return cls(
            latencies=[value for part in parts for value in part.latencies],
            statuses=[value for part in parts for value in part.statuses],
            ids=[value for part in parts for value in part.ids],
            started=0.0,
            ended=sum(part.seconds for part in parts),
        )

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def ok_fraction(self) -> float:
        return sum(200 <= s < 300 for s in self.statuses) / max(1, len(self.statuses))

    def by_status(self) -> dict[int, int]:
        counts: dict[int, int] = defaultdict(int)
        for status in self.statuses:
            counts[status] += 1
        return dict(sorted(counts.items()))


def _client_thread(
    port: int,
    headers: dict[str, str],
    work: list[tuple[int, Request]],
    capture_ids: bool,
    out: list[tuple[int, float, float, int, str | None]],
) -> None:
    connection: http.client.HTTPConnection | None = None
    for index, request in work:
        headers_now = dict(headers)
        if request.body is not None:
            headers_now["Content-Type"] = SCIM_JSON
        started = time.monotonic()
        status, raw = 0, b""
        for attempt in range(2):  # once more on a fresh connection if a kept-alive one was closed
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                connection.request(request.method, request.path, request.body, headers_now)
                response = connection.getresponse()
                raw = response.read()
                status = response.status
                if (response.getheader("Connection") or "").lower() == "close":
                    connection.close()
                    connection = None
                break
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = None
                if attempt:
                    status = 0
        elapsed = time.monotonic() - started
        resource_id = None
        if capture_ids and raw and 200 <= status < 300:
            try:
                resource_id = json.loads(raw).get("id")
            except ValueError:
                resource_id = None
        out.append((index, started, elapsed, status, resource_id))
    if connection is not None:
        connection.close()


def _client_process(
    port: int,
    headers: dict[str, str],
    shares: list[list[tuple[int, Request]]],
    capture_ids: bool,
    go: Any,
    results: Any,
) -> None:
    """One process's clients, one thread each; waits for ``go`` so all start together."""
    out: list[tuple[int, float, float, int, str | None]] = []
    threads = [
        threading.Thread(target=_client_thread, args=(port, headers, share, capture_ids, out))
        for share in shares
    ]
    go.wait()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.send(out)
    results.close()


def run_load(
    port: int,
    headers: dict[str, str],
    requests: Sequence[Request],
    clients: int = 16,
    processes: int = 2,
    capture_ids: bool = False,
) -> LoadResult:
    """Send ``requests`` from ``clients`` concurrent clients (client c takes every c-th request),
    spread over ``processes`` processes so the generator's own GIL is not the bottleneck."""
    context = multiprocessing.get_context("fork")
    indexed = list(enumerate(requests))
    shares = [indexed[client::clients] for client in range(clients)]
    processes = max(1, min(processes, clients))
    go = context.Event()
    pipes, children = [], []
    for number in range(processes):
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(
            target=_client_process,
            args=(port, headers, shares[number::processes], capture_ids, go, sender),
        )
        child.start()
        sender.close()
        pipes.append(receiver)
        children.append(child)
    go.set()
    rows: list[tuple[int, float, float, int, str | None]] = []
    for receiver in pipes:
        rows.extend(receiver.recv())
    for child in children:
        child.join()
    if len(rows) != len(requests):
        raise SystemExit(f"the load generator lost answers: {len(rows)} of {len(requests)}")
    rows.sort()
    return LoadResult(
        latencies=[row[2] for row in rows],
        statuses=[row[3] for row in rows],
        ids=[row[4] for row in rows],
        started=min((row[1] for row in rows), default=0.0),
        ended=max((row[1] + row[2] for row in rows), default=0.0),
    )


# -- Arithmetic and printing --------------------------------------------------------------------


def percentile(samples: Iterable[float], fraction: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def per(count: float | None, requests: int) -> float | None:
    return None if count is None else count / max(1, requests)


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None or math.isnan(value) else format(value, spec)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


@dataclass
class Targets:
    """Each target beside its figure, PASS/FAIL (n/a when the figure could not be measured)."""

    issue: int = 13  # whose acceptance the targets are
    rows: list[tuple[str, str, bool | None]] = field(default_factory=list)

    def add(self, name: str, figure: str, ok: bool | None) -> None:
        self.rows.append((name, figure, ok))

    def print(self) -> None:
        print(f"\ntargets (issue {self.issue})")
        width = max((len(name) for name, _, _ in self.rows), default=10)
        for name, figure, ok in self.rows:
            print(f"  {name:<{width}}  {figure:>22}  {verdict(ok)}")

    @property
    def failed(self) -> bool:
        return any(ok is False for _, _, ok in self.rows)


def temporary_directory(prefix: str) -> Any:
    """A temporary directory; kept (for the servers' logs) when SCIM_BENCH_KEEP is set."""
    if os.environ.get("SCIM_BENCH_KEEP"):
        path = tempfile.mkdtemp(prefix=prefix)
        print(f"(keeping {path})", file=sys.stderr)
        return contextlib.nullcontext(path)
    return tempfile.TemporaryDirectory(prefix=prefix)


# -- Entra's shapes -----------------------------------------------------------------------------

USER_SCHEMAS = [
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
]
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def entra_user(user_name: str, external_id: str) -> dict[str, Any]:
    """A POST /Users body as Entra sends it (entra.md §1.4)."""
    given, _, family = user_name.partition("@")[0].partition(".")
    return {
        "schemas": USER_SCHEMAS,
        "externalId": external_id,
        "userName": user_name,
        "active": True,
        "displayName": f"{given} {family}".strip(),
        "emails": [{"primary": True, "type": "work", "value": user_name.lower()}],
        "meta": {"resourceType": "User"},
        "name": {
            "formatted": f"{given} {family}".strip(),
            "familyName": family,
            "givenName": given,
        },
        "roles": [],
        USER_SCHEMAS[1]: {"department": "Engineering"},
    }


def entra_group(display_name: str, external_id: str) -> dict[str, Any]:
    """A POST /Groups body as Entra sends it: created with no members (entra.md §1.8)."""
    return {
        "schemas": [GROUP_SCHEMA],
        "externalId": external_id,
        "displayName": display_name,
        "members": [],
    }


def add_members(user_ids: Sequence[str]) -> dict[str, Any]:
    """Entra's PATCH /Groups/{id} adding members, in its default dialect (entra.md §1.8)."""
    operation = {
        "op": "Add",
        "path": "members",
        "value": [{"$ref": None, "value": user_id} for user_id in user_ids],
    }
    return {"schemas": [PATCH_SCHEMA], "Operations": [operation]}


# -- One measured case --------------------------------------------------------------------------


@dataclass
class Case:
    """A batch of requests and what the bridge counted for it.

    ``inline_calls`` are the GitLab calls made while the requests were being answered (the window
    from the first request to the last answer), ``later_calls`` those made after it until the job
    queue was empty (the background worker's share). Transactions run to the empty queue too, and
    the idle bridge's own rate (the worker polling the queue) is taken out.
    """

    name: str
    load: LoadResult
    inline_calls: dict[str, float]
    later_calls: dict[str, float]
    write_tx: float | None
    read_tx: float | None
    gitlab_seconds: float
    drained: bool
    pending_after: float
    drain_seconds: float
    # The bridge's processes' CPU over the same window (to the empty queue); None off Linux.
    cpu_seconds: float | None = None

    @property
    def requests(self) -> int:
        return len(self.load.latencies)

    def calls_per_op(self, later: bool = False) -> float:
        return sum((self.later_calls if later else self.inline_calls).values()) / max(
            1, self.requests
        )


def measure(
    bridge: BridgeServer,
    idle: IdleRates,
    name: str,
    requests: Sequence[Request],
    *,
    clients: int,
    processes: int,
    capture_ids: bool = False,
    queue_timeout: float = 600.0,
    send: Callable[[Sequence[Request]], LoadResult] | None = None,
) -> Case:
    """``requests`` sent to the bridge, by ``send`` if given (e.g. in rounds), and what the
    bridge counted meanwhile."""
    before, cpu_before = bridge.metrics(), bridge.cpu_seconds()
    if send is not None:
        load = send(requests)
    else:
        load = run_load(bridge.port, bridge.headers, requests, clients, processes, capture_ids)
    during = bridge.metrics()
    drained, after = bridge.wait_queue_empty(queue_timeout)
    cpu_after = bridge.cpu_seconds()
    write_tx = read_tx = None
    if after.has(TRANSACTIONS) and idle.write is not None and idle.read is not None:
        write_tx = (
            after.total(TRANSACTIONS, mode="write")
            - before.total(TRANSACTIONS, mode="write")
            - idle.write * (after.at - before.at)
        )
        read_tx = (
            during.total(TRANSACTIONS, mode="read")
            - before.total(TRANSACTIONS, mode="read")
            - idle.read * (during.at - before.at)
        )
    return Case(
        name=name,
        load=load,
        inline_calls=delta(
            during.by_label(GITLAB_CALLS, "endpoint"), before.by_label(GITLAB_CALLS, "endpoint")
        ),
        later_calls=delta(
            after.by_label(GITLAB_CALLS, "endpoint"), during.by_label(GITLAB_CALLS, "endpoint")
        ),
        write_tx=write_tx,
        read_tx=read_tx,
        gitlab_seconds=after.total(GITLAB_SECONDS) - before.total(GITLAB_SECONDS),
        drained=drained,
        pending_after=during.total("scim_bridge_jobs_pending"),
        drain_seconds=after.at - during.at,
        cpu_seconds=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
    )
