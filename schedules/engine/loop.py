"""The scheduler loop (``run_scheduler``): sleep until the earliest due time or a change, then dispatch.

MongoDB work (copying fired state, reconciling) runs in a housekeeping thread, so a slow
MongoDB never delays a fire.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from jobscheduler.coordination import SCHEDULERS, Coordination
from jobscheduler.epoch import from_epoch_ms
from jobscheduler.notices import ChangeListener
from schedules.due_index import DueIndex
from schedules.engine.reconciler import reconcile
from schedules.engine.steps import SYNC_BATCH, SYNC_PASS, dispatch, handle_work, sync_fired

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
    a slow MongoDB never delays a fire.
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
    fired = [0]
    housekeeping = threading.Thread(
        target=_housekeep,
        args=(index, coordination, stop, clock, options, name, fired),
        name="housekeeping",
        daemon=True,
    )
    if not once:
        housekeeping.start()
    # When each shard next needs this scheduler, learnt from dispatch replies; 0 = look now.
    attention = [0.0] * index.shards
    try:
        while not stop.is_set():
            woke = clock()
            now_ms = int(woke * 1000)
            due = [shard for shard in order if attention[shard] <= now_ms]
            if due:
                count, replies = dispatch(index, now_ms, due)
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
                    handle_work(index, from_epoch_ms(now_ms), options.lease_seconds, limit, shards=work)
                    for shard in work:
                        attention[shard] = 0  # resolving moved due times: look again
            if once and min(attention) > now_ms:
                sync_fired(index)
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
        changes.close()
        if housekeeping.is_alive():
            housekeeping.join(timeout=30)
        coordination.forget_beat(SCHEDULERS, name)


def _housekeep(
    index: DueIndex,
    coordination: Coordination,
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
            coordination.beat(SCHEDULERS, name, {"pid": os.getpid(), "started": started, "fired": fired[0]})
            if clock() - last_sync >= options.sync_every:
                last_sync = clock()
                # A full batch means more may wait: go on, a batch every 0.1 s at most and
                # SYNC_PASS batches a pass, so the heartbeat and reconcile checks keep their pace.
                for _ in range(SYNC_PASS):
                    if sync_fired(index) < SYNC_BATCH or stop.wait(0.1):
                        break
            lost = not index.is_reconciled()
            due = clock() - last_reconcile >= options.reconcile_every
            # One scheduler at a time rebuilds or checks the mirror; the others go on firing.
            if (lost or due) and coordination.try_lock("reconcile", name, int(options.reconcile_lock_seconds * 1000)):
                if lost:
                    logger.warning("Redis lost the mirror; rebuilding it from MongoDB")
                try:
                    reconcile(index, _now(clock))
                finally:
                    coordination.unlock("reconcile", name)
                last_reconcile = clock()
            elif due:
                last_reconcile = clock()  # another scheduler holds the lock: it is checking
            if stop.wait(options.beat_every):
                for _ in range(SYNC_PASS):  # what fired last reaches MongoDB before exit
                    if sync_fired(index) < SYNC_BATCH:
                        break
                return
    except Exception:
        logger.exception("housekeeping failed; stopping the scheduler")
        stop.set()
    finally:
        from django.db import connection

        connection.close()


def _now(clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)
