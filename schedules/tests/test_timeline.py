"""A schedule's occurrences with its bounds: start, end, maximum runs, preview, jitter, fire keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.kinds import Occurrence, to_epoch_ms
from schedules.models import Schedule
from schedules.timeline import MAX_PREVIEW, fire_key, jitter_ms, next_occurrence, occurrences, preview

ANCHOR = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def every_minute(**bounds: Any) -> Schedule:
    """An unsaved fixed schedule: every minute on the grid of ANCHOR."""
    return Schedule(kind="fixed", interval_seconds=60, anchor=ANCHOR, **bounds)


def at_times(found: list[Occurrence]) -> list[datetime]:
    return [occurrence.at for occurrence in found]


# --- fire keys ------------------------------------------------------------------------------


def test_fire_key_is_schedule_id_and_epoch_ms() -> None:
    schedule_id = ObjectId("65f0c0ffee00000000000001")
    assert fire_key(schedule_id, ANCHOR) == "65f0c0ffee00000000000001:1767268800000"
    assert fire_key("abc", datetime(1970, 1, 1, 0, 0, 1, 234_567, tzinfo=UTC)) == "abc:1234"


def test_fire_key_names_the_instant_not_its_zone() -> None:
    in_tokyo = ANCHOR.astimezone(ZoneInfo("Asia/Tokyo"))
    assert fire_key("abc", in_tokyo) == fire_key("abc", ANCHOR)
    assert fire_key("abc", ANCHOR + timedelta(microseconds=999)) == fire_key("abc", ANCHOR)
    assert fire_key("abc", ANCHOR + timedelta(milliseconds=1)) != fire_key("abc", ANCHOR)


# --- bounds ---------------------------------------------------------------------------------


def test_next_occurrence_without_bounds() -> None:
    schedule = every_minute()
    assert next_occurrence(schedule, ANCHOR - timedelta(days=1)) == Occurrence(ANCHOR)
    assert next_occurrence(schedule, ANCHOR) == Occurrence(ANCHOR + MINUTE)


def test_start_at_is_inclusive() -> None:
    schedule = every_minute(start_at=ANCHOR + 10 * MINUTE)
    assert next_occurrence(schedule, ANCHOR) == Occurrence(ANCHOR + 10 * MINUTE)
    assert next_occurrence(schedule, ANCHOR + 10 * MINUTE) == Occurrence(ANCHOR + 11 * MINUTE)


def test_start_at_between_grid_points_waits_for_the_next_one() -> None:
    schedule = every_minute(start_at=ANCHOR + 10 * MINUTE + timedelta(seconds=30))
    assert next_occurrence(schedule, ANCHOR) == Occurrence(ANCHOR + 11 * MINUTE)
    schedule = every_minute(start_at=ANCHOR + 10 * MINUTE + timedelta(microseconds=1))
    assert next_occurrence(schedule, ANCHOR) == Occurrence(ANCHOR + 11 * MINUTE)


def test_start_at_in_the_past_changes_nothing() -> None:
    schedule = every_minute(start_at=ANCHOR - timedelta(days=3))
    assert next_occurrence(schedule, ANCHOR + 5 * MINUTE) == Occurrence(ANCHOR + 6 * MINUTE)


def test_end_at_is_inclusive() -> None:
    schedule = every_minute(end_at=ANCHOR + 2 * MINUTE)
    assert next_occurrence(schedule, ANCHOR + MINUTE) == Occurrence(ANCHOR + 2 * MINUTE)
    assert next_occurrence(schedule, ANCHOR + 2 * MINUTE) is None
    schedule = every_minute(end_at=ANCHOR + 2 * MINUTE - timedelta(microseconds=1))
    assert next_occurrence(schedule, ANCHOR + MINUTE) is None


def test_max_runs_counts_runs_fired() -> None:
    schedule = every_minute(max_runs=3, run_count=2)
    assert next_occurrence(schedule, ANCHOR) == Occurrence(ANCHOR + MINUTE)
    schedule.run_count = 3
    assert next_occurrence(schedule, ANCHOR) is None
    # An explicit count of runs fired wins over the saved one.
    assert next_occurrence(schedule, ANCHOR, fired=0) == Occurrence(ANCHOR + MINUTE)
    assert next_occurrence(every_minute(max_runs=3), ANCHOR, fired=4) is None
    assert next_occurrence(every_minute(max_runs=None, run_count=10**6), ANCHOR) is not None


def test_cron_bounds_in_a_time_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    schedule = Schedule(
        kind="cron",
        expression="0 9 * * MON-FRI",
        timezone="Europe/Paris",
        start_at=datetime(2026, 3, 27, 9, 0, tzinfo=paris),  # a Friday, exactly on time
        end_at=datetime(2026, 4, 1, 9, 0, tzinfo=paris),
    )
    found = list(occurrences(schedule, datetime(2026, 1, 1, tzinfo=UTC)))
    assert [occurrence.at.astimezone(paris).strftime("%a %d %H:%M %Z") for occurrence in found] == [
        "Fri 27 09:00 CET",
        "Mon 30 09:00 CEST",  # Paris moved to summer time on the 29th
        "Tue 31 09:00 CEST",
        "Wed 01 09:00 CEST",
    ]


def test_at_runs_once_within_its_bounds() -> None:
    schedule = Schedule(kind="at", anchor=ANCHOR)
    assert list(occurrences(schedule, ANCHOR - MINUTE)) == [Occurrence(ANCHOR)]
    assert next_occurrence(schedule, ANCHOR) is None
    assert next_occurrence(Schedule(kind="at", anchor=ANCHOR, start_at=ANCHOR + MINUTE), ANCHOR - MINUTE) is None
    assert next_occurrence(Schedule(kind="at", anchor=ANCHOR, end_at=ANCHOR - MINUTE), ANCHOR - 2 * MINUTE) is None


def test_occurrences_stop_at_max_runs_and_end_at() -> None:
    assert at_times(list(occurrences(every_minute(max_runs=5, run_count=2), ANCHOR - MINUTE))) == [
        ANCHOR,
        ANCHOR + MINUTE,
        ANCHOR + 2 * MINUTE,
    ]
    assert len(list(occurrences(every_minute(end_at=ANCHOR + 59 * MINUTE), ANCHOR - MINUTE))) == 60


@settings(max_examples=200, deadline=None)
@given(
    interval=st.integers(1, 86_400 * 3),
    start_offset=st.integers(-(10**6), 10**6),
    length=st.integers(0, 10**6),
    after_offset=st.integers(-2 * 10**6, 2 * 10**6),
    max_runs=st.none() | st.integers(1, 5),
)
def test_preview_stays_in_bounds(
    interval: int, start_offset: int, length: int, after_offset: int, max_runs: int | None
) -> None:
    start_at = ANCHOR + timedelta(seconds=start_offset, microseconds=start_offset % 1000)
    end_at = start_at + timedelta(seconds=length)
    after = ANCHOR + timedelta(seconds=after_offset, milliseconds=after_offset % 997)
    schedule = Schedule(
        kind="fixed", interval_seconds=interval, anchor=ANCHOR, start_at=start_at, end_at=end_at, max_runs=max_runs
    )
    found = at_times(preview(schedule, after, count=6))
    assert len(found) <= min(6, max_runs or 6)
    assert found == sorted(set(found))
    for moment in found:
        assert start_at <= moment <= end_at and moment > after
        assert (to_epoch_ms(moment) - to_epoch_ms(ANCHOR)) % (interval * 1000) == 0
    # Nothing in bounds is skipped: the first is the first grid point after both limits.
    if found:
        first = found[0]
        assert first - timedelta(seconds=interval) < max(start_at, after + timedelta(microseconds=1)) or (
            first == ANCHOR
        )


# --- preview --------------------------------------------------------------------------------


def test_preview_returns_at_most_count() -> None:
    schedule = every_minute()
    assert at_times(preview(schedule, ANCHOR, count=3)) == [ANCHOR + MINUTE, ANCHOR + 2 * MINUTE, ANCHOR + 3 * MINUTE]
    assert len(preview(schedule, ANCHOR)) == 10
    assert preview(schedule, ANCHOR, count=0) == []
    assert len(preview(every_minute(max_runs=2), ANCHOR, count=10)) == 2
    assert len(preview(every_minute(end_at=ANCHOR + 4 * MINUTE), ANCHOR, count=10)) == 4
    assert len(preview(schedule, ANCHOR, count=MAX_PREVIEW + 500)) == MAX_PREVIEW


def test_preview_of_an_unsaved_cron_shows_moved_occurrences() -> None:
    schedule = Schedule(kind="cron", expression="30 2 * * *", timezone="America/New_York")
    found = preview(schedule, datetime(2026, 3, 7, 12, 0, tzinfo=UTC), count=2)
    assert found == [
        Occurrence(datetime(2026, 3, 8, 7, 0, tzinfo=UTC), moved_from=datetime(2026, 3, 8, 2, 30)),
        Occurrence(datetime(2026, 3, 9, 6, 30, tzinfo=UTC)),
    ]


# --- jitter ---------------------------------------------------------------------------------

KEY = "65f0c0ffee00000000000001:1767225600000"


def test_jitter_is_pinned_to_the_formula_the_lua_scripts_share() -> None:
    # int(sha1(key)[:8], 16) % (bound + 1), as schedules/lua/*.lua compute it with redis.sha1hex.
    assert jitter_ms(KEY, 60, None) == 10_481
    assert jitter_ms("65f0c0ffee00000000000001:1767225660000", 60, None) == 10_664
    assert jitter_ms(KEY, 60, 1001) == 815  # bound 1000 ms


def test_no_jitter() -> None:
    assert jitter_ms(KEY, 0, None) == 0
    assert jitter_ms(KEY, -5, 10_000) == 0
    assert jitter_ms(KEY, 60, 1) == 0  # the next occurrence is 1 ms away: no room
    assert jitter_ms(KEY, 60, 0) == 0
    assert jitter_ms(KEY, 60, -100) == 0


def test_jitter_spreads_over_its_range() -> None:
    values = [jitter_ms(f"schedule:{ms}", 60, None) for ms in range(2000)]
    assert min(values) >= 0 and max(values) <= 60_000
    assert len(set(values)) > 1900
    assert 25_000 < sum(values) / len(values) < 35_000


@given(
    key=st.text(min_size=1, max_size=40),
    jitter_seconds=st.integers(0, 3600),
    until_next_ms=st.none() | st.integers(-10, 10**8),
)
def test_jitter_is_stable_and_bounded(key: str, jitter_seconds: int, until_next_ms: int | None) -> None:
    delay = jitter_ms(key, jitter_seconds, until_next_ms)
    assert delay == jitter_ms(key, jitter_seconds, until_next_ms)
    bound = jitter_seconds * 1000 if until_next_ms is None else min(jitter_seconds * 1000, until_next_ms - 1)
    assert 0 <= delay <= max(bound, 0)
    if until_next_ms is not None:
        assert delay < max(until_next_ms, 1)  # never at or past the next occurrence
