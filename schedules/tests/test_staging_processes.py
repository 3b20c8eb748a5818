"""Staging with real run_scheduler processes: racing, killed between staging and release, and
schedules changed inside the lead. Each occurrence fires once, none is lost, none fires twice.

Slow (real seconds go by); CI runs them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobs.services import job_create, job_update
from jobscheduler.coordination import SCHEDULERS
from jobscheduler.epoch import to_epoch_ms
from schedules import services
from schedules.due_index import DueIndex
from schedules.models import Schedule
from schedules.tests.test_multiprocess import ROOT, StreamReader, grid, wait_for_heartbeats

pytestmark = pytest.mark.slow

LEAD_MS = 300


@pytest.fixture
def start_scheduler(process_env: dict[str, str]) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []
    env = {**process_env, "JOBSCHEDULER_STAGE_LEAD_MS": str(LEAD_MS)}

    def start(name: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "manage.py", "run_scheduler", "--name", name]
        process = subprocess.Popen(command, cwd=ROOT, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            assert process.wait(timeout=20) in (0, -signal.SIGKILL)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def staged_count(due_index: DueIndex) -> int:
    return sum(int(due_index.client.zcard(due_index.staged_key(shard))) for shard in range(due_index.shards))


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def kill_once_staged(process: subprocess.Popen[bytes], due_index: DueIndex, instant: float, expected: int) -> int:
    """SIGKILL ``process`` between the staging of ``instant``'s occurrences and their release;
    returns how many were staged when it died."""
    sleep_until(instant - LEAD_MS / 1000 + 0.05)
    while staged_count(due_index) < expected and time.time() < instant - 0.03:
        time.sleep(0.005)
    staged = staged_count(due_index)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert time.time() < instant, "killed after the instant: the machine is too slow for this test"
    return staged


def expected_keys(schedule: Schedule, start: datetime, end: datetime) -> set[str]:
    assert schedule.anchor is not None and schedule.interval_seconds is not None
    step = timedelta(seconds=schedule.interval_seconds)
    return {f"{schedule.pk}:{to_epoch_ms(moment)}" for moment in grid(schedule.anchor, start, end, step)}


def fired_after(counts: Counter[str], schedule: Schedule, after_ms: int) -> list[int]:
    return sorted(
        int(key.split(":")[1])
        for key in counts
        if key.startswith(f"{schedule.pk}:") and int(key.split(":")[1]) > after_ms
    )


def test_racing_schedulers_one_killed_between_staging_and_release_and_changes_inside_the_lead(
    user, job, due_index, start_scheduler, runqueue, coordination
):
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    aligned = [services.schedule_create(job=job, kind="fixed", interval_seconds=1, anchor=base) for _ in range(150)]
    spread = [
        services.schedule_create(
            job=job, kind="fixed", interval_seconds=1, anchor=base + timedelta(milliseconds=7 * index)
        )
        for index in range(100)
    ]
    edited, paused, deleted = (
        services.schedule_create(job=job, kind="fixed", interval_seconds=1, anchor=base) for _ in range(3)
    )
    other_job = job_create(owner=user, name="other", target_type="python", target={"task": "demo.tasks.hello"})
    disabled = [
        services.schedule_create(job=other_job, kind="fixed", interval_seconds=1, anchor=base) for _ in range(3)
    ]
    reader = StreamReader(runqueue)
    reader.start()
    processes = [start_scheduler(f"sched-{index}") for index in range(3)]
    wait_for_heartbeats(coordination, 3)
    first = int(time.time()) + 2
    window_start = datetime.fromtimestamp(first, UTC)
    every = 150 + 3 + 3 + 1  # due on each whole second: the aligned ones, the changed ones, a spread one

    # One of three dies with a whole second's occurrences staged, 0.1 s before their instant.
    staged_at_kill = kill_once_staged(processes[0], due_index, first + 2, every)

    # Inside the lead of another instant: moved half a second on, paused, deleted, job disabled.
    instant = first + 4
    sleep_until(instant - LEAD_MS / 1000 + 0.15)
    staged_before_changes = staged_count(due_index)
    moved_anchor = datetime.fromtimestamp(instant, UTC) + timedelta(milliseconds=500)
    old_grid = {
        int(key.split(":")[1]) for key in expected_keys(edited, window_start, window_start + timedelta(seconds=60))
    }
    services.schedule_update(edited, anchor=moved_anchor)
    edited_at = int(time.time() * 1000)
    services.schedule_pause(paused)
    paused_at = int(time.time() * 1000)
    services.schedule_delete(deleted)
    deleted_at = int(time.time() * 1000)
    job_update(other_job, enabled=False)
    disabled_at = int(time.time() * 1000)
    changed_in_time = max(edited_at, paused_at, deleted_at, disabled_at) < instant * 1000

    sleep_until(first + 8)
    window_end = datetime.fromtimestamp(first + 7, UTC)
    reader.stop()

    counts = Counter(entry["fk"] for entry in reader.seen)
    assert {key: count for key, count in counts.items() if count > 1} == {}
    for schedule in aligned + spread:
        expected = expected_keys(schedule, window_start, window_end)
        assert expected <= set(counts), f"lost: {sorted(expected - set(counts))[:5]}"
    # Nothing of the old versions after each change took effect; the moved one on its new grid.
    assert not set(fired_after(counts, edited, edited_at)) & old_grid
    assert fired_after(counts, paused, paused_at) == []
    assert fired_after(counts, deleted, deleted_at) == []
    assert all(fired_after(counts, schedule, disabled_at) == [] for schedule in disabled)
    assert expected_keys(edited, datetime.fromtimestamp(instant, UTC), window_end) <= set(counts)
    print(
        f"fires={len(reader.seen)}; staged when one was killed: {staged_at_kill}; staged when the changes "
        f"began: {staged_before_changes}; changes all in before their instant: {changed_in_time}"
    )
    assert staged_at_kill > 0


def test_occurrences_staged_by_a_scheduler_killed_before_their_instant_are_released_by_another(
    job, due_index, start_scheduler, runqueue, coordination
):
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    schedules = [services.schedule_create(job=job, kind="fixed", interval_seconds=1, anchor=base) for _ in range(200)]
    reader = StreamReader(runqueue)
    reader.start()
    stager = start_scheduler("stager")
    wait_for_heartbeats(coordination, 1)
    instant = int(time.time()) + 2
    staged = kill_once_staged(stager, due_index, instant, len(schedules))
    assert staged == len(schedules)  # it alone ran: all of that instant's occurrences were staged by it
    start_scheduler("next")  # comes up after the instant: releases them late, within their grace
    deadline = time.monotonic() + 30
    while "next" not in coordination.beats(SCHEDULERS):
        assert time.monotonic() < deadline, "the second scheduler did not come up"
        time.sleep(0.1)
    sleep_until(max(instant + 4, time.time() + 2))
    reader.stop()

    counts = Counter(entry["fk"] for entry in reader.seen)
    assert {key: count for key, count in counts.items() if count > 1} == {}
    window = (datetime.fromtimestamp(instant - 1, UTC), datetime.fromtimestamp(instant + 2, UTC))
    for schedule in schedules:
        expected = expected_keys(schedule, *window)
        assert expected <= set(counts), f"lost: {sorted(expected - set(counts))[:5]}"
