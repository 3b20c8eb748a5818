"""The scheduling engine: dispatch what is due, resolve what needs Python, keep MongoDB informed.

Each step is a plain function of a store and a time, so tests drive it with a controlled
clock; ``run_loop`` strings them together for the ``run_scheduler`` command. Dispatch is
Redis only (one Lua step per shard); MongoDB sees the engine's results in batches.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from bson import ObjectId
from django.db import IntegrityError
from pymongo import UpdateOne

from jobs.models import Job, Run
from jobscheduler import mongo
from schedules import metrics
from schedules.kinds import from_epoch_ms, to_epoch_ms
from schedules.models import Schedule
from schedules.store import NONE, DispatchResult, RedisStore, Resolution, look_ahead
from schedules.timeline import fire_key, jitter_ms, next_occurrence

logger = logging.getLogger(__name__)

UNKNOWN = -2  # a cron time the dispatch step left for Python to compute
MAX_MISSED_RECORDS = 10_000  # per schedule and gap; more are counted in the log, not recorded


@dataclass
class MirroredSchedule:
    """A schedule rebuilt from its Redis mirror: enough for the schedule maths, no MongoDB."""

    pk: str
    job_id: str
    kind: str
    interval_seconds: int | None
    anchor: datetime | None
    expression: str
    timezone: str
    start_at: datetime | None
    end_at: datetime | None
    max_runs: int | None
    run_count: int
    jitter_seconds: int
    misfire_policy: str
    misfire_grace_seconds: float
    catchup_window_seconds: float
    catchup_max_runs: int

    @classmethod
    def from_state(cls, schedule_id: str, state: dict[str, str]) -> MirroredSchedule:
        def moment(name: str) -> datetime | None:
            value = int(state.get(name, NONE))
            return None if value == NONE else from_epoch_ms(value)

        interval = int(state["interval"])
        maximum = int(state["max"])
        return cls(
            pk=schedule_id,
            job_id=state["job"],
            kind=state["kind"],
            interval_seconds=interval // 1000 if interval > 0 else None,
            anchor=moment("anchor"),
            expression=state.get("expression", ""),
            timezone=state.get("timezone", "UTC"),
            start_at=moment("start"),
            end_at=moment("end"),
            max_runs=None if maximum == NONE else maximum,
            run_count=int(state["count"]),
            jitter_seconds=int(state["jitter"]) // 1000,
            misfire_policy=state["misfire"],
            misfire_grace_seconds=int(state["grace"]) / 1000,
            catchup_window_seconds=int(state.get("window", 3_600_000)) / 1000,
            catchup_max_runs=int(state.get("catchup_max", 100)),
        )

    def after(self, moment: datetime, fired: int) -> datetime | None:
        occurrence = next_occurrence(self, moment, fired)  # type: ignore[arg-type]
        return occurrence.at if occurrence else None


@dataclass
class Decision:
    """What Python decided for one schedule taken from the work set."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    missed: list[datetime] = field(default_factory=list)
    next_at: datetime | None = None
    ahead: list[int] = field(default_factory=list)
    final: bool = True
    count: int = 0
    not_recorded: int = 0


def decide(schedule: MirroredSchedule, state: dict[str, str], now: datetime) -> Decision | None:
    """Compute the next times, and apply the misfire policy if the schedule fell behind.

    Returns None when the schedule has no next occurrence left (nothing to do).
    """
    count = schedule.run_count
    nxt = int(state["next"])
    if nxt == NONE:
        return None
    known = [int(moment) for moment in state.get("ahead", "").split(",") if moment]
    if nxt == UNKNOWN:
        last = int(state.get("last", NONE))
        candidate = schedule.after(from_epoch_ms(last) if last != NONE else now, count)
        known = []
    else:
        candidate = from_epoch_ms(nxt)
    decision = Decision(count=count)
    late: list[datetime] = []
    grace = timedelta(seconds=schedule.misfire_grace_seconds)
    while candidate is not None and _due_at(schedule, candidate) + grace < now:
        if len(late) < MAX_MISSED_RECORDS:
            late.append(candidate)
        else:
            decision.not_recorded += 1
        candidate = schedule.after(candidate, count)
    if late:
        _apply_misfire_policy(schedule, late, now, decision)
        known = []
    decision.next_at = candidate
    if candidate is not None and schedule.kind != "fixed":  # fixed intervals advance in Lua
        decision.ahead, decision.final = look_ahead(schedule, candidate, decision.count + 1, known)
    else:
        decision.final = candidate is None
    return decision


def _due_at(schedule: MirroredSchedule, nominal: datetime) -> datetime:
    return nominal + timedelta(milliseconds=jitter_ms(fire_key(schedule.pk, nominal), schedule.jitter_seconds, None))


def _apply_misfire_policy(schedule: MirroredSchedule, late: list[datetime], now: datetime, decision: Decision) -> None:
    policy = schedule.misfire_policy
    if policy == Schedule.Misfire.RUN_ONCE:
        # Coalesced: the latest stands for them all, so the others are not reported missed.
        run, missed = late[-1:], []
    elif policy == Schedule.Misfire.RUN_ALL:
        window_start = now - timedelta(seconds=schedule.catchup_window_seconds)
        in_window = [moment for moment in late if moment >= window_start]
        run = in_window[-schedule.catchup_max_runs :]
        missed = late[: len(late) - len(run)]
    else:
        run, missed = [], late
    decision.entries = [
        {"fire_key": fire_key(schedule.pk, moment), "nominal": to_epoch_ms(moment), "trigger": Run.Trigger.CATCH_UP}
        for moment in run
    ]
    decision.missed = missed
    decision.count += len(run)


def handle_work(
    store: RedisStore, now: datetime, lease_seconds: float = 10, limit: int = 500, shards: list[int] | None = None
) -> int:
    """Lease schedules that need Python and resolve them, in batches; returns how many."""
    claimed = store.claim_work(to_epoch_ms(now), int(lease_seconds * 1000), limit, shards)
    if not claimed:
        return 0
    ids = [schedule_id for _, schedule_id in claimed]
    missed_runs: list[Run] = []
    resolutions: list[Resolution] = []
    missed_counts: list[int] = []
    for schedule_id, state in zip(ids, store.states(ids), strict=True):
        decision = None
        if state:
            schedule = MirroredSchedule.from_state(schedule_id, state)
            decision = decide(schedule, state, now)
        if decision is None:
            store.forget_work(schedule_id)
            continue
        missed_runs += [
            Run(
                job_id=ObjectId(schedule.job_id),
                schedule_id=ObjectId(schedule_id),
                fire_key=fire_key(schedule_id, moment),
                trigger=Run.Trigger.SCHEDULE,
                status=Run.Status.MISSED,
                nominal_time=moment,
                finished_at=now,
                error="Missed: the scheduler was down or behind by more than the grace time.",
            )
            for moment in decision.missed
        ]
        if decision.not_recorded:
            logger.warning(
                "misfire gap too long to record", extra={"schedule": schedule_id, "unrecorded": decision.not_recorded}
            )
        missed_counts.append(len(decision.missed))
        resolutions.append(
            Resolution(
                schedule_id=schedule_id,
                expect_gen=state["gen"],
                expect_next=state["next"],
                next_ms=to_epoch_ms(decision.next_at) if decision.next_at else NONE,
                ahead=decision.ahead,
                final=decision.final,
                count=decision.count,
                entries=decision.entries,
            )
        )
    # Missed runs are recorded before the state moves on: a crash in between leaves the
    # lease to expire and the work to be redone, and recording again is harmless.
    record_runs(missed_runs)
    applied = store.resolve(resolutions)
    for resolution, missed, done in zip(resolutions, missed_counts, applied, strict=True):
        if done:
            metrics.MISSED.inc(missed)
            metrics.FIRES.labels(trigger="catch_up").inc(len(resolution.entries))
    resolved = sum(applied)
    metrics.WORK_RESOLVED.inc(resolved)
    return resolved


def record_runs(runs: list[Run]) -> int:
    """Insert run records; ones already recorded (same fire key and attempt) are skipped."""
    if not runs:
        return 0
    try:
        Run.objects.bulk_create(runs)
        return len(runs)
    except IntegrityError:
        created = 0
        for run in runs:
            run.pk = None
            try:
                run.save(force_insert=True)
                created += 1
            except IntegrityError:
                pass
        return created


def dispatch_due(store: RedisStore, now: datetime, shards: list[int] | None = None) -> int:
    """Dispatch every occurrence due by ``now``; returns how many were dispatched."""
    total, _ = _dispatch(store, to_epoch_ms(now), list(range(store.shards)) if shards is None else shards)
    return total


def _dispatch(store: RedisStore, now_ms: int, shards: list[int]) -> tuple[int, dict[int, DispatchResult]]:
    """Dispatch on ``shards`` until none has more due; return the count and each last reply."""
    total = 0
    last: dict[int, DispatchResult] = {}
    while shards:
        results = store.dispatch_due(now_ms, shards)
        for result in results:
            total += result.dispatched
            if result.lags_ms:
                metrics.observe_lags(result.lags_ms)
            last[result.shard] = result
        shards = [result.shard for result in results if result.more]
    if total:
        metrics.SCHEDULED_FIRES.inc(total)
    return total, last


SYNC_BATCH = 2000
SYNC_PASS = 10  # batches per housekeeping pass at most: 20,000 schedules every sync_every


def sync_fired(store: RedisStore, limit: int = SYNC_BATCH) -> int:
    """Copy run counts and next/last times of schedules that fired to MongoDB, in one batch.

    About ``limit`` schedules a call (an equal share from each shard): the rest wait in the
    fired set, where repeated fires coalesce, so MongoDB's write load stays bounded however
    fast schedules fire. Users see these fields live from Redis; MongoDB's copy only has to
    be close for a reconcile.
    """
    fired = store.pop_fired(limit)
    operations = []
    for schedule_id, state in fired:
        if not state or not ObjectId.is_valid(schedule_id):
            continue
        nxt, last = int(state["next"]), int(state.get("last", NONE))
        values: dict[str, Any] = {"run_count": int(state["count"])}
        if nxt != UNKNOWN:
            values["next_run_at"] = from_epoch_ms(nxt) if nxt >= 0 else None
        if last >= 0:
            values["last_run_at"] = from_epoch_ms(last)
        operations.append(UpdateOne({"_id": ObjectId(schedule_id)}, {"$set": values}))
    if operations:
        mongo.collection(Schedule).bulk_write(operations, ordered=False)
    return len(operations)


def reconcile(
    store: RedisStore,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 1000,
) -> dict[str, int]:
    """Repair the Redis mirror from MongoDB: add what is missing or stale, drop what is gone.

    A schedule missing from Redis (Redis lost data) restarts after the later of its last
    recorded fire and its last recorded run, so the misfire policy, not a replay, covers
    the gap.
    """
    store.ensure_groups()
    report = {"checked": 0, "added": 0, "updated": 0, "removed": 0}
    total = Schedule.objects.count()
    seen: set[str] = set()
    for chunk in _chunks(Schedule.objects.order_by("pk").iterator(chunk_size=batch), batch):
        ids = [str(schedule.pk) for schedule in chunk]
        seen.update(ids)
        generations = store.generations(ids)
        missing = [schedule for schedule, gen in zip(chunk, generations, strict=True) if gen is None]
        last_runs = _last_nominal_times([schedule.pk for schedule in missing]) if missing else {}
        disabled = _disabled_jobs({schedule.job_id for schedule in missing}) if missing else set()
        repaired = []
        for schedule, gen in zip(chunk, generations, strict=True):
            if gen is None:
                if schedule.job_id not in disabled:
                    _resume_after_last_fire(schedule, last_runs.get(str(schedule.pk)), now)
                report["added"] += 1
            elif gen < schedule.generation:
                report["updated"] += 1
            else:
                continue
            repaired.append(schedule)
        store.upsert_many(repaired)
        report["checked"] += len(chunk)
        if progress:
            progress(report["checked"], total)
    strays = store.all_mirrored_ids() - seen
    # Created while this ran? Those exist in MongoDB by now: only the rest are strays.
    strays -= {
        str(pk)
        for pk in Schedule.objects.filter(pk__in=[ObjectId(i) for i in strays if ObjectId.is_valid(i)]).values_list(
            "pk", flat=True
        )
    }
    for schedule_id in strays:
        store.remove(schedule_id)
        report["removed"] += 1
    store.mark_reconciled()
    repairs = report["added"] + report["updated"] + report["removed"]
    if repairs:
        metrics.RECONCILE_REPAIRS.inc(repairs)
        logger.info("reconciled the Redis mirror", extra=report)
    return report


def _resume_after_last_fire(schedule: Schedule, last_run: datetime | None, now: datetime) -> None:
    """Point a schedule Redis lost at the occurrence after its last known fire."""
    known = [moment for moment in (schedule.last_run_at, last_run) if moment is not None]
    paused = schedule.paused and (schedule.paused_until is None or schedule.paused_until > now)
    if known and not paused:
        occurrence = next_occurrence(schedule, max(known))
        schedule.next_run_at = occurrence.at if occurrence else None


def _disabled_jobs(job_ids: set[Any]) -> set[Any]:
    """Which of these jobs are disabled: their schedules stay stopped when Redis is rebuilt."""
    held = mongo.collection(Job).find({"_id": {"$in": list(job_ids)}, "enabled": False}, {"_id": 1})
    return {row["_id"] for row in held}


def _last_nominal_times(schedule_ids: list[Any]) -> dict[str, datetime]:
    pipeline: list[dict[str, Any]] = [
        {"$match": {"schedule_id": {"$in": schedule_ids}}},
        {"$group": {"_id": "$schedule_id", "last": {"$max": "$nominal_time"}}},
    ]
    collection = mongo.collection(Run)
    return {str(row["_id"]): row["last"].replace(tzinfo=UTC) for row in collection.aggregate(pipeline) if row["last"]}


def _chunks(items: Iterator[Schedule], size: int) -> Iterator[list[Schedule]]:
    chunk: list[Schedule] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class LoopSettings:
    max_sleep: float = 1.0  # a safety net for a lost change notification, not a tick
    beat_every: float = 1.0  # heartbeat
    # How often fired schedules' counts and times are copied to MongoDB. Users see them live
    # from Redis; MongoDB's copy serves reconcile (with the runs' own records). A schedule
    # is written once a pass however often it fired, so every-second schedules cost a
    # fifth of the writes they would at 1 s.
    sync_every: float = 5.0
    reconcile_every: float = 300.0
    reconcile_lock_seconds: float = 600.0  # outlives any reconcile; freed when it ends
    lease_seconds: float = 10.0
    work_slice: int = 64  # schedules resolved in Python between two looks at what is due
    # The shortest time between two wakes, in seconds. Each wake costs about 0.1 ms of CPU
    # however few occurrences it dispatches; at 1,000 schedules spread over the second, a
    # wake per due time would be a wake per millisecond. Dispatch may be this much later.
    grain: float = 0.002


def scheduler_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_loop(
    store: RedisStore,
    stop: threading.Event,
    *,
    once: bool = False,
    clock: Callable[[], float] = time.time,
    options: LoopSettings | None = None,
    name: str | None = None,
) -> None:
    """Dispatch until ``stop`` is set: sleep until the earliest due time or a change.

    MongoDB work (syncing fired schedules, reconciling) runs in a housekeeping thread, so
    a slow MongoDB never delays a fire.
    """
    options = options or LoopSettings()
    name = name or scheduler_id()
    if once and not store.is_reconciled():  # an intact mirror waits for the periodic check
        reconcile(store, _now(clock))
    # Otherwise the housekeeping thread rebuilds a missing mirror (its first look is at once),
    # while this thread fires what is mirrored already: a rebuild reads every schedule from
    # MongoDB, and nothing it would add could fire before it finished anyway.
    store.ensure_groups()
    # Start from a different shard than other schedulers, so they share the work.
    offset = zlib.crc32(name.encode()) % store.shards
    order = [(offset + index) % store.shards for index in range(store.shards)]
    changes = ChangeListener(store)
    fired = [0]
    housekeeping = threading.Thread(
        target=_housekeep, args=(store, stop, clock, options, name, fired), name="housekeeping", daemon=True
    )
    if not once:
        housekeeping.start()
    # When each shard next needs this scheduler, learnt from dispatch replies; 0 = look now.
    attention = [0.0] * store.shards
    try:
        while not stop.is_set():
            woke = clock()
            now_ms = int(woke * 1000)
            due = [shard for shard in order if attention[shard] <= now_ms]
            if due:
                count, replies = _dispatch(store, now_ms, due)
                fired[0] += count
                for reply in replies.values():
                    attention[reply.shard] = min(
                        math.inf if reply.next_due_ms is None else reply.next_due_ms,
                        math.inf if reply.next_work_ms is None else reply.next_work_ms,
                    )
                work = [r.shard for r in replies.values() if r.next_work_ms is not None and r.next_work_ms <= now_ms]
                if work:
                    # A slice at a time, so a burst of refills never holds up a fire.
                    limit = max(1, options.work_slice // len(work))
                    handle_work(store, from_epoch_ms(now_ms), options.lease_seconds, limit, shards=work)
                    for shard in work:
                        attention[shard] = 0  # resolving moved due times: look again
            if once and min(attention) > now_ms:
                sync_fired(store)
                break
            now = clock()
            wait = min(options.max_sleep, max(min(attention) / 1000 - now, options.grain - (now - woke), 0.0))
            changed = changes.wait(wait)
            if changed is None and wait >= options.max_sleep:
                attention = [0.0] * store.shards  # quiet for max_sleep: look everywhere, in case a notice was lost
            for schedule_id in changed or ():
                if schedule_id == "*":  # a batch changed: look at every shard
                    attention = [0.0] * store.shards
                    break
                attention[store.shard_of(schedule_id)] = 0
    finally:
        stop.set()
        changes.close()
        if housekeeping.is_alive():
            housekeeping.join(timeout=30)
        store.forget_beat("schedulers", name)


def _housekeep(
    store: RedisStore,
    stop: threading.Event,
    clock: Callable[[], float],
    options: LoopSettings,
    name: str,
    fired: list[int],
) -> None:
    """Heartbeat, copy fired state to MongoDB, rebuild the mirror if Redis lost it."""
    started = last_reconcile = last_sync = clock()
    try:
        while True:
            store.beat("schedulers", name, {"pid": os.getpid(), "started": started, "fired": fired[0]})
            if clock() - last_sync >= options.sync_every:
                last_sync = clock()
                # A full batch means more may wait: go on, a batch every 0.1 s at most and
                # SYNC_PASS batches a pass, so the heartbeat and reconcile checks keep their pace.
                for _ in range(SYNC_PASS):
                    if sync_fired(store) < SYNC_BATCH or stop.wait(0.1):
                        break
            lost = not store.is_reconciled()
            due = clock() - last_reconcile >= options.reconcile_every
            # One scheduler at a time rebuilds or checks the mirror; the others go on firing.
            if (lost or due) and store.try_lock("reconcile", name, int(options.reconcile_lock_seconds * 1000)):
                if lost:
                    logger.warning("Redis lost the mirror; rebuilding it from MongoDB")
                try:
                    reconcile(store, _now(clock))
                finally:
                    store.unlock("reconcile", name)
                last_reconcile = clock()
            elif due:
                last_reconcile = clock()  # another scheduler holds the lock: it is checking
            if stop.wait(options.beat_every):
                for _ in range(SYNC_PASS):  # what fired last reaches MongoDB before exit
                    if sync_fired(store) < SYNC_BATCH:
                        break
                return
    except Exception:
        logger.exception("housekeeping failed; stopping the scheduler")
        stop.set()
    finally:
        from django.db import connection

        connection.close()


class ChangeListener:
    """Change notices from a thread blocked on pub/sub, so a sleeping scheduler costs no CPU.

    ``wait`` sleeps on an Event (a precise, cheap timed wait) instead of polling the socket.
    """

    def __init__(self, store: RedisStore):
        # A client of its own: closing the subscription must not hand a connection the
        # listening thread still reads from back to the pool the scheduler uses.
        pool = store.client.connection_pool
        self._client = redis.Redis(connection_pool=pool.__class__(**pool.connection_kwargs))
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(store.changes_channel)
        self._channel = store.changes_channel
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._changed: list[str] = []
        self._closed = False
        self._thread = threading.Thread(target=self._listen, name="changes", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._closed:
            try:
                for message in self._pubsub.listen():
                    if message.get("type") == "message":
                        data = message["data"]
                        self._note(data.decode() if isinstance(data, bytes) else str(data))
            except (redis.ConnectionError, ValueError, AttributeError):
                if self._closed:
                    return
                self._note("*")  # notices may have been lost while disconnected
                time.sleep(0.5)
                try:
                    self._pubsub.subscribe(self._channel)
                except redis.ConnectionError:
                    continue

    def _note(self, schedule_id: str) -> None:
        with self._lock:
            self._changed.append(schedule_id)
        self._event.set()

    def wait(self, timeout: float) -> list[str] | None:
        """Sleep up to ``timeout`` seconds or until schedules change; return their ids.

        Returns None when the whole timeout passed without a notice ('*' in the list means
        look everywhere).
        """
        if timeout > 0 and not self._event.wait(timeout):
            return None
        with self._lock:
            changed, self._changed = self._changed, []
            self._event.clear()
        return changed

    def close(self) -> None:
        self._closed = True
        self._client.connection_pool.disconnect()  # wakes the listening thread, which then ends


def _now(clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)
