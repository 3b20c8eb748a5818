"""Schedules: when a job runs. The kind-specific maths lives in schedules.kinds."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.dispatch import Signal

from jobscheduler.bounds import MAX_COUNT, MAX_DURATION_SECONDS, out_of_bounds
from schedules import calendars, kinds

MAX_JITTER_SECONDS = 3600
SOLAR_EVENT_CHOICES = [(name, label) for name, (label, _) in kinds.SOLAR_EVENTS.items()]
PAUSE_REASON_CHARS = 500


# Sent after a QuerySet.update() or bulk_update() of schedules (outside the services), with
# the ids it touched; schedules/receivers.py brings their mirror in step.
schedules_updated = Signal()


class ScheduleQuerySet(models.QuerySet["Schedule"]):
    def update(self, **kwargs: Any) -> int:
        """Update in MongoDB, then have the Redis mirror follow (schedules_updated)."""
        ids = list(self.values_list("pk", flat=True))
        count = super().update(**kwargs)
        if ids:
            schedules_updated.send(sender=Schedule, ids=ids)
        return count


class Schedule(models.Model):
    class Misfire(models.TextChoices):
        SKIP = "skip", "Skip (record missed)"
        RUN_ONCE = "run_once", "Run once"
        RUN_ALL = "run_all", "Run all (bounded)"

    class Overlap(models.TextChoices):
        ALLOW = "allow", "Allow"
        SKIP = "skip", "Skip"
        BUFFER_ONE = "buffer_one", "Buffer one"

    # How a wall-clock cron time meets daylight saving (schedules.cron.DstRules).
    class DstGap(models.TextChoices):
        SHIFT = kinds.GAP_SHIFT, "Shift: fire at the jump (Debian cron)"
        SKIP = kinds.GAP_SKIP, "Skip: not that day"

    class DstRepeat(models.TextChoices):
        ONCE = kinds.REPEAT_ONCE, "Once: on the first pass (Debian cron)"
        TWICE = kinds.REPEAT_TWICE, "Twice: on both passes"

    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="schedules")
    job_id: Any
    kind = models.CharField(max_length=16, choices=kinds.KIND_CHOICES)
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    anchor = models.DateTimeField(null=True, blank=True)
    expression = models.CharField(max_length=200, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    dst_gap = models.CharField(
        "Spring-forward gap",
        max_length=8,
        choices=DstGap.choices,
        default=DstGap.SHIFT,
        help_text="Cron schedules at a fixed time: when the clocks skip that time.",
    )
    dst_repeat = models.CharField(
        "Fall-back repeat",
        max_length=8,
        choices=DstRepeat.choices,
        default=DstRepeat.ONCE,
        help_text="Cron schedules at a fixed time: when the clocks go back over that time.",
    )
    # Solar schedules: which sun event, where (degrees, north and east positive), and an offset.
    solar_event = models.CharField(max_length=8, choices=SOLAR_EVENT_CHOICES, blank=True)
    latitude = models.FloatField(null=True, blank=True, help_text="Solar schedules: degrees north (south negative).")
    longitude = models.FloatField(null=True, blank=True, help_text="Solar schedules: degrees east (west negative).")
    solar_offset_seconds = models.IntegerField(
        "Offset (seconds)",
        default=0,
        help_text="Solar schedules: seconds after the event (before it if negative), at most 6 hours either way.",
    )
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    max_runs = models.PositiveIntegerField(null=True, blank=True)
    jitter_seconds = models.PositiveIntegerField(default=0)
    misfire_policy = models.CharField(max_length=16, choices=Misfire.choices, default=Misfire.SKIP)
    misfire_grace_seconds = models.PositiveIntegerField(default=60)
    catchup_window_seconds = models.PositiveIntegerField(default=3600)
    catchup_max_runs = models.PositiveIntegerField(default=100)
    overlap_policy = models.CharField(max_length=16, choices=Overlap.choices, default=Overlap.ALLOW)
    # Ids (strings) of exclusion calendars whose days this schedule skips (its job owner's).
    exclusion_calendars = models.JSONField(
        default=list,
        blank=True,
        help_text="Exclusion calendars whose days this schedule skips.",
    )
    paused = models.BooleanField(default=False)
    paused_until = models.DateTimeField(null=True, blank=True)
    # Why the system paused it (failing runs, or a schedule the engine could not compute);
    # empty when a user paused it or it runs. Cleared when it is resumed or edited.
    pause_reason = models.CharField(max_length=PAUSE_REASON_CHARS, blank=True, editable=False)
    # Maintained by the engine, read-only for users.
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    run_count = models.PositiveIntegerField(default=0)
    # Bumped on every write, so the Redis mirror never acts on a stale copy.
    generation = models.PositiveIntegerField(default=0)
    # Set on a schedule declared in code (schedules.declarations): the declaration's name, and
    # a digest of the declaration as last applied, which tells a change in the code (applied
    # quietly) from an edit made around it in MongoDB (drift: warned about, then undone).
    code_key = models.CharField(
        max_length=200,
        null=True,
        blank=True,
        unique=True,
        editable=False,
        help_text="The name of its declaration in code; empty if made by a user.",
    )
    code_digest = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]
        indexes = [
            # A superuser's list of every schedule, in its order.
            models.Index(fields=["created_at"], name="schedule_created_at"),
            # Schedules the service paused have a reason; the dashboard finds them by it
            # (pause_reason > "") without reading the others.
            models.Index(fields=["pause_reason"], name="schedule_pause_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.job.name if self.job_id else '?'}: {self.describe()}"

    @property
    def kind_object(self) -> kinds.ScheduleKind:
        return kinds.get_kind(self.kind)

    def describe(self) -> str:
        try:
            text = self.kind_object.describe(self)
        except (ValueError, AssertionError):
            return f"Invalid {self.kind} schedule"
        if self.jitter_seconds:
            text += f", jitter up to {self.jitter_seconds}s"
        return text

    def clean(self) -> None:
        errors: dict[str, str] = {}
        try:
            errors.update(self.kind_object.clean(self))
        except ValueError as error:
            errors["kind"] = str(error)
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            errors["end_at"] = "Must be after start_at."
        if self.max_runs is not None and self.max_runs < 1:
            errors["max_runs"] = "Must be at least 1 (leave empty for no limit)."
        if self.jitter_seconds > MAX_JITTER_SECONDS:
            errors["jitter_seconds"] = f"Must be at most {MAX_JITTER_SECONDS} seconds."
        durations = {
            "interval_seconds": self.interval_seconds,
            "misfire_grace_seconds": self.misfire_grace_seconds,
            "catchup_window_seconds": self.catchup_window_seconds,
        }
        errors.update(out_of_bounds(durations, MAX_DURATION_SECONDS))
        errors.update(out_of_bounds({"max_runs": self.max_runs, "catchup_max_runs": self.catchup_max_runs}, MAX_COUNT))
        if self.catchup_max_runs < 1:
            errors["catchup_max_runs"] = "Must be at least 1."
        if errors:
            raise ValidationError(errors)


class ExclusionCalendar(models.Model):
    """Named days or ranges of days (holidays, freeze windows) in a time zone, owned like jobs.

    ``days`` holds ``{"start", "end", "name"}`` entries (schedules.calendars); a schedule that
    names the calendar does not run on them.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exclusion_calendars")
    owner_id: Any
    name = models.CharField(max_length=200)
    description = models.CharField(max_length=500, blank=True)
    timezone = models.CharField(max_length=64, default="UTC", help_text="The zone its days are read in.")
    days = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="calendar_name_per_owner")]

    def __str__(self) -> str:
        return self.name

    def ranges(self) -> list[calendars.DayRange]:
        return calendars.parse_entries(self.days)

    def as_days(self) -> calendars.CalendarDays:
        return calendars.CalendarDays(str(self.pk), self.name, self.timezone or "UTC", tuple(self.ranges()))

    def clean(self) -> None:
        errors: dict[str, str] = {}
        try:
            kinds.zone(self.timezone or "UTC")
        except ValueError as error:
            errors["timezone"] = str(error)
        try:
            self.days = [entry.stored() for entry in calendars.parse_entries(self.days)]
        except ValueError as error:
            errors["days"] = str(error)
        if errors:
            raise ValidationError(errors)


class Backfill(models.Model):
    """Past occurrences of a schedule dispatched on request: each one in [start_at, end_at]
    with no run record yet (by fire key), at a bounded rate, with progress counted here.

    A worker (workers/backfills.py) or the ``backfill`` command runs it under a lease; one
    that dies leaves it to be taken up again from ``cursor``.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="backfills")
    schedule_id: Any
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    start_at = models.DateTimeField()
    end_at = models.DateTimeField()
    overlap_policy = models.CharField(max_length=16, choices=Schedule.Overlap.choices, default=Schedule.Overlap.ALLOW)
    rate_per_second = models.FloatField(default=10)
    # What the request is, for a repeat of it to find this one: schedule, range and policy.
    request_key = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0, help_text="Occurrences in the range.")
    dispatched = models.PositiveIntegerField(default=0, help_text="Occurrences sent to the workers.")
    already_recorded = models.PositiveIntegerField(default=0, help_text="Occurrences that had a run record already.")
    cursor = models.DateTimeField(null=True, blank=True, help_text="The last occurrence handled.")
    cancel_requested = models.BooleanField(default=False)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "lease_until"], name="backfill_status_lease")]

    def __str__(self) -> str:
        return f"Backfill of {self.schedule_id} {self.start_at:%Y-%m-%d %H:%M} to {self.end_at:%Y-%m-%d %H:%M}"

    @property
    def handled(self) -> int:
        return self.dispatched + self.already_recorded
