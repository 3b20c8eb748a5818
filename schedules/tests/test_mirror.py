"""The mirror carries what the engine's Python path needs: a cron schedule's daylight saving
choice reaches the next times the scheduler computes, also after Redis lost the mirror."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jobscheduler.epoch import from_epoch_ms
from schedules import engine, services
from schedules.due_index import DueIndex
from schedules.kinds import KINDS
from schedules.mirror import LOOK_AHEAD, MirroredSchedule
from schedules.tests.test_engine import fire_keys

NEW_YORK = ZoneInfo("America/New_York")
# Thirteen fires a day: the first LOOK_AHEAD times come from MongoDB's copy when the mirror is
# written; every later one is computed by the scheduler from the mirror (MirroredSchedule).
EXPRESSION = "30 0-12 * * *"


def run_engine(due_index: DueIndex, start: datetime, end: datetime) -> list[str]:
    """Drive dispatch and the Python work step every 15 minutes; the nominal times fired, local."""
    moment = start.astimezone(UTC)  # steps of real time (local arithmetic would skip a repeat)
    while moment < end:
        moment += timedelta(minutes=15)
        engine.dispatch_due(due_index, moment)
        engine.handle_work(due_index, moment)
    nominal = [from_epoch_ms(int(key.split(":")[1])).astimezone(NEW_YORK) for key in fire_keys(due_index)]
    return [moment.isoformat() for moment in nominal]


def wipe(keyspace: Any) -> None:
    """Redis loses this test's data (its own keys only)."""
    for key in keyspace.client.scan_iter(match=f"*{keyspace.prefix}*"):
        keyspace.client.delete(key)


def test_the_choice_is_mirrored_and_read_back(job: Any, due_index: DueIndex) -> None:
    schedule = services.schedule_create(
        job=job, kind="cron", expression="30 2 * * *", timezone="America/New_York", dst_gap="skip", dst_repeat="twice"
    )
    state = due_index.state(str(schedule.pk))
    assert (state["dst_gap"], state["dst_repeat"]) == ("skip", "twice")
    mirrored = MirroredSchedule.from_state(str(schedule.pk), state)
    assert (mirrored.dst_gap, mirrored.dst_repeat) == ("skip", "twice")
    # A mirror written before the choice existed reads as Debian cron's rules.
    del state["dst_gap"], state["dst_repeat"]
    older = MirroredSchedule.from_state(str(schedule.pk), state)
    assert (older.dst_gap, older.dst_repeat) == ("shift", "once")


def test_skip_reaches_the_scheduler_and_survives_a_mirror_rebuild(job: Any, keyspace: Any, due_index: DueIndex) -> None:
    start = datetime(2026, 3, 6, 0, 0, tzinfo=NEW_YORK)
    services.schedule_create(
        job=job, now=lambda: start, kind="cron", expression=EXPRESSION, timezone="America/New_York", dst_gap="skip"
    )
    wipe(keyspace)
    assert engine.reconcile(due_index, start)["added"] == 1
    fired = run_engine(due_index, start, datetime(2026, 3, 8, 4, 0, tzinfo=NEW_YORK))
    assert len(fired) > LOOK_AHEAD  # the later ones were computed from the mirror
    on_the_day = [moment for moment in fired if moment.startswith("2026-03-08")]
    # 02:30 is not on New York's clocks on 8 March: skipped, not moved to 03:00.
    assert on_the_day == ["2026-03-08T00:30:00-05:00", "2026-03-08T01:30:00-05:00", "2026-03-08T03:30:00-04:00"]


def test_shift_moves_the_same_time_to_the_jump(job: Any, due_index: DueIndex) -> None:
    start = datetime(2026, 3, 6, 0, 0, tzinfo=NEW_YORK)
    services.schedule_create(
        job=job, now=lambda: start, kind="cron", expression=EXPRESSION, timezone="America/New_York"
    )
    fired = run_engine(due_index, start, datetime(2026, 3, 8, 4, 0, tzinfo=NEW_YORK))
    on_the_day = [moment for moment in fired if moment.startswith("2026-03-08")]
    assert on_the_day == [
        "2026-03-08T00:30:00-05:00",
        "2026-03-08T01:30:00-05:00",
        "2026-03-08T03:00:00-04:00",  # 02:30, fired at the jump
        "2026-03-08T03:30:00-04:00",
    ]


def test_twice_reaches_the_scheduler_after_a_mirror_rebuild(job: Any, keyspace: Any, due_index: DueIndex) -> None:
    start = datetime(2026, 10, 30, 0, 0, tzinfo=NEW_YORK)
    services.schedule_create(
        job=job, now=lambda: start, kind="cron", expression=EXPRESSION, timezone="America/New_York", dst_repeat="twice"
    )
    wipe(keyspace)
    engine.reconcile(due_index, start)
    fired = run_engine(due_index, start, datetime(2026, 11, 1, 3, 0, tzinfo=NEW_YORK))
    assert len(fired) > LOOK_AHEAD
    on_the_day = [moment for moment in fired if moment.startswith("2026-11-01")]
    assert on_the_day == [
        "2026-11-01T00:30:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:30:00-05:00",  # the second 01:30, an hour later
        "2026-11-01T02:30:00-05:00",
    ]


def test_a_solar_schedule_fires_at_the_suns_times_computed_from_the_mirror(job: Any, due_index: DueIndex) -> None:
    """Sunrise in New York: the mirror carries the place, so the scheduler's next times follow
    the sun, days on from the LOOK_AHEAD computed when it was saved, a rebuilt mirror included."""
    start = datetime(2026, 3, 1, 0, 0, tzinfo=NEW_YORK)
    schedule = services.schedule_create(
        job=job,
        now=lambda: start,
        kind="solar",
        solar_event="sunrise",
        latitude=40.7128,
        longitude=-74.006,
        solar_offset_seconds=600,
        timezone="America/New_York",
        misfire_grace_seconds=3600,  # driven hourly below: each fires within the hour
    )
    state = due_index.state(str(schedule.pk))
    mirrored = MirroredSchedule.from_state(str(schedule.pk), state)
    assert (mirrored.solar_event, mirrored.latitude, mirrored.longitude, mirrored.solar_offset_seconds) == (
        "sunrise",
        40.7128,
        -74.006,
        600,
    )
    end = start + timedelta(days=LOOK_AHEAD + 4)
    moment = start.astimezone(UTC)
    while moment < end:
        moment += timedelta(hours=1)
        engine.dispatch_due(due_index, moment)
        engine.handle_work(due_index, moment)
    fired = [from_epoch_ms(int(key.split(":")[1])) for key in fire_keys(due_index)]
    expected = [
        occurrence.at
        for occurrence in itertools.islice(KINDS["solar"].iter_after(schedule, start), LOOK_AHEAD + 4)
        if occurrence.at <= end
    ]
    assert len(fired) == len(expected) > LOOK_AHEAD
    assert fired == expected
    # Ten minutes after sunrise (06:30 EST on 1 March, 07:19 EDT on 8 March, daylight time).
    local = [moment.astimezone(NEW_YORK) for moment in fired]
    assert local[0].strftime("%Y-%m-%d %H:%M") == "2026-03-01 06:40"
    assert local[7].strftime("%Y-%m-%d %H:%M") == "2026-03-08 07:29"
