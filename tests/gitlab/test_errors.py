"""Every GitLab answer maps to one of the module's errors, with what callers need from it."""

from __future__ import annotations

import email.utils
import socket
import time

import pytest
import requests
from gitlab.exceptions import GitlabCreateError
from gitlab.exceptions import GitlabHttpError

from scim_bridge.gitlab.client import GitLab
from scim_bridge.gitlab.errors import AuthenticationError
from scim_bridge.gitlab.errors import ConflictError
from scim_bridge.gitlab.errors import ForbiddenError
from scim_bridge.gitlab.errors import GitLabError
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.errors import TransientError
from scim_bridge.gitlab.translate import readable
from scim_bridge.gitlab.translate import retry_after
from scim_bridge.gitlab.translate import translate
from scim_bridge.gitlab.types import CallRecord
from tests.gitlab.conftest import PROVIDER
from tests.gitlab.conftest import TOKEN
from tests.gitlab_double import GitLabDouble


def create(client: GitLab, username: str, email: str) -> None:
    client.users.create(
        username=username, email=email, name=username, provider=PROVIDER, extern_uid=username
    )


def test_409_says_which_field(client: GitLab, double: GitLabDouble) -> None:
    double.add_user("taken", "taken@example.com")
    with pytest.raises(ConflictError) as email:
        create(client, "taken", "TAKEN@example.com")  # both taken: email wins
    assert (email.value.status, email.value.field) == (409, "email")
    assert email.value.message == "Email has already been taken"
    with pytest.raises(ConflictError) as username:
        create(client, "Taken", "new@example.com")
    assert (username.value.status, username.value.field) == (409, "username")


def test_400_keeps_field_errors_and_a_readable_message(
    client: GitLab, double: GitLabDouble
) -> None:
    double.add_group("acme")
    with pytest.raises(InvalidError) as info:
        create(client, "acme", "bad email")
    assert info.value.status == 400
    assert info.value.errors == {
        "email": ["is invalid"],
        "username": ["has already been taken"],
    }
    assert info.value.message == "email: is invalid; username: has already been taken"


def test_404_403_401(client: GitLab, double: GitLabDouble) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.users.get(999)
    assert (missing.value.status, missing.value.message) == (404, "404 User Not Found")

    user = double.add_user("plain", "plain@example.com")
    double.add_token("glpat-plain", user["id"])
    with pytest.raises(ForbiddenError) as denied:
        GitLab(double.url, "glpat-plain").users.block(user["id"])
    assert (denied.value.status, denied.value.message) == (403, "403 Forbidden")

    with pytest.raises(AuthenticationError) as bad:
        GitLab(double.url, "glpat-wrong").current_user()
    assert (bad.value.status, bad.value.message) == (401, "401 Unauthorized")
    assert isinstance(bad.value, GitLabError) and not isinstance(bad.value, TransientError)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_transient_and_not_retried(
    client: GitLab, double: GitLabDouble, status: int
) -> None:
    double.faults.add(status=status)
    with pytest.raises(TransientError) as info:
        client.users.get(1)
    assert (info.value.status, info.value.retry_after) == (status, None)
    assert len(double.requests) == 1  # python-gitlab did not retry behind our back


def test_429_is_transient_with_retry_after(client: GitLab, double: GitLabDouble) -> None:
    double.faults.add(status=429, retry_after=7)
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        client.users.find_by_username("x")
    assert (info.value.status, info.value.retry_after) == (429, 7.0)
    assert info.value.message == "Retry later"
    assert len(double.requests) == 1 and time.monotonic() - started < 1


def test_503_with_retry_after(client: GitLab, double: GitLabDouble) -> None:
    double.down(status=503, retry_after=30)
    with pytest.raises(TransientError) as info:
        client.metadata()
    assert info.value.retry_after == 30.0


def test_timeout_is_transient_and_quick(double: GitLabDouble, records: list[CallRecord]) -> None:
    double.faults.add(latency=2.0)
    client = GitLab(double.url, TOKEN, timeout=0.2, on_call=records.append)
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        client.users.get(1)
    assert time.monotonic() - started < 1.5
    assert info.value.status is None and "timeout" in info.value.message
    assert [(r.outcome, r.status) for r in records] == [("timeout", None)]


def test_connection_refused_is_transient(records: list[CallRecord]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = GitLab(f"http://127.0.0.1:{port}", TOKEN, timeout=1.0, on_call=records.append)
    with pytest.raises(TransientError):
        client.current_user()
    assert [(r.method, r.path, r.outcome) for r in records] == [
        ("GET", "/user", "connection-error")
    ]


def test_call_records_and_errors_never_show_the_token(
    double: GitLabDouble, client: GitLab, records: list[CallRecord]
) -> None:
    double.add_user("taken", "taken@example.com")
    failures: list[GitLabError] = []
    for action in (
        lambda: create(client, "taken", "taken@example.com"),
        lambda: client.users.get(999),
        lambda: GitLab(double.url, "glpat-wrong").current_user(),
    ):
        with pytest.raises(GitLabError) as info:
            action()
        failures.append(info.value)
    client.users.find_by_username("taken")
    texts = [repr(r) for r in records] + [f"{f} {f!r} {f.message}" for f in failures]
    assert records and all(TOKEN not in text for text in texts)
    assert TOKEN not in repr(client)


def test_call_records_describe_each_call(client: GitLab, records: list[CallRecord]) -> None:
    client.users.find_by_username("nobody")
    with pytest.raises(NotFoundError):
        client.users.get(999)
    (lookup, missing) = records
    assert (lookup.method, lookup.path, lookup.status, lookup.outcome) == (
        "GET",
        "/users?username=nobody&per_page=100",
        200,
        "ok",
    )
    assert (missing.method, missing.path, missing.status, missing.outcome) == (
        "GET",
        "/users/999",
        404,
        "error:404",
    )
    assert not lookup.planned and lookup.duration_ms > 0


def test_a_failing_on_call_does_not_fail_the_call(double: GitLabDouble) -> None:
    def broken(record: CallRecord) -> None:
        raise RuntimeError("audit sink down")

    assert GitLab(double.url, TOKEN, on_call=broken).current_user().username == "root"


# -- the translation itself ---------------------------------------------------------------


def test_translate_python_gitlab_operation_errors() -> None:
    """GitlabCreateError is not a GitlabHttpError (gitlab.md §2.4); it maps all the same."""
    error = GitlabCreateError("Username has already been taken", 409)
    assert not isinstance(error, GitlabHttpError)
    mapped = translate(error)
    assert isinstance(mapped, ConflictError) and mapped.field == "username"
    assert isinstance(translate(GitlabHttpError("Method Not Allowed", 405)), ForbiddenError)
    assert type(translate(GitlabHttpError("teapot", 418))) is GitLabError
    assert isinstance(translate(requests.ReadTimeout()), TransientError)


def test_readable_messages() -> None:
    assert readable(b" Retry later\n") == ("Retry later", {})
    assert readable({"error": "This endpoint has been requested too many times."}) == (
        "This endpoint has been requested too many times.",
        {},
    )
    assert readable({"username": ["a", "b"], "email": "c"}) == (
        "username: a, b; email: c",
        {"username": ["a", "b"], "email": ["c"]},
    )
    assert readable(None) == ("", {})


def test_retry_after_forms() -> None:
    assert retry_after({"Retry-After": "12"}) == 12.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after({"Retry-After": later}) or 0) <= 31
    assert 8 <= (retry_after({"RateLimit-Reset": str(int(time.time()) + 10)}) or 0) <= 10
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None
