"""The scheduler's steps: dispatch what is due, resolve what needs Python, copy fired state to MongoDB.

Each is a plain function of a due index and a time, so tests drive it with a controlled
clock. Dispatch is Redis only (one Lua step per shard); MongoDB sees the results in batches.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from bson import ObjectId

from jobs import run_records
from jobs.models import Run
from jobscheduler import activity
from jobscheduler.epoch import to_epoch_ms
from jobscheduler.outages import MONGODB, Backoff, unavailable
from schedules import metrics, services
from schedules.due_index import DispatchResult, DueIndex, Resolution
from schedules.engine.misfire import decide
from schedules.mirror import NONE, MirroredSchedule, fired_state
from schedules.timeline import fire_key

logger = logging.getLogger(__name__)

# Schedules per MongoDB bulk write of fired state. A stop does not wait for one under way (its
# schedules stay leased for the next scheduler); its last copy sizes its own to its budget.
SYNC_BATCH = 1000


def dispatch_due(index: DueIndex, now: datetime, shards: list[int] | None = None, lead_ms: int = 0) -> int:
    """Dispatch every occurrence due by ``now`` (and stage those due within ``lead_ms``);
    returns how many were dispatched."""
    total, _ = dispatch(index, to_epoch_ms(now), list(range(index.shards)) if shards is None else shards, lead_ms)
    return total


def dispatch(
    index: DueIndex,
    now_ms: int,
    shards: list[int],
    lead_ms: int = 0,
    limit: int = 1000,
    stop: threading.Event | None = None,
) -> tuple[int, dict[int, DispatchResult]]:
    """Dispatch on ``shards`` until none has more due, or ``stop`` is set (a scheduler far
    behind must still stop within a second); return the count and each last reply."""
    total = 0
    last: dict[int, DispatchResult] = {}
    while shards and not (stop is not None and stop.is_set()):
        results = index.dispatch_due(now_ms, shards, limit=limit, lead_ms=lead_ms)
        for result in results:
            total += result.dispatched
            if result.lags_ms:
                metrics.observe_lags(result.lags_ms)
                activity.LAGS.observe(result.lags_ms, now_ms)  # the dashboard's, sent with the heartbeat
            last[result.shard] = result
        shards = [result.shard for result in results if result.more]
    if total:
        metrics.SCHEDULED_FIRES.inc(total)
    return total, last


def handle_work(
    index: DueIndex,
    now: datetime,
    lease_seconds: float = 10,
    limit: int = 500,
    shards: list[int] | None = None,
    mongodb: Backoff | None = None,
) -> int:
    """Lease schedules that need Python and resolve them, in batches; returns how many.

    With ``mongodb`` (the scheduler loop's), a MongoDB outage does not stop the loop: schedules
    whose missed runs cannot be recorded stay leased and unresolved (they are taken again when
    the lease expires), the others (refills of next times, which need Redis only) are resolved,
    and while ``mongodb`` backs off no missed run is even tried.
    """
    claimed = index.claim_work(to_epoch_ms(now), int(lease_seconds * 1000), limit, shards)
    if not claimed:
        return 0
    ids = [schedule_id for _, schedule_id in claimed]
    missed_runs: list[Run] = []
    resolutions: list[Resolution] = []
    missed_counts: list[int] = []
    broken: dict[str, str] = {}
    for schedule_id, state in zip(ids, index.states(ids), strict=True):
        try:
            outcome = _resolve_one(schedule_id, state, now)
        except Exception as error:  # this schedule only: it is paused, the others go on
            logger.exception("could not resolve a schedule", extra={"schedule": schedule_id})
            broken[schedule_id] = f"The scheduler could not compute this schedule: {type(error).__name__}: {error}"
            continue
        if outcome is None:
            index.forget_work(schedule_id)
            continue
        resolution, runs = outcome
        missed_runs += runs
        missed_counts.append(len(runs))
        resolutions.append(resolution)
    if broken:
        services.schedules_quarantine(broken, index)
    # Missed runs are recorded before the state moves on: a crash in between leaves the
    # lease to expire and the work to be redone, and recording again is harmless.
    if missed_runs and not _record_missed(missed_runs, mongodb):
        kept = [position for position, missed in enumerate(missed_counts) if not missed]
        resolutions, missed_counts = [resolutions[i] for i in kept], [missed_counts[i] for i in kept]
    applied = index.resolve(resolutions) if resolutions else []
    for resolution, missed, done in zip(resolutions, missed_counts, applied, strict=True):
        if done:
            metrics.MISSED.inc(missed)
            metrics.FIRES.labels(trigger="catch_up").inc(len(resolution.entries))
    resolved = sum(applied)
    metrics.WORK_RESOLVED.inc(resolved)
    return resolved


def _record_missed(runs: list[Run], mongodb: Backoff | None) -> bool:
    """Record missed runs; False when MongoDB is away (``mongodb`` notes it, or is waiting)."""
    if mongodb is None:
        run_records.runs_record(runs)
        return True
    if not mongodb.ready():
        return False
    try:
        run_records.runs_record(runs)
    except Exception as error:
        if unavailable(error) != MONGODB:
            raise
        mongodb.failed(error)
        return False
    mongodb.succeeded()
    return True


def _resolve_one(schedule_id: str, state: dict[str, str], now: datetime) -> tuple[Resolution, list[Run]] | None:
    """Decide one schedule taken from the work set: its resolution and the runs it missed."""
    if not state:
        return None
    schedule = MirroredSchedule.from_state(schedule_id, state)
    decision = decide(schedule, state, now)
    if decision is None:
        return None
    missed = [
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
    resolution = Resolution(
        schedule_id=schedule_id,
        expect_gen=state["gen"],
        expect_next=state["next"],
        next_ms=to_epoch_ms(decision.next_at) if decision.next_at else NONE,
        ahead=decision.ahead,
        final=decision.final,
        count=decision.count,
        entries=decision.entries,
    )
    return resolution, missed


def sync_fired(index: DueIndex, limit: int = SYNC_BATCH) -> int:
    """Copy run counts and next/last times of schedules that fired to MongoDB, in one batch;
    returns how many schedules it took.

    About ``limit`` schedules a call (an equal share from each shard): the rest wait in the
    fired set, where repeated fires coalesce, so MongoDB's write load stays bounded however
    fast schedules fire. Users see these fields live from Redis; MongoDB's copy only has to
    be close for a reconcile. The batch is leased while it is written (DueIndex.pop_fired):
    a scheduler that stops or dies meanwhile leaves it to the next one's sync.
    """
    fired = index.pop_fired(limit)
    ids = [schedule_id for schedule_id, _ in fired]
    try:
        services.schedules_copy_fired_state(
            (schedule_id, fired_state(state))
            for schedule_id, state in fired
            if state and ObjectId.is_valid(schedule_id)
        )
    except Exception:
        # MongoDB did not take them (an outage): they wait in the fired set for the next pass.
        index.return_fired(ids)
        raise
    index.done_fired(ids)
    return len(fired)
