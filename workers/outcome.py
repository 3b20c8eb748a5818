"""How one attempt went (an Outcome and its statuses), with its output and error kept bounded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

DEFAULT_OUTPUT_CHARS = 4000

# Succeeded, failed, timed out: the values of jobs.models.Run.Status these outcomes take;
# running: handed off (a Celery task), its outcome recorded when it comes.
SUCCEEDED, FAILED, TIMED_OUT, RUNNING = "succeeded", "failed", "timed_out", "running"


@dataclass(frozen=True)
class Outcome:
    """How one attempt went: a Run status, an output excerpt and an error message (bounded);
    for python targets the Task's return value (JSON) and, when it raised, the exception's class;
    for celery targets the id of the task it was handed off as (status ``running`` while its
    outcome is awaited)."""

    status: str
    output: str = ""
    error: str = ""
    duration: float = 0.0
    value: Any = None
    error_class: str = ""
    external_id: str = ""

    @property
    def ok(self) -> bool:
        return self.status == SUCCEEDED


def output_chars() -> int:
    return int(getattr(settings, "JOBSCHEDULER_RUN_OUTPUT_CHARS", DEFAULT_OUTPUT_CHARS))


def excerpt(text: str, limit: int) -> str:
    """The start of ``text``, at most ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    note = f"\n... ({len(text) - limit} more characters)"
    return text[: max(0, limit - len(note))] + note


def tail_excerpt(text: str, limit: int) -> str:
    """The end of ``text`` (a traceback's last lines say the most), at most ``limit`` characters."""
    if len(text) <= limit:
        return text
    note = f"({len(text) - limit} characters before) ...\n"
    return note + text[len(text) - max(0, limit - len(note)) :]
