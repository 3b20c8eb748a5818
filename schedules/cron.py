"""Cron expressions by Debian cron's grammar, and how their wall times meet daylight saving.

The grammar (5 or 6 fields, names, macros, Debian's reading of ranges and steps) is checked
here and handed to croniter as explicit lists; croniter only iterates wall times. Mapping wall
times to instants is ours, with a per-schedule choice for wall-clock expressions
(``DstRules``): a time in a spring-forward gap fires at the jump (``shift``, Debian's rule) or
not that day (``skip``); a time a fall-back repeats fires on its first pass (``once``,
Debian's rule) or on both (``twice``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from schedules.occurrence import Occurrence

# A wall time in a spring-forward gap: fire at the jump (Debian cron) or not at all that day.
GAP_SHIFT, GAP_SKIP = "shift", "skip"
# A wall time a fall-back repeats: fire on its first pass (Debian cron) or on both.
REPEAT_ONCE, REPEAT_TWICE = "once", "twice"


@dataclass(frozen=True)
class DstRules:
    """How a wall-clock expression meets daylight saving; the default is Debian cron's."""

    gap: str = GAP_SHIFT
    repeat: str = REPEAT_ONCE


DEBIAN = DstRules()

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
# The longest backward shift (fall-back) any zone has made since 1970 (Antarctica/Casey,
# 3 h); only a fall-back can put two wall times in the opposite order in real time.
# Forward jumps are larger (24 h across the date line) but never reorder anything.
_MAX_SHIFT = timedelta(hours=3)
# How finely a window is probed for a fall-back; transitions lie days apart.
_OFFSET_PROBE = timedelta(minutes=30)


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression and how it meets daylight saving time.

    Debian cron's rules: a 5-field expression with a fixed minute and hour
    runs on wall-clock time; a time inside a spring-forward gap fires once at the jump and a
    time repeated by a fall-back fires on its first pass (``DstRules`` may choose otherwise
    for such an expression: skip the gap, fire on both passes). Expressions with a wildcard minute
    or hour, and all 6-field (seconds) expressions, follow real elapsed time: every instant
    whose local wall time matches, so none in a gap and both passes of a repeated hour.
    """

    source: str
    fields: str  # what croniter iterates: each field as an explicit list, or '*'
    has_seconds: bool
    wall_clock: bool
    # False when day-of-month and day-of-week must both match (either starts with '*').
    day_or: bool = True

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
        for part in parts:
            # croniter also takes L, W, #, ? and H; Debian cron and this service do not.
            if set(re.sub(r"[A-Za-z]{3}", "", part)) - _CRON_CHARS:
                raise ValueError(f"Unsupported cron field {part!r}: use numbers, names, * , - and /.")
        specs = _CRON_FIELDS if has_seconds else _CRON_FIELDS[1:]
        values = [_field_values(part, spec) for part, spec in zip(parts, specs, strict=True)]
        minute, hour, dom, month, dow = parts[-5:]
        days, months, weekdays = values[-3], values[-2], values[-1]
        day_or = not (dom.startswith("*") or dow.startswith("*"))
        if not day_or and min(days) > max(_DAYS_IN_MONTH[m] for m in months):
            raise ValueError(f"Day-of-month {dom!r} never occurs in month(s) {month!r}, so it would never run.")
        # croniter only iterates: it gets each field as an explicit list, because its own
        # parser departs from Debian cron ("5-5" is every day, "5-2" wraps around).
        texts = [_field_text(field_values, spec) for field_values, spec in zip(values, specs, strict=True)]
        if day_or and (days == _CRON_FIELDS[3].values or weekdays == _CRON_FIELDS[5].values):
            texts[-3] = texts[-1] = "*"  # one side matches every day, so the union does too
        normalised = " ".join(texts)
        try:
            croniter(normalised, datetime(2000, 1, 1), second_at_beginning=has_seconds, day_or=day_or)
        except (CroniterBadCronError, CroniterError, ValueError, KeyError) as error:
            raise ValueError(f"Invalid cron expression: {error}") from None
        wall_clock = not has_seconds and not (minute.startswith("*") or hour.startswith("*"))
        return cls(text, normalised, has_seconds, wall_clock, day_or)

    def wall_times_from(self, start: datetime) -> croniter:  # type: ignore[type-arg]
        """Iterate matching naive wall times strictly after naive ``start``."""
        return croniter(
            self.fields,
            start,
            ret_type=datetime,  # type: ignore[arg-type]
            second_at_beginning=self.has_seconds,
            day_or=self.day_or,
            max_years_between_matches=50,
        )

    def next_after(self, after: datetime, tz: ZoneInfo, rules: DstRules = DEBIAN) -> Occurrence | None:
        """The first occurrence strictly after the aware datetime ``after``."""
        # Wall times map to instants out of order only across a fall-back: start early by as
        # much as the clock falls back soon after ``after``, and stop once candidates lie
        # beyond the best instant by as much as it fell back just before it (usually 0).
        local_after = after.astimezone(tz).replace(tzinfo=None)
        early = _fall_back_within(tz, after, after + _MAX_SHIFT)
        wall_times = self.wall_times_from(local_after - early - timedelta(seconds=1))
        best: Occurrence | None = None
        horizon: datetime | None = None
        while True:
            wall = _next_wall(wall_times)
            if wall is None or (horizon is not None and wall > horizon):
                return best
            for occurrence in self._instants(wall, tz, rules):
                if occurrence.at > after and (best is None or occurrence.at < best.at):
                    best = occurrence
                    late = _fall_back_within(tz, best.at - _MAX_SHIFT, best.at)
                    horizon = best.at.astimezone(tz).replace(tzinfo=None) + late

    def iter_after(self, after: datetime, tz: ZoneInfo, rules: DstRules = DEBIAN) -> Iterator[Occurrence]:
        """Every occurrence strictly after ``after``, walking one croniter as far as it can.

        Wall times that exist exactly once map to instants in order, whatever offsets lie
        between them; only a wall time in a gap or a fold needs ``next_after``'s care, so
        the walk hands over to it there and resumes after its answer.
        """
        while (occurrence := self.next_after(after, tz, rules)) is not None:
            yield occurrence
            after = occurrence.at
            resume = after.astimezone(tz).replace(tzinfo=None)
            if not _exists_once(resume, tz):
                continue  # still inside a fold: the second pass may match again
            wall_times = self.wall_times_from(resume)
            while True:
                wall = _next_wall(wall_times)
                if wall is None:
                    return
                if not _exists_once(wall, tz):
                    break  # in a gap or a fold: next_after decides, from ``after``
                after = wall.replace(tzinfo=tz).astimezone(UTC)
                yield Occurrence(after)

    def _instants(self, wall: datetime, tz: ZoneInfo, rules: DstRules) -> list[Occurrence]:
        first = wall.replace(tzinfo=tz, fold=0)
        second = wall.replace(tzinfo=tz, fold=1)
        first_utc, second_utc = first.astimezone(UTC), second.astimezone(UTC)
        if first_utc == second_utc:
            return [Occurrence(first_utc)]
        if first_utc < second_utc:  # repeated by a fall-back: fold=0 is the first pass
            if not self.wall_clock:
                return [Occurrence(first_utc), Occurrence(second_utc)]
            passes = [Occurrence(first_utc, repeated_pass=1)]
            if rules.repeat == REPEAT_TWICE:
                passes.append(Occurrence(second_utc, repeated_pass=2))
            return passes
        # Inside a spring-forward gap: the wall time never happens.
        if not self.wall_clock or rules.gap == GAP_SKIP:
            return []
        return [Occurrence(_end_of_gap(wall, tz), moved_from=wall)]

    def gap_wall_times(self, after: datetime, until: datetime, tz: ZoneInfo) -> list[datetime]:
        """The wall times after ``after`` up to ``until`` that fall in a spring-forward gap
        (what ``skip`` leaves out), as naive wall times; none for elapsed-time expressions."""
        if not self.wall_clock:
            return []
        found = []
        for occurrence in self.iter_after(after, tz):
            if occurrence.at > until:
                break
            if occurrence.moved_from is not None:
                found.append(occurrence.moved_from)
        return found


def _next_wall(wall_times: croniter) -> datetime | None:  # type: ignore[type-arg]
    """croniter's next wall time, or None when none comes within its search (50 years).

    Past the year 9999, where datetime ends, croniter fails with a ValueError; it becomes the
    OverflowError any time arithmetic out of range raises, which the preview answers as a 400.
    """
    try:
        return wall_times.get_next(datetime)
    except CroniterBadDateError:
        return None
    except CroniterError:
        raise
    except ValueError as error:  # "year 10000 is out of range"
        raise OverflowError(str(error)) from None


_CRON_CHARS = set("0123456789,-*/")
_DAYS_IN_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}


@dataclass(frozen=True)
class _CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for low + i
    seven_is_sunday: bool = False  # day of week: 0 and 7 are both Sunday, as in Debian cron

    @property
    def values(self) -> frozenset[int]:
        """Every value the field can take, as ``_field_values`` returns them."""
        return frozenset(range(self.low, self.high + 1)) - ({7} if self.seven_is_sunday else set())


_CRON_FIELDS = (
    _CronField("second", 0, 59),
    _CronField("minute", 0, 59),
    _CronField("hour", 0, 23),
    _CronField("day-of-month", 1, 31),
    _CronField("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    _CronField("day-of-week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), seven_is_sunday=True),
)


def _field_values(text: str, field: _CronField) -> frozenset[int]:
    """The values one field matches, by Debian cron's grammar (cronsim reads it the same way)."""
    values: set[int] = set()
    for term in text.split(","):
        base, slash, step_text = term.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"The step in {term!r} ({field.name}) must be a whole number of at least 1.")
            step = int(step_text)
        if base == "*":
            first, last = field.low, field.high
        elif "-" in base:
            first_text, last_text = base.split("-", 1)
            first, last = _field_value(first_text, field), _field_value(last_text, field)
            if first > last:
                raise ValueError(f"The range {term!r} ({field.name}) runs backwards; ranges do not wrap around.")
        else:
            first = _field_value(base, field)
            last = field.high if slash else first  # "5/15" means 5-max/15
        values.update(range(first, last + 1, step))
    if field.seven_is_sunday and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def _field_value(text: str, field: _CronField) -> int:
    if text.upper() in field.names:
        return field.low + field.names.index(text.upper())
    if not text.isdigit() or not field.low <= int(text) <= field.high:
        allowed = f"{field.low}-{field.high}" + (f" or {field.names[0]}-{field.names[-1]}" if field.names else "")
        raise ValueError(f"{text!r} is not a valid {field.name} ({allowed}).")
    return int(text)


def _field_text(values: frozenset[int], field: _CronField) -> str:
    return "*" if values == field.values else ",".join(map(str, sorted(values)))


def _fall_back_within(tz: ZoneInfo, start: datetime, end: datetime) -> timedelta:
    """How far the zone's clock falls back between the instants ``start`` and ``end``."""
    drop, highest, moment = timedelta(0), None, start
    while True:
        offset = moment.astimezone(tz).utcoffset() or timedelta(0)
        highest = offset if highest is None else max(highest, offset)
        drop = max(drop, highest - offset)
        if moment >= end:
            return drop
        moment = min(moment + _OFFSET_PROBE, end)


def _exists_once(wall: datetime, tz: ZoneInfo) -> bool:
    """Whether the naive wall time happens exactly once (in no gap and no fold)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC) == wall.replace(tzinfo=tz, fold=1).astimezone(UTC)


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
