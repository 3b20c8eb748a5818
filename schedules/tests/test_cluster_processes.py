"""Real schedulers and workers on a local Redis Cluster: every occurrence once, through a
master's failover (kill -9) and through a resharding, delivered to a webhook receiver that
counts deliveries by fire key (the Standard Webhooks id).

Slow (tens of seconds each) and cluster-only; CI runs them. The cluster is the session's
(conftest.py: redis_cluster); each test leaves it as it found it: three masters, slots where
they were, a replica for each master.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devtools.cluster import LocalCluster
from jobs.models import Job, Run
from jobs.services import job_create, run_now
from jobscheduler import redis_cluster as cluster_mode
from jobscheduler.coordination import Coordination
from jobscheduler.epoch import to_epoch_ms
from jobscheduler.keyspace import Keyspace
from schedules import services
from schedules.due_index import DueIndex
from schedules.models import Schedule
from schedules.tests.test_multiprocess import grid, wait_for_heartbeats
from workers.tests.test_processes import Receiver, receiver, start, wait_for_workers, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis_modes("cluster")]

__all__ = ["receiver", "start"]  # fixtures shared with workers/tests/test_processes.py

SCHEDULERS, WORKERS = 3, 2
COUNT = int(os.environ.get("JOBSCHEDULER_CLUSTER_SCHEDULES", "10000"))
# Schedules every second in the failover and resharding tests: what two workers keep up with
# on a loaded CI machine (a backlog would outlast the test's wait).
FLEET_SCHEDULES = 50


@pytest.fixture
def process_env(process_env: dict[str, str]) -> dict[str, str]:
    # Workers deliver to the loopback receiver; takeover stays at its default (30 s), longer
    # than a failover, so a failover never looks like a dead worker.
    return {**process_env, "JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "JOBSCHEDULER_LOG_LEVEL": "ERROR"}


@pytest.fixture
def fleet(start: Callable[..., Any], coordination: Coordination, receiver: str) -> Iterator[Callable[[], list[Any]]]:
    """3 run_scheduler and 2 run_worker processes on the cluster; returns a look at which still run."""
    Receiver.answers = []  # every delivery answered 200
    schedulers = [start("run_scheduler", "--name", f"s{index}") for index in range(SCHEDULERS)]
    workers = [start("run_worker", "--name", f"w{index}", "--concurrency", "16") for index in range(WORKERS)]
    wait_for_heartbeats(coordination, SCHEDULERS)
    wait_for_workers(coordination, *(f"w{index}" for index in range(WORKERS)))
    processes = schedulers + workers
    yield lambda: [(process.args[2], process.args[4]) for process in processes if process.poll() is not None]  # type: ignore[index]


def webhook_job(user: Any, url: str) -> Job:
    return job_create(
        owner=user,
        name="hook",
        target_type="http",
        target={"url": url, "method": "POST", "body": "{}"},
        secret=Receiver.secret,
        timeout_seconds=10,
        # A delivery the loaded receiver fails to answer in time is tried again: a new attempt
        # of the same occurrence, recorded as such (never the same attempt twice).
        max_attempts=3,
        retry_backoff_seconds=1,
    )


def deliveries() -> Counter[str]:
    return Counter(seen["id"] for seen in list(Receiver.seen))


def records(job: Job) -> dict[str, list[tuple[int, str]]]:
    """Run records of ``job`` by fire key: (attempt, status) each."""
    found: dict[str, list[tuple[int, str]]] = {}
    for key, attempt, status in Run.objects.filter(job=job).values_list("fire_key", "attempt", "status"):
        found.setdefault(key, []).append((attempt, status))
    return found


def expected_keys(schedules: list[Schedule], start: datetime, end: datetime, step: timedelta) -> set[str]:
    keys = set()
    for schedule in schedules:
        assert schedule.anchor is not None
        keys |= {f"{schedule.pk}:{to_epoch_ms(moment)}" for moment in grid(schedule.anchor, start, end, step)}
    return keys


def run_once(attempts: list[tuple[int, str]]) -> bool:
    """An occurrence's records: attempts 1, 2... each once, the last succeeded (or missed)."""
    numbers = sorted(number for number, _ in attempts)
    return numbers == list(range(1, len(numbers) + 1)) and max(attempts)[1] in ("succeeded", "missed")


def failed_attempts(job: Job) -> list[str]:
    """Why attempts failed (printed: a receiver too slow to answer on a loaded machine)."""
    return list(Run.objects.filter(job=job, status="failed").values_list("error", flat=True)[:5])


def settled(job: Job, expected: set[str], timeout: float) -> dict[str, list[tuple[int, str]]]:
    """Wait until every expected occurrence has a finished record (run or missed); return the
    records. Counted once a second: reading thousands of records each look would slow the
    receiver and workers this process shares the cores with."""
    finished = Run.objects.filter(job=job, status__in=["succeeded", "missed"])
    deadline = started = time.monotonic()
    deadline += timeout
    while True:
        found = records(job) if finished.count() >= len(expected) else {}
        done = {key for key, attempts in found.items() if run_once(attempts)}
        if expected <= done:
            return found
        if time.monotonic() > deadline:
            found = records(job)
            left = sorted(key for key in expected if key not in done)
            pytest.fail(
                f"{len(expected) - len(left)} of {len(expected)} finished in {timeout:.0f}s "
                f"({len(Receiver.seen)} deliveries); not: {[(key, found.get(key)) for key in left[:5]]}; "
                f"failures: {failed_attempts(job)}"
            )
        time.sleep(1)
    raise AssertionError(f"unreachable after {time.monotonic() - started:.0f}s")


def every_second(job: Job, count: int, **fields: Any) -> list[Schedule]:
    """``count`` schedules every second, their anchors spread over the second."""
    anchor = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    specs = [
        {"kind": "fixed", "interval_seconds": 1, "anchor": anchor + timedelta(milliseconds=index * 1000 // count)}
        for index in range(count)
    ]
    services.schedule_bulk_create(job=job, specs=[{**spec, **fields} for spec in specs])
    return list(Schedule.objects.filter(job=job))


def test_three_schedulers_two_workers_fire_10k_schedules_each_occurrence_once(
    user: Any, receiver: str, fleet: Callable[[], list[Any]]
) -> None:
    job = webhook_job(user, receiver)
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    # 10,000 schedules, each due once in the next 10 s (then an hour later): 1,000 a second.
    specs = [
        {
            "kind": "fixed",
            "interval_seconds": 3600,
            "anchor": first + timedelta(milliseconds=index),
            "misfire_grace_seconds": 600,  # a loaded machine is late, not misfiring
        }
        for index in range(COUNT)
    ]
    services.schedule_bulk_create(job=job, specs=specs)
    schedules = list(Schedule.objects.filter(job=job))
    expected = {f"{schedule.pk}:{to_epoch_ms(schedule.anchor)}" for schedule in schedules if schedule.anchor}
    assert len(expected) == COUNT
    found = settled(job, expected, timeout=240)
    time.sleep(1)  # nothing more turns up
    found = records(job)
    assert set(found) == expected
    retried = {key: attempts for key, attempts in found.items() if attempts != [(1, "succeeded")]}
    delivered = deliveries()
    assert set(delivered) == expected
    # Delivered once each, but for attempts that failed (the receiver too slow) and were tried again.
    assert [key for key, count in delivered.items() if count > len(found[key])] == []
    print(f"{len(expected)} occurrences run once each; {len(retried)} needed a retry: {failed_attempts(job)}")
    assert fleet() == []  # no scheduler or worker stopped


def test_a_master_killed_while_firing_fails_over_and_each_occurrence_is_recorded_once(
    user: Any,
    receiver: str,
    fleet: Callable[[], list[Any]],
    redis_cluster: LocalCluster,
    keyspace: Keyspace,
    due_index: DueIndex,
) -> None:
    job = webhook_job(user, receiver)
    # Late by more than a second: the misfire policy (skip) records it missed.
    schedules = every_second(job, FLEET_SCHEDULES, misfire_grace_seconds=1)
    window_start = datetime.now(UTC) + timedelta(seconds=3)
    time.sleep(5)
    victim = redis_cluster.master_of(due_index.due_key(0))
    lost = [shard for shard in range(keyspace.shards) if redis_cluster.master_of(due_index.due_key(shard)) == victim]
    redis_cluster.kill(victim)
    killed_at = time.time()
    try:
        wait_until(lambda: victim not in redis_cluster.masters(), 30, "a replica to be promoted")
        promoted_after = time.time() - killed_at
        time.sleep(8)
        window_end = datetime.now(UTC) - timedelta(seconds=3)
        expected = expected_keys(schedules, window_start, window_end, timedelta(seconds=1))
        found = settled(job, expected, timeout=120)
    finally:
        redis_cluster.start_node(victim)  # it rejoins as the new master's replica
        redis_cluster.wait_ok()
    assert fleet() == []  # schedulers and workers rode it out and reconnected by themselves
    assert set(found) >= expected
    recorded_twice = {key: attempts for key, attempts in found.items() if not run_once(attempts)}
    assert recorded_twice == {}
    statuses = Counter(attempts[0][1] for key, attempts in found.items() if key in expected)
    assert set(statuses) <= {"succeeded", "missed"}
    # Where dispatch resumed on the lost master's shards: the first occurrence run after the kill.
    lost_ids = {str(schedule.pk) for schedule in schedules if keyspace.shard_of(str(schedule.pk)) in lost}
    resumed = (
        Run.objects.filter(job=job, status="succeeded", nominal_time__gt=datetime.fromtimestamp(killed_at, UTC))
        .order_by("dispatched_at")
        .values_list("schedule_id", "dispatched_at")
    )
    first_back = next((at for sid, at in resumed if str(sid) in lost_ids), None)
    delivered_twice = sum(1 for count in deliveries().values() if count > 1)
    back = f"{first_back.timestamp() - killed_at:.1f}s" if first_back else "never"
    print(
        f"promoted after {promoted_after:.1f}s; dispatch on its shards back {back} after the kill; "
        f"{dict(statuses)}; deliveries repeated (replayed before recorded): {delivered_twice}"
    )


def test_a_resharding_while_firing_loses_nothing_and_shows_no_error(
    user: Any,
    receiver: str,
    fleet: Callable[[], list[Any]],
    redis_cluster: LocalCluster,
    due_index: DueIndex,
    job: Job,
) -> None:
    hook = webhook_job(user, receiver)
    schedules = every_second(hook, FLEET_SCHEDULES)
    window_start = datetime.now(UTC) + timedelta(seconds=3)
    time.sleep(4)
    source = redis_cluster.master_of(due_index.due_key(0))
    target = next(port for port in redis_cluster.masters() if port != source)
    # redis-cli moves the source's lowest slots: as many as it takes to move shard 0's, and more.
    slots = redis_cluster.slots_of(source)
    moved = slots[: slots.index(cluster_mode.slot_of(due_index.due_key(0))) + 100]
    user_errors: list[BaseException] = []
    made = 0
    try:
        mover = redis_cluster.reshard_in_background(source, target, len(moved))
        # What users do meanwhile: edits and runs now through the services (API and admin).
        while mover.poll() is None:
            try:
                services.schedule_create(job=job, kind="fixed", interval_seconds=3600)
                run_now(job, user=user)
                made += 1
            except Exception as error:
                user_errors.append(error)
            time.sleep(0.05)
        assert mover.returncode == 0, mover.stderr.read() if mover.stderr else ""
        assert redis_cluster.master_of(due_index.due_key(0)) == target
        time.sleep(6)
        window_end = datetime.now(UTC) - timedelta(seconds=3)
        expected = expected_keys(schedules, window_start, window_end, timedelta(seconds=1))
        found = settled(hook, expected, timeout=120)
    finally:
        with contextlib.suppress(Exception):
            redis_cluster.reshard(target, source, len(moved))  # as it was, for the tests after
    assert user_errors == []
    assert fleet() == []
    assert made > 0
    assert {key: found[key] for key in expected if not run_once(found[key])} == {}
    delivered = deliveries()
    assert expected <= set(delivered)
    assert [key for key in expected if delivered[key] > len(found[key])] == []
    print(f"retried: {sum(len(found[key]) > 1 for key in expected)}: {failed_attempts(hook)}")
    print(f"{len(expected)} occurrences run once while {len(moved)} slots moved; {made} edits and runs now meanwhile")
