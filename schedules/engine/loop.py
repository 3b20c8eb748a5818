"""The scheduler loop (``run_scheduler``): sleep until the earliest due time or a change, then dispatch.

MongoDB work (copying fired state, reconciling) runs in a housekeeping thread, so a slow
MongoDB never delays a fire. Both ride out a MongoDB or Redis outage (jobscheduler.outages):
what Redis holds goes on firing while MongoDB is away; nothing fires while Redis is away,
and a Redis that comes back empty is rebuilt by the reconcile.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from django.conf import settings

from jobscheduler import activity
from jobscheduler.coordination import SCHEDULERS, Coordination
from jobscheduler.epoch import from_epoch_ms
from jobscheduler.notices import ChangeListener
from jobscheduler.outages import MONGODB, Backoff, unavailable
from schedules.due_index import DispatchResult, DueIndex
from schedules.engine.reconciler import reconcile
from schedules.engine.steps import SYNC_BATCH, dispatch, handle_work, sync_fired

logger = logging.getLogger(__name__)


@dataclass
class LoopSettings:
    max_sleep: float = 1.0  # a safety net for a lost change notification, not a tick
    beat_every: float = 1.0  # heartbeat
    # How often fired schedules' counts and times are copied to MongoDB. Users see them live
    # from Redis; MongoDB's copy serves reconcile (with the runs' own records). A schedule
    # is written once a pass however often it fired, so every-second schedules cost a
    # fifth of the writes they would at 1 s.
    sync_every: float = 5.0
    # A pass copies batches for at most this long (what is left waits for the next pass),
    # so the heartbeat and the reconcile checks keep their pace however slow MongoDB is.
    sync_pass_seconds: float = 2.0
    # On a stop, the last copy of fired state gets this long; what does not fit stays in
    # Redis for the next scheduler's sync, so a stop takes under a second at any load (the
    # MongoDB client's threads take up to half a second more to wind down).
    stop_sync_seconds: float = 0.3
    reconcile_every: float = 300.0
    reconcile_lock_seconds: float = 600.0  # outlives any reconcile; freed when it ends
    lease_seconds: float = 10.0
    work_slice: int = 64  # schedules resolved in Python between two looks at what is due
    # How long before its due time a schedule is advanced and its occurrence staged, so that
    # at the instant only the stream append is left: a burst due on the same second is
    # released in milliseconds, not advanced one schedule after another (JOBSCHEDULER_STAGE_LEAD_MS).
    stage_lead: float = field(default_factory=lambda: settings.JOBSCHEDULER_STAGE_LEAD_MS / 1000)
    # The shortest time between two wakes, in seconds. Each wake costs about 0.1 ms of CPU
    # however few occurrences it dispatches; at 1,000 schedules spread over the second, a
    # wake per due time would be a wake per millisecond. Dispatch may be this much later.
    grain: float = 0.002


# Redis time to stage one occurrence, with room for a slower or busier machine (about 12 us
# on the engine benchmark's): a burst whose staging takes longer than the lead begins earlier.
STAGE_US_PER_OCCURRENCE = 25
MAX_STAGE_AHEAD_MS = 10_000


def stage_ahead_ms(reply: DispatchResult, lead_ms: int, shards: int) -> int:
    """How long before a shard's next due time its staging begins: the lead, or longer for a
    burst Redis takes longer than the lead to stage. Redis runs one step at a time, so each
    shard counts every shard's share of the burst (shards fill about evenly)."""
    if lead_ms <= 0:
        return 0
    burst_ms = reply.due_with_next * shards * STAGE_US_PER_OCCURRENCE // 1000
    return min(max(lead_ms, burst_ms), MAX_STAGE_AHEAD_MS)


class SchedulerFailed(Exception):
    """The scheduler stopped on an error it cannot ride out (not an outage): exit non-zero."""


def scheduler_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_loop(
    index: DueIndex,
    stop: threading.Event,
    *,
    once: bool = False,
    clock: Callable[[], float] = time.time,
    options: LoopSettings | None = None,
    name: str | None = None,
) -> None:
    """Dispatch until ``stop`` is set: sleep until the earliest due time or a change.

    MongoDB work (syncing fired schedules, reconciling) runs in a housekeeping thread, so
    a slow MongoDB never delays a fire. Raises SchedulerFailed if housekeeping stopped on an
    error that is not an outage.
    """
    options = options or LoopSettings()
    name = name or scheduler_id()
    coordination = Coordination(index.keyspace)
    if once and not index.is_reconciled():  # an intact mirror waits for the periodic check
        reconcile(index, _now(clock))
    # Otherwise the housekeeping thread rebuilds a missing mirror (its first look is at once),
    # while this thread fires what is mirrored already: a rebuild reads every schedule from
    # MongoDB, and nothing it would add could fire before it finished anyway.
    index.runqueue.ensure_groups()
    # Start from a different shard than other schedulers, so they share the work.
    offset = zlib.crc32(name.encode()) % index.shards
    order = [(offset + step) % index.shards for step in range(index.shards)]
    changes = ChangeListener(index.keyspace, [index.keyspace.changes_channel])
    # A stop ends the sleep at once (the loop sleeps up to max_sleep on change notices).
    threading.Thread(target=_wake_on_stop, args=(stop, changes), name="stop", daemon=True).start()
    fired = [0]
    failures: list[BaseException] = []
    chores = _Housekeeping(index, coordination, clock, options, name)
    housekeeping = threading.Thread(
        target=_housekeep, args=(chores, stop, fired, failures), name="housekeeping", daemon=True
    )
    if not once:
        housekeeping.start()
    # When each shard next needs this scheduler, learnt from dispatch replies; 0 = look now.
    attention = [0.0] * index.shards
    # Schedules are advanced and staged at least this long before their due time, and released
    # at it (schedules/lua/dispatch.lua); a burst too big to stage within the lead, earlier
    # (stage_ahead_ms). A step stages what falls due within a lead past the furthest a woken
    # shard looks ahead: the steps that release stage as they go, and a shard needs a step of
    # its own only when something falls due within its look-ahead unstaged. Not when run
    # once: it fires what is due.
    lead_ms = 0 if once else int(options.stage_lead * 1000)
    # How long before its next due time each shard's staging begins (stage_ahead_ms).
    ahead = [lead_ms] * index.shards
    redis_outage = Backoff(f"scheduler {name}: dispatch")
    mongodb_outage = Backoff(f"scheduler {name}: recording missed runs")
    try:
        while not stop.is_set():
            woke = clock()
            now_ms = int(woke * 1000)
            due = [shard for shard in order if attention[shard] <= now_ms]
            try:
                if due:
                    # Stage up to a lead past the furthest a woken shard looks ahead.
                    horizon = lead_ms + max(ahead[shard] for shard in due)
                    count, replies = dispatch(index, now_ms, due, horizon, stop=stop)
                    fired[0] += count
                    for reply in replies.values():
                        ahead[reply.shard] = stage_ahead_ms(reply, lead_ms, index.shards)
                        attention[reply.shard] = min(
                            math.inf if reply.next_release_ms is None else reply.next_release_ms,
                            math.inf if reply.next_due_ms is None else reply.next_due_ms - ahead[reply.shard],
                            math.inf if reply.next_work_ms is None else reply.next_work_ms,
                        )
                    work = [
                        r.shard for r in replies.values() if r.next_work_ms is not None and r.next_work_ms <= now_ms
                    ]
                    if work:
                        # A slice at a time, so a burst of refills never holds up a fire.
                        limit = max(1, options.work_slice // len(work))
                        handle_work(index, from_epoch_ms(now_ms), options.lease_seconds, limit, work, mongodb_outage)
                        for shard in work:
                            attention[shard] = 0  # resolving moved due times: look again
                redis_outage.succeeded()
            except Exception as error:
                server = unavailable(error)
                if once or server is None:
                    raise
                if server == MONGODB:  # a schedule to pause (rare): its work stays leased, tried again
                    mongodb_outage.failed(error)
                    continue
                # Nothing can fire without Redis: wait, then look at every shard again.
                stop.wait(redis_outage.failed(error))
                attention = [0.0] * index.shards
                continue
            if once and min(attention) > now_ms:
                until = time.monotonic() + options.sync_pass_seconds
                while sync_fired(index) >= SYNC_BATCH and time.monotonic() < until:
                    pass
                break
            now = clock()
            wait = min(options.max_sleep, max(min(attention) / 1000 - now, options.grain - (now - woke), 0.0))
            changed = changes.wait(wait)
            if changed is None and wait >= options.max_sleep:
                attention = [0.0] * index.shards  # quiet for max_sleep: look everywhere, in case a notice was lost
            for schedule_id in changed or ():
                if schedule_id == "*":  # a batch changed: look at every shard
                    attention = [0.0] * index.shards
                    break
                attention[index.shard_of(schedule_id)] = 0
    finally:
        stop.set()
        # Housekeeping copies what it can of the fired state in its stop budget; a MongoDB
        # write still under way after it is left (its schedules stay leased in Redis for
        # the next scheduler's sync), and so is a reconcile (its lock is freed below).
        if housekeeping.is_alive():
            housekeeping.join(timeout=options.stop_sync_seconds + 0.1)
        changes.close()
        with contextlib.suppress(redis.RedisError):
            coordination.forget_beat(SCHEDULERS, name)
            activity.flush_lags(index.keyspace)  # what the last beat did not send (and --once's)
            if housekeeping.is_alive():
                coordination.unlock("reconcile", name)  # only if this scheduler holds it
    if failures:
        raise SchedulerFailed(f"housekeeping failed: {failures[0]!r}") from failures[0]


class _Housekeeping:
    """What the housekeeping thread does each beat, and when it last did each part."""

    def __init__(
        self,
        index: DueIndex,
        coordination: Coordination,
        clock: Callable[[], float],
        options: LoopSettings,
        name: str,
        timer: Callable[[], float] = time.monotonic,
    ):
        self.index, self.coordination, self.clock, self.options, self.name = index, coordination, clock, options, name
        self.timer = timer  # durations (the copy's pace, the stop budget); ``clock`` is the schedules' time
        self.started = self.last_reconcile = self.last_sync = clock()
        self.seconds_per_copy = 0.001  # one schedule's share of a MongoDB write, learnt as it goes

    def beat(self, fired: int) -> None:
        self.coordination.beat(SCHEDULERS, self.name, {"pid": os.getpid(), "started": self.started, "fired": fired})
        activity.flush_lags(self.index.keyspace)  # the dashboard's lag histogram, once a beat

    def copy(self, limit: int) -> int:
        """One batch of fired state to MongoDB; learns how long a schedule's share takes."""
        started = self.timer()
        taken = sync_fired(self.index, limit)
        if taken:
            self.seconds_per_copy = (self.seconds_per_copy + (self.timer() - started) / taken) / 2
        return taken

    def sync_and_check(self, stop: threading.Event) -> None:
        """Copy fired state to MongoDB when it is time; rebuild or check the mirror when needed."""
        if self.clock() - self.last_sync >= self.options.sync_every:
            # Full batches mean more may wait: go on for a pass's time at most, so the
            # heartbeat and reconcile checks keep their pace. A stop ends the pass.
            until = self.timer() + self.options.sync_pass_seconds
            while self.copy(SYNC_BATCH) >= SYNC_BATCH and self.timer() < until and not stop.is_set():
                pass
            self.last_sync = self.clock()  # after the copy: one that failed is tried again
        lost = not self.index.is_reconciled()
        due = self.clock() - self.last_reconcile >= self.options.reconcile_every
        lock_ms = int(self.options.reconcile_lock_seconds * 1000)
        # One scheduler at a time rebuilds or checks the mirror; the others go on firing.
        if stop.is_set():
            return
        if (lost or due) and self.coordination.try_lock("reconcile", self.name, lock_ms):
            if lost:
                logger.warning("Redis lost the mirror; rebuilding it from MongoDB")
            try:
                reconcile(self.index, _now(self.clock), stop=stop)
            finally:
                self.coordination.unlock("reconcile", self.name)
            self.last_reconcile = self.clock()
        elif due:
            self.last_reconcile = self.clock()  # another scheduler holds the lock: it is checking

    def last_sync_before_exit(self) -> int:
        """Copy what fired last to MongoDB within the stop budget; returns how many schedules.

        Batches are sized to what the budget has left at the pace copies went so far; what
        does not fit stays in the fired set for the next scheduler's sync.
        """
        until = self.timer() + self.options.stop_sync_seconds
        copied = 0
        while True:
            fits = int((until - self.timer()) / max(self.seconds_per_copy, 1e-6))
            if fits < 1:
                return copied
            limit = min(SYNC_BATCH, fits)
            taken = self.copy(limit)
            copied += taken
            if taken < limit:
                return copied


def _housekeep(chores: _Housekeeping, stop: threading.Event, fired: list[int], failures: list[BaseException]) -> None:
    """Heartbeat, copy fired state to MongoDB, rebuild the mirror if Redis lost it.

    A MongoDB or Redis outage is ridden out: the heartbeat goes on at its pace (while Redis
    answers), the MongoDB work is tried again after a capped backoff, and the outage is
    logged once. Any other error stops the scheduler, which then exits non-zero.
    """
    name = chores.name
    beats = Backoff(f"scheduler {name}: heartbeat")
    outage = Backoff(f"scheduler {name}: housekeeping")
    try:
        while True:
            try:
                chores.beat(fired[0])
                beats.succeeded()
            except Exception as error:
                if unavailable(error) is None:
                    raise
                beats.failed(error)
            if outage.ready() and not stop.is_set():
                try:
                    chores.sync_and_check(stop)
                    outage.succeeded()
                except Exception as error:
                    if unavailable(error) is None:
                        raise
                    outage.failed(error)
            if stop.wait(chores.options.beat_every):
                try:
                    chores.last_sync_before_exit()
                except Exception as error:  # an outage, or the client closed by an exit that did not wait
                    # Not lost: what did not reach MongoDB waits in Redis for the next scheduler.
                    logger.warning("fired state not copied to MongoDB before exit", extra={"error": repr(error)})
                return
    except Exception as error:
        logger.exception("housekeeping failed; stopping the scheduler")
        failures.append(error)
        stop.set()
    finally:
        from django.db import connection

        connection.close()


def _wake_on_stop(stop: threading.Event, changes: ChangeListener) -> None:
    stop.wait()
    changes.wake()


def _now(clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)
