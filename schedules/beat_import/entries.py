"""A celery beat entry as read from either source: what ``translate`` works from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Interval:
    seconds: float


@dataclass(frozen=True)
class Crontab:
    minute: str
    hour: str
    day_of_month: str
    month_of_year: str
    day_of_week: str
    timezone: str


@dataclass(frozen=True)
class Clocked:
    at: datetime


@dataclass(frozen=True)
class Solar:
    event: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Unreadable:
    """A schedule the source holds but we cannot read (none set, a custom schedule class...)."""

    why: str


Timing = Interval | Crontab | Clocked | Solar | Unreadable


@dataclass(frozen=True)
class BeatEntry:
    """One periodic task of celery beat: its name, task, arguments, options and timing."""

    name: str
    task: str
    timing: Timing
    args: Any = field(default_factory=list)  # as read: may be malformed (text that is not JSON)
    kwargs: Any = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # queue, exchange, routing_key, priority, headers, expires
    enabled: bool = True
    one_off: bool = False
    start_time: datetime | None = None
    expires: datetime | None = None  # no run after this time
    last_run_at: datetime | None = None
    description: str = ""
