"""The HTTP side: one python-gitlab client per thread, and a CallRecord for every request.

`requests.Session` is not thread-safe (gitlab.md §2.5), so each thread gets its own client; the
threads share nothing else here but the :class:`Gate`, whose lock is held only to read or move a
time. python-gitlab never retries or sleeps here (no 429 or transient retries, gitlab.md §2.2):
the bridge's worker owns retries and backoff.

A 429 (or a 5xx with ``Retry-After``) means GitLab wants the bridge, not one call, to slow down:
the transport's :class:`Gate` then holds every later call of every thread until the pause ends.
A call that would have to wait past its deadline (:func:`deadline`, an inline request's; else
``MAX_HOLD_SECONDS``) is not sent, and fails with the same TransientError the 429 gave, so its
job is retried once the pause is over.

An operator's report has no job to retry later: its reads, made under :func:`patient`, wait out
the pauses and are sent again after a 429, a 5xx, a timeout or a dropped connection, within the
time it was given. Only reads: a write GitLab may have applied is the reconciler's to check.
"""

from __future__ import annotations

import contextvars
import hmac
import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from typing import TypeVar
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit

import gitlab
import requests

from scim_bridge.gitlab.endpoints import Request
from scim_bridge.gitlab.errors import GitLabError
from scim_bridge.gitlab.errors import TransientError
from scim_bridge.gitlab.translate import TRANSLATED
from scim_bridge.gitlab.translate import retry_after
from scim_bridge.gitlab.translate import translate
from scim_bridge.gitlab.types import CallRecord

T = TypeVar("T")
OnCall = Callable[[CallRecord], None]
# The token to send, asked before every call: a rotation elsewhere may have replaced it.
TokenSource = Callable[[], str]
log = logging.getLogger(__name__)

PER_PAGE = 100  # GitLab's maximum (gitlab.md §1.11)
# Query parameters that could carry a credential; never put into a CallRecord.
SECRET_PARAMS = frozenset({"private_token", "access_token", "job_token", "token", "password"})
# A 429 without Retry-After pauses this long, doubling while GitLab keeps answering 429, up to MAX.
DEFAULT_PAUSE_SECONDS = 1.0
MAX_DEFAULT_PAUSE_SECONDS = 60.0
# The longest a call without a deadline (the worker's) waits for a pause; a longer pause fails
# the call at once, and the job comes back when the pause is over, its thread free meanwhile.
MAX_HOLD_SECONDS = 10.0

# Reads made under :func:`patient` are sent again after these answers (and after no answer),
# waiting GitLab's pause, else READ_RETRY_BASE_SECONDS doubling up to READ_RETRY_MAX_SECONDS.
RETRIED_READ_STATUSES = frozenset({429, 500, 502, 503, 504})
READ_RETRY_BASE_SECONDS = 0.5
READ_RETRY_MAX_SECONDS = 30.0

# How long each read of this context may wait and retry; None: it fails at once.
_patience: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "scim_bridge_gitlab_patience", default=None
)

# Until when (time.monotonic()) the calls of this context may wait for a pause; None: no deadline.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "scim_bridge_gitlab_deadline", default=None
)


@contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Calls made in this block wait for a pause only until ``at`` (``time.monotonic()``)."""
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextmanager
def patient(seconds: float) -> Iterator[None]:
    """Each read (GET) made in this block waits out GitLab's pauses, and is sent again after a
    429, a 5xx, a timeout or a dropped connection, for up to ``seconds``; then its last failure
    stands. For a report an operator runs: it keeps no Entra deadline, and one refused page
    would otherwise end it."""
    token = _patience.set(seconds)
    try:
        yield
    finally:
        _patience.reset(token)


def _read_backoff(attempt: int) -> float:
    return float(min(READ_RETRY_BASE_SECONDS * 2**attempt, READ_RETRY_MAX_SECONDS))


class Gate:
    """GitLab's "slow down", kept for every thread of the process that calls that GitLab.

    After :meth:`pause`, :meth:`wait` holds each call until the pause ends, or fails it at once
    with a TransientError (status 429, ``retry_after`` the time left) when the pause lasts past
    the call's deadline: nothing reaches GitLab while it asked for quiet.
    """

    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_hold: float = MAX_HOLD_SECONDS,
    ) -> None:
        self._monotonic = monotonic
        self._sleep = sleep
        self.max_hold = max_hold
        self._until = 0.0
        self._unannounced = 0  # 429s in a row without Retry-After
        self._lock = threading.Lock()

    def pause(self, seconds: float | None) -> float:
        """GitLab answered 429 (``seconds``: its Retry-After, if any); returns the pause's length."""
        with self._lock:
            if seconds is None or seconds <= 0:
                seconds = min(
                    DEFAULT_PAUSE_SECONDS * 2**self._unannounced, MAX_DEFAULT_PAUSE_SECONDS
                )
                self._unannounced += 1
            self._until = max(self._until, self._monotonic() + seconds)
            return seconds

    def answered(self) -> None:
        """GitLab answered without asking for a pause: the next unannounced 429 starts short."""
        with self._lock:
            self._unannounced = 0

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._until - self._monotonic())

    def wait(self, deadline: float | None = None, *, patience: float | None = None) -> None:
        """Return when a call may go; raise TransientError if that is after ``deadline``, or
        after ``patience`` (a monotonic time) when it is given instead of the longest hold."""
        give_up = self._monotonic() + self.max_hold if patience is None else patience
        if deadline is not None:
            give_up = min(give_up, deadline)
        while True:
            with self._lock:
                until = self._until
            left = until - self._monotonic()
            if left <= 0:
                return
            if until > give_up:
                raise TransientError(
                    f"GitLab asked the bridge to wait: {left:.1f} s of its pause left",
                    429,
                    retry_after=left,
                )
            self._sleep(left)


class _NoRetryGitlab(gitlab.Gitlab):
    """python-gitlab with its own 429/5xx retries (which sleep in the caller) switched off."""

    def http_request(self, verb: str, path: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["obey_rate_limit"] = False
        kwargs["retry_transient_errors"] = False
        return super().http_request(verb, path, *args, **kwargs)


class _RecordingSession(requests.Session):
    """Reports every request it sends, keeps the last answer for its headers, and passes each
    request through the gate: held during GitLab's pauses, closing it on a 429."""

    def __init__(
        self, report: Callable[[str, str, int | None, str, float], None], gate: Gate
    ) -> None:
        super().__init__()
        self._report = report
        self._gate = gate
        self.last_response: requests.Response | None = None
        self._environment: dict[tuple[str, str, object, object, object], dict[str, Any]] = {}

    def merge_environment_settings(
        self,
        url: str,
        proxies: Any,
        stream: Any,
        verify: Any,
        cert: Any,
    ) -> dict[str, Any]:
        """requests' own answer, worked out once per GitLab origin instead of on every call.

        requests reads the proxy variables (``HTTPS_PROXY``, ``NO_PROXY``) and the CA bundle
        (``REQUESTS_CA_BUNDLE``) from the environment on every call, walking all of ``os.environ``
        twice; the environment does not change while the bridge runs, and every call goes to
        the one GitLab. Only the plain case is kept (no per-call proxies, a hashable verify and
        cert): any other call asks requests afresh.
        """
        if proxies or not _hashable(verify) or not _hashable(cert):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        settings = self._environment.get(key)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = settings
        return {**settings, "proxies": dict(settings["proxies"])}

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        verb = method.decode() if isinstance(method, bytes) else method
        seconds = _patience.get() if verb.upper() == "GET" else None
        patience = None if seconds is None else time.monotonic() + seconds
        attempt = 0
        while True:
            try:
                response = self._send(verb, url, patience, *args, **kwargs)
            except (requests.Timeout, requests.ConnectionError):
                if not self._again(patience, attempt, "no answer"):
                    raise
            else:
                status = response.status_code
                if status not in RETRIED_READ_STATUSES or not self._again(
                    patience, attempt, str(status)
                ):
                    return response
            attempt += 1

    def _again(self, patience: float | None, attempt: int, what: str) -> bool:
        """Whether a patient read is sent again, after waiting for it here: GitLab's pause if it
        asked for one, else a backoff; not if that would end past ``patience``."""
        if patience is None:
            return False
        wait = max(self._gate.remaining(), _read_backoff(attempt))
        if time.monotonic() + wait > patience:
            return False
        log.warning("GitLab read failed (%s): sending it again in %.1f s", what, wait)
        time.sleep(wait)
        return True

    def _send(
        self, verb: str, url: str | bytes, patience: float | None, *args: Any, **kwargs: Any
    ) -> requests.Response:
        self.last_response = None
        self._gate.wait(_deadline.get(), patience=patience)
        started = time.perf_counter()
        try:
            response = super().request(verb, url, *args, **kwargs)
        except (requests.Timeout, requests.ConnectionError) as exc:
            outcome = "timeout" if isinstance(exc, requests.Timeout) else "connection-error"
            target = requests.Request(verb, url, params=kwargs.get("params")).prepare().url
            self._report(verb, target or str(url), None, outcome, started)
            raise
        self.last_response = response
        self._note_pause(response)
        ok = 200 <= response.status_code < 300
        outcome = "ok" if ok else f"error:{response.status_code}"
        self._report(verb, response.request.url or str(url), response.status_code, outcome, started)
        return response

    def _note_pause(self, response: requests.Response) -> None:
        status = response.status_code
        asked = retry_after(response.headers) if status == 429 or status >= 500 else None
        if status == 429 or asked:
            seconds = self._gate.pause(asked)
            log.warning("GitLab answered %d: every call to it waits %.1f s", status, seconds)
        else:
            self._gate.answered()


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


class Transport:
    """Runs an action with the calling thread's client and translates what it raises.

    The token is asked for before every call; a thread whose client was made with another token
    gets a new client, so no call goes out with a token the source has replaced.
    """

    def __init__(
        self,
        url: str,
        token: str | TokenSource,
        *,
        timeout: float,
        on_call: OnCall | None,
        gate: Gate | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._token: TokenSource = token if callable(token) else (lambda: token)
        self._on_call = on_call
        # One per GitLab per process: the bridge builds one GitLab client, shared by its threads.
        self.gate = gate or Gate()
        self._local = threading.local()
        self._api_prefix = urlsplit(self.url).path.rstrip("/") + "/api/v4"

    def call(self, action: Callable[[gitlab.Gitlab], T]) -> T:
        """`action(client)`; python-gitlab and requests errors come out as GitLabErrors."""
        client = self.client()
        try:
            return action(client)
        except TRANSLATED as exc:
            session: _RecordingSession = self._local.session
            raise translate(exc, session.last_response) from exc

    def send(self, request: Request) -> Any:
        """Make one call: its parsed JSON answer (a `requests.Response` for a DELETE)."""
        return self.call(lambda gl: _http(gl, request))

    def rows(self, request: Request, *, get_all: bool) -> list[dict[str, Any]]:
        """A list call: all pages (`get_all`) or only the first."""
        return self.call(
            lambda gl: list_rows(gl, request.path, dict(request.query), get_all=get_all)
        )

    def client(self) -> gitlab.Gitlab:
        token = self._current_token()
        client = getattr(self._local, "client", None)
        if client is not None and not hmac.compare_digest(self._local.token, token):
            self.close()  # replaced (rotated): this thread's client must not send the old one
            client = None
        if client is None:
            session = _RecordingSession(self._report, self.gate)
            client = _NoRetryGitlab(
                self.url,
                private_token=token,
                timeout=self.timeout,
                retry_transient_errors=False,
                keep_base_url=True,
                session=session,
            )
            self._local.client = client
            self._local.session = session
            self._local.token = token
        return client

    def _current_token(self) -> str:
        try:
            return self._token()
        except GitLabError:
            raise
        except Exception as error:  # the token's store cannot be read: nothing is sent
            raise TransientError(f"cannot read the GitLab token: {error}") from error

    def close(self) -> None:
        """Close this thread's session (other threads keep theirs)."""
        client = getattr(self._local, "client", None)
        if client is not None:
            client.session.close()
            del self._local.client
            del self._local.session
            del self._local.token

    def _report(
        self, method: str, url: str, status: int | None, outcome: str, started: float
    ) -> None:
        if self._on_call is None:
            return
        record = CallRecord(
            method=method.upper(),
            path=self._audit_path(url),
            status=status,
            outcome=outcome,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            planned=False,
        )
        try:
            self._on_call(record)
        except Exception:
            # The GitLab call already happened; failing it now would make the caller
            # repeat a write that succeeded. The audit sink's fault is logged instead.
            log.exception("on_call failed for %s %s", record.method, record.path)

    def _audit_path(self, url: str) -> str:
        """Path relative to /api/v4, with its query minus credential-like parameters."""
        parts = urlsplit(url)
        path = parts.path
        if path.startswith(self._api_prefix):
            path = path[len(self._api_prefix) :] or "/"
        query = [(k, v) for k, v in parse_qsl(parts.query) if k.lower() not in SECRET_PARAMS]
        text = f"{path}?{urlencode(query, safe='[]@,')}" if query else path
        token = getattr(self._local, "token", "")
        return text.replace(token, "[redacted]") if token else text


def as_dict(data: Any) -> dict[str, Any]:
    """A JSON object answer; anything else means GitLab (or a proxy) answered oddly."""
    if not isinstance(data, dict):
        raise GitLabError(f"unexpected answer from GitLab: {type(data).__name__}")
    return data


def _http(gl: gitlab.Gitlab, request: Request) -> Any:
    query = dict(request.query)
    if request.method == "GET":
        return gl.http_get(request.path, query_data=query)
    if request.method == "POST":
        return gl.http_post(request.path, query_data=query, post_data=request.body)
    if request.method == "PUT":
        return gl.http_put(request.path, query_data=query, post_data=request.body)
    return gl.http_delete(request.path, query_data=query)


def list_rows(
    gl: gitlab.Gitlab, path: str, query: dict[str, Any], *, get_all: bool
) -> list[dict[str, Any]]:
    """All pages (`get_all`, following `Link: rel="next"`) or only the first; 100 per page."""
    rows = gl.http_list(path, query_data={**query, "per_page": PER_PAGE}, get_all=get_all)
    return [dict(row) for row in rows]
