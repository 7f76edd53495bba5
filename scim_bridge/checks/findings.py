"""What a check found: a level, a subject and a message that says what to do."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    OK = "OK"
    INFO = "INFO"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    """One line of the report. Only FAIL makes `check` fail; WARN is worth a look."""

    level: Level
    subject: str
    message: str


def problems(findings: Iterable[Finding]) -> int:
    return sum(1 for finding in findings if finding.level is Level.FAIL)
