"""One small object per schedule kind: validate its fields, describe it, compute next times.

Adding a kind means adding one class here and listing it in ``KINDS``; nothing else in the
code base switches on the kind. Every time in and out of these objects is an aware
datetime; occurrences are returned in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

MIN_INTERVAL_SECONDS = 1
# Cron macros accepted (Debian cron's, without @reboot, which has no time).
CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# The longest wall-clock shift a zone makes at once (historic double summer time); bounds
# how far apart in wall time two candidates can be and still swap order in real time.
_MAX_SHIFT = timedelta(hours=3)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Occurrence:
    """One nominal fire time. ``moved_from`` is the wall time a DST gap moved it from."""

    at: datetime
    moved_from: datetime | None = None


class ScheduleFields(Protocol):
    """The schedule attributes kinds read; a saved or unsaved ``Schedule`` provides them."""

    interval_seconds: int | None
    anchor: datetime | None
    expression: str
    timezone: str


class ScheduleKind(Protocol):
    name: str
    label: str

    def clean(self, schedule: ScheduleFields) -> dict[str, str]:
        """Return a message per invalid field (empty when valid)."""

    def next_after(self, schedule: ScheduleFields, after: datetime) -> Occurrence | None:
        """The first occurrence strictly after ``after``, or None if there is none."""

    def describe(self, schedule: ScheduleFields) -> str:
        """A sentence a person can read."""


def to_epoch_ms(moment: datetime) -> int:
    """Whole milliseconds since the epoch, exact (no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_epoch_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; raises ValueError for names that are not zones."""
    if name not in _zone_names():
        raise ValueError(f"Unknown time zone {name!r}; use an IANA name such as 'Europe/Paris'.")
    return ZoneInfo(name)


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def _clean_timezone(schedule: ScheduleFields) -> dict[str, str]:
    try:
        zone(schedule.timezone or "UTC")
    except (ValueError, ZoneInfoNotFoundError) as error:
        return {"timezone": str(error)}
    return {}


class FixedKind:
    """Every ``interval_seconds`` on the grid ``anchor + k * interval``: no drift, ever."""

    name = "fixed"
    label = "Fixed interval"

    def clean(self, schedule: ScheduleFields) -> dict[str, str]:
        interval = schedule.interval_seconds
        if interval is None:
            return {"interval_seconds": "A fixed schedule needs interval_seconds."}
        if interval < MIN_INTERVAL_SECONDS:
            return {"interval_seconds": f"Must be at least {MIN_INTERVAL_SECONDS} second."}
        if schedule.anchor is None:
            return {"anchor": "A fixed schedule needs an anchor (it defaults to its start)."}
        return _clean_timezone(schedule)

    def next_after(self, schedule: ScheduleFields, after: datetime) -> Occurrence | None:
        assert schedule.anchor is not None and schedule.interval_seconds
        anchor_ms = to_epoch_ms(schedule.anchor)
        step_ms = schedule.interval_seconds * 1000
        after_ms = to_epoch_ms(after)
        if after_ms < anchor_ms:
            return Occurrence(from_epoch_ms(anchor_ms))
        steps = (after_ms - anchor_ms) // step_ms + 1
        return Occurrence(from_epoch_ms(anchor_ms + steps * step_ms))

    def describe(self, schedule: ScheduleFields) -> str:
        seconds = schedule.interval_seconds or 0
        for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60)):
            if seconds % size == 0:
                count = seconds // size
                return f"Every {count} {unit}{'s' if count != 1 else ''}" if count != 1 else f"Every {unit}"
        return f"Every {seconds} second{'s' if seconds != 1 else ''}"


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression and how it meets daylight saving time.

    Debian cron's rules (SPEC section 3): a 5-field expression with a fixed minute and hour
    runs on wall-clock time; a time inside a spring-forward gap fires once at the jump and a
    time repeated by a fall-back fires on its first pass. Expressions with a wildcard minute
    or hour, and all 6-field (seconds) expressions, follow real elapsed time: every instant
    whose local wall time matches, so none in a gap and both passes of a repeated hour.
    """

    source: str
    fields: str
    has_seconds: bool
    wall_clock: bool

    @classmethod
    def parse(cls, expression: str) -> CronExpression:
        text = " ".join(expression.split())
        fields = CRON_MACROS.get(text.lower(), text)
        parts = fields.split()
        if len(parts) not in (5, 6):
            raise ValueError(
                "A cron expression has 5 fields (minute hour day month weekday), 6 with a "
                f"leading seconds field, or is a macro such as @daily; got {len(parts)} field(s)."
            )
        has_seconds = len(parts) == 6
        minute, hour = (parts[1], parts[2]) if has_seconds else (parts[0], parts[1])
        for part in parts:
            # croniter also takes L, W, #, ? and H; Debian cron and this service do not.
            if set(re.sub(r"[A-Za-z]{3}", "", part)) - _CRON_CHARS:
                raise ValueError(f"Unsupported cron field {part!r}: use numbers, names, * , - and /.")
        try:
            croniter(fields, datetime(2000, 1, 1), second_at_beginning=has_seconds)
        except (CroniterBadCronError, CroniterError, ValueError, KeyError) as error:
            raise ValueError(f"Invalid cron expression: {error}") from None
        wall_clock = not has_seconds and not (minute.startswith("*") or hour.startswith("*"))
        return cls(text, fields, has_seconds, wall_clock)

    def wall_times_from(self, start: datetime) -> croniter:  # type: ignore[type-arg]
        """Iterate matching naive wall times strictly after naive ``start``."""
        return croniter(
            self.fields,
            start,
            ret_type=datetime,  # type: ignore[arg-type]
            second_at_beginning=self.has_seconds,
            implement_cron_bug=True,
            max_years_between_matches=50,
        )

    def next_after(self, after: datetime, tz: ZoneInfo) -> Occurrence | None:
        """The first occurrence strictly after the aware datetime ``after``."""
        # Wall times map to instants out of order only within a DST shift, so start a shift
        # early and stop once candidates lie a shift beyond the best instant found.
        local_after = after.astimezone(tz).replace(tzinfo=None)
        wall_times = self.wall_times_from(local_after - _MAX_SHIFT - timedelta(seconds=1))
        best: Occurrence | None = None
        while True:
            try:
                wall = wall_times.get_next(datetime)
            except CroniterBadDateError:
                return best
            if best is not None and wall > best.at.astimezone(tz).replace(tzinfo=None) + _MAX_SHIFT:
                return best
            for occurrence in self._instants(wall, tz):
                if occurrence.at > after and (best is None or occurrence.at < best.at):
                    best = occurrence

    def _instants(self, wall: datetime, tz: ZoneInfo) -> list[Occurrence]:
        first = wall.replace(tzinfo=tz, fold=0)
        second = wall.replace(tzinfo=tz, fold=1)
        first_utc, second_utc = first.astimezone(UTC), second.astimezone(UTC)
        if first_utc == second_utc:
            return [Occurrence(first_utc)]
        if first_utc < second_utc:  # repeated by a fall-back: fold=0 is the first pass
            return (
                [Occurrence(first_utc)]
                if self.wall_clock
                else [
                    Occurrence(first_utc),
                    Occurrence(second_utc),
                ]
            )
        # Inside a spring-forward gap: the wall time never happens.
        if not self.wall_clock:
            return []
        return [Occurrence(_end_of_gap(wall, tz), moved_from=wall)]


_CRON_CHARS = set("0123456789,-*/")


def _end_of_gap(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant a spring-forward gap containing the naive ``wall`` ends (the jump)."""
    # The jump lies between the two readings of the missing wall time; bisect to the second.
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


@lru_cache(maxsize=4096)
def parse_cron(expression: str) -> CronExpression:
    return CronExpression.parse(expression)


class CronKind:
    """A cron expression (5 or 6 fields, names, macros) in an IANA time zone."""

    name = "cron"
    label = "Cron expression"

    def clean(self, schedule: ScheduleFields) -> dict[str, str]:
        errors = _clean_timezone(schedule)
        if not (schedule.expression or "").strip():
            errors["expression"] = "A cron schedule needs an expression, such as '*/5 * * * *'."
            return errors
        try:
            parse_cron(schedule.expression)
        except ValueError as error:
            errors["expression"] = str(error)
        return errors

    def next_after(self, schedule: ScheduleFields, after: datetime) -> Occurrence | None:
        return parse_cron(schedule.expression).next_after(after, zone(schedule.timezone or "UTC"))

    def describe(self, schedule: ScheduleFields) -> str:
        return f"Cron '{schedule.expression}' in {schedule.timezone or 'UTC'}"


class AtKind:
    """Once, at ``anchor``: a one-off run."""

    name = "at"
    label = "Once, at a time"

    def clean(self, schedule: ScheduleFields) -> dict[str, str]:
        if schedule.anchor is None:
            return {"anchor": "A one-off schedule needs the time to run at, in anchor."}
        return {}

    def next_after(self, schedule: ScheduleFields, after: datetime) -> Occurrence | None:
        assert schedule.anchor is not None
        return Occurrence(schedule.anchor.astimezone(UTC)) if schedule.anchor > after else None

    def describe(self, schedule: ScheduleFields) -> str:
        assert schedule.anchor is not None
        return f"Once, at {schedule.anchor.astimezone(UTC).isoformat()}"


KINDS: dict[str, ScheduleKind] = {kind.name: kind for kind in (FixedKind(), CronKind(), AtKind())}
KIND_CHOICES = [(kind.name, kind.label) for kind in KINDS.values()]


def get_kind(name: str) -> ScheduleKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"Unknown schedule kind {name!r}; choose one of {', '.join(KINDS)}.") from None
