"""GitLab's error answers, as the double sends them.

Shapes follow gitlab.md §1.13: `{"message": "404 User Not Found"}` for lookups,
`{"message": {"field": ["..."]}}` for model validation, and Grape's own
`{"error": "email is missing"}` for parameter validation.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error answer: status, the exact body GitLab sends, and extra headers."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body!r}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def unauthorized() -> ApiError:
    """Missing or unknown token: GitLab answers 401 `{"message":"401 Unauthorized"}`."""
    return ApiError(401, {"message": "401 Unauthorized"})


def forbidden(reason: str | None = None) -> ApiError:
    """`forbidden!(reason)` renders `{"message":"403 Forbidden - <reason>"}`."""
    message = f"403 Forbidden - {reason}" if reason else "403 Forbidden"
    return ApiError(403, {"message": message})


def refused(message: str, status: int = 403) -> ApiError:
    """A service's error via `render_api_error!(result[:message], ...)`: the bare message."""
    return ApiError(status, {"message": message})


def not_found(what: str) -> ApiError:
    """`not_found!('User')` renders `{"message":"404 User Not Found"}`."""
    return ApiError(404, {"message": f"404 {what} Not Found"})


def conflict(message: str) -> ApiError:
    """`conflict!(message)`: 409 with the message as text."""
    return ApiError(409, {"message": message})


def invalid(errors: dict[str, list[str]]) -> ApiError:
    """`render_validation_error!`: 400 with the model's errors keyed by attribute."""
    return ApiError(400, {"message": errors})


def bad_params(*errors: str) -> ApiError:
    """Grape parameter validation: 400 `{"error": "a is missing, b is missing"}`."""
    return ApiError(400, {"error": ", ".join(errors)})
