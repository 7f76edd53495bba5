"""GitLab's format rules for usernames, group paths and emails.

Messages are GitLab's own (`Gitlab::PathRegex.namespace_format_message`,
NamespacePathValidator, Devise's email check).
"""

from __future__ import annotations

import re

NAMESPACE_FORMAT_MESSAGE = (
    "can contain only letters, digits, '_', '-' and '.'. "
    "Cannot start with '-' or end in '.', '.git' or '.atom'."
)
_NAMESPACE_RE = re.compile(r"(?:[A-Za-z0-9_.][A-Za-z0-9_.-]*[A-Za-z0-9_-]|[A-Za-z0-9_])")
# Devise's `/\A[^@\s]+@[^@\s]+\z/`; Ruby's `\s` is ASCII whitespace only.
_EMAIL_RE = re.compile(r"[^@ \t\r\n\f\v]+@[^@ \t\r\n\f\v]+")

# Gitlab::PathRegex::TOP_LEVEL_ROUTES (abridged): a user namespace or top-level group
# may not take these paths.
RESERVED_NAMES = frozenset(
    {
        "-",
        ".well-known",
        "404.html",
        "422.html",
        "500.html",
        "502.html",
        "503.html",
        "admin",
        "api",
        "assets",
        "dashboard",
        "deploy.html",
        "explore",
        "favicon.ico",
        "files",
        "groups",
        "health_check",
        "help",
        "import",
        "jwt",
        "login",
        "oauth",
        "profile",
        "projects",
        "public",
        "robots.txt",
        "s",
        "search",
        "sitemap",
        "snippets",
        "unsubscribes",
        "uploads",
        "users",
        "v2",
    }
)

MAX_PATH_LENGTH = 255


def namespace_path_errors(path: str, *, top_level: bool = True) -> list[str]:
    """Errors for a username or group path, as GitLab words them."""
    errors: list[str] = []
    if not path:
        return ["can't be blank"]
    if len(path) > MAX_PATH_LENGTH:
        errors.append(f"is too long (maximum is {MAX_PATH_LENGTH} characters)")
    if not _NAMESPACE_RE.fullmatch(path) or path.endswith((".git", ".atom")):
        errors.append(NAMESPACE_FORMAT_MESSAGE)
    if top_level and path.lower() in RESERVED_NAMES:
        errors.append(f"{path} is a reserved name")
    return errors


def email_is_valid(email: str) -> bool:
    """Devise's `email_regexp`: something@something, no whitespace."""
    return bool(_EMAIL_RE.fullmatch(email))
