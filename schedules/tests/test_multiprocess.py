"""Several real run_scheduler processes on one Redis and MongoDB: each occurrence once.

These run for tens of seconds of real time each (that is what they test), so they are
marked slow; CI runs them. JOBSCHEDULER_MP_SECONDS shortens or lengthens them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from jobs import run_records
from jobs.models import Run
from jobs.run_records import run_draft
from jobs.runqueue import RunQueue
from jobscheduler.coordination import SCHEDULERS, Coordination
from jobscheduler.epoch import from_epoch_ms, to_epoch_ms
from schedules import services

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("JOBSCHEDULER_MP_SECONDS", "60"))
# Delete every key matching ARGV[1] in one step; returns how many.
WIPE = "local n = 0 for _, key in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('DEL', key) end return n"


class StreamReader(threading.Thread):
    """Reads every dispatch stream as a worker would see it; optionally records runs."""

    def __init__(self, runqueue: RunQueue, record: bool = False):
        super().__init__(daemon=True)
        self.runqueue, self.record = runqueue, record
        self.seen: list[dict[str, str]] = []
        self.replays = 0
        self.stopping = threading.Event()
        # The last entry read from each stream (the thread moves them on; stop() waits on them).
        self.positions = {self.runqueue.stream_key(shard): "0" for shard in range(self.runqueue.shards)}

    def run(self) -> None:
        while not self.stopping.is_set():
            reply: Any = self.runqueue.client.xread(self.positions, count=1000, block=200)  # type: ignore[arg-type]
            for stream, entries in reply or []:
                batch = []
                for _, fields in entries:
                    entry = {key.decode(): value.decode() for key, value in fields.items()}
                    entry["at"] = str(int(time.time() * 1000))
                    batch.append(entry)
                self.seen += batch
                if self.record:
                    self._record(batch)
                self.positions[stream.decode()] = entries[-1][0].decode()  # once recorded
        connection.close()

    def _record(self, entries: list[dict[str, str]]) -> None:
        # Recorded as a worker records runs that finished at once, in one write: a reconcile
        # after Redis lost data replays only occurrences without a finished run.
        moment = datetime.now(UTC)
        runs = []
        for entry in entries:
            run = run_draft(
                job_id=entry["j"],
                schedule_id=entry["s"],
                fire_key=entry["fk"],
                attempt=1,
                trigger=entry["t"],
                nominal_time=from_epoch_ms(int(entry["n"])),
                dispatched_at=moment,
                worker="reader",
            )
            run.status, run.started_at, run.finished_at = Run.Status.SUCCEEDED, moment, moment
            runs.append(run)
        # Already recorded: the unique index keeps it once.
        self.replays += run_records.runs_insert_many(runs).count(False)

    def stop(self, drain_seconds: float = 60) -> None:
        """Stop once it has read what the streams held when asked (the schedulers go on
        firing meanwhile; a loaded machine may leave the reader behind for a while)."""
        time.sleep(0.5)  # let the last entries arrive
        targets = {}
        for key in self.positions:
            last: Any = self.runqueue.client.xrevrange(key, count=1)
            if last:
                targets[key] = entry_order(last[0][0].decode())
        deadline = time.monotonic() + drain_seconds
        while any(entry_order(self.positions[key]) < target for key, target in targets.items()):
            assert self.is_alive(), "the reader stopped on an error (see its traceback above)"
            assert time.monotonic() < deadline, f"the reader did not catch up in {drain_seconds} s"
            time.sleep(0.05)
        self.stopping.set()
        self.join(timeout=10)


def entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id as (milliseconds, sequence), which orders ids as Redis does."""
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


@pytest.fixture
def start_scheduler(process_env: dict[str, str]) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_scheduler", "--name", name], cwd=ROOT, env=process_env
        )
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


def wait_for_heartbeats(coordination: Coordination, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(coordination.beats(SCHEDULERS)) < count:
        assert time.monotonic() < deadline, f"only {len(coordination.beats(SCHEDULERS))} of {count} schedulers came up"
        time.sleep(0.1)


def grid(anchor: datetime, start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Grid points anchor + k*step within [start, end]."""
    first = anchor + step * max(0, -(-(start - anchor) // step))
    points = []
    while first <= end:
        points.append(first)
        first += step
    return points


def test_three_schedulers_one_killed_fire_each_occurrence_exactly_once(job, start_scheduler, runqueue, coordination):
    now = datetime.now(UTC)
    anchor = now.replace(microsecond=0) + timedelta(seconds=2)
    schedules = []
    for index in range(300):
        # Spread over the second, as real schedules are.
        start = anchor + timedelta(milliseconds=index * 3)
        schedules.append(services.schedule_create(job=job, kind="fixed", interval_seconds=1, anchor=start))
    reader = StreamReader(runqueue)
    reader.start()
    processes = [start_scheduler(f"sched-{index}") for index in range(3)]
    wait_for_heartbeats(coordination, 3)
    window_start = datetime.now(UTC) + timedelta(seconds=1)
    time.sleep(SECONDS / 2)
    processes[0].send_signal(signal.SIGKILL)
    killed_at = time.time()
    processes[0].wait()
    time.sleep(SECONDS / 2)
    window_end = datetime.now(UTC) - timedelta(seconds=2)
    reader.stop()

    counts = Counter(entry["fk"] for entry in reader.seen)
    duplicates = {key: count for key, count in counts.items() if count > 1}
    assert duplicates == {}
    for schedule in schedules:
        assert schedule.anchor is not None
        expected = {
            f"{schedule.pk}:{to_epoch_ms(moment)}"
            for moment in grid(schedule.anchor, window_start, window_end, timedelta(seconds=1))
        }
        assert expected <= set(counts), f"missed: {sorted(expected - set(counts))[:5]}"
    lags = [int(entry["at"]) - int(entry["n"]) for entry in reader.seen]
    around_kill = [
        int(entry["at"]) - int(entry["n"]) for entry in reader.seen if abs(int(entry["n"]) / 1000 - killed_at) < 3
    ]
    # Not a timing assertion (those live in bench/): shown so a failover gap is visible.
    print(f"fires={len(reader.seen)} max lag={max(lags)} ms; max lag within 3 s of the kill={max(around_kill)} ms")


def test_redis_emptied_midway_is_rebuilt_and_records_each_occurrence_once(
    job, due_index, keyspace, start_scheduler, runqueue, coordination
):
    now = datetime.now(UTC)
    anchor = now.replace(microsecond=0) + timedelta(seconds=2)
    schedules = [
        services.schedule_create(
            job=job, kind="fixed", interval_seconds=1, anchor=anchor + timedelta(milliseconds=index * 7)
        )
        for index in range(100)
    ]
    reader = StreamReader(runqueue, record=True)
    reader.start()
    start_scheduler("sched-a")
    start_scheduler("sched-b")
    wait_for_heartbeats(coordination, 2)
    window_start = datetime.now(UTC) + timedelta(seconds=1)
    time.sleep(SECONDS / 4)
    # All at once, as a Redis restarted without persistence loses it (key by key, a scheduler
    # could rebuild in between and see part of the old state still there).
    deleted = keyspace.client.eval(WIPE, 0, f"*{keyspace.prefix}*")
    assert deleted > 0
    time.sleep(SECONDS / 4)
    window_end = datetime.now(UTC) - timedelta(seconds=2)
    reader.stop()

    assert due_index.is_reconciled(), "the schedulers did not rebuild the mirror"
    records = Counter(Run.objects.filter(attempt=1).values_list("fire_key", flat=True))
    assert [key for key, count in records.items() if count > 1] == []
    missed = Run.objects.filter(status=Run.Status.MISSED).count()
    lost: list[str] = []
    for schedule in schedules:
        assert schedule.anchor is not None
        expected = {
            f"{schedule.pk}:{to_epoch_ms(moment)}"
            for moment in grid(schedule.anchor, window_start, window_end, timedelta(seconds=1))
        }
        lost += sorted(expected - set(records))
    assert lost == [], f"{len(lost)} neither run nor missed, of {len(schedules)} schedules: {lost[:5]}"
    print(f"records={sum(records.values())} missed={missed} replays stopped by the unique index={reader.replays}")
