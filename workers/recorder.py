"""Run records in batches: one insert per attempt that ends within a batch, insert and update for longer ones.

A worker's slots hand their attempts to one :class:`Recorder`. Each pass of its thread
writes, in at most three round trips, every attempt that ended since the last pass (inserted
with its outcome, or updated if it was inserted before) and every attempt that has been
running longer than ``insert_after`` (inserted as running, so the API and a worker taking it
over see it). A slot waits for the pass that writes its attempt, then acknowledges the
stream entry: so a crash between the MongoDB write and the acknowledgement leaves the entry
to be taken over, and the taker finds the attempt recorded (the unique (fire key, attempt)
index) and does not record it twice; a crash before the write leaves nothing recorded, and
the taker runs the attempt.

A Celery hand-off (a run that only sends a task) is inserted as running only once it has
taken ``handoff_insert_after``: a send is short, except on a loaded machine, where inserting
each one first and updating it next would double the writes just when they are slowest.

A Celery hand-off's send mark (jobs.targets.celery) is deleted once its record is written,
the marks of a pass in one Redis round trip, before the slots are told.

Attempts read back from MongoDB (a manual run's pending record, a taken-over attempt) keep
the plain compare-and-set writes of jobs.run_records, one at a time: they are the rare case.

Through a MongoDB outage every write is tried again (after a capped backoff, the outage
logged once), and the slots wait: their entries stay pending in the stream until recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from jobs import run_records, selectors
from jobs.models import Run
from jobs.targets.celery import SendMarks
from jobscheduler.outages import MONGODB, Backoff, unavailable

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Tracked:
    run: Run
    since: float  # monotonic time it started running
    handoff: bool = False  # a Celery send (see handoff_insert_after)
    outcome: dict[str, Any] | None = None
    inserting: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    recorded: bool = False


class Recorder:
    """This worker's run records, written in batches by a thread of their own (``start``)."""

    def __init__(
        self, *, insert_after: float = 0.05, handoff_insert_after: float = 1.0, marks: SendMarks | None = None
    ):
        self.insert_after = insert_after
        self.handoff_insert_after = handoff_insert_after
        self._marks = marks
        self._lock = threading.Condition()
        self._tracked: dict[int, _Tracked] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False

    # --- what slots call ------------------------------------------------------------------
    def started(self, run: Run, *, worker: str, now: datetime, dispatched_at: datetime, handoff: bool = False) -> bool:
        """The attempt starts running here. A drafted one is kept in memory (recorded when it
        ends, or as running if it lasts; ``handoff``: a Celery send, which lasts longer before it
        counts as lasting); a stored one is set running now, if it is still pending. False:
        another worker started it first."""
        values: dict[str, Any] = {"status": Run.Status.RUNNING, "worker": worker, "started_at": now}
        if not run._state.adding:
            return run_records.run_started(run, worker=worker, now=now, dispatched_at=dispatched_at)
        for name, value in values.items():
            setattr(run, name, value)
        with self._lock:
            self._tracked[id(run)] = _Tracked(run, time.monotonic(), handoff=handoff)
        return True

    def finish(
        self,
        run: Run,
        *,
        status: str,
        now: datetime,
        output: str = "",
        error: str = "",
        expect_status: str = Run.Status.RUNNING,
        expect_worker: str | None = None,
        return_value: Any = None,
        exception_class: str = "",
        external_id: str = "",
    ) -> bool:
        """Record how the attempt ended (or, with status ``running``, that it was handed off as
        ``external_id``: a Celery task); returns once it is written. False: it is not, because
        another worker changed the record first (a takeover) or recorded the attempt already."""
        if not run._state.adding and id(run) not in self._tracked:
            return self._finish_stored(
                run,
                status=status,
                now=now,
                output=output,
                error=error,
                expect_status=expect_status,
                expect_worker=expect_worker,
                return_value=return_value,
                exception_class=exception_class,
                external_id=external_id,
            )
        finished_at = None if status == Run.Status.RUNNING else now
        outcome: dict[str, Any] = {"status": status, "finished_at": finished_at, "output": output, "error": error}
        outcome.update(return_value=return_value, exception_class=exception_class, external_id=external_id)
        with self._lock:
            tracked = self._tracked.setdefault(id(run), _Tracked(run, time.monotonic()))
            tracked.outcome = outcome
            self._lock.notify_all()
            inline = self._thread is None
        if inline:
            self.flush()
        tracked.done.wait()
        return tracked.recorded

    def _finish_stored(self, run: Run, *, status: str, now: datetime, **change: Any) -> bool:
        """``run_records.run_finish``, tried again while MongoDB is away. A try whose answer was
        lost may have been applied: then the record reads back as this very outcome."""
        outage = Backoff("recording a run")
        while True:
            try:
                if run_records.run_finish(run, status=status, now=now, **change):
                    outage.succeeded()
                    self._forget_marks([run])
                    return True
                if not outage.down:
                    return False
                stored = selectors.run_of_attempt(run.fire_key, run.attempt)
            except Exception as error:
                if unavailable(error) != MONGODB:
                    raise
                time.sleep(outage.failed(error))
                continue
            outage.succeeded()
            if stored is None or stored.status != status or stored.worker != run.worker:
                return False
            if status == Run.Status.RUNNING:  # a hand-off: it carries the task's id
                return bool(stored.external_id) and stored.external_id == change.get("external_id")
            return stored.finished_at is not None and abs((stored.finished_at - now).total_seconds()) < 0.002

    # --- the writing thread ---------------------------------------------------------------
    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="recorder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is left, then stop the thread (slots have finished by now)."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def _loop(self) -> None:
        from django.db import connection

        outage = Backoff("recording runs")
        try:
            while True:
                with self._lock:
                    self._lock.wait_for(lambda: self._stopping or self._due(), timeout=self.insert_after)
                    if self._stopping:
                        return
                try:
                    self.flush()
                    outage.succeeded()
                except Exception as error:
                    # What failed is written by a later pass (a pass that failed midway is
                    # recognised by its own records); the slots wait for it meanwhile.
                    if unavailable(error) is None:
                        logger.exception("recording runs failed; trying again")
                        time.sleep(0.5)
                    else:
                        time.sleep(outage.failed(error))
        finally:
            connection.close()

    def _due(self) -> bool:
        return any(tracked.outcome is not None and not tracked.inserting for tracked in self._tracked.values())

    def flush(self) -> None:
        """One pass: write what ended, and insert as running what has run longer than ``insert_after``."""
        now_mono = time.monotonic()
        with self._lock:
            inserts: list[_Tracked] = []
            updates: list[_Tracked] = []
            for tracked in self._tracked.values():
                if tracked.inserting:
                    continue
                if tracked.run._state.adding and (
                    tracked.outcome is not None or now_mono - tracked.since >= self._insert_after(tracked)
                ):
                    tracked.inserting = True
                    if tracked.outcome is not None:
                        for name, value in tracked.outcome.items():
                            setattr(tracked.run, name, value)
                    inserts.append(tracked)
                elif not tracked.run._state.adding and tracked.outcome is not None:
                    tracked.inserting = True
                    updates.append(tracked)
        if not inserts and not updates:
            return
        # Those inserted with their outcome. One whose outcome comes while it is being inserted
        # as running stays tracked: the next pass writes the outcome.
        ended = {id(tracked) for tracked in inserts if tracked.outcome is not None}
        try:
            inserted = run_records.runs_insert_many([tracked.run for tracked in inserts])
            applied = run_records.runs_compare_and_set_many(
                [
                    (tracked.run, {"status": Run.Status.RUNNING, "worker": tracked.run.worker}, tracked.outcome or {})
                    for tracked in updates
                ]
            )
        except Exception:
            with self._lock:
                for tracked in (*inserts, *updates):
                    tracked.inserting = False
            raise
        finished: list[tuple[_Tracked, bool]] = []
        for tracked, done in zip(inserts, inserted, strict=True):
            if not done:
                # Recorded already. By this very write, if a pass that failed midway (a lost
                # connection) inserted it before; a pending record of the attempt (a manual run)
                # is ours to take on; anything else stands, and this attempt's outcome is void.
                existing = selectors.run_of_attempt(tracked.run.fire_key, tracked.run.attempt)
                if existing is not None and existing.pk == tracked.run.pk:
                    tracked.run._state.adding = False
                    done = True
                else:
                    fields = self._fields(tracked)
                    taken = run_records.run_by_attempt_compare_and_set(
                        tracked.run, {"status": Run.Status.PENDING}, fields
                    )
                    done = taken is not None
                    if done and "finished_at" in fields:
                        ended.add(id(tracked))
            if id(tracked) in ended or not done:
                finished.append((tracked, done))
        finished += list(zip(updates, applied, strict=True))
        self._forget_marks([tracked.run for tracked, done in finished if done])
        with self._lock:
            for tracked in (*inserts, *updates):
                tracked.inserting = False
            for tracked, done in finished:
                self._tracked.pop(id(tracked.run), None)
                tracked.recorded = done
                tracked.done.set()

    def _insert_after(self, tracked: _Tracked) -> float:
        return self.handoff_insert_after if tracked.handoff else self.insert_after

    def _forget_marks(self, runs: list[Run]) -> None:
        """The hand-offs among ``runs`` are recorded: their send marks are of no more use (a
        takeover reads the record first). Best effort: a mark left behind expires by itself."""
        handed_off = [(run.fire_key, run.attempt) for run in runs if run.external_id]
        if not handed_off:
            return
        if self._marks is None:
            self._marks = SendMarks()
        try:
            self._marks.forget_many(handed_off)
        except redis.RedisError as error:
            logger.warning("send marks not deleted; they expire by themselves", extra={"error": repr(error)})

    @staticmethod
    def _fields(tracked: _Tracked) -> dict[str, Any]:
        run = tracked.run
        fields = {"status": run.status, "worker": run.worker, "started_at": run.started_at}
        fields["dispatched_at"] = run.dispatched_at
        return {**fields, **(tracked.outcome or {})}
