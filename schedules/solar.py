"""When the sun rises, sets, or crosses civil twilight at a place on a local day (astral, NOAA's formulas).

A solar schedule fires at one such event each local day of its time zone, moved by an offset.
Near the poles an event can be missing for days or months (the sun stays up, or down, or
never gets as dark as civil twilight): ``event_on`` says so with ``NoSunEvent`` instead of a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import dawn, dusk, elevation, midnight, noon, sunrise, sunset

# Each event's label and astral's function (observer, local date, tzinfo) -> aware datetime.
EVENTS: dict[str, tuple[str, Callable[..., datetime]]] = {
    "sunrise": ("Sunrise", sunrise),
    "sunset": ("Sunset", sunset),
    "dawn": ("Civil dawn", dawn),  # the sun 6 degrees below the horizon, rising
    "dusk": ("Civil dusk", dusk),  # ... and setting
}
# The offset may move an event by up to this much either way: less than a quarter day, so the
# offset events of successive days keep their order.
MAX_OFFSET_SECONDS = 6 * 3600
# The sun's elevation (degrees) at each event: the horizon with refraction, or civil twilight.
_LINE = {"sunrise": -0.833, "sunset": -0.833, "dawn": -6.0, "dusk": -6.0}
# How many local days ahead a next event is looked for: past the longest polar night (about
# 6 months at a pole), so None means the event never happens there.
SEARCH_DAYS = 400


@dataclass(frozen=True)
class NoSunEvent:
    """Why a day has no such event: the sun stays above (``up``) or below the line that day."""

    day: date
    event: str
    up: bool

    @property
    def reason(self) -> str:
        """polar_day, polar_night, or white_night (civil dusk and dawn do not happen)."""
        if self.up:
            return "polar_day" if self.event in ("sunrise", "sunset") else "white_night"
        return "polar_night"

    def message(self, place: str) -> str:
        name = EVENTS[self.event][0].lower()
        why = {
            ("sunrise", True): "the sun is up all day (midnight sun)",
            ("sunset", True): "the sun does not go down that day (midnight sun)",
            ("sunrise", False): "the sun does not come up that day (polar night)",
            ("sunset", False): "the sun does not come up that day (polar night)",
            ("dawn", True): "the sun does not go 6 degrees below the horizon that night (white night)",
            ("dusk", True): "the sun does not go 6 degrees below the horizon that night (white night)",
            ("dawn", False): "the sun stays more than 6 degrees below the horizon all day",
            ("dusk", False): "the sun stays more than 6 degrees below the horizon all day",
        }[self.event, self.up]
        return f"No {name} at {place} on {self.day:%Y-%m-%d}: {why}."


@dataclass(frozen=True)
class SunEvents:
    """One event (``sunrise``, ``sunset``, ``dawn``, ``dusk``) at a place, plus an offset, per local day."""

    event: str
    latitude: float
    longitude: float
    offset: timedelta
    tz: ZoneInfo

    def event_on(self, day: date) -> datetime | NoSunEvent:
        """The event of local ``day`` plus the offset, in UTC and whole seconds, or why there is none."""
        _, compute = EVENTS[self.event]
        observer = Observer(self.latitude, self.longitude)
        try:
            moment = compute(observer, day, tzinfo=self.tz)
        except ValueError:
            # astral found no crossing that day: the sun stays up or down. Which, is read from
            # its height at its highest and its lowest: the one nearer the line is the one that
            # grazes it (astral's message says "always below" on some days of midnight sun).
            tz = self.tz
            highest = elevation(observer, noon(observer, day, tzinfo=tz), with_refraction=False)
            lowest = elevation(observer, midnight(observer, day, tzinfo=tz), with_refraction=False)
            return NoSunEvent(day, self.event, highest + lowest > 2 * _LINE[self.event])
        # Whole seconds: the fire key is in milliseconds, and a float's last digits are no time.
        return (moment.astimezone(UTC) + self.offset).replace(microsecond=0)

    def next_after(self, after: datetime) -> datetime | None:
        """The first event strictly after ``after``; None when none comes within SEARCH_DAYS."""
        day = after.astimezone(self.tz).date() - timedelta(days=1)
        for _ in range(SEARCH_DAYS):
            moment = self.event_on(day)
            if isinstance(moment, datetime) and moment > after:
                # An event a little after midnight (Reykjavik's June sunsets) can belong to the
                # day before by astral's reckoning: the next day's may come first.
                following = self.event_on(day + timedelta(days=1))
                if isinstance(following, datetime) and after < following < moment:
                    return following
                return moment
            day += timedelta(days=1)
        return None

    def missing_between(self, after: datetime, until: datetime) -> list[NoSunEvent]:
        """The local days from ``after``'s to ``until``'s on which the event does not happen."""
        day, last = after.astimezone(self.tz).date(), until.astimezone(self.tz).date()
        found = []
        while day <= last:
            outcome = self.event_on(day)
            if isinstance(outcome, NoSunEvent):
                found.append(outcome)
            day += timedelta(days=1)
        return found


def place_name(latitude: float, longitude: float) -> str:
    """51.5074°N 0.1278°W."""
    return f"{abs(latitude):.4f}°{'N' if latitude >= 0 else 'S'} {abs(longitude):.4f}°{'E' if longitude >= 0 else 'W'}"
