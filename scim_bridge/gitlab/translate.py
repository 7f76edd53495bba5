"""One place that turns python-gitlab and requests exceptions into this module's errors.

python-gitlab's manager errors (`GitlabCreateError`, `GitlabBlockError`, ...) are not
`GitlabHttpError`s, so everything is caught as `GitlabError` and sorted by `response_code`
(gitlab.md §2.4). Its exceptions keep no headers: `Retry-After` is read from the response the
thread's session saw last.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import requests
from gitlab.exceptions import GitlabAuthenticationError
from gitlab.exceptions import GitlabError as PythonGitlabError

from scim_bridge.gitlab.errors import AuthenticationError
from scim_bridge.gitlab.errors import ConflictError
from scim_bridge.gitlab.errors import ForbiddenError
from scim_bridge.gitlab.errors import GitLabError
from scim_bridge.gitlab.errors import InvalidError
from scim_bridge.gitlab.errors import NotFoundError
from scim_bridge.gitlab.errors import TransientError

TRANSLATED = (PythonGitlabError, requests.RequestException)


def translate(exc: BaseException, response: requests.Response | None = None) -> GitLabError:
    """The GitLabError for `exc`; `response` is the last HTTP answer (for its headers)."""
    if isinstance(exc, requests.Timeout):
        return TransientError("GitLab did not answer in time (timeout)")
    if isinstance(exc, requests.ConnectionError):
        return TransientError(f"cannot reach GitLab ({type(exc).__name__})")
    if isinstance(exc, requests.RequestException):
        return TransientError(f"HTTP failure talking to GitLab ({type(exc).__name__})")
    if not isinstance(exc, PythonGitlabError):
        return GitLabError(f"unexpected failure ({type(exc).__name__})")

    status = exc.response_code
    message, errors = readable(exc.error_message)
    if isinstance(exc, GitlabAuthenticationError) or status == 401:
        return AuthenticationError(message or "401 Unauthorized", 401)
    if status is not None and (status == 429 or status == 408 or status >= 500):
        headers = (
            response.headers if response is not None and response.status_code == status else {}
        )
        return TransientError(message, status, retry_after=retry_after(headers))
    if status == 409:
        return ConflictError(message, status)
    if status in (400, 422):
        return InvalidError(message, status, errors)
    if status == 404:
        return NotFoundError(message, status)
    if status in (403, 405):
        return ForbiddenError(message, status)
    return GitLabError(message, status)


def readable(error_message: Any) -> tuple[str, dict[str, list[str]]]:
    """GitLab's `message` as text, plus the field errors when it is `{field: [...]}`.

    python-gitlab gives the JSON `message`/`error` value (a str or a dict) or the raw body
    bytes (e.g. Rack::Attack's plain-text `Retry later`).
    """
    if isinstance(error_message, bytes):
        return error_message.decode("utf-8", "replace").strip(), {}
    if isinstance(error_message, Mapping):
        errors = {
            str(field): [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])]
            for field, msgs in error_message.items()
        }
        if list(errors) == ["error"]:
            return "; ".join(errors["error"]), {}
        return "; ".join(f"{f}: {', '.join(m)}" for f, m in errors.items()), errors
    if isinstance(error_message, list):
        return "; ".join(str(m) for m in error_message), {}
    return ("" if error_message is None else str(error_message)), {}


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait: `Retry-After` (seconds or HTTP date), else `RateLimit-Reset` (epoch)."""
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            return max(0.0, parsed.timestamp() - time.time())
    reset = headers.get("RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None
    return None
