"""How a worker reads its entries: a read per shard while busy, one over every shard while keeping up."""

from __future__ import annotations

from typing import Any

from jobs.runqueue import RunQueue
from schedules import services as schedule_services
from workers.tests.test_worker import Clock, dispatch, make_job, make_worker


def counting_reads(runqueue: RunQueue, monkeypatch: Any) -> list[int]:
    """The number of shards of each read the worker makes (one round trip each)."""
    reads: list[int] = []
    read = runqueue.read

    def counted(consumer: str, count: int, shards: Any, block_ms: int | None = None) -> Any:
        reads.append(len(shards))
        return read(consumer, count, shards, block_ms=block_ms)

    monkeypatch.setattr(runqueue, "read", counted)
    return reads


def test_a_worker_keeping_up_reads_every_shard_in_one_round_trip(user, runqueue, monkeypatch):
    runqueue.ensure_groups()
    worker = make_worker(runqueue, Clock())
    lanes = runqueue.lanes
    job = make_job(user)
    schedules = [schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1) for _ in range(12)]
    reads = counting_reads(runqueue, monkeypatch)

    assert worker.read(2 * lanes) == []  # nothing yet: a read per shard, most of them empty
    assert reads == [1] * lanes
    reads.clear()
    for nominal_ms, schedule in enumerate(schedules, start=1000):
        dispatch(runqueue, schedule, nominal_ms)
    entries = worker.read(2 * lanes)  # the streams were drained: all at once, two from each at most
    assert reads == [lanes]
    per_lane = [sum(1 for schedule in schedules if shard_of(runqueue, schedule) == lane) for lane in range(lanes)]
    assert sorted(entry.shard for entry in entries) == sorted(
        lane for lane in range(lanes) for _ in range(min(2, per_lane[lane]))
    )


def shard_of(runqueue: RunQueue, schedule: Any) -> int:
    return runqueue.keyspace.shard_of(str(schedule.pk))


def test_a_busy_worker_reads_shard_by_shard_and_never_more_than_asked(user, runqueue, monkeypatch):
    runqueue.ensure_groups()
    worker = make_worker(runqueue, Clock())
    job = make_job(user)
    for nominal_ms in range(1000, 1020):
        dispatch(runqueue, schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1), nominal_ms)
    reads = counting_reads(runqueue, monkeypatch)
    assert worker.read(0) == []
    assert len(worker.read(3)) == 3
    assert set(reads) == {1}  # shard by shard
    assert len(worker.read(100)) == 17  # the rest, shard by shard: the streams are drained now
    reads.clear()
    assert worker.read(runqueue.lanes) == []
    assert reads == [runqueue.lanes]  # over every shard at once
    reads.clear()
    assert worker.read(runqueue.lanes - 1) == []  # too little room for one from each: shard by shard
    assert set(reads) == {1}
