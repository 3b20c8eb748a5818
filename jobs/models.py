"""Jobs (what to run) and runs (one record per execution attempt)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from jobs import targets
from jobs.permissions import JOB_PERMISSIONS
from jobscheduler.bounds import MAX_DURATION_SECONDS, out_of_bounds

# Set on an instance by the services around their own writes (jobs and schedules alike): the
# model signals' receivers then leave the follow-up (notices, the mirror) to the service, and
# act only on saves made around the services (a shell, a script).
SAVED_BY_SERVICE = "_saved_by_service"


class Job(models.Model):
    class TargetType(models.TextChoices):
        PYTHON = "python", "Python function"
        COMMAND = "command", "Management command"
        HTTP = "http", "HTTP webhook"
        CELERY = "celery", "Celery task"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    owner_id: Any
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    target_type = models.CharField(max_length=16, choices=TargetType.choices)
    # python: {"task": import path of a Django Task, "args": [...], "kwargs": {...}};
    # command: {"command": name, "args": [...]};
    # http: {"method", "url", "headers", "body"};
    # celery: {"task": a Celery task name, "args", "kwargs", "queue", ...}. Checked by jobs.targets.
    target = models.JSONField(default=dict)
    timeout_seconds = models.PositiveIntegerField(default=300)
    max_attempts = models.PositiveSmallIntegerField(default=1)
    retry_backoff_seconds = models.PositiveIntegerField(default=10)
    # Pause a schedule of this job once its last N runs failed (after their retries); None: never.
    pause_schedules_after_failures = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Pause a schedule once this many of its runs in a row failed (after retries). Blank: never.",
    )
    # HMAC key for webhook signatures; write-only through the API. Webhook jobs created without
    # one get a generated Standard Webhooks secret (jobs.services.job_create).
    secret = models.CharField(max_length=200, blank=True)
    # The secret before the last rotation: deliveries are signed with it too until it expires,
    # so receivers can switch to the new one at their own pace.
    previous_secret = models.CharField(max_length=200, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    # Set on a job declared in code (schedules.declarations): the declaration's name. Only
    # the code sync changes what the code declares; null (not blank) for every other job, so
    # the unique index, partial on strings, leaves those out.
    code_key = models.CharField(
        max_length=200,
        null=True,
        blank=True,
        unique=True,
        editable=False,
        help_text="The name of the schedule declared in code that this job belongs to; empty if made by a user.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="job_name_unique_per_owner")]
        # A superuser's list of every job, in its order (the unique index above is partial,
        # which a plain sort cannot use).
        indexes = [models.Index(fields=["name"], name="job_name")]
        permissions = JOB_PERMISSIONS

    def __str__(self) -> str:
        return self.name

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets a delivery at ``now`` is signed with: the current one, then the previous until it expires."""
        keys = [self.secret] if self.secret else []
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and now < expires:
            keys.append(self.previous_secret)
        return keys

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not 1 <= self.timeout_seconds <= 86_400:
            errors["timeout_seconds"] = "Must be between 1 second and 1 day."
        errors.update(out_of_bounds({"retry_backoff_seconds": self.retry_backoff_seconds}, MAX_DURATION_SECONDS))
        if not 1 <= self.max_attempts <= 20:
            errors["max_attempts"] = "Must be between 1 and 20."
        if self.pause_schedules_after_failures is not None and not 1 <= self.pause_schedules_after_failures <= 100:
            errors["pause_schedules_after_failures"] = "Must be between 1 and 100 (blank: never pause)."
        errors.update(targets.clean_target(self.target_type, self.target))
        if errors:
            raise ValidationError(errors)


class Run(models.Model):
    """One execution attempt of one occurrence (or of a manual run).

    ``(fire_key, attempt)`` is unique, so an occurrence replayed after Redis lost data
    records once, and each retry is its own visible row.
    """

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Manual"
        RETRY = "retry", "Retry"
        CATCH_UP = "catch_up", "Catch-up"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        TIMED_OUT = "timed_out", "Timed out"
        SKIPPED = "skipped", "Skipped"
        MISSED = "missed", "Missed"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.SKIPPED, Status.MISSED)
    # Fire keys of manual runs: manual:<job id>:<uuid4 hex> (jobs.services.run_now). Their
    # retries keep the key but not the trigger, so the key is what marks a run as manual.
    MANUAL_PREFIX = "manual:"
    # In the error of an attempt whose worker died mid-run (workers.handler takes it over).
    LOST = "lost mid-run"

    # No index of their own: the (job | schedule, -nominal_time, -id) indexes below start with
    # them and answer every query on them; one index fewer to write per run each.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="runs", db_index=False)
    schedule = models.ForeignKey(
        "schedules.Schedule", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs", db_index=False
    )
    job_id: Any
    schedule_id: Any
    fire_key = models.CharField(max_length=100)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt = models.PositiveSmallIntegerField(default=1)
    nominal_time = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    output = models.TextField(blank=True)
    error = models.TextField(blank=True)
    # A Task enqueued with its own arguments (jobs.tasks_backend): the python target this run
    # executes in place of the job's, {"task", "args", "kwargs"}. None: the job's target.
    target = models.JSONField(null=True, blank=True)
    # The queue (jobs.runqueue) an enqueued Task's run went on: where it goes back if Redis loses
    # it (jobs.services.runs_requeue_pending). Blank: the default queue.
    queue = models.CharField(max_length=64, blank=True)
    # Python targets: what the Task returned (JSON, whole) and, when it raised, the exception's
    # class path: what TaskResult.return_value and TaskResult.errors read.
    return_value = models.JSONField(null=True, blank=True)
    exception_class = models.CharField(max_length=200, blank=True)
    # Celery targets: the id of the task the run was handed off as (its fire key). Set once
    # the hand-off is recorded; a running run with one waits for the task's outcome.
    external_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-nominal_time", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["fire_key", "attempt"], name="run_fire_key_attempt_unique")]
        indexes = [
            # The unique constraint's index is partial (fire_key and attempt of the right
            # types), which a plain query on fire_key cannot use: look-ups by fire key need this.
            models.Index(fields=["fire_key"], name="run_fire_key"),
            # A job's, a schedule's or a status's runs newest first, ties by id: a page of the
            # API's or the admin's list (ordered so) is read off the index, never sorted.
            models.Index(fields=["job", "-nominal_time", "-id"], name="run_job_nominal_time"),
            models.Index(fields=["schedule", "-nominal_time", "-id"], name="run_schedule_nominal_time"),
            models.Index(fields=["status", "-nominal_time", "-id"], name="run_status_nominal_time"),
            # The admin's runs list, newest first (its order ends in the id), and its time filter.
            models.Index(fields=["-nominal_time", "-id"], name="run_nominal_time"),
            # purge_runs reads by it, and with JOBSCHEDULER_RUN_RETENTION_TTL it is the TTL index
            # that expires finished runs (jobs/retention.py sets its expireAfterSeconds).
            models.Index(fields=["finished_at"], name="run_finished_at"),
        ]

    def __str__(self) -> str:
        return f"{self.fire_key} #{self.attempt} ({self.status})"
