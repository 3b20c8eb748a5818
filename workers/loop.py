"""The threads that drive a worker (``run_worker``): read entries, run them in slots, keep them alive.

``run`` reads entries while slots are free and hands them to one thread per slot, which
runs each through workers.handler; a keep-alive thread shows the entries held are alive and
beats the heartbeat. SIGTERM (``stop``) finishes the runs in progress and takes no new ones;
entries read but not started go back to the stream for any worker.

A MongoDB or Redis outage is ridden out (jobscheduler.outages): reading waits and tries again
after a capped backoff, a slot whose entry was stopped midway keeps it (not acknowledged, kept
alive) and handles it again when the server is back, and the recorder retries its writes.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque

import redis
from django.db import connection

from jobs.runqueue import Entry
from jobscheduler.coordination import WORKERS
from jobscheduler.outages import Backoff, unavailable
from workers import backfills, celery_results
from workers.children import ChildPool, Slot, child_env
from workers.handler import Handled, handle
from workers.worker import Worker

logger = logging.getLogger(__name__)

RELEASE_EVERY = 0.25  # seconds between looks at the delayed sets (due retries, held runs)


def run(worker: Worker, stop: threading.Event, slots: list[Slot] | None = None) -> None:
    """Work until ``stop`` is set, then finish the runs in progress and return."""
    worker.runqueue.ensure_groups()
    notices = worker.listen()
    worker.recorder.start()
    pool: ChildPool | None = None
    if slots is None:
        env = child_env(redis_prefix=worker.runqueue.keyspace.prefix, shards=worker.runqueue.shards)
        pool = ChildPool(env, worker.options.processes)
        slots = [Slot(env, pool=pool, name=worker.name) for _ in range(worker.options.concurrency)]
    work: queue.Queue[Entry | None] = queue.Queue()
    free = threading.Condition()
    busy = [0]
    handling = Backoff(f"worker {worker.name}: handling entries")  # shared: logged once for all slots
    threads = [
        threading.Thread(
            target=_slot_loop, args=(worker, slot, work, free, busy, stop, handling), name=f"slot-{index}", daemon=True
        )
        for index, slot in enumerate(slots)
    ]
    for thread in threads:
        thread.start()
    quiet = threading.Event()
    keeper = threading.Thread(target=_keep_loop, args=(worker, quiet, busy), name="keep-alive", daemon=True)
    keeper.start()
    # Celery tasks' outcomes, when a result backend holds them (workers.celery_results).
    watched = threading.Event()
    watcher = None
    if celery_results.watching():
        watcher = threading.Thread(target=celery_results.watch, args=(worker, watched), name="celery-results")
        watcher.daemon = True
        watcher.start()
    # Backfills requested through the API, the admin or the backfill command (workers.backfills).
    backfiller = threading.Thread(target=backfills.watch, args=(worker, stop), name="backfills", daemon=True)
    backfiller.start()
    backlog: deque[Entry] = deque()
    next_takeover = next_release = 0.0
    block_ms = int(min(worker.options.block_seconds, worker.options.keep_alive_seconds) * 1000) or 1
    outage = Backoff(f"worker {worker.name}: reading entries")
    try:
        while not stop.is_set():
            try:
                if time.monotonic() >= next_release:
                    next_release = time.monotonic() + RELEASE_EVERY
                    worker.release_due()
                with free:
                    if busy[0] >= len(slots):
                        free.wait(worker.options.block_seconds)
                        continue
                    room = len(slots) - busy[0] - len(backlog)
                if room > 0 and time.monotonic() >= next_takeover:
                    next_takeover = time.monotonic() + min(1.0, worker.options.takeover_seconds / 4)
                    claimed = worker.take_over(room)
                    backlog.extend(claimed)
                    room -= len(claimed)
                if room > 0:
                    backlog.extend(worker.read(room, block_ms=0 if backlog else block_ms))
                outage.succeeded()
            except Exception as error:
                if unavailable(error) is None:
                    raise
                stop.wait(outage.failed(error))
            with free:
                while backlog and busy[0] < len(slots):
                    busy[0] += 1
                    work.put(backlog.popleft())
    finally:
        with contextlib.suppress(redis.RedisError):
            worker.give_back(list(backlog))
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()
        worker.recorder.stop()
        backfiller.join(timeout=10)
        watched.set()
        if watcher is not None:
            watcher.join(timeout=10)
        if pool is not None:
            pool.close()
        notices.close()
        quiet.set()
        keeper.join(timeout=10)
        with contextlib.suppress(redis.RedisError):
            worker.coordination.forget_beat(WORKERS, worker.name)
        connection.close()


def _slot_loop(
    worker: Worker,
    slot: Slot,
    work: queue.Queue[Entry | None],
    free: threading.Condition,
    busy: list[int],
    stop: threading.Event,
    outage: Backoff,
) -> None:
    # No run process is started before a python or command run needs one (webhooks never do):
    # the slot starts its own at its first such run and keeps it for the next ones.
    try:
        while True:
            entry = work.get()
            if entry is None:
                return
            try:
                outcome = _handle_through_outages(worker, entry, slot, outage, stop)
                logger.debug(
                    "entry handled",
                    extra={"fire_key": entry.fire_key, "attempt": entry.attempt, "outcome": outcome},
                )
            except Exception:
                # Left in this worker's pending list unattended: taken over after the idle time.
                worker.forget(entry)
                logger.exception("entry failed to run", extra={"fire_key": entry.fire_key})
            finally:
                with free:
                    busy[0] -= 1
                    free.notify_all()
    finally:
        slot.close()
        connection.close()


def _handle_through_outages(
    worker: Worker, entry: Entry, slot: Slot, outage: Backoff, stop: threading.Event
) -> Handled | None:
    """Handle the entry, again and again while MongoDB or Redis is away (the entry stays held
    meanwhile); None if the worker is stopping first: the entry is left to be taken over."""
    while True:
        try:
            outcome = handle(worker, entry, slot)
        except Exception as error:
            if unavailable(error) is None:
                raise
            if stop.wait(outage.failed(error)):
                worker.forget(entry)
                logger.warning(
                    "stopping during an outage; entry left to be taken over", extra={"fire_key": entry.fire_key}
                )
                return None
            continue
        outage.succeeded()
        return outcome


def _keep_loop(worker: Worker, quiet: threading.Event, busy: list[int]) -> None:
    """Heartbeat and keep held entries alive, until the slots are done.

    Through a Redis outage it goes on trying at its usual pace (held entries must look alive
    as soon as Redis is back, before another worker would take them over), logging it once.
    """
    next_beat = 0.0
    outage = Backoff(f"worker {worker.name}: keep-alive")
    while True:
        try:
            worker.keep_alive()
            if time.monotonic() >= next_beat:
                worker.heartbeat(busy[0])
                next_beat = time.monotonic() + worker.options.heartbeat_seconds
            outage.succeeded()
        except Exception as error:
            if unavailable(error) is None:
                logger.exception("keep-alive failed; trying again")
            else:
                outage.failed(error)
        if quiet.wait(worker.options.keep_alive_seconds):
            return
