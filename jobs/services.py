"""The one write path for jobs and runs: validate and save; job events reach schedules by signals.

Run records are written by the worker through the ``run_*`` functions: an insert keyed by
(fire key, attempt), then compare-and-set status changes, so a replayed stream entry records
once and two workers can never both start (or both finish) the same attempt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bson import ObjectId
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.utils import timezone

from jobs import selectors
from jobs.models import Job, Run
from jobs.runqueue import Entry, RunQueue
from jobs.signals import job_deleting, job_enabled_changed
from jobscheduler import mongo
from jobscheduler.epoch import to_epoch_ms

EDITABLE_FIELDS = (
    "name",
    "description",
    "target_type",
    "target",
    "timeout_seconds",
    "max_attempts",
    "retry_backoff_seconds",
    "pause_schedules_after_failures",
    "secret",
    "enabled",
)


def _apply(job: Job, fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({name: "Unknown or read-only field." for name in unknown})
    for name, value in fields.items():
        setattr(job, name, value)


def _check_name_free(job: Job) -> None:
    if selectors.job_name_taken(job.owner_id, job.name, excluding=job.pk):
        raise ValidationError({"name": "You already have a job with this name."})


def job_create(*, owner: User, **fields: Any) -> Job:
    job = Job(owner=owner)
    _apply(job, fields)
    job.full_clean(validate_constraints=False)
    _check_name_free(job)
    job.save()
    return job


def job_update(job: Job, *, now: Callable[[], datetime] = timezone.now, **fields: Any) -> Job:
    """Save changes to a job; enabling or disabling it starts or stops its schedules.

    A disabled job's schedules have no next time (nothing is dispatched for them); enabled
    again, they go on from ``now``, and the times in between are not misfires.
    """
    # As stored, not as held: the admin's form has set the new values on ``job`` already.
    was_enabled = Job.objects.filter(pk=job.pk).values_list("enabled", flat=True).first()
    _apply(job, fields)
    job.full_clean(validate_constraints=False)
    _check_name_free(job)
    job.save()
    if job.enabled != was_enabled:
        job_enabled_changed.send(sender=Job, job=job, now=now)
    return job


def job_delete(job: Job) -> None:
    """Delete a job; its schedules are unscheduled first (schedules.receivers)."""
    job_deleting.send(sender=Job, job=job)
    job.delete()


# --- runs -------------------------------------------------------------------------------------


def run_now(
    job: Job,
    *,
    schedule: Any = None,
    user: Any,
    runqueue: RunQueue | None = None,
    now: Callable[[], datetime] = timezone.now,
) -> str:
    """Dispatch a manual run of ``job`` (for ``schedule``, one of its schedules, if given) at
    once; returns its fire key.

    No schedule moves. The run goes on the job's shard stream; a pending record is written
    too, so the caller sees it before a worker picks it up.
    """
    if schedule is not None and schedule.job_id != job.pk:
        raise ValidationError({"schedule": "Not a schedule of this job."})
    if not (getattr(user, "is_superuser", False) or job.owner_id == getattr(user, "pk", None)):
        raise PermissionDenied("Only the job's owner may run it.")
    queue = runqueue or RunQueue()
    moment = now()
    entry = Entry.manual(
        job_id=str(job.pk),
        schedule_id=str(schedule.pk) if schedule is not None else "",
        nominal_ms=to_epoch_ms(moment),
        shard=queue.keyspace.shard_of(str(job.pk)),
    )
    # Dispatched first: a record without an entry would stay pending for ever.
    queue.add(entry)
    with contextlib.suppress(IntegrityError):  # a worker was quicker and recorded it already
        Run.objects.create(
            job=job,
            schedule=schedule,
            fire_key=entry.fire_key,
            trigger=Run.Trigger.MANUAL,
            nominal_time=moment,
            attempt=1,
        )
    return entry.fire_key


def runs_record(runs: list[Run]) -> int:
    """Insert finished run records (the engine's missed runs) in one batch; ones already
    recorded (same fire key and attempt: a replayed decision) are skipped. Returns how many
    were inserted."""
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


def run_begin(
    *,
    job_id: Any,
    schedule_id: Any,
    fire_key: str,
    attempt: int,
    trigger: str,
    nominal_time: datetime | None,
    dispatched_at: datetime,
    worker: str,
) -> tuple[Run, bool]:
    """Record a run attempt as pending; returns (run, created). An attempt already recorded
    (a replayed entry, a held or taken-over run, a manual run) is returned as it stands."""
    run = Run(
        job_id=ObjectId(job_id),
        schedule_id=ObjectId(schedule_id) if schedule_id else None,
        fire_key=fire_key,
        attempt=attempt,
        trigger=trigger,
        status=Run.Status.PENDING,
        nominal_time=nominal_time,
        dispatched_at=dispatched_at,
        worker=worker,
    )
    try:
        run.save(force_insert=True)
    except IntegrityError:
        return Run.objects.get(fire_key=fire_key, attempt=attempt), False
    return run, True


def run_started(run: Run, *, worker: str, now: datetime, dispatched_at: datetime | None = None) -> bool:
    """Mark a pending attempt running, if it still is pending; False if someone else started it."""
    values: dict[str, Any] = {"status": Run.Status.RUNNING, "worker": worker, "started_at": now}
    if run.dispatched_at is None and dispatched_at is not None:
        values["dispatched_at"] = dispatched_at
    return _compare_and_set(run, {"status": Run.Status.PENDING}, values)


def run_finish(
    run: Run,
    *,
    status: str,
    now: datetime,
    output: str = "",
    error: str = "",
    expect_status: str = Run.Status.RUNNING,
    expect_worker: str | None = None,
) -> bool:
    """Record how an attempt ended, if it is still as expected (status, and worker if given).

    False means another worker changed it first (a takeover): the outcome is not written.
    """
    expected: dict[str, Any] = {"status": expect_status}
    if expect_worker is not None:
        expected["worker"] = expect_worker
    return _compare_and_set(run, expected, {"status": status, "finished_at": now, "output": output, "error": error})


def run_note(run: Run, note: str) -> None:
    """Add a line to a finished run's error (why the engine did something after it)."""
    run.error = f"{run.error}\n{note}" if run.error else note
    run.save(update_fields=["error"])


def _compare_and_set(run: Run, expected: dict[str, Any], values: dict[str, Any]) -> bool:
    # One flat filter, through pymongo: the ORM sends {$and: [{_id}, {status}]}, which
    # SecantusDB (tests, local runs) answers by scanning every run: 10 ms per update with
    # 1,000 runs stored, 190 ms at 20,000 (docs/e2e-benchmark.md). MongoDB plans both alike.
    plain = {name: str(value) if isinstance(value, str) else value for name, value in values.items()}
    condition = {name: str(value) if isinstance(value, str) else value for name, value in expected.items()}
    changed = mongo.collection(Run).update_one({"_id": run.pk, **condition}, {"$set": plain}).matched_count
    if changed:
        for name, value in values.items():
            setattr(run, name, value)
    return bool(changed)


def runs_purge(
    *,
    before: datetime,
    batch: int = 1000,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Delete finished runs that finished before ``before``, ``batch`` at a time; returns how many
    (with ``dry_run``, how many would go). Pending and running ones are never touched."""
    old = Run.objects.filter(status__in=Run.FINISHED, finished_at__lt=before)
    total = old.count()
    if dry_run or not total:
        return total
    deleted = 0
    while True:
        ids = list(old.order_by().values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        Run.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
        if progress:
            progress(deleted, max(total, deleted))
