"""One nominal fire time of a schedule, with what daylight saving did to it (every kind returns these)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class Occurrence:
    """One nominal fire time, in UTC.

    ``moved_from`` is the wall time a spring-forward gap moved it from (it fires at the jump);
    ``repeated_pass`` is 1 or 2 when a fall-back repeats its wall time that day and it fires
    on that pass (a wall-clock cron time: the first pass only, or both).
    """

    at: datetime
    moved_from: datetime | None = None
    repeated_pass: int | None = None


@dataclass(frozen=True)
class Skipped:
    """A day its rule names on which a schedule does not fire: what a preview says instead.

    ``reason`` is a short code (``dst_gap``: the wall time is not on the clock that day and
    the schedule skips such times; ``calendar``: an exclusion calendar's day); ``message`` says
    it in words; ``wall_time`` is the local wall time (no offset) when there is one.
    """

    day: date
    reason: str
    message: str
    wall_time: datetime | None = None
    at: datetime | None = None  # an occurrence that does not run (an exclusion calendar's day)
    calendar: str | None = None  # that calendar's id
