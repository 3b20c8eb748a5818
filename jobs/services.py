"""The one write path for jobs and runs: validate and save; job events reach schedules by signals.

Here: jobs, manual and enqueued runs put on their streams, and the purge of old runs. The
records workers and the engine write as runs go (inserts by fire key and attempt,
compare-and-set status changes, the outcome counts) are in jobs.run_records.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.utils import timezone

from jobs import limits, permissions, selectors
from jobs.models import SAVED_BY_SERVICE, Job, Run
from jobs.runqueue import DEFAULT_QUEUE, Entry, RunQueue
from jobs.signals import job_deleting, job_enabled_changed
from jobs.targets import python as python_targets
from jobs.targets.http import signing
from jobscheduler import mongo
from jobscheduler.declared import refuse_code_delete, refuse_code_edits
from jobscheduler.epoch import to_epoch_ms
from jobscheduler.keyspace import default_keyspace

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
# What users may still change on a job declared in code (Job.code_key): turning it off and on.
CODE_EDITABLE_FIELDS = ("enabled",)


def _apply(job: Job, fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({name: "Unknown or read-only field." for name in unknown})
    for name, value in fields.items():
        setattr(job, name, value)


def _check_name_free(job: Job) -> None:
    if selectors.job_name_taken(job.owner_id, job.name, excluding=job.pk):
        raise ValidationError({"name": "You already have a job with this name."})


def job_create(*, owner: User, by: User | None = None, code_key: str | None = None, **fields: Any) -> Job:
    """Validate and save a new job for ``owner``; a webhook job given no secret gets a generated one.

    ``by`` (the owner unless given) must be allowed its target type (jobs.permissions), and
    the owner must be under the per-owner limit. The caller shows a generated ``job.secret``
    to the creator once (the API's create response); it is never read back afterwards.
    ``code_key`` marks a job declared in code (the code sync's, never a user's).
    """
    job = Job(owner=owner, code_key=code_key or None)
    if fields.get("target_type") == Job.TargetType.HTTP and not fields.get("secret"):
        fields = {**fields, "secret": signing.generate_secret()}
    _apply(job, fields)
    job.full_clean(validate_constraints=False)
    permissions.check_target(by or owner, job.target_type, job.target)
    limits.check_job_count(owner)
    _check_name_free(job)
    setattr(job, SAVED_BY_SERVICE, True)
    job.save()
    return job


def job_update(
    job: Job,
    *,
    by: User | None = None,
    now: Callable[[], datetime] = timezone.now,
    override_code: bool = False,
    **fields: Any,
) -> Job:
    """Save changes to a job; enabling or disabling it starts or stops its schedules.

    A changed target is held to the permissions of ``by`` (the job's owner unless given); an
    unchanged one is not judged again. A disabled job's schedules have no next time (nothing
    is dispatched for them); enabled again, they go on from ``now``, and the times in between
    are not misfires. A job declared in code changes only ``enabled`` here, unless the code
    sync (``override_code``) applies its declaration.
    """
    if job.code_key and not override_code:
        known = [name for name in fields if name in EDITABLE_FIELDS]
        held = (Job.objects.filter(pk=job.pk).values(*known).first() or {}) if known else {}
        refuse_code_edits(job.code_key, fields, stored=held, allowed=CODE_EDITABLE_FIELDS, what="job")
    # As stored, not as held: the admin's form has set the new values on ``job`` already.
    stored: dict[str, Any] = dict(
        Job.objects.filter(pk=job.pk).values("enabled", "target_type", "target", "secret").first() or {}
    )
    was_enabled, stored_secret = stored.get("enabled"), stored.get("secret", "")
    _apply(job, fields)
    _keep_previous_secret(job, stored_secret, now())
    job.full_clean(validate_constraints=False)
    if (job.target_type, job.target) != (stored.get("target_type"), stored.get("target")):
        permissions.check_target(by or job.owner, job.target_type, job.target)
    _check_name_free(job)
    setattr(job, SAVED_BY_SERVICE, True)
    job.save()
    _announce(job)
    if job.enabled != was_enabled:
        job_enabled_changed.send(sender=Job, job=job, now=now)
    return job


def job_rotate_secret(job: Job, *, now: Callable[[], datetime] = timezone.now) -> str:
    """Give ``job`` a new generated webhook secret and return it (to be shown once).

    The old one keeps signing deliveries, beside the new, for
    ``JOBSCHEDULER_WEBHOOK_SECRET_OVERLAP_HOURS``: receivers move to the new one meanwhile.
    """
    if job.target_type != Job.TargetType.HTTP:
        raise ValidationError({"secret": "Only webhook (http) jobs sign their deliveries."})
    new_secret = signing.generate_secret()
    job_update(job, now=now, secret=new_secret)
    return new_secret


def _keep_previous_secret(job: Job, stored_secret: str, moment: datetime) -> None:
    """A replaced secret stays valid for the overlap; a cleared one (no signing) ends it at once."""
    if not job.secret:
        job.previous_secret, job.previous_secret_expires_at = "", None
    elif stored_secret and job.secret != stored_secret:
        hours = secret_overlap_hours()
        job.previous_secret = stored_secret
        job.previous_secret_expires_at = moment + timedelta(hours=hours) if hours > 0 else None


def secret_overlap_hours() -> float:
    """How long a replaced webhook secret keeps signing beside the new one (0: not at all)."""
    return float(getattr(settings, "JOBSCHEDULER_WEBHOOK_SECRET_OVERLAP_HOURS", 24))


def job_delete(job: Job, *, override_code: bool = False) -> None:
    """Delete a job; its schedules are unscheduled first (schedules.receivers).

    A job declared in code goes only through the code sync (``override_code``).
    """
    if job.code_key and not override_code:
        refuse_code_delete(job.code_key, "job")
    job_deleting.send(sender=Job, job=job)
    job_id = job.pk
    setattr(job, SAVED_BY_SERVICE, True)
    job.delete()
    _announce(job, job_id)


def job_saved_outside_services(job: Job, was_enabled: bool | None) -> None:
    """After a save made around the services: what job_update does after its own save."""
    _announce(job)
    if was_enabled is not None and job.enabled != was_enabled:
        job_enabled_changed.send(sender=Job, job=job, now=timezone.now)


def _announce(job: Job, job_id: Any = None) -> None:
    """Tell workers the job changed, so they drop what they cached of it."""
    keyspace = default_keyspace()
    keyspace.client.publish(keyspace.job_changes_channel, str(job_id or job.pk))


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
    return _dispatch_manual(job, schedule=schedule, runqueue=runqueue or RunQueue(), moment=now())


def run_again(
    run: Run,
    *,
    user: Any,
    runqueue: RunQueue | None = None,
    now: Callable[[], datetime] = timezone.now,
) -> str:
    """A new manual run like ``run``: of its job, for its schedule (if it still exists), and for
    an enqueued Task's run, the same Task with the same arguments. Returns its fire key."""
    job = run.job
    if not run.target:
        schedule = run.schedule if run.schedule_id else None
        return run_now(job, schedule=schedule, user=user, runqueue=runqueue, now=now)
    if not (getattr(user, "is_superuser", False) or job.owner_id == getattr(user, "pk", None)):
        raise PermissionDenied("Only the job's owner may run it.")
    return _dispatch_manual(job, schedule=None, runqueue=runqueue or RunQueue(), moment=now(), target=run.target)


def _dispatch_manual(
    job: Job,
    *,
    schedule: Any,
    runqueue: RunQueue,
    moment: datetime,
    target: dict[str, Any] | None = None,
    queue: str = DEFAULT_QUEUE,
    run_after: datetime | None = None,
) -> str:
    """Put a manual run on ``queue``'s stream (or, with a ``run_after`` still to come, in its
    delayed set) and write its pending record; returns its fire key."""
    shard = runqueue.keyspace.shard_of(str(job.pk))
    deferred = run_after is not None and run_after > moment
    nominal = run_after if deferred and run_after is not None else moment
    entry = Entry.manual(
        job_id=str(job.pk),
        schedule_id=str(schedule.pk) if schedule is not None else "",
        nominal_ms=to_epoch_ms(nominal),
        shard=runqueue.lane_of(shard, queue),
        target=target,
    )
    # Dispatched first: a record without an entry would stay pending for ever.
    if deferred:
        runqueue.defer(entry.shard, entry.fields(), to_epoch_ms(nominal))
    else:
        runqueue.add(entry)
    with contextlib.suppress(IntegrityError):  # a worker was quicker and recorded it already
        Run.objects.create(
            job=job,
            schedule=schedule,
            fire_key=entry.fire_key,
            trigger=Run.Trigger.MANUAL,
            nominal_time=nominal,
            attempt=1,
            target=target,
            queue=queue,
        )
    return entry.fire_key


def runs_requeue_pending(queue: RunQueue, *, batch: int = 1000, now: Callable[[], datetime] = timezone.now) -> int:
    """After Redis lost its data: put every pending run back where it waited; returns how many.

    A pending record stands for an entry Redis held (a manual run waiting for a worker, a run
    buffer_one held back, an enqueued Task waiting for its ``run_after``) and has just lost. The
    entry comes back with the same fire key and attempt, on the queue the record names (an
    enqueued Task's), in the delayed set if its time is still to come, so a worker records it
    once; and if the old entry survived after all, the second one finds the attempt taken and is
    dropped (run_begin's compare-and-set on the record).
    """
    count = 0
    moment = now()
    # ``queue`` serves the default queue (the scheduler's); a Task's other queue gets its own.
    queues: dict[str, RunQueue] = {name: queue for name in queue.queues}
    pending = Run.objects.filter(status=Run.Status.PENDING).order_by("pk")
    for run in pending.iterator(chunk_size=batch):
        schedule_id = str(run.schedule_id) if run.schedule_id else ""
        manual = run.fire_key.startswith(Run.MANUAL_PREFIX)
        # Where a worker looks for it: scheduled entries on their schedule's shard, manual
        # runs (and their retries) on their job's (jobs.runqueue, run_now).
        owner = schedule_id if schedule_id and not manual else str(run.job_id)
        name = run.queue or DEFAULT_QUEUE
        lanes = queues.get(name) or queues.setdefault(name, RunQueue(queue.keyspace, queues=[name]))
        nominal = run.nominal_time or run.created_at
        entry = Entry(
            shard=lanes.lane_of(lanes.keyspace.shard_of(owner), name),
            entry_id="",
            fire_key=run.fire_key,
            schedule_id=schedule_id,
            job_id=str(run.job_id),
            nominal_ms=to_epoch_ms(nominal),
            trigger=run.trigger,
            attempt=run.attempt,
            target=run.target or None,  # an enqueued Task's run carries its Task and arguments
        )
        if manual and nominal > moment:  # run_after still to come
            lanes.defer(entry.shard, entry.fields(), entry.nominal_ms)
        else:
            lanes.add(entry)
        count += 1
    return count


# --- Django Tasks (jobs.tasks_backend) ------------------------------------------------------

TASKS_OWNER = "django-tasks"


def task_owner(username: str = TASKS_OWNER) -> User:
    """The user owning the jobs of enqueued Tasks: inactive, no password (it never signs in)."""
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user
    user = User(username=username, is_active=False)
    user.set_unusable_password()
    try:
        user.save()
    except IntegrityError:  # created meanwhile by another process
        return User.objects.get(username=username)
    return user


def task_job(path: str, *, owner: User, defaults: dict[str, Any]) -> Job:
    """The job whose runs an enqueued Task's are: named by the Task's path, created at its first
    enqueue with ``defaults`` (timeout, attempts, backoff: the backend's OPTIONS), edited as any job.

    Trusted code enqueues, not a user: no permission or per-owner limit applies.
    """
    job = Job.objects.filter(owner=owner, name=path).first()
    if job is not None:
        return job
    job = Job(
        owner=owner,
        name=path,
        description=python_targets.summary(python_targets.resolve(path)),
        target_type=Job.TargetType.PYTHON,
        target={"task": path},
        **defaults,
    )
    job.full_clean(validate_constraints=False)
    setattr(job, SAVED_BY_SERVICE, True)
    try:
        job.save()
    except IntegrityError:  # the same Task's first enqueue in another process won
        return Job.objects.get(owner=owner, name=path)
    return job


def run_enqueue(
    job: Job,
    *,
    target: dict[str, Any],
    queue: str = DEFAULT_QUEUE,
    run_after: datetime | None = None,
    runqueue: RunQueue | None = None,
    now: Callable[[], datetime] = timezone.now,
) -> str:
    """A manual run of ``job`` executing ``target`` (a Task with its arguments) on ``queue``,
    at once or at ``run_after``; returns its fire key (the TaskResult's id)."""
    if target.get("task") is None or set(target) - {"task", "args", "kwargs"}:
        raise ValidationError({"target": "An enqueued run's target is {task, args, kwargs}."})
    return _dispatch_manual(
        job,
        schedule=None,
        runqueue=runqueue or RunQueue(queues=[queue]),
        moment=now(),
        target=target,
        queue=queue,
        run_after=run_after,
    )


def runs_purge(
    *,
    before: datetime,
    batch: int = 1000,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Delete finished runs that finished before ``before``, ``batch`` at a time; returns how many
    (with ``dry_run``, how many would go). Pending and running ones are never touched: only a
    finished run has a ``finished_at``. One condition, on the finished-at index (SecantusDB plans
    a filter on two fields as a scan), and the one the TTL index applies (jobs/retention.py)."""
    runs = mongo.collection(Run)
    old = {"finished_at": {"$lt": before}}
    total = runs.count_documents(old)
    if dry_run or not total:
        return total
    deleted = 0
    while True:
        ids = [row["_id"] for row in runs.find(old, {"_id": 1}).limit(batch)]
        if not ids:
            return deleted
        deleted += runs.delete_many({"_id": {"$in": ids}}).deleted_count
        if progress:
            progress(deleted, max(total, deleted))
