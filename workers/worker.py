"""A worker's state: the entries it holds, reading and taking them over, keeping them alive.

The run state machine for one entry is in workers.handler; the threads that drive a worker
(``run_worker``) in workers.loop. Every step is a method or function a test calls directly.

- **Reading.** Entries come through the run queue's consumer group, never more than the
  free slots (shards are read in turn, without blocking, before one blocking read over all).
  An entry stays in this worker's pending list until it is acknowledged and deleted.
- **Takeover.** A live worker resets the idle time of the entries it holds (``keep_alive``);
  one that was SIGKILLed stops doing so, and after ``takeover_seconds`` another worker claims
  them (XAUTOCLAIM) and continues them (workers.handler).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from jobs import selectors
from jobs.models import Job
from jobs.runqueue import Entry, RunQueue
from jobs.targets.celery import SendMarks
from jobscheduler.coordination import WORKERS, Coordination
from jobscheduler.notices import ChangeListener
from jobscheduler.outages import MONGODB, unavailable
from schedules import selectors as schedule_selectors
from schedules.calendars import Exclusion, excluded
from workers.awaited import AwaitedRuns
from workers.recorder import Recorder

logger = logging.getLogger(__name__)

LOOKUP_CACHE_SIZE = 10_000


@dataclass
class WorkerOptions:
    concurrency: int = 16  # runs at once (webhooks in flight included)
    processes: int = 4  # run processes for python and command targets, shared by the slots
    takeover_seconds: float = 30.0
    max_takeovers: int = 3
    retry_cap_seconds: float = 3600.0
    block_seconds: float = 1.0
    hold_seconds: float = 5.0  # a held run looks again this often (it is released at once when the running one ends)
    # Jobs and overlap policies are cached this long at most. While the worker listens to
    # change notices (``listen``), an edit drops its entry at once; this is the safety net.
    lookup_cache_seconds: float = 60.0
    heartbeat_seconds: float = 2.0

    @classmethod
    def from_settings(cls, **overrides: Any) -> WorkerOptions:
        values: dict[str, Any] = {
            "concurrency": settings.JOBSCHEDULER_WORKER_CONCURRENCY,
            "processes": settings.JOBSCHEDULER_WORKER_PROCESSES,
            "takeover_seconds": settings.JOBSCHEDULER_WORKER_TAKEOVER_SECONDS,
            "max_takeovers": settings.JOBSCHEDULER_WORKER_MAX_TAKEOVERS,
            "retry_cap_seconds": settings.JOBSCHEDULER_WORKER_RETRY_CAP_SECONDS,
        }
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)

    @property
    def keep_alive_seconds(self) -> float:
        """How often held entries' idle times are reset: well inside the takeover time."""
        return max(0.05, self.takeover_seconds / 4)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Owned:
    entry: Entry
    running: bool = False  # registered in the schedule's running set (overlap)
    recorded: bool = True  # its attempt had a run record when it was read
    read_at: float = 0.0  # the worker's clock when it was read


@dataclass
class _Stats:
    started: float = field(default_factory=time.time)
    done: int = 0


class Worker:
    """One worker process's state: the entries it holds and what it knows of schedules."""

    def __init__(
        self,
        runqueue: RunQueue | None = None,
        *,
        name: str | None = None,
        options: WorkerOptions | None = None,
        clock: Callable[[], float] = time.time,
        random_unit: Callable[[], float] | None = None,
    ):
        self.runqueue = runqueue or RunQueue()
        self.coordination = Coordination(self.runqueue.keyspace)
        self.name = name or worker_name()
        self.options = options or WorkerOptions.from_settings()
        self.clock = clock
        self.random_unit = random_unit or random.Random().random
        self._owned: dict[tuple[int, str], _Owned] = {}
        self._lost: set[tuple[int, str]] = set()
        self._lock = threading.Lock()
        self._policies: dict[str, tuple[float, Any]] = {}
        self._exclusions: dict[str, tuple[float, Any]] = {}
        self._jobs: dict[str, tuple[float, Any]] = {}
        self._notices = 0
        self._offset = 0
        self._drained = False  # the last read found fewer entries than it asked for
        self._claim_cursors: dict[int, str] = {}
        self.stats = _Stats()
        self.recorder = Recorder(marks=SendMarks(self.runqueue.keyspace))
        self.awaited = AwaitedRuns(self.runqueue.keyspace)

    # --- time ------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # --- taking entries --------------------------------------------------------------------
    def _rotation(self) -> list[int]:
        """Shards in an order that starts one further each call, so none is always last."""
        self._offset = (self._offset + 1) % self.runqueue.lanes
        return [(self._offset + index) % self.runqueue.lanes for index in range(self.runqueue.lanes)]

    def read(self, count: int, block_ms: int | None = None) -> list[Entry]:
        """Up to ``count`` new entries (rarely more, after a blocking read over every shard).

        Shards are read in turn until ``count``, then, if none had any, all at once, blocking up
        to ``block_ms``. But while the last read came back short (a worker keeping up) and there
        is room for ``count // shards`` from each, one read over every shard at once replaces the
        read per shard (most of them empty: 17 round trips an entry on a quiet worker).
        """
        if count <= 0:
            return []
        order = self._rotation()
        raw: list[tuple[int, str, dict[str, str]]] = []
        # (Several shards at once are, on a Redis Cluster, one round trip per node, and a
        # blocking look is repeated until block_ms: jobs.runqueue.)
        if self._drained and count >= len(order):
            raw = self.runqueue.read(self.name, count // len(order), order, block_ms=block_ms or None)
        else:
            for shard in order:
                if len(raw) >= count:
                    break
                raw += self.runqueue.read(self.name, count - len(raw), [shard])
            if not raw and block_ms:
                raw = self.runqueue.read(self.name, 1, order, block_ms=block_ms)
        self._drained = len(raw) < count
        return self._own(raw)

    def take_over(self, count: int) -> list[Entry]:
        """Claim up to ``count`` entries other workers held too long without a sign of life."""
        claimed: list[tuple[int, str, dict[str, str]]] = []
        for shard in self._rotation():
            if len(claimed) >= count:
                break
            cursor, taken = self.runqueue.claim_idle(
                shard,
                self.name,
                int(self.options.takeover_seconds * 1000),
                count - len(claimed),
                start=self._claim_cursors.get(shard, "0-0"),
            )
            self._claim_cursors[shard] = cursor  # a long pending list is scanned a piece at a time
            claimed += [(shard, entry_id, fields) for entry_id, fields in taken]
        return self._own(claimed, claimed=True)

    def _own(self, raw: list[tuple[int, str, dict[str, str]]], *, claimed: bool = False) -> list[Entry]:
        read_at = self.clock()
        entries = []
        for shard, entry_id, fields in raw:
            try:
                entry = Entry.from_stream(shard, entry_id, fields, claimed=claimed)
            except (KeyError, ValueError):
                logger.error("malformed stream entry dropped", extra={"entry_id": entry_id, "fields": fields})
                self.runqueue.ack(shard, entry_id)
                continue
            entries.append(entry)
        # Held from now on (kept alive while MongoDB is asked below, however long that takes),
        # counted as perhaps recorded until the answer comes.
        with self._lock:
            for entry in entries:
                self._owned[entry.key] = _Owned(entry, recorded=True, read_at=read_at)
                self._lost.discard(entry.key)
        # One look, for all of them, at which attempts are recorded already: a replay (Redis
        # lost data after a run was recorded) must not run again.
        attempts = [(entry.fire_key, entry.attempt) for entry in entries]
        try:
            recorded = selectors.recorded_attempts(attempts)
        except Exception as error:
            if unavailable(error) != MONGODB:
                raise
            # MongoDB is away: perhaps recorded, so the handler looks again when it comes to them.
            return entries
        with self._lock:
            for entry in entries:
                owned = self._owned.get(entry.key)
                if owned is not None:
                    owned.recorded = (entry.fire_key, entry.attempt) in recorded
        # And one at what the handler will ask of their schedules (else asked entry by entry).
        try:
            self.look_up_schedules([entry.schedule_id for entry in entries])
        except Exception as error:
            if unavailable(error) != MONGODB:
                raise
        return entries

    def was_recorded(self, entry: Entry) -> bool:
        """Whether the entry's attempt had a run record when the entry was read."""
        with self._lock:
            owned = self._owned.get(entry.key)
            return owned is None or owned.recorded

    def look_again(self, entry: Entry) -> None:
        """Handling the entry stopped midway (a server was away): it stays held, and what is
        recorded of its attempt is read afresh when it is handled again."""
        with self._lock:
            owned = self._owned.get(entry.key)
            if owned is not None:
                owned.recorded = True

    def holding(self) -> list[Entry]:
        with self._lock:
            return [owned.entry for owned in self._owned.values()]

    def keep_alive(self) -> None:
        """Show the entries (and overlap leases) this worker holds are alive; learn which were taken."""
        with self._lock:
            owned = list(self._owned.values())
        lost = self.runqueue.keep_claimed(self.name, [owned_entry.entry.key for owned_entry in owned])
        running = [(o.entry.schedule_id, o.entry.run_key) for o in owned if o.running and o.entry.schedule_id]
        if running:
            self.runqueue.overlap_keep(running, self.now_ms() + self.lease_ms())
        if lost:
            logger.warning("entries taken over by another worker", extra={"worker": self.name, "entries": lost})
            with self._lock:
                self._lost.update(lost)

    def give_back(self, entries: list[Entry]) -> None:
        """Return entries not started (a stopping worker): at the stream's end, for any worker."""
        for entry in entries:
            self.runqueue.replace(entry.shard, entry.entry_id, entry.fields())
            self.forget(entry)

    def forget(self, entry: Entry) -> None:
        """Done with an entry, whatever became of it."""
        with self._lock:
            self._owned.pop(entry.key, None)

    def mark_running(self, entry: Entry) -> None:
        """The entry's run is registered as running (its overlap lease is kept fresh)."""
        with self._lock:
            if entry.key in self._owned:
                self._owned[entry.key].running = True

    def is_lost(self, entry: Entry) -> bool:
        """Another worker took the entry over while this one held it."""
        with self._lock:
            return entry.key in self._lost

    def still_holds(self, entry: Entry) -> bool:
        """Whether the entry is still this worker's to run, just before it runs it.

        An entry can only be taken over once it has been idle for the takeover time, and reading it
        and every keep-alive reset that; so one read less than half that time ago is surely still
        ours. One read longer ago (a slow backlog, or a worker stopped with SIGSTOP and woken) is
        asked of Redis: if another worker took it, or finished it, this one must not run it.
        """
        with self._lock:
            owned = self._owned.get(entry.key)
            lost = entry.key in self._lost
        if lost:
            return False
        if owned is not None and self.clock() - owned.read_at < self.options.takeover_seconds / 2:
            return True
        return self.runqueue.holds(self.name, entry.shard, entry.entry_id)

    def lease_ms(self) -> int:
        return int(self.options.takeover_seconds * 1000)

    def release_due(self) -> int:
        """Put retries and held runs whose time has come back on their streams."""
        return self.runqueue.release_delayed(self.now_ms())

    def heartbeat(self, busy: int = 0) -> None:
        info = {
            "pid": os.getpid(),
            "started": self.stats.started,
            "concurrency": self.options.concurrency,
            "busy": busy,
            "done": self.stats.done,
            "queues": list(self.runqueue.queues),
        }
        ttl = max(10.0, 3 * self.options.heartbeat_seconds)
        self.coordination.beat(WORKERS, self.name, info, ttl_seconds=ttl)

    def worker_alive(self, name: str) -> bool:
        return bool(name) and name in self.coordination.beats(WORKERS)

    def listen(self) -> ChangeListener:
        """Drop cached jobs and overlap policies as change notices about them come (an edit takes
        effect within the notice's delivery, milliseconds); the caller closes what it returns."""
        keyspace = self.runqueue.keyspace
        return ChangeListener(keyspace, [keyspace.changes_channel, keyspace.job_changes_channel], self._forget_cached)

    def _forget_cached(self, channel: str, ident: str) -> None:
        is_job = channel == self.runqueue.keyspace.job_changes_channel
        caches = [self._jobs] if is_job else [self._policies, self._exclusions]
        with self._lock:
            self._notices += 1  # a look-up under way when this came must not cache what it read
            for cache in caches:
                if ident == "*":
                    cache.clear()
                else:
                    cache.pop(ident, None)

    def job(self, job_id: str) -> Job | None:
        """The entry's job (None: deleted), cached: a burst of runs of one job costs one read."""
        return self._cached(self._jobs, job_id, lambda: selectors.job_by_id(job_id))

    def schedule_policy(self, schedule_id: str) -> str | None:
        """The schedule's overlap policy (None: the schedule is gone), cached like jobs."""
        return self._cached(self._policies, schedule_id, lambda: schedule_selectors.overlap_policy(schedule_id))

    def schedule_exclusion(self, schedule_id: str, nominal: datetime) -> Exclusion | None:
        """The exclusion calendar day ``nominal`` falls on, of those the schedule names (None: it
        runs); the calendars' days are cached like policies (a calendar edit sends notices)."""
        days = self._cached(self._exclusions, schedule_id, lambda: schedule_selectors.schedule_exclusions(schedule_id))
        return excluded(days, nominal) if days else None

    def look_up_schedules(self, schedule_ids: list[str]) -> None:
        """Cache the overlap policies and exclusion calendars of the schedules among these that
        are not cached, in one read: a worker starting (or a minute on, as entries expire) among
        thousands of schedules would read each one's twice, one entry at a time."""
        if self.options.lookup_cache_seconds <= 0:
            return
        now = time.monotonic()
        wanted = {
            ident
            for ident in schedule_ids
            if ident and not (self._fresh(self._policies, ident, now) and self._fresh(self._exclusions, ident, now))
        }
        if not wanted:
            return
        notices = self._notices
        found = schedule_selectors.worker_lookups(wanted)
        with self._lock:
            if notices != self._notices:  # an edit came meanwhile: what was read may be older
                return
            for cache in (self._policies, self._exclusions):
                if len(cache) + len(wanted) > LOOKUP_CACHE_SIZE:
                    cache.clear()
            for ident in wanted:
                policy, days = found.get(ident, (None, []))  # None: the schedule is gone
                self._policies[ident] = (now, policy)
                self._exclusions[ident] = (now, days)

    def _fresh(self, cache: dict[str, tuple[float, Any]], key: str, now: float) -> bool:
        hit = cache.get(key)
        return hit is not None and now - hit[0] < self.options.lookup_cache_seconds

    def _cached(self, cache: dict[str, tuple[float, Any]], key: str, load: Callable[[], Any]) -> Any:
        hit = cache.get(key)
        now = time.monotonic()
        if hit and now - hit[0] < self.options.lookup_cache_seconds:
            return hit[1]
        notices = self._notices
        value = load()
        with self._lock:
            if len(cache) > LOOKUP_CACHE_SIZE:
                cache.clear()
            if notices == self._notices:
                cache[key] = (now, value)
        return value
