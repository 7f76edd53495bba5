"""A fake GitLab REST API v4 server for tests (python-gitlab speaks real HTTP to it)."""

from tests.gitlab_double.server import GitLabDouble

__all__ = ["GitLabDouble"]
