"""The API shapes of schedules, their previews and their pause requests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import models
from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from jobs.models import Job
from jobs.selectors import jobs_visible_to
from jobscheduler.api import (
    ApiModelSerializer,
    AwareDateTimeField,
    ObjectIdRelatedField,
    StrictCharField,
    StrictFieldsMixin,
)
from jobscheduler.bounds import MAX_COUNT, MAX_DURATION_SECONDS
from schedules import kinds, services, timeline
from schedules.calendars import CalendarDays
from schedules.models import Backfill, ExclusionCalendar, Schedule
from schedules.solar import MAX_OFFSET_SECONDS

READ_ONLY_FIELDS = (
    "id",
    "next_run_at",
    "last_run_at",
    "run_count",
    "description",
    "pause_reason",
    "code_key",
    "created_at",
    "updated_at",
)
DEFAULT_PREVIEW_COUNT = 10


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Cron at 02:30 New York time, skipped on the day clocks spring forward, twice when they fall back",
            value={
                "job": "6650c3f2a1b2c3d4e5f60718",
                "kind": "cron",
                "expression": "30 2 * * *",
                "timezone": "America/New_York",
                "dst_gap": "skip",
                "dst_repeat": "twice",
            },
            request_only=True,
        ),
        OpenApiExample(
            "Weekdays at 09:00 in London, not on UK bank holidays",
            value={
                "job": "6650c3f2a1b2c3d4e5f60718",
                "kind": "cron",
                "expression": "0 9 * * 1-5",
                "timezone": "Europe/London",
                "exclusion_calendars": ["6650c40aa1b2c3d4e5f60720"],
            },
            request_only=True,
        ),
        OpenApiExample(
            "Half an hour before sunset in London",
            value={
                "job": "6650c3f2a1b2c3d4e5f60718",
                "kind": "solar",
                "solar_event": "sunset",
                "latitude": 51.5074,
                "longitude": -0.1278,
                "solar_offset_seconds": -1800,
                "timezone": "Europe/London",
            },
            request_only=True,
        ),
        OpenApiExample(
            "Every 5 minutes",
            value={"job": "6650c3f2a1b2c3d4e5f60718", "kind": "fixed", "interval_seconds": 300},
            request_only=True,
        ),
    ]
)
class ScheduleSerializer(ApiModelSerializer):
    """A schedule: when its job runs. The engine keeps next_run_at, last_run_at and run_count
    (shown live from its Redis mirror)."""

    job = ObjectIdRelatedField(visible_to=jobs_visible_to)
    exclusion_calendars = serializers.ListField(
        child=StrictCharField(max_length=24),
        max_length=50,
        required=False,
        help_text="Ids of exclusion calendars (/api/calendars/) of the job's owner: the schedule does not run on "
        "their days. A skipped occurrence is recorded as a skipped run naming the calendar, or not at all "
        "(JOBSCHEDULER_RECORD_CALENDAR_SKIPS).",
    )
    description = serializers.CharField(
        source="describe",
        read_only=True,
        help_text='The schedule in words, e.g. "At 02:30, Monday through Friday (Europe/London)", '
        '"Every 5 minutes" or "Once, at 2026-07-01 09:30 (Europe/Paris)".',
    )

    class Meta:
        model = Schedule
        fields: tuple[str, ...] = ("id", "job", *services.EDITABLE_FIELDS, *READ_ONLY_FIELDS[1:])
        read_only_fields = READ_ONLY_FIELDS
        # Which kind reads which field, for the document (schedules.kinds checks them).
        extra_kwargs = {
            "kind": {
                "help_text": "fixed: needs interval_seconds; cron: needs expression; at: needs anchor; solar: needs "
                "solar_event, latitude and longitude."
            },
            "solar_event": {
                "help_text": "solar: sunrise, sunset, dawn (civil: the sun 6 degrees below the horizon, rising) or "
                "dusk (civil, setting), each local day of timezone. A day without it (polar day or night, a white "
                "night for dawn and dusk) has no occurrence; previews list such days under skipped."
            },
            "latitude": {"min_value": -90, "max_value": 90, "help_text": "solar: degrees north (south negative)."},
            "longitude": {"min_value": -180, "max_value": 180, "help_text": "solar: degrees east (west negative)."},
            "solar_offset_seconds": {
                "min_value": -MAX_OFFSET_SECONDS,
                "max_value": MAX_OFFSET_SECONDS,
                "help_text": "solar: seconds after the event (negative: before it), at most 6 hours either way.",
            },
            "interval_seconds": {"max_value": MAX_DURATION_SECONDS, "help_text": "fixed: seconds between runs."},
            "anchor": {"help_text": "fixed: a time on the grid (default: start_at, else now); at: when it runs."},
            "expression": {"help_text": "cron: 5 fields, 6 with seconds first, or a macro such as @daily."},
            "timezone": {"help_text": "cron: the IANA zone it is read in, e.g. Europe/Paris (default UTC)."},
            "dst_gap": {
                "help_text": "cron at a fixed minute and hour: a time the clocks skip (spring forward) fires at "
                "the jump (shift, Debian cron's rule, the default) or not that day (skip). Other expressions "
                "follow elapsed time and keep the default."
            },
            "dst_repeat": {
                "help_text": "cron at a fixed minute and hour: a time the clocks go back over fires on its first "
                "pass (once, Debian cron's rule, the default) or on both passes (twice). Other expressions "
                "follow elapsed time and keep the default."
            },
            "misfire_grace_seconds": {"max_value": MAX_DURATION_SECONDS},
            "catchup_window_seconds": {"max_value": MAX_DURATION_SECONDS},
            "jitter_seconds": {"max_value": MAX_DURATION_SECONDS},
            "max_runs": {"max_value": MAX_COUNT},
            "catchup_max_runs": {"max_value": MAX_COUNT},
            "code_key": {
                "help_text": "Set on a schedule declared in code: the declaration's name. Only pausing and "
                "resuming work here; edits and deletes are refused."
            },
        }

    def validate_job(self, job: Job) -> Job:
        if self.instance is not None and job.pk != self.instance.job_id:
            raise serializers.ValidationError("A schedule stays with its job; create a new schedule for another job.")
        return job


class PreviewQuerySerializer(serializers.Serializer):  # type: ignore[type-arg]
    """``count`` occurrences strictly after ``after`` (default: now)."""

    count = serializers.IntegerField(min_value=1, max_value=timeline.MAX_PREVIEW, default=DEFAULT_PREVIEW_COUNT)
    after = AwareDateTimeField(required=False, help_text="ISO 8601 with offset; default now.")


class SchedulePreviewSerializer(ScheduleSerializer):
    """An unsaved schedule's fields plus what to preview; validated as a create is."""

    count = serializers.IntegerField(min_value=1, max_value=timeline.MAX_PREVIEW, default=DEFAULT_PREVIEW_COUNT)
    after = AwareDateTimeField(required=False, help_text="ISO 8601 with offset; default now.")

    class Meta(ScheduleSerializer.Meta):
        fields = (*ScheduleSerializer.Meta.fields, "count", "after")


class PauseSerializer(StrictFieldsMixin, serializers.Serializer):  # type: ignore[type-arg]
    until = AwareDateTimeField(required=False, allow_null=True, help_text="Resume by itself at this time.")


class EmptySerializer(StrictFieldsMixin, serializers.Serializer):  # type: ignore[type-arg]
    """A body with nothing in it (any key is refused)."""


class MovedOccurrenceSerializer(serializers.Serializer):  # type: ignore[type-arg]
    at = serializers.DateTimeField(help_text="When it fires, in the schedule's time zone.")
    wall_time = serializers.CharField(help_text="The wall time that does not exist that day (no offset).")


class RepeatedOccurrenceSerializer(serializers.Serializer):  # type: ignore[type-arg]
    at = serializers.DateTimeField(help_text="When it fires, in the schedule's time zone.")
    wall_time = serializers.CharField(help_text="The wall time the clocks show twice that day (no offset).")
    pass_number = serializers.IntegerField(help_text="1: the first pass; 2: the second (dst_repeat: twice).")


class SkippedSerializer(serializers.Serializer):  # type: ignore[type-arg]
    day = serializers.DateField(help_text="The local day it does not fire on.")
    reason = serializers.CharField(
        help_text="dst_gap: its wall time is not on the clock that day (dst_gap: skip); polar_day, polar_night, "
        "white_night: a solar schedule's event does not happen that day; calendar: the occurrence falls on a day "
        "of an exclusion calendar the schedule names."
    )
    at = serializers.DateTimeField(
        required=False, help_text="calendar: the occurrence that does not run, in the schedule's time zone."
    )
    calendar = serializers.CharField(required=False, help_text="calendar: the calendar's id.")
    message = serializers.CharField(help_text="Why, in words.")
    wall_time = serializers.CharField(allow_null=True, help_text="The local wall time it names (no offset), if any.")


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "02:30 in New York with dst_gap skip: no run on 8 March 2026",
            value={
                "occurrences": ["2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"],
                "moved_by_dst_gap": [],
                "repeated_by_dst_fall_back": [],
                "skipped": [
                    {
                        "day": "2026-03-08",
                        "reason": "dst_gap",
                        "message": "02:30 is not on the clock on 2026-03-08 (clocks spring forward): "
                        "skipped that day (dst_gap: skip).",
                        "wall_time": "2026-03-08T02:30:00",
                    }
                ],
            },
            response_only=True,
        ),
        OpenApiExample(
            "01:30 in New York with dst_repeat twice: both passes on 1 November 2026",
            value={
                "occurrences": ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00"],
                "moved_by_dst_gap": [],
                "repeated_by_dst_fall_back": [
                    {"at": "2026-11-01T01:30:00-04:00", "wall_time": "2026-11-01T01:30:00", "pass_number": 1},
                    {"at": "2026-11-01T01:30:00-05:00", "wall_time": "2026-11-01T01:30:00", "pass_number": 2},
                ],
                "skipped": [],
            },
            response_only=True,
        ),
    ]
)
class PreviewSerializer(serializers.Serializer):  # type: ignore[type-arg]
    occurrences = serializers.ListField(child=serializers.DateTimeField())
    moved_by_dst_gap = MovedOccurrenceSerializer(many=True, help_text="Occurrences a spring-forward gap moved.")
    repeated_by_dst_fall_back = RepeatedOccurrenceSerializer(
        many=True, help_text="Occurrences at a wall time a fall-back repeats, with the pass each fires on."
    )
    skipped = SkippedSerializer(
        many=True, help_text="Days its rule names up to the last occurrence shown on which it does not fire."
    )


def preview_data(
    schedule: Schedule, after: datetime, count: int, calendars: Sequence[CalendarDays] = ()
) -> dict[str, Any]:
    """The next ``count`` occurrences strictly after ``after`` that run, in the schedule's time
    zone, and what is skipped among them (``calendars``: the exclusion calendars it names)."""
    tz = kinds.zone(schedule.timezone or "UTC")
    try:
        found, skipped = timeline.preview_with_skipped(schedule, after, count, calendars)
    except OverflowError:
        # Past the year 9999: bounded times and intervals keep fixed grids short of it, but a
        # cron expression can match rarely (29 February on a Sunday: every 28 years or so).
        raise serializers.ValidationError(
            {"count": ["These occurrences run past the year 9999; ask for fewer."]}
        ) from None
    return {
        "occurrences": [occurrence.at.astimezone(tz).isoformat() for occurrence in found],
        "moved_by_dst_gap": [
            {"at": occurrence.at.astimezone(tz).isoformat(), "wall_time": occurrence.moved_from.isoformat()}
            for occurrence in found
            if occurrence.moved_from is not None
        ],
        "repeated_by_dst_fall_back": [
            {
                "at": occurrence.at.astimezone(tz).isoformat(),
                "wall_time": occurrence.at.astimezone(tz).replace(tzinfo=None).isoformat(),
                "pass_number": occurrence.repeated_pass,
            }
            for occurrence in found
            if occurrence.repeated_pass is not None
        ],
        "skipped": [
            {
                "day": item.day.isoformat(),
                "reason": item.reason,
                "message": item.message,
                "wall_time": item.wall_time.isoformat() if item.wall_time is not None else None,
                **({"at": item.at.astimezone(tz).isoformat()} if item.at is not None else {}),
                **({"calendar": item.calendar} if item.calendar is not None else {}),
            }
            for item in skipped
        ],
    }


class CalendarDaySerializer(StrictFieldsMixin, serializers.Serializer):  # type: ignore[type-arg]
    start = serializers.DateField(help_text="The first day (YYYY-MM-DD), in the calendar's time zone.")
    end = serializers.DateField(required=False, help_text="The last day, included (default: start).")
    name = StrictCharField(required=False, allow_blank=True, max_length=200, help_text="e.g. Christmas Day.")


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "UK bank holidays and a change freeze",
            value={
                "name": "UK holidays",
                "timezone": "Europe/London",
                "days": [
                    {"start": "2026-12-25", "name": "Christmas Day"},
                    {"start": "2026-12-28", "name": "Boxing Day (substitute day)"},
                    {"start": "2026-12-21", "end": "2027-01-04", "name": "Change freeze"},
                ],
            },
            request_only=True,
        )
    ]
)
class CalendarSerializer(ApiModelSerializer):
    """An exclusion calendar: named days or ranges of days in a time zone that schedules naming
    it skip."""

    days = CalendarDaySerializer(many=True, required=False, help_text="Days or ranges of days, ends included.")
    serializer_field_mapping = {**ApiModelSerializer.serializer_field_mapping, models.CharField: StrictCharField}

    class Meta:
        model = ExclusionCalendar
        fields = ("id", "name", "description", "timezone", "days", "created_at", "updated_at")
        read_only_fields = ("id", "created_at", "updated_at")
        extra_kwargs = {"timezone": {"help_text": "The IANA zone its days are read in, e.g. Europe/London."}}

    def validate_days(self, days: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [
            {
                "start": day["start"].isoformat(),
                "end": day.get("end", day["start"]).isoformat(),
                "name": day.get("name", ""),
            }
            for day in days
        ]

    def to_representation(self, instance: Any) -> Any:
        data = super().to_representation(instance)
        data["days"] = instance.days  # as stored: start, end and label, each a string
        return data


class CalendarImportSerializer(StrictFieldsMixin, serializers.Serializer):  # type: ignore[type-arg]
    """An iCalendar (.ics) file's events as days of a new calendar, or of ``calendar``."""

    ics = serializers.CharField(help_text="The .ics file's text (VCALENDAR with VEVENTs).", trim_whitespace=False)
    name = serializers.CharField(required=False, max_length=200, help_text="A new calendar's name.")
    timezone = serializers.CharField(required=False, default="UTC", help_text="A new calendar's time zone.")
    calendar = serializers.CharField(required=False, help_text="Add to this calendar (its id) instead.")

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if not data.get("calendar") and not data.get("name"):
            raise serializers.ValidationError({"name": "Name the new calendar, or give calendar to add to one."})
        return data


class CalendarImportResultSerializer(serializers.Serializer):  # type: ignore[type-arg]
    calendar = CalendarSerializer()
    imported = serializers.IntegerField(help_text="Days or ranges read from the file.")
    recurring_not_imported = serializers.ListField(
        child=serializers.CharField(), help_text="Summaries of recurring (RRULE) events, which are not expanded."
    )


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "The first week of March, each run allowed to overlap, ten a second",
            value={
                "start": "2026-03-01T00:00:00Z",
                "end": "2026-03-08T00:00:00Z",
                "overlap_policy": "allow",
                "rate_per_second": 10,
            },
            request_only=True,
        )
    ]
)
class BackfillRequestSerializer(StrictFieldsMixin, serializers.Serializer):  # type: ignore[type-arg]
    """Dispatch the schedule's past occurrences in [start, end] that have no run record yet."""

    start = AwareDateTimeField(help_text="The first instant of the range, ISO 8601 with offset.")
    end = AwareDateTimeField(help_text="The last instant of the range (included); not later than now.")
    overlap_policy = serializers.ChoiceField(
        choices=Schedule.Overlap.choices,
        default=Schedule.Overlap.ALLOW,
        help_text="For the backfilled runs, in place of the schedule's: allow (run side by side), skip (record a "
        "skipped run while another of the schedule's runs is running), buffer_one (one waits).",
    )
    rate_per_second = serializers.FloatField(
        required=False,
        help_text="At most this many dispatched a second (default and maximum: JOBSCHEDULER_BACKFILL_MAX_RATE).",
    )


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "A backfill under way",
            value={
                "id": "6650c4f0a1b2c3d4e5f60730",
                "schedule": "6650c3f2a1b2c3d4e5f60719",
                "start_at": "2026-03-01T00:00:00Z",
                "end_at": "2026-03-08T00:00:00Z",
                "overlap_policy": "allow",
                "rate_per_second": 10.0,
                "status": "running",
                "total": 168,
                "dispatched": 90,
                "already_recorded": 10,
                "remaining": 68,
                "cursor": "2026-03-05T03:00:00Z",
                "cancel_requested": False,
                "error": "",
                "created_at": "2026-03-10T09:00:00Z",
                "started_at": "2026-03-10T09:00:01Z",
                "finished_at": None,
            },
            response_only=True,
        )
    ]
)
class BackfillSerializer(ApiModelSerializer):
    """A backfill and its progress: occurrences in the range (total), sent to the workers
    (dispatched), found with a run record already (already_recorded), and what is left."""

    schedule = ObjectIdRelatedField(read_only=True)
    remaining = serializers.SerializerMethodField(help_text="Occurrences not handled yet.")

    class Meta:
        model = Backfill
        fields = (
            "id",
            "schedule",
            "start_at",
            "end_at",
            "overlap_policy",
            "rate_per_second",
            "status",
            "total",
            "dispatched",
            "already_recorded",
            "remaining",
            "cursor",
            "cancel_requested",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        )
        read_only_fields = fields

    def get_remaining(self, backfill: Backfill) -> int:
        return max(0, backfill.total - backfill.handled)
