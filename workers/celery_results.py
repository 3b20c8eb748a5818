"""Record the outcomes of runs handed off to Celery as their tasks finish: a thread of each worker.

A celery run whose outcome is awaited (the Celery app has a result backend) leaves its slot as
soon as the task is with the broker; its run stays ``running`` with the task's id
(``Run.external_id``) and is awaited in workers.awaited. Every ``POLL_SECONDS`` each worker's
watcher claims the awaited runs due for a look and reads their records and their tasks' states
in one batch each:

- a finished task: the run's outcome (succeeded with the task's result; failed with the
  exception and the end of its traceback; failed if revoked), written by compare-and-set
  from ``running``, so however many workers look, the outcome is recorded once;
- a task Celery retries (``RETRY``): a line in the run's output for each retry seen; awaited still;
- no outcome within the job's timeout, counted from the hand-off: ``timed_out`` (Celery is not
  asked to stop the task; it may still run);
- otherwise: looked at again after ``LOOK_AGAIN_MS``.

Our retries (``max_attempts``) are not applied to a task's failure: the task ran, and retrying
it is Celery's own business (``autoretry_for``, ``self.retry``), recorded as retries above. A
failure does count towards pausing its schedule (``pause_schedules_after_failures``).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from typing import Any

from django.db import connection

from jobs import run_records, selectors
from jobs.models import Run
from jobs.targets import celery
from jobscheduler.outages import Backoff, unavailable
from workers import metrics
from workers.handler import pause_if_failing
from workers.outcome import excerpt, output_chars, tail_excerpt
from workers.worker import Worker

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25
LOOK_AGAIN_MS = 250
BATCH = 500


def watching() -> bool:
    """Whether this process should watch for task outcomes: celery targets are configured and
    their app has a result backend."""
    if not celery.configured():
        return False
    try:
        return celery.tracks_results()
    except celery.NotSent as error:
        logger.error("Celery is misconfigured; no task outcomes are recorded", extra={"error": str(error)})
        return False


def record_outcomes(worker: Worker, *, limit: int = BATCH) -> int:
    """One look at the awaited runs due now; returns how many were looked at."""
    now_ms = worker.now_ms()
    # A watcher that dies holding runs leaves them to the others when the lease runs out: as
    # long as a worker's held entries wait before they are taken over.
    claimed = worker.awaited.claim(now_ms, worker.lease_ms(), limit)
    if not claimed:
        return 0
    try:
        runs = selectors.runs_by_ids(claimed)
        live = [run for run in runs.values() if run.status == Run.Status.RUNNING and run.external_id]
        states = celery.task_states([run.external_id for run in live]) if live else {}
    except Exception:
        worker.awaited.later(claimed, now_ms + 1000)  # not held for the whole lease
        raise
    done = [ident for ident in claimed if ident not in {str(run.pk) for run in live}]
    now = worker.now()
    limit_chars = output_chars()
    changes: list[tuple[Run, dict[str, Any]]] = []
    again: list[str] = []
    for run in live:
        state = states[run.external_id]
        job = worker.job(str(run.job_id))
        timeout = job.timeout_seconds if job is not None else 86_400
        if state.ready:
            changes.append((run, {"finished_at": now, **_outcome(run, state, limit_chars)}))
        elif run.started_at is not None and now >= run.started_at + timedelta(seconds=timeout):
            changes.append((run, {"finished_at": now, **_timed_out(timeout, state)}))
        else:
            again.append(str(run.pk))
            note = _retry_note(state)
            if note and note not in run.output:
                changes.append((run, {"output": excerpt(f"{run.output}\n{note}", limit_chars)}))
    applied = run_records.runs_compare_and_set_many(
        [(run, {"status": Run.Status.RUNNING, "external_id": run.external_id}, values) for run, values in changes]
    )
    for (run, values), written in zip(changes, applied, strict=True):
        if "finished_at" not in values:
            continue
        done.append(str(run.pk))
        if written:
            _finished(worker, run)
    worker.awaited.forget(done)
    worker.awaited.later([ident for ident in again if ident not in done], now_ms + LOOK_AGAIN_MS)
    return len(claimed)


def _outcome(run: Run, state: celery.TaskState, limit: int) -> dict[str, Any]:
    values: dict[str, Any] = {"status": Run.Status.FAILED}
    if state.succeeded:
        shown = json.dumps(state.result, default=repr, ensure_ascii=False)
        values.update(status=Run.Status.SUCCEEDED, output=excerpt(f"{run.output}\nResult: {shown}", limit))
        values["return_value"] = _json_or_none(state.result)
    elif state.state == "FAILURE":
        error = state.result
        if isinstance(error, BaseException):
            headline = f"{type(error).__name__}: {error}"
            values["exception_class"] = f"{type(error).__module__}.{type(error).__qualname__}"
        else:
            headline = f"The task failed: {error!r}"
        text = f"{headline}\n{state.traceback.rstrip()}" if state.traceback else headline
        values["error"] = tail_excerpt(text, limit)
    else:
        values["error"] = f"The Celery task ended {state.state}" + (f": {state.result!r}" if state.result else ".")
    return values


def _timed_out(timeout: int, state: celery.TaskState) -> dict[str, Any]:
    return {
        "status": Run.Status.TIMED_OUT,
        "error": f"No outcome from Celery within {timeout}s (the task was {state.state}); it was not stopped.",
    }


def _retry_note(state: celery.TaskState) -> str:
    if state.state != "RETRY":
        return ""
    return f"Retried by Celery ({state.date_done}): {state.result!r}"


def _json_or_none(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


def _finished(worker: Worker, run: Run) -> None:
    metrics.RUNS.labels(status=run.status, trigger=run.trigger).inc()
    if run.status != Run.Status.SUCCEEDED and run.schedule_id and not run.fire_key.startswith(Run.MANUAL_PREFIX):
        job = worker.job(str(run.job_id))
        if job is not None:
            pause_if_failing(worker, job, run)


def watch(worker: Worker, quiet: threading.Event) -> None:
    """Record task outcomes until ``quiet`` is set, riding out server outages."""
    outage = Backoff(f"worker {worker.name}: recording Celery task outcomes")
    try:
        while not quiet.wait(POLL_SECONDS):
            try:
                while record_outcomes(worker) >= BATCH and not quiet.is_set():
                    pass
                outage.succeeded()
            except Exception as error:
                if unavailable(error) is None:
                    logger.exception("recording Celery task outcomes failed; trying again")
                else:
                    quiet.wait(outage.failed(error))
    finally:
        connection.close()
