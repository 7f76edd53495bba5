"""The errors every GitLab call raises; nothing of python-gitlab or requests leaks past them.

Callers branch on the class: `TransientError` and `AuthenticationError` mean "try again later"
(the latter also means "alert: the token is wrong"), the others are GitLab's final word.
"""

from __future__ import annotations

from typing import Literal

ConflictField = Literal["email", "username"]


class GitLabError(Exception):
    """Base class. `status` is GitLab's HTTP status (None when no answer came back)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.status is not None else self.message


class TransientError(GitLabError):
    """5xx, 429, timeouts, refused connections: retry later, not before `retry_after` seconds."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class ConflictError(GitLabError):
    """409. `field` says which uniqueness GitLab enforced ("Email has already been taken")."""

    def __init__(self, message: str, status: int | None = 409) -> None:
        super().__init__(message, status)
        self.field: ConflictField | None = conflict_field(message)


class InvalidError(GitLabError):
    """400 (or 422): GitLab refused the values. `errors` holds `{"message": {field: [...]}}`."""

    def __init__(
        self, message: str, status: int | None = 400, errors: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(message, status)
        self.errors: dict[str, list[str]] = errors or {}


class NotFoundError(GitLabError):
    """404: the user, group, member or identity does not exist (any more)."""


class ForbiddenError(GitLabError):
    """403 (or 405) on an action, e.g. "LDAP blocked users cannot be modified by the API"."""


class AuthenticationError(GitLabError):
    """401: the token is missing, wrong, expired or revoked. A configuration problem."""


def conflict_field(message: str) -> ConflictField | None:
    """GitLab's two uniqueness conflicts on users (gitlab.md §1.2, §1.3)."""
    lowered = message.lower()
    if lowered.startswith("email has already been taken"):
        return "email"
    if lowered.startswith("username has already been taken"):
        return "username"
    return None


def group_missing(error: NotFoundError) -> bool:
    """GitLab's `404 Group Not Found`, as opposed to a missing user or member of the group."""
    return "group" in error.message.lower()


def identity_taken(error: InvalidError) -> bool:
    """`POST /users` refused because another account holds the (provider, extern_uid) identity:
    GitLab validates the identity it builds with the user and, when the email and username are
    free, answers 400 `{"message": {"identities.extern_uid": ["has already been taken"]}}`."""
    return any(field.split(".")[0] == "identities" for field in error.errors)
