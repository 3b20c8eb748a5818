"""The worker: take dispatched runs off the shard streams, execute them, record every attempt.

Each step is a method a test calls directly (``read``, ``take_over``, ``handle``,
``release_due``, ``keep_alive``); ``Worker.run`` strings them together for ``run_worker``.

- **Reading.** Entries come through the consumer group ``WORKER_GROUP``, never more than the
  free slots (shards are read in turn, without blocking, before one blocking read over all).
  An entry stays in this worker's pending list until it is acknowledged and deleted.
- **Recording.** An attempt is inserted as ``pending`` keyed by (fire key, attempt), then moved
  to ``running`` and to its end by compare-and-set updates (jobs.services). A replayed entry
  whose attempt is recorded already is acknowledged, or picked up where it was left: it never
  runs twice.
- **Retries.** A failed or timed-out attempt below the job's ``max_attempts`` puts attempt + 1
  (trigger ``retry``, same fire key) in the shard's delayed set, due after
  ``retry_backoff_seconds * 2^(attempt-1)`` +-20 %, capped; the entry leaves the stream in the
  same transaction. Any worker's ``release_due`` moves due entries back onto the stream in one
  Lua step per shard, so each is released once.
- **Takeover.** A live worker resets the idle time of the entries it holds (``keep_alive``);
  one that was SIGKILLed stops doing so, and after ``takeover_seconds`` another worker claims
  them (XAUTOCLAIM). A claimed attempt that was running is marked failed ("worker X lost
  mid-run") and replaced, atomically, by attempt + 1 (trigger ``retry``), at most
  ``max_takeovers`` times per occurrence.
- **Overlap.** Runs of a schedule register in Redis while they run (a lease the worker keeps
  fresh); one Lua step per run applies the schedule's overlap policy: ``skip`` records a run
  that would overlap as skipped, ``buffer_one`` holds one back in the delayed set until the
  running one leaves. Manual runs and retries always run (they still count as running).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import redis
from bson import ObjectId
from bson.errors import InvalidId
from django.conf import settings
from django.db import connection

from jobs import metrics, services
from jobs.execution import Outcome, Slot, child_env
from jobs.models import Job, Run
from schedules.kinds import from_epoch_ms
from schedules.store import RedisStore

logger = logging.getLogger(__name__)

HEARTBEAT_KIND = "workers"
MANUAL_PREFIX = "manual:"  # fire keys of manual runs: manual:<job id>:<uuid4 hex> (jobs.services.run_now)
LOST = "lost mid-run"
ALWAYS = "always"  # the overlap decision for manual runs and retries
LOOKUP_CACHE_SIZE = 10_000
RELEASE_EVERY = 0.25  # seconds between looks at the delayed sets (due retries, held runs)


@dataclass(frozen=True)
class Entry:
    """One stream entry: an attempt of an occurrence (or of a manual run) to execute."""

    shard: int
    entry_id: str
    fire_key: str
    schedule_id: str  # '' for a manual run of a job
    job_id: str
    nominal_ms: int
    trigger: str
    attempt: int = 1
    takeovers: int = 0
    held: bool = False  # held back by buffer_one and released again
    claimed: bool = False  # taken over from another consumer's pending list

    @classmethod
    def from_stream(cls, shard: int, entry_id: str, fields: dict[str, str], *, claimed: bool = False) -> Entry:
        return cls(
            shard=shard,
            entry_id=entry_id,
            fire_key=fields["fk"],
            schedule_id=fields.get("s", ""),
            job_id=fields["j"],
            nominal_ms=int(fields["n"]),
            trigger=fields.get("t", Run.Trigger.SCHEDULE),
            attempt=int(fields.get("a", 1)),
            takeovers=int(fields.get("k", 0)),
            held=fields.get("h") == "1",
            claimed=claimed,
        )

    @property
    def key(self) -> tuple[int, str]:
        return (self.shard, self.entry_id)

    @property
    def run_key(self) -> str:
        """This attempt among a schedule's running runs (overlap)."""
        return f"{self.fire_key}#{self.attempt}"

    @property
    def manual(self) -> bool:
        """A run started by hand (run now), or a retry of one."""
        return self.fire_key.startswith(MANUAL_PREFIX)

    @property
    def dispatched_ms(self) -> int:
        return int(self.entry_id.split("-", 1)[0])

    def fields(self) -> dict[str, str]:
        """The stream fields, as written (``held`` excluded: that is the overlap step's to add)."""
        fields = {"fk": self.fire_key, "s": self.schedule_id, "j": self.job_id, "n": str(self.nominal_ms)}
        fields["t"] = self.trigger
        if self.attempt != 1:
            fields["a"] = str(self.attempt)
        if self.takeovers:
            fields["k"] = str(self.takeovers)
        return fields

    def next_attempt(self, *, takeover: bool = False) -> dict[str, str]:
        """The fields of attempt + 1 of the same occurrence (the same fire key)."""
        following = replace(
            self, attempt=self.attempt + 1, trigger=Run.Trigger.RETRY, takeovers=self.takeovers + int(takeover)
        )
        return following.fields()


def retry_delay(attempt: int, backoff_seconds: float, *, random_unit: Callable[[], float], cap_seconds: float) -> float:
    """Seconds before attempt + 1, after attempt ``attempt`` failed.

    ``backoff_seconds * 2^(attempt-1)``, spread +-20 % by ``random_unit()`` (uniform in [0, 1))
    so that runs failing together do not retry together, and never more than ``cap_seconds``.
    """
    base = backoff_seconds * 2.0 ** min(attempt - 1, 64)
    return min(cap_seconds, base * (0.8 + 0.4 * random_unit()))


def overlap_decision_policy(trigger: str, schedule_policy: str) -> str:
    """The policy the overlap step applies: manual runs and retries always start."""
    return ALWAYS if trigger in (Run.Trigger.MANUAL, Run.Trigger.RETRY) else schedule_policy


class Executor(Protocol):
    def execute(self, job: Job, *, fire_key: str, attempt: int) -> Outcome: ...


@dataclass
class WorkerOptions:
    concurrency: int = 4
    takeover_seconds: float = 30.0
    max_takeovers: int = 3
    retry_cap_seconds: float = 3600.0
    block_seconds: float = 1.0
    hold_seconds: float = 5.0  # a held run looks again this often (it is released at once when the running one ends)
    lookup_cache_seconds: float = 1.0  # jobs and overlap policies: an edit shows within this
    heartbeat_seconds: float = 2.0

    @classmethod
    def from_settings(cls, **overrides: Any) -> WorkerOptions:
        values: dict[str, Any] = {
            "concurrency": settings.JOBSCHEDULER_WORKER_CONCURRENCY,
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


@dataclass
class _Stats:
    started: float = field(default_factory=time.time)
    done: int = 0


class Worker:
    """One worker process's state: the entries it holds and what it knows of schedules."""

    def __init__(
        self,
        store: RedisStore,
        *,
        name: str | None = None,
        options: WorkerOptions | None = None,
        clock: Callable[[], float] = time.time,
        random_unit: Callable[[], float] | None = None,
    ):
        self.store = store
        self.name = name or worker_name()
        self.options = options or WorkerOptions.from_settings()
        self.clock = clock
        self.random_unit = random_unit or random.Random().random
        self._owned: dict[tuple[int, str], _Owned] = {}
        self._lost: set[tuple[int, str]] = set()
        self._lock = threading.Lock()
        self._policies: dict[str, tuple[float, Any]] = {}
        self._jobs: dict[str, tuple[float, Any]] = {}
        self._offset = 0
        self._claim_cursors: dict[int, str] = {}
        self.stats = _Stats()

    # --- time ------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # --- taking entries --------------------------------------------------------------------
    def _rotation(self) -> list[int]:
        """Shards in an order that starts one further each call, so none is always last."""
        self._offset = (self._offset + 1) % self.store.shards
        return [(self._offset + index) % self.store.shards for index in range(self.store.shards)]

    def read(self, count: int, block_ms: int | None = None) -> list[Entry]:
        """Up to ``count`` new entries (rarely more, after a blocking read over every shard)."""
        if count <= 0:
            return []
        order = self._rotation()
        raw: list[tuple[int, str, dict[str, str]]] = []
        for shard in order:
            if len(raw) >= count:
                break
            raw += self.store.read_entries(self.name, count - len(raw), [shard])
        if not raw and block_ms:
            raw = self.store.read_entries(self.name, 1, order, block_ms=block_ms)
        return self._own(raw)

    def take_over(self, count: int) -> list[Entry]:
        """Claim up to ``count`` entries other workers held too long without a sign of life."""
        claimed: list[tuple[int, str, dict[str, str]]] = []
        for shard in self._rotation():
            if len(claimed) >= count:
                break
            cursor, taken = self.store.claim_idle(
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
        entries = []
        for shard, entry_id, fields in raw:
            try:
                entry = Entry.from_stream(shard, entry_id, fields, claimed=claimed)
            except (KeyError, ValueError):
                logger.error("malformed stream entry dropped", extra={"entry_id": entry_id, "fields": fields})
                self.store.ack(shard, entry_id)
                continue
            with self._lock:
                self._owned[entry.key] = _Owned(entry)
                self._lost.discard(entry.key)
            entries.append(entry)
        return entries

    def holding(self) -> list[Entry]:
        with self._lock:
            return [owned.entry for owned in self._owned.values()]

    def keep_alive(self) -> None:
        """Show the entries (and overlap leases) this worker holds are alive; learn which were taken."""
        with self._lock:
            owned = list(self._owned.values())
        lost = self.store.keep_claimed(self.name, [owned_entry.entry.key for owned_entry in owned])
        running = [(o.entry.schedule_id, o.entry.run_key) for o in owned if o.running and o.entry.schedule_id]
        if running:
            self.store.overlap_keep(running, self.now_ms() + self._lease_ms())
        if lost:
            logger.warning("entries taken over by another worker", extra={"worker": self.name, "entries": lost})
            with self._lock:
                self._lost.update(lost)

    def give_back(self, entries: list[Entry]) -> None:
        """Return entries not started (a stopping worker): at the stream's end, for any worker."""
        for entry in entries:
            self.store.replace(entry.shard, entry.entry_id, entry.fields())
            self._forget(entry)

    def _forget(self, entry: Entry) -> None:
        with self._lock:
            self._owned.pop(entry.key, None)

    def _lease_ms(self) -> int:
        return int(self.options.takeover_seconds * 1000)

    def release_due(self) -> int:
        """Put retries and held runs whose time has come back on their streams."""
        return self.store.release_delayed(self.now_ms())

    def heartbeat(self, busy: int = 0) -> None:
        info = {
            "pid": os.getpid(),
            "started": self.stats.started,
            "concurrency": self.options.concurrency,
            "busy": busy,
            "done": self.stats.done,
        }
        ttl = max(10.0, 3 * self.options.heartbeat_seconds)
        self.store.beat(HEARTBEAT_KIND, self.name, info, ttl_seconds=ttl)

    def worker_alive(self, name: str) -> bool:
        return bool(name) and name in self.store.beats(HEARTBEAT_KIND)

    def job(self, job_id: str) -> Job | None:
        """The entry's job (None: deleted), cached for ``lookup_cache_seconds``: an edit shows
        within that time, and a burst of runs of one job costs one read."""
        return self._cached(self._jobs, job_id, lambda: Job.objects.filter(pk=ObjectId(job_id)).first())

    def schedule_policy(self, schedule_id: str) -> str | None:
        """The schedule's overlap policy (None: the schedule is gone), cached like jobs."""
        from schedules.models import Schedule

        return self._cached(
            self._policies,
            schedule_id,
            lambda: Schedule.objects.filter(pk=ObjectId(schedule_id)).values_list("overlap_policy", flat=True).first(),
        )

    def _cached(self, cache: dict[str, tuple[float, Any]], key: str, load: Callable[[], Any]) -> Any:
        hit = cache.get(key)
        now = time.monotonic()
        if hit and now - hit[0] < self.options.lookup_cache_seconds:
            return hit[1]
        try:
            value = load()
        except InvalidId:
            value = None
        with self._lock:
            if len(cache) > LOOKUP_CACHE_SIZE:
                cache.clear()
            cache[key] = (now, value)
        return value

    # --- one entry -------------------------------------------------------------------------
    def handle(self, entry: Entry, executor: Executor) -> str:
        """Execute and record one entry; returns what became of it (for logs and tests)."""
        try:
            return self._handle(entry, executor)
        finally:
            self._forget(entry)

    def _handle(self, entry: Entry, executor: Executor) -> str:
        job = self.job(entry.job_id)
        if job is None:
            logger.info("job gone; entry dropped", extra={"fire_key": entry.fire_key})
            self.store.ack(entry.shard, entry.entry_id)
            return "dropped"
        schedule_id, policy = entry.schedule_id, "allow"
        if schedule_id:
            found = self.schedule_policy(schedule_id)
            if found is None and not entry.manual:
                logger.info("schedule gone; entry dropped", extra={"fire_key": entry.fire_key})
                self.store.ack(entry.shard, entry.entry_id)
                return "dropped"
            schedule_id, policy = ("", "allow") if found is None else (schedule_id, found)
        run, created = services.run_begin(
            job_id=entry.job_id,
            schedule_id=schedule_id,
            fire_key=entry.fire_key,
            attempt=entry.attempt,
            trigger=Run.Trigger.RETRY if entry.attempt > 1 else entry.trigger,
            nominal_time=from_epoch_ms(entry.nominal_ms),
            dispatched_at=from_epoch_ms(entry.dispatched_ms),
            worker=self.name,
        )
        if not created:
            verdict = self._recorded_already(run, entry, job)
            if verdict is not None:
                return verdict
        if not job.enabled and not entry.manual:
            return self._skip(run, entry, "Skipped: the job is disabled.")
        if schedule_id:
            decided_by = overlap_decision_policy(entry.trigger, policy)
            # Only scheduled entries can be held; they sit on their schedule's shard, so the
            # overlap step touches one hash slot (manual ones sit on their job's shard).
            release_at = self.now_ms() + int(self.options.hold_seconds * 1000)
            hold = (entry.shard, entry.entry_id, entry.fields(), release_at) if decided_by == "buffer_one" else None
            decision = self.store.overlap_enter(
                schedule_id, entry.run_key, decided_by, now_ms=self.now_ms(), lease_ms=self._lease_ms(), hold=hold
            )
            if decision == "skip":
                return self._skip(run, entry, "Skipped: a run of this schedule was still running (overlap policy).")
            if decision == "hold":
                return "held"  # the entry moved to the delayed set; the record stays pending
            with self._lock:
                if entry.key in self._owned:
                    self._owned[entry.key].running = True
        try:
            return self._execute(run, entry, job, executor)
        finally:
            if schedule_id:
                self.store.overlap_leave(schedule_id, entry.run_key, self.now_ms())

    def _execute(self, run: Run, entry: Entry, job: Job, executor: Executor) -> str:
        if not services.run_started(
            run, worker=self.name, now=self.now(), dispatched_at=from_epoch_ms(entry.dispatched_ms)
        ):
            # Another worker started this attempt from a copy of the entry: it is theirs.
            self.store.ack(entry.shard, entry.entry_id)
            return "duplicate"
        metrics.IN_FLIGHT.inc()
        try:
            outcome = executor.execute(job, fire_key=entry.fire_key, attempt=entry.attempt)
        finally:
            metrics.IN_FLIGHT.dec()
        with self._lock:
            lost = entry.key in self._lost
        recorded = not lost and services.run_finish(
            run,
            status=outcome.status,
            now=self.now(),
            output=outcome.output,
            error=outcome.error,
            expect_worker=self.name,
        )
        if not recorded:
            # Another worker took the entry over meanwhile and continues the run; ours is void.
            logger.warning("run taken over while it ran; outcome not recorded", extra={"fire_key": entry.fire_key})
            return "lost"
        self.stats.done += 1
        metrics.RUNS.labels(status=outcome.status, trigger=run.trigger).inc()
        metrics.RUN_DURATION.labels(target_type=job.target_type).observe(outcome.duration)
        if not outcome.ok and entry.attempt < job.max_attempts:
            self._schedule_retry(entry, job)
            return "retry"
        self.store.ack(entry.shard, entry.entry_id)
        if not outcome.ok and run.schedule_id and not entry.manual:
            self.pause_if_failing(job, run)
        return outcome.status

    def _skip(self, run: Run, entry: Entry, reason: str) -> str:
        services.run_finish(run, status=Run.Status.SKIPPED, now=self.now(), error=reason, expect_status=run.status)
        metrics.RUNS.labels(status=Run.Status.SKIPPED, trigger=run.trigger).inc()
        self.store.ack(entry.shard, entry.entry_id)
        return Run.Status.SKIPPED

    def _schedule_retry(self, entry: Entry, job: Job) -> None:
        delay = retry_delay(
            entry.attempt,
            job.retry_backoff_seconds,
            random_unit=self.random_unit,
            cap_seconds=self.options.retry_cap_seconds,
        )
        due_ms = self.now_ms() + int(delay * 1000)
        self.store.defer(entry.shard, entry.next_attempt(), due_ms, done_entry_id=entry.entry_id)
        metrics.RETRIES.inc()
        logger.info(
            "retry scheduled",
            extra={"fire_key": entry.fire_key, "attempt": entry.attempt + 1, "in_seconds": round(delay, 3)},
        )

    def _recorded_already(self, run: Run, entry: Entry, job: Job) -> str | None:
        """Decide about an attempt recorded before this entry came: None means go on and run it."""
        status = run.status
        if status in Run.FINISHED:
            return self._finish_what_was_left(run, entry, job)
        if status == Run.Status.PENDING:
            mine = entry.held or entry.claimed or run.worker in ("", self.name) or not self.worker_alive(run.worker)
            if mine:
                return None
        elif status == Run.Status.RUNNING:
            executing_here = any(
                o.entry.fire_key == entry.fire_key and o.entry.attempt == entry.attempt and o.entry.key != entry.key
                for o in self._snapshot()
            )
            dead = (
                entry.claimed or not self.worker_alive(run.worker) or (run.worker == self.name and not executing_here)
            )
            if dead:
                return self._continue_lost(run, entry, job)
        # Another live worker has this very attempt in hand (the entry was replayed).
        self.store.ack(entry.shard, entry.entry_id)
        return "duplicate"

    def _snapshot(self) -> list[_Owned]:
        with self._lock:
            return list(self._owned.values())

    def _finish_what_was_left(self, run: Run, entry: Entry, job: Job) -> str:
        """A finished attempt's entry came back (a replay, or a crash before acknowledging it):
        make sure what should follow it does, then acknowledge it."""
        failed = run.status in (Run.Status.FAILED, Run.Status.TIMED_OUT)
        if failed and not Run.objects.filter(fire_key=run.fire_key, attempt=run.attempt + 1).exists():
            if LOST in run.error and entry.takeovers < self.options.max_takeovers:
                self.store.replace(entry.shard, entry.entry_id, entry.next_attempt(takeover=True))
                return "taken over"
            if LOST not in run.error and entry.attempt < job.max_attempts:
                self._schedule_retry(entry, job)
                return "retry"
        self.store.ack(entry.shard, entry.entry_id)
        return "duplicate"

    def _continue_lost(self, run: Run, entry: Entry, job: Job) -> str:
        """The worker running this attempt is gone: fail the attempt and continue with the next."""
        gone = run.worker or "?"
        message = f"Worker {gone} {LOST}; taken over by {self.name}."
        give_up = entry.takeovers >= self.options.max_takeovers
        if give_up:
            message += f" Given up after {entry.takeovers} takeovers."
        services.run_finish(run, status=Run.Status.FAILED, now=self.now(), error=message, expect_worker=run.worker)
        metrics.TAKEOVERS.inc()
        metrics.RUNS.labels(status=Run.Status.FAILED, trigger=run.trigger).inc()
        logger.warning("run taken over", extra={"fire_key": entry.fire_key, "attempt": entry.attempt, "from": gone})
        if give_up:
            self.store.ack(entry.shard, entry.entry_id)
            if run.schedule_id and not entry.manual:
                self.pause_if_failing(job, run)
            return "given up"
        self.store.replace(entry.shard, entry.entry_id, entry.next_attempt(takeover=True))
        return "taken over"

    def pause_if_failing(self, job: Job, run: Run) -> bool:
        """Pause the run's schedule if its last N runs all failed (``pause_schedules_after_failures``)."""
        from schedules import services as schedule_services
        from schedules.models import Schedule

        limit = job.pause_schedules_after_failures
        if not limit or not run.schedule_id:
            return False
        recent = (
            Run.objects.filter(
                schedule_id=run.schedule_id, status__in=[Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.TIMED_OUT]
            )
            .exclude(trigger=Run.Trigger.MANUAL)
            .order_by("-finished_at", "-created_at")
            .values_list("fire_key", "status")[: limit * (job.max_attempts + 1)]
        )
        latest: dict[str, str] = {}
        for fire_key, status in recent:
            if fire_key.startswith(MANUAL_PREFIX):
                continue
            latest.setdefault(fire_key, status)  # newest first: an occurrence's last attempt
        outcomes = list(latest.values())[:limit]
        if len(outcomes) < limit or Run.Status.SUCCEEDED in outcomes:
            return False
        schedule = Schedule.objects.filter(pk=run.schedule_id).first()
        if schedule is None or schedule.paused:
            return False
        schedule_services.schedule_pause(schedule)
        services.run_note(run, f"The schedule was paused: its last {limit} runs failed.")
        logger.warning("schedule paused after failures", extra={"schedule": str(schedule.pk), "failures": limit})
        return True

    # --- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event, slots: list[Slot] | None = None) -> None:
        """Work until ``stop`` is set, then finish the runs in progress and return."""
        self.store.ensure_groups()
        if slots is None:
            env = child_env(redis_prefix=self.store.prefix, shards=self.store.shards)
            slots = [Slot(env) for _ in range(self.options.concurrency)]
        work: queue.Queue[Entry | None] = queue.Queue()
        free = threading.Condition()
        busy = [0]
        threads = [
            threading.Thread(target=self._slot_loop, args=(slot, work, free, busy), name=f"slot-{index}", daemon=True)
            for index, slot in enumerate(slots)
        ]
        for thread in threads:
            thread.start()
        quiet = threading.Event()
        keeper = threading.Thread(target=self._keep_loop, args=(quiet, busy), name="keep-alive", daemon=True)
        keeper.start()
        backlog: deque[Entry] = deque()
        next_takeover = next_release = 0.0
        block_ms = int(min(self.options.block_seconds, self.options.keep_alive_seconds) * 1000) or 1
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() >= next_release:
                        next_release = time.monotonic() + RELEASE_EVERY
                        self.release_due()
                    with free:
                        if busy[0] >= len(slots):
                            free.wait(self.options.block_seconds)
                            continue
                        room = len(slots) - busy[0] - len(backlog)
                    if room > 0 and time.monotonic() >= next_takeover:
                        next_takeover = time.monotonic() + min(1.0, self.options.takeover_seconds / 4)
                        claimed = self.take_over(room)
                        backlog.extend(claimed)
                        room -= len(claimed)
                    if room > 0:
                        backlog.extend(self.read(room, block_ms=0 if backlog else block_ms))
                except (redis.ConnectionError, redis.TimeoutError):
                    logger.exception("Redis unavailable; trying again in a second")
                    stop.wait(1)
                with free:
                    while backlog and busy[0] < len(slots):
                        busy[0] += 1
                        work.put(backlog.popleft())
        finally:
            with contextlib.suppress(redis.RedisError):
                self.give_back(list(backlog))
            for _ in threads:
                work.put(None)
            for thread in threads:
                thread.join()
            quiet.set()
            keeper.join(timeout=10)
            with contextlib.suppress(redis.RedisError):
                self.store.forget_beat(HEARTBEAT_KIND, self.name)
            connection.close()

    def _slot_loop(
        self, slot: Slot, work: queue.Queue[Entry | None], free: threading.Condition, busy: list[int]
    ) -> None:
        try:
            slot.start()  # warm: the first run does not wait for Django to load in the child
        except RuntimeError:
            logger.exception("could not start a run process; it is retried at the first run")
        try:
            while True:
                entry = work.get()
                if entry is None:
                    return
                try:
                    outcome = self.handle(entry, slot)
                    logger.debug(
                        "entry handled",
                        extra={"fire_key": entry.fire_key, "attempt": entry.attempt, "outcome": outcome},
                    )
                except Exception:
                    # Left in this worker's pending list unattended: taken over after the idle time.
                    logger.exception("entry failed to run", extra={"fire_key": entry.fire_key})
                finally:
                    with free:
                        busy[0] -= 1
                        free.notify_all()
        finally:
            slot.close()
            connection.close()

    def _keep_loop(self, quiet: threading.Event, busy: list[int]) -> None:
        """Heartbeat and keep held entries alive, until the slots are done."""
        next_beat = 0.0
        while True:
            try:
                self.keep_alive()
                if time.monotonic() >= next_beat:
                    self.heartbeat(busy[0])
                    next_beat = time.monotonic() + self.options.heartbeat_seconds
            except Exception:
                logger.exception("keep-alive failed; trying again")
            if quiet.wait(self.options.keep_alive_seconds):
                return
