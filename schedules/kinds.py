"""One small object per schedule kind: validate its fields, describe it, compute next times.

Adding a kind means adding one class here and listing it in ``KINDS``; nothing else in the
code base switches on the kind (what differs is asked of the kind: ``advances_in_lua``,
``default_anchor``). Every time in and out of these objects is an aware
datetime; occurrences are returned in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from jobscheduler.epoch import from_epoch_ms, to_epoch_ms
from schedules.cron import (
    CRON_MACROS,
    GAP_SHIFT,
    GAP_SKIP,
    REPEAT_ONCE,
    REPEAT_TWICE,
    CronExpression,
    DstRules,
    parse_cron,
)
from schedules.occurrence import Occurrence, Skipped
from schedules.solar import EVENTS, MAX_OFFSET_SECONDS, SunEvents, place_name
from schedules.wording import cron_in_words

__all__ = [  # what callers take from here, the cron maths and occurrences included
    "CRON_MACROS",
    "GAP_SHIFT",
    "GAP_SKIP",
    "KINDS",
    "KIND_CHOICES",
    "REPEAT_ONCE",
    "REPEAT_TWICE",
    "SOLAR_EVENTS",
    "CronExpression",
    "DstRules",
    "Occurrence",
    "ScheduleFields",
    "ScheduleKind",
    "Skipped",
    "from_epoch_ms",
    "get_kind",
    "parse_cron",
    "to_epoch_ms",
    "zone",
]

MIN_INTERVAL_SECONDS = 1
SOLAR_EVENTS = EVENTS


class ScheduleFields(Protocol):
    """The schedule attributes kinds read; a saved or unsaved ``Schedule`` provides them."""

    interval_seconds: int | None
    anchor: datetime | None
    start_at: datetime | None
    expression: str
    timezone: str
    dst_gap: str
    dst_repeat: str
    solar_event: str
    latitude: float | None
    longitude: float | None
    solar_offset_seconds: int


class ScheduleKind(Protocol):
    name: str
    label: str
    # True when the dispatch Lua step computes the next time itself (a fixed interval);
    # otherwise the mirror carries the next times, computed in Python (schedules.mirror).
    advances_in_lua: bool

    def default_anchor(self, schedule: ScheduleFields, now: datetime) -> datetime | None:
        """The anchor a new schedule gets when none is given (None: it keeps none)."""

    def clean(self, schedule: ScheduleFields) -> dict[str, str]:
        """Return a message per invalid field (empty when valid)."""

    def next_after(self, schedule: ScheduleFields, after: datetime) -> Occurrence | None:
        """The first occurrence strictly after ``after``, or None if there is none."""

    def describe(self, schedule: ScheduleFields) -> str:
        """A sentence a person can read."""

    def iter_after(self, schedule: ScheduleFields, after: datetime) -> Iterator[Occurrence]:
        """Every occurrence strictly after ``after``, in order (possibly endless)."""

    def skipped_between(self, schedule: ScheduleFields, after: datetime, until: datetime) -> list[Skipped]:
        """What its rule names after ``after`` up to ``until`` but does not fire, and why (previews)."""


class BaseKind:
    """What kinds share: walking occurrences one ``next_after`` at a time."""

    advances_in_lua = False

    def default_anchor(self, schedule: ScheduleFields, now: datetime) -> datetime | None:
        return schedule.anchor

    def next_after(self, schedule: ScheduleFields, after: datetime) -> Occurrence | None:
        raise NotImplementedError

    def iter_after(self, schedule: ScheduleFields, after: datetime) -> Iterator[Occurrence]:
        while (occurrence := self.next_after(schedule, after)) is not None:
            yield occurrence
            after = occurrence.at

    def skipped_between(self, schedule: ScheduleFields, after: datetime, until: datetime) -> list[Skipped]:
        return []


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


class FixedKind(BaseKind):
    """Every ``interval_seconds`` on the grid ``anchor + k * interval``: no drift, ever."""

    name = "fixed"
    label = "Fixed interval"
    advances_in_lua = True

    def default_anchor(self, schedule: ScheduleFields, now: datetime) -> datetime | None:
        # The grid starts at the start time, else at creation: no drift from then on.
        return schedule.anchor or schedule.start_at or now

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


class CronKind(BaseKind):
    """A cron expression (5 or 6 fields, names, macros) in an IANA time zone.

    A wall-clock expression (5 fields, fixed minute and hour) meets daylight saving by the
    schedule's ``dst_gap`` and ``dst_repeat`` (schedules.cron.DstRules); the others follow
    elapsed time, where neither choice means anything, so only the defaults are accepted.
    """

    name = "cron"
    label = "Cron expression"

    def clean(self, schedule: ScheduleFields) -> dict[str, str]:
        errors = _clean_timezone(schedule)
        if not (schedule.expression or "").strip():
            errors["expression"] = "A cron schedule needs an expression, such as '*/5 * * * *'."
            return errors
        try:
            parsed = parse_cron(schedule.expression)
        except ValueError as error:
            errors["expression"] = str(error)
            return errors
        errors.update(_clean_dst_rules(schedule, parsed))
        return errors

    def next_after(self, schedule: ScheduleFields, after: datetime) -> Occurrence | None:
        return parse_cron(schedule.expression).next_after(after, zone(schedule.timezone or "UTC"), dst_rules(schedule))

    def iter_after(self, schedule: ScheduleFields, after: datetime) -> Iterator[Occurrence]:
        return parse_cron(schedule.expression).iter_after(after, zone(schedule.timezone or "UTC"), dst_rules(schedule))

    def skipped_between(self, schedule: ScheduleFields, after: datetime, until: datetime) -> list[Skipped]:
        if dst_rules(schedule).gap != GAP_SKIP:
            return []
        walls = parse_cron(schedule.expression).gap_wall_times(after, until, zone(schedule.timezone or "UTC"))
        return [
            Skipped(
                day=wall.date(),
                reason="dst_gap",
                message=f"{wall:%H:%M} is not on the clock on {wall:%Y-%m-%d} (clocks spring forward): "
                "skipped that day (dst_gap: skip).",
                wall_time=wall,
            )
            for wall in walls
        ]

    def describe(self, schedule: ScheduleFields) -> str:
        """In words, with its zone: "At 02:30, Monday through Friday (Europe/London)", and a
        daylight saving choice other than Debian cron's after it."""
        parsed = parse_cron(schedule.expression)  # what the service refuses is not described
        words = cron_in_words(parsed.fields, either_day=parsed.day_or)
        zone_name = schedule.timezone or "UTC"
        text = f"{words} ({zone_name})" if words else f"Cron '{parsed.source}' in {zone_name}"
        rules = dst_rules(schedule)
        if parsed.wall_clock and rules.gap == GAP_SKIP:
            text += "; not on days clocks skip its time"
        if parsed.wall_clock and rules.repeat == REPEAT_TWICE:
            text += "; twice when clocks go back over its time"
        return text


def dst_rules(schedule: ScheduleFields) -> DstRules:
    """The schedule's daylight saving choice (blank fields read as Debian cron's)."""
    return DstRules(gap=schedule.dst_gap or GAP_SHIFT, repeat=schedule.dst_repeat or REPEAT_ONCE)


def _clean_dst_rules(schedule: ScheduleFields, parsed: CronExpression) -> dict[str, str]:
    errors = {}
    if (schedule.dst_gap or GAP_SHIFT) not in (GAP_SHIFT, GAP_SKIP):
        errors["dst_gap"] = f"Choose {GAP_SHIFT} (fire at the jump) or {GAP_SKIP} (not that day)."
    if (schedule.dst_repeat or REPEAT_ONCE) not in (REPEAT_ONCE, REPEAT_TWICE):
        errors["dst_repeat"] = f"Choose {REPEAT_ONCE} (the first pass) or {REPEAT_TWICE} (both passes)."
    if errors or parsed.wall_clock:
        return errors
    elapsed = (
        "This expression follows elapsed time (6 fields, or a '*' in its minute or hour field): it fires "
        "whenever the clock shows a matching time, never inside a gap and on both passes of a repeated hour"
    )
    if (schedule.dst_gap or GAP_SHIFT) != GAP_SHIFT:
        errors["dst_gap"] = f"{elapsed}: leave dst_gap as {GAP_SHIFT}."
    if (schedule.dst_repeat or REPEAT_ONCE) != REPEAT_ONCE:
        errors["dst_repeat"] = f"{elapsed}: leave dst_repeat as {REPEAT_ONCE}."
    return errors


class AtKind(BaseKind):
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
        zone_name = schedule.timezone or "UTC"
        local = schedule.anchor.astimezone(zone(zone_name))
        shown = f"{local:%Y-%m-%d %H:%M:%S}" if local.second or local.microsecond else f"{local:%Y-%m-%d %H:%M}"
        return f"Once, at {shown} ({zone_name})"


class SolarKind(BaseKind):
    """Once a local day at a sun event (sunrise, sunset, civil dawn or dusk) at a latitude and
    longitude, moved by ``solar_offset_seconds``; no occurrence on a day without the event."""

    name = "solar"
    label = "Sunrise, sunset, dawn or dusk"

    def clean(self, schedule: ScheduleFields) -> dict[str, str]:
        errors = _clean_timezone(schedule)
        if schedule.solar_event not in EVENTS:
            errors["solar_event"] = f"A solar schedule needs solar_event: one of {', '.join(EVENTS)}."
        for name, bound in (("latitude", 90), ("longitude", 180)):
            value = getattr(schedule, name)
            if value is None:
                errors[name] = f"A solar schedule needs {name}, in degrees (north and east positive)."
            elif not -bound <= value <= bound:
                errors[name] = f"Must be between -{bound} and {bound} degrees."
        if abs(schedule.solar_offset_seconds or 0) > MAX_OFFSET_SECONDS:
            errors["solar_offset_seconds"] = f"Must be within {MAX_OFFSET_SECONDS} seconds (6 hours) either way."
        return errors

    def next_after(self, schedule: ScheduleFields, after: datetime) -> Occurrence | None:
        moment = _sun_events(schedule).next_after(after)
        return Occurrence(moment) if moment is not None else None

    def skipped_between(self, schedule: ScheduleFields, after: datetime, until: datetime) -> list[Skipped]:
        events = _sun_events(schedule)
        place = _place(schedule)
        return [
            Skipped(day=missing.day, reason=missing.reason, message=missing.message(place))
            for missing in events.missing_between(after, until)
        ]

    def describe(self, schedule: ScheduleFields) -> str:
        """ "30 minutes before sunset at 51.5074°N 0.1278°W (Europe/London)"."""
        event = EVENTS[schedule.solar_event][0]
        offset = schedule.solar_offset_seconds or 0
        if offset:
            words = _duration_words(abs(offset))
            event = f"{words} {'after' if offset > 0 else 'before'} {event.lower()}"
        else:
            event = f"At {event.lower()}"
        text = f"{event} at {_place(schedule)} ({schedule.timezone or 'UTC'})"
        return text[0].upper() + text[1:]


def _sun_events(schedule: ScheduleFields) -> SunEvents:
    assert schedule.latitude is not None and schedule.longitude is not None
    return SunEvents(
        event=schedule.solar_event,
        latitude=schedule.latitude,
        longitude=schedule.longitude,
        offset=timedelta(seconds=schedule.solar_offset_seconds or 0),
        tz=zone(schedule.timezone or "UTC"),
    )


def _place(schedule: ScheduleFields) -> str:
    assert schedule.latitude is not None and schedule.longitude is not None
    return place_name(schedule.latitude, schedule.longitude)


def _duration_words(seconds: int) -> str:
    """ "1 hour 30 minutes", "45 seconds"."""
    parts = []
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts)


KINDS: dict[str, ScheduleKind] = {kind.name: kind for kind in (FixedKind(), CronKind(), AtKind(), SolarKind())}
KIND_CHOICES = [(kind.name, kind.label) for kind in KINDS.values()]


def get_kind(name: str) -> ScheduleKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"Unknown schedule kind {name!r}; choose one of {', '.join(KINDS)}.") from None
