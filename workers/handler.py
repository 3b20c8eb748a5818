"""The run state machine: what a worker does with one entry, and what it records.

- **Recording.** An attempt is inserted as ``pending`` keyed by (fire key, attempt), then moved
  to ``running`` and to its end by compare-and-set updates (jobs.run_records). A replayed entry
  whose attempt is recorded already is acknowledged, or picked up where it was left: it never
  runs twice.
- **Retries.** A failed or timed-out attempt below the job's ``max_attempts`` puts attempt + 1
  (trigger ``retry``, same fire key) in the shard's delayed set, due after
  ``retry_backoff_seconds * 2^(attempt-1)`` +-20 %, capped; the entry leaves the stream in the
  same transaction. Any worker's ``release_due`` moves due entries back onto the stream in one
  Lua step per shard, so each is released once.
- **Takeover.** A claimed attempt that was running (its worker died) is marked failed
  ("worker X lost mid-run") and replaced, atomically, by attempt + 1 (trigger ``retry``), at
  most ``max_takeovers`` times per occurrence.
- **Hand-offs.** A celery run ends in the slot once its task is with the broker: recorded as
  succeeded, or, when the task's outcome is awaited (a result backend), as running with the
  task's id, acknowledged and left to workers.celery_results. A celery run whose worker died
  goes on as the same attempt, never attempt + 1: its send mark (jobs.targets.celery) says
  whether the task still has to be sent.
- **Overlap.** Runs of a ``skip`` or ``buffer_one`` schedule register in Redis while they run
  (a lease the worker keeps fresh); one Lua step per run applies the policy: ``skip`` records
  a run that would overlap as skipped, ``buffer_one`` holds one back in the delayed set until
  the running one leaves. Manual runs and retries always run (they still count as running).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from django.conf import settings

from jobs import run_records, selectors
from jobs.models import Job, Run
from jobs.runqueue import Entry
from jobscheduler.epoch import from_epoch_ms
from jobscheduler.outages import unavailable
from schedules import services as schedule_services
from schedules.models import Schedule
from schedules.selectors import schedule_by_id
from workers import metrics
from workers.outcome import Outcome
from workers.worker import Worker

logger = logging.getLogger(__name__)

LOST = Run.LOST
ALWAYS = "always"  # the overlap decision for manual runs and retries


class Handled(StrEnum):
    """What became of an entry a worker handled."""

    SUCCEEDED = Run.Status.SUCCEEDED.value
    FAILED = Run.Status.FAILED.value
    TIMED_OUT = Run.Status.TIMED_OUT.value
    SKIPPED = Run.Status.SKIPPED.value
    RETRY = "retry"  # failed; the next attempt waits in the delayed set
    HELD = "held"  # buffer_one holds it back until the running run leaves
    DROPPED = "dropped"  # its job or schedule is gone
    EXCLUDED = "excluded"  # on a day of an exclusion calendar, not recorded (a setting)
    DUPLICATE = "duplicate"  # this attempt is (or was) another entry's: acknowledged, not run
    LOST = "lost"  # taken over by another worker while it ran: the outcome was not recorded
    TAKEN_OVER = "taken over"  # its worker died: attempt + 1 was put on the stream
    GIVEN_UP = "given up"  # its worker died once too often
    HANDED_OFF = "handed off"  # a Celery task now; its outcome is recorded when it comes


class Executor(Protocol):
    def execute(self, job: Job, *, fire_key: str, attempt: int, target: dict[str, Any] | None = None) -> Outcome: ...


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


def handle(worker: Worker, entry: Entry, executor: Executor) -> Handled:
    """Execute and record one entry; returns what became of it (for logs and tests).

    If MongoDB or Redis is away (jobscheduler.outages.unavailable), the error is raised and
    the entry stays held (kept alive, not acknowledged) for the caller to handle again once
    the server is back: the second time reads what the first one recorded, as a replay does,
    so nothing runs or is recorded twice.
    """
    try:
        handled = _handle(worker, entry, executor)
    except Exception as error:
        if unavailable(error) is None:
            worker.forget(entry)
        else:
            worker.look_again(entry)
        raise
    worker.forget(entry)
    return handled


def _handle(worker: Worker, entry: Entry, executor: Executor) -> Handled:
    job = worker.job(entry.job_id)
    if job is None:
        logger.info("job gone; entry dropped", extra={"fire_key": entry.fire_key})
        worker.runqueue.ack(entry.shard, entry.entry_id)
        return Handled.DROPPED
    schedule_id, policy = entry.schedule_id, "allow"
    if schedule_id:
        found = worker.schedule_policy(schedule_id)
        if found is None and not entry.is_manual:
            logger.info("schedule gone; entry dropped", extra={"fire_key": entry.fire_key})
            worker.runqueue.ack(entry.shard, entry.entry_id)
            return Handled.DROPPED
        schedule_id, policy = ("", "allow") if found is None else (schedule_id, entry.overlap or found)
    attempt: dict[str, Any] = {
        "job_id": entry.job_id,
        "schedule_id": schedule_id,
        "fire_key": entry.fire_key,
        "attempt": entry.attempt,
        "trigger": Run.Trigger.RETRY if entry.attempt > 1 else entry.trigger,
        "nominal_time": from_epoch_ms(entry.nominal_ms),
        "dispatched_at": from_epoch_ms(entry.dispatched_ms),
        "worker": worker.name,
        "target": entry.target,
        "queue": worker.runqueue.queue_of(entry.shard),
    }
    if entry.claimed or entry.is_manual or entry.held or worker.was_recorded(entry):
        # A taken-over entry may have been started, or finished, by the worker that held it;
        # a manual run and a held one have a pending record; a replayed one is recorded
        # already (worker.read looked): read what is recorded and go on from there.
        recorded = selectors.run_of_attempt(entry.fire_key, entry.attempt) if worker.was_recorded(entry) else None
        run, created = (
            (recorded, False) if recorded is not None else run_records.run_begin(run_records.run_draft(**attempt))
        )
        if not created:
            verdict = _recorded_already(worker, run, entry, job)
            if verdict is not None:
                return verdict
    else:
        # A new attempt, recorded in a batch when it ends (workers.recorder).
        run = run_records.run_draft(**attempt)
    if not job.enabled and not entry.is_manual:
        return _skip(worker, run, entry, "Skipped: the job is disabled.")
    # A scheduled occurrence on a day of an exclusion calendar its schedule names does not run.
    # Decided here, when it comes due, so a calendar edited up to the last moment applies.
    if schedule_id and not entry.is_manual and entry.attempt == 1:
        exclusion = worker.schedule_exclusion(schedule_id, from_epoch_ms(entry.nominal_ms))
        if exclusion is not None:
            if settings.JOBSCHEDULER_RECORD_CALENDAR_SKIPS or not run._state.adding:
                return _skip(worker, run, entry, exclusion.message())
            worker.runqueue.ack(entry.shard, entry.entry_id)
            metrics.RUNS.labels(status=Handled.EXCLUDED.value, trigger=run.trigger).inc()
            return Handled.EXCLUDED
    # Runs of an ``allow`` schedule skip the overlap bookkeeping (two Redis steps a run): only
    # runs of skip and buffer_one schedules look at what else of theirs is running. (A schedule
    # switched from allow to skip does not see the allow runs still going when it changed.)
    tracked = bool(schedule_id) and overlap_decision_policy(entry.trigger, policy) != Schedule.Overlap.ALLOW
    if tracked:
        decided_by = overlap_decision_policy(entry.trigger, policy)
        # Only scheduled entries can be held; they sit on their schedule's shard, so the
        # overlap step touches one hash slot (manual ones sit on their job's shard).
        release_at = worker.now_ms() + int(worker.options.hold_seconds * 1000)
        hold = (entry.shard, entry.entry_id, entry.fields(), release_at) if decided_by == "buffer_one" else None
        decision = worker.runqueue.overlap_enter(
            schedule_id, entry.run_key, decided_by, now_ms=worker.now_ms(), lease_ms=worker.lease_ms(), hold=hold
        )
        if decision == "skip":
            return _skip(worker, run, entry, "Skipped: a run of this schedule was still running (overlap policy).")
        if decision == "hold":
            if run._state.adding:
                run_records.run_save_pending(run)  # shown as pending while it waits
            return Handled.HELD  # the entry moved to the delayed set; the record stays pending
        worker.mark_running(entry)
    try:
        return _execute(worker, run, entry, job, executor)
    finally:
        if tracked:
            worker.runqueue.overlap_leave(schedule_id, entry.run_key, worker.now_ms())


def _execute(worker: Worker, run: Run, entry: Entry, job: Job, executor: Executor) -> Handled:
    if not worker.still_holds(entry):
        # Taken over (or finished) by another worker while this one was held up: theirs now.
        logger.warning("entry taken over before it ran; not run", extra={"fire_key": entry.fire_key})
        return Handled.LOST
    if not worker.recorder.started(
        run,
        worker=worker.name,
        now=worker.now(),
        dispatched_at=from_epoch_ms(entry.dispatched_ms),
        handoff=job.target_type == Job.TargetType.CELERY and entry.target is None,
    ):
        # Another worker started this attempt from a copy of the entry: it is theirs.
        worker.runqueue.ack(entry.shard, entry.entry_id)
        return Handled.DUPLICATE
    metrics.IN_FLIGHT.inc()
    try:
        outcome = executor.execute(job, fire_key=entry.fire_key, attempt=entry.attempt, target=entry.target)
    finally:
        metrics.IN_FLIGHT.dec()
    recorded = not worker.is_lost(entry) and worker.recorder.finish(
        run,
        status=outcome.status,
        now=worker.now(),
        output=outcome.output,
        error=outcome.error,
        expect_worker=worker.name,
        return_value=outcome.value,
        exception_class=outcome.error_class,
        external_id=outcome.external_id,
    )
    if not recorded:
        # Another worker took the entry over meanwhile and continues the run; ours is void.
        logger.warning("run taken over while it ran; outcome not recorded", extra={"fire_key": entry.fire_key})
        return Handled.LOST
    if outcome.status == Run.Status.RUNNING:
        worker.stats.done += 1
        return _await(worker, run, entry)
    worker.stats.done += 1
    metrics.RUNS.labels(status=outcome.status, trigger=run.trigger).inc()
    metrics.RUN_DURATION.labels(target_type=job.target_type).observe(outcome.duration)
    if not outcome.ok and entry.attempt < job.max_attempts:
        _schedule_retry(worker, entry, job)
        return Handled.RETRY
    worker.runqueue.ack(entry.shard, entry.entry_id)
    if not outcome.ok and run.schedule_id and not entry.is_manual:
        pause_if_failing(worker, job, run)
    return Handled(outcome.status)


def _skip(worker: Worker, run: Run, entry: Entry, reason: str) -> Handled:
    worker.recorder.finish(run, status=Run.Status.SKIPPED, now=worker.now(), error=reason, expect_status=run.status)
    metrics.RUNS.labels(status=Run.Status.SKIPPED, trigger=run.trigger).inc()
    worker.runqueue.ack(entry.shard, entry.entry_id)
    return Handled.SKIPPED


def _schedule_retry(worker: Worker, entry: Entry, job: Job) -> None:
    delay = retry_delay(
        entry.attempt,
        job.retry_backoff_seconds,
        random_unit=worker.random_unit,
        cap_seconds=worker.options.retry_cap_seconds,
    )
    due_ms = worker.now_ms() + int(delay * 1000)
    worker.runqueue.defer(entry.shard, entry.next_attempt(), due_ms, done_entry_id=entry.entry_id)
    metrics.RETRIES.inc()
    logger.info(
        "retry scheduled",
        extra={"fire_key": entry.fire_key, "attempt": entry.attempt + 1, "in_seconds": round(delay, 3)},
    )


def _recorded_already(worker: Worker, run: Run, entry: Entry, job: Job) -> Handled | None:
    """Decide about an attempt recorded before this entry came: None means go on and run it."""
    status = run.status
    if status in Run.FINISHED:
        return _finish_what_was_left(worker, run, entry, job)
    if status == Run.Status.PENDING:
        mine = entry.held or entry.claimed or run.worker in ("", worker.name) or not worker.worker_alive(run.worker)
        if mine:
            return None
    elif status == Run.Status.RUNNING:
        executing_here = any(
            held.fire_key == entry.fire_key and held.attempt == entry.attempt and held.key != entry.key
            for held in worker.holding()
        )
        dead = (
            entry.claimed or not worker.worker_alive(run.worker) or (run.worker == worker.name and not executing_here)
        )
        if dead and job.target_type == Job.TargetType.CELERY:
            return _resume_handoff(worker, run, entry)
        if dead:
            return _continue_lost(worker, run, entry, job)
    # Another live worker has this very attempt in hand (the entry was replayed).
    worker.runqueue.ack(entry.shard, entry.entry_id)
    return Handled.DUPLICATE


def _finish_what_was_left(worker: Worker, run: Run, entry: Entry, job: Job) -> Handled:
    """A finished attempt's entry came back (a replay, or a crash before acknowledging it):
    make sure what should follow it does, then acknowledge it."""
    failed = run.status in (Run.Status.FAILED, Run.Status.TIMED_OUT)
    if failed and not selectors.attempt_recorded(run.fire_key, run.attempt + 1):
        if LOST in run.error and entry.takeovers < worker.options.max_takeovers:
            worker.runqueue.replace(entry.shard, entry.entry_id, entry.next_attempt(takeover=True))
            return Handled.TAKEN_OVER
        if LOST not in run.error and entry.attempt < job.max_attempts:
            _schedule_retry(worker, entry, job)
            return Handled.RETRY
    worker.runqueue.ack(entry.shard, entry.entry_id)
    return Handled.DUPLICATE


def _await(worker: Worker, run: Run, entry: Entry) -> Handled:
    """The run was handed off as a Celery task: the workers' results watcher (any worker's)
    records its outcome; the entry is done."""
    worker.awaited.add([str(run.pk)], worker.now_ms())
    worker.runqueue.ack(entry.shard, entry.entry_id)
    return Handled.HANDED_OFF


def _resume_handoff(worker: Worker, run: Run, entry: Entry) -> Handled | None:
    """A celery run whose worker died: its effect is the send, and the send is marked, so the
    same attempt goes on (None: run it here) instead of failing and trying attempt + 1."""
    if run.external_id:  # the hand-off is recorded: the task lives on in Celery
        return _await(worker, run, entry)
    if not run_records.run_resume(run, expect_worker=run.worker):
        worker.runqueue.ack(entry.shard, entry.entry_id)  # another worker resumed it first
        return Handled.DUPLICATE
    logger.warning("celery run resumed after its worker died", extra={"fire_key": entry.fire_key})
    return None


def _continue_lost(worker: Worker, run: Run, entry: Entry, job: Job) -> Handled:
    """The worker running this attempt is gone: fail the attempt and continue with the next."""
    gone = run.worker or "?"
    message = f"Worker {gone} {LOST}; taken over by {worker.name}."
    give_up = entry.takeovers >= worker.options.max_takeovers
    if give_up:
        message += f" Given up after {entry.takeovers} takeovers."
    run_records.run_finish(run, status=Run.Status.FAILED, now=worker.now(), error=message, expect_worker=run.worker)
    metrics.TAKEOVERS.inc()
    metrics.RUNS.labels(status=Run.Status.FAILED, trigger=run.trigger).inc()
    logger.warning("run taken over", extra={"fire_key": entry.fire_key, "attempt": entry.attempt, "from": gone})
    if give_up:
        worker.runqueue.ack(entry.shard, entry.entry_id)
        if run.schedule_id and not entry.is_manual:
            pause_if_failing(worker, job, run)
        return Handled.GIVEN_UP
    worker.runqueue.replace(entry.shard, entry.entry_id, entry.next_attempt(takeover=True))
    return Handled.TAKEN_OVER


def pause_if_failing(worker: Worker, job: Job, run: Run) -> bool:
    """Pause the run's schedule if its last N runs all failed (``pause_schedules_after_failures``)."""
    limit = job.pause_schedules_after_failures
    if not limit or not run.schedule_id:
        return False
    outcomes = selectors.recent_outcomes(run.schedule_id, limit, job.max_attempts)
    if len(outcomes) < limit or Run.Status.SUCCEEDED in outcomes:
        return False
    schedule = schedule_by_id(run.schedule_id)
    if schedule is None or schedule.paused:
        return False
    schedule_services.schedule_pause(schedule, reason=f"Paused after {limit} failed runs in a row.")
    run_records.run_note(run, f"The schedule was paused: its last {limit} runs failed.")
    logger.warning("schedule paused after failures", extra={"schedule": str(schedule.pk), "failures": limit})
    return True
