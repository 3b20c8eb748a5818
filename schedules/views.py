"""REST endpoints for schedules: CRUD, pause, resume and previews, thin over schedules.services."""

from __future__ import annotations

from typing import Any, cast

import django_filters
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from jobscheduler.api import (
    OBJECT_ID_PATTERN,
    PARSER_CLASSES,
    ObjectIdFilter,
    PreviewRateThrottle,
    StrictBooleanFilter,
)
from schedules import backfills, calendar_services, kinds, selectors, services
from schedules.due_index import apply_live_state
from schedules.models import Backfill, ExclusionCalendar, Schedule
from schedules.serializers import (
    BackfillRequestSerializer,
    BackfillSerializer,
    CalendarImportResultSerializer,
    CalendarImportSerializer,
    CalendarSerializer,
    EmptySerializer,
    PauseSerializer,
    PreviewQuerySerializer,
    PreviewSerializer,
    SchedulePreviewSerializer,
    ScheduleSerializer,
    preview_data,
)

# Previews are throttled on top of the API's own limits.
PREVIEW_THROTTLES = [*api_settings.DEFAULT_THROTTLE_CLASSES, PreviewRateThrottle]


class ScheduleFilter(django_filters.FilterSet):
    job = ObjectIdFilter(field_name="job")
    kind = django_filters.ChoiceFilter(choices=kinds.KIND_CHOICES)
    paused = StrictBooleanFilter()

    class Meta:
        model = Schedule
        fields = ("job", "kind", "paused")


class ScheduleViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Schedules: when a job runs. Every write goes through schedules.services."""

    serializer_class = ScheduleSerializer
    parser_classes = PARSER_CLASSES
    lookup_value_regex = OBJECT_ID_PATTERN
    filterset_class = ScheduleFilter
    ordering_fields = ("created_at", "updated_at", "next_run_at", "last_run_at")

    def get_queryset(self) -> QuerySet[Schedule]:
        return selectors.schedules_visible_to(self.request.user)

    # Every answer shows next_run_at, last_run_at and run_count as the engine has them in
    # Redis (MongoDB's copy lags by seconds): each action reads them, in one round trip, for
    # the schedules it answers with; the serializer only shapes what it is given.
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        schedules = list(queryset if page is None else page)
        apply_live_state(schedules)
        serializer = self.get_serializer(schedules, many=True)
        return Response(serializer.data) if page is None else self.get_paginated_response(serializer.data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._answer(self.get_object())

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.schedule_create(**serializer.validated_data)
        apply_live_state([serializer.instance])

    def perform_update(self, serializer: Any) -> None:
        fields = dict(serializer.validated_data)
        fields.pop("job", None)  # the serializer checked it is unchanged
        serializer.instance = services.schedule_update(serializer.instance, **fields)
        apply_live_state([serializer.instance])

    def perform_destroy(self, instance: Schedule) -> None:
        services.schedule_delete(instance)

    @extend_schema(request=PauseSerializer, responses=ScheduleSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        """Stop firing, for good or until ``until``; what falls in the pause is skipped, not missed."""
        schedule = self.get_object()
        body = PauseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._answer(services.schedule_pause(schedule, until=body.validated_data.get("until")))

    @extend_schema(request=None, responses=ScheduleSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        """Fire again from the next occurrence after now."""
        schedule = self.get_object()
        EmptySerializer(data=request.data).is_valid(raise_exception=True)
        return self._answer(services.schedule_resume(schedule))

    @extend_schema(parameters=[PreviewQuerySerializer], responses=PreviewSerializer)
    @action(detail=True, methods=["get"], throttle_classes=PREVIEW_THROTTLES)
    def preview(self, request: Request, pk: str | None = None) -> Response:
        """The next ``count`` occurrences strictly after ``after`` (default now)."""
        schedule = self.get_object()
        query = PreviewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        after = query.validated_data.get("after") or timezone.now()
        calendars = selectors.calendar_days(schedule.exclusion_calendars or [])
        return Response(preview_data(schedule, after, query.validated_data["count"], calendars))

    @extend_schema(request=SchedulePreviewSerializer, responses=PreviewSerializer)
    @action(
        detail=False,
        methods=["post"],
        url_path="preview",
        url_name="preview-unsaved",
        throttle_classes=PREVIEW_THROTTLES,
    )
    def preview_unsaved(self, request: Request) -> Response:
        """Preview a schedule before saving it: validated as a create is, nothing is saved."""
        body = SchedulePreviewSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        count, after = fields.pop("count"), fields.pop("after", None) or timezone.now()
        schedule = services.schedule_draft(**fields)
        calendars = selectors.calendar_days(schedule.exclusion_calendars or [])
        return Response(preview_data(schedule, after, count, calendars))

    @extend_schema(request=BackfillRequestSerializer, responses={201: BackfillSerializer, 200: BackfillSerializer})
    @action(detail=True, methods=["post"])
    def backfill(self, request: Request, pk: str | None = None) -> Response:
        """Dispatch this schedule's past occurrences in [start, end] that have no run record yet
        (by fire key), as catch-up runs with ``overlap_policy``, at most ``rate_per_second``.

        Answers 201 with the new backfill, which a worker runs (its progress at
        /api/backfills/{id}/); the same request again answers 200 with that backfill and
        dispatches nothing new (unless it was cancelled or failed).
        """
        schedule = self.get_object()
        body = BackfillRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = body.validated_data
        backfill, created = backfills.backfill_request(
            schedule,
            start=fields["start"],
            end=fields["end"],
            overlap_policy=fields["overlap_policy"],
            rate_per_second=fields.get("rate_per_second"),
            user=request.user,
        )
        return Response(BackfillSerializer(backfill).data, status=201 if created else 200)

    def _answer(self, schedule: Schedule) -> Response:
        """One schedule as the API shows it: the engine's fields live from Redis."""
        apply_live_state([schedule])
        return Response(self.get_serializer(schedule).data)


class CalendarViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Exclusion calendars: named days or ranges in a time zone that schedules naming them skip.
    Every write goes through schedules.calendar_services."""

    serializer_class = CalendarSerializer
    parser_classes = PARSER_CLASSES
    lookup_value_regex = OBJECT_ID_PATTERN
    search_fields = ("name",)
    ordering_fields = ("name", "created_at", "updated_at")

    def get_queryset(self) -> QuerySet[ExclusionCalendar]:
        return selectors.calendars_visible_to(self.request.user)

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = calendar_services.calendar_create(
            owner=cast(User, self.request.user), **serializer.validated_data
        )

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = calendar_services.calendar_update(serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance: ExclusionCalendar) -> None:
        calendar_services.calendar_delete(instance)

    @extend_schema(request=CalendarImportSerializer, responses={201: CalendarImportResultSerializer})
    @action(detail=False, methods=["post"], url_path="import", url_name="import")
    def import_ics(self, request: Request) -> Response:
        """Read an iCalendar (.ics) file's events into a new calendar, or add them to one: each
        event's days (an all-day event's DTEND is the day after its last). A second import of
        the same file adds nothing."""
        body = CalendarImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = body.validated_data
        calendar = None
        if fields.get("calendar"):
            calendar = next(iter(selectors.calendars_by_ids([fields["calendar"]])), None)
            if calendar is None or not self.get_queryset().filter(pk=calendar.pk).exists():
                raise serializers.ValidationError({"calendar": "No calendar of yours has this id."})
        saved, read = calendar_services.calendar_import_ics(
            owner=cast(User, self.request.user),
            data=fields["ics"],
            name=fields.get("name", ""),
            timezone=fields.get("timezone") or "UTC",
            calendar=calendar,
        )
        result = {
            "calendar": CalendarSerializer(saved).data,
            "imported": len(read.ranges),
            "recurring_not_imported": read.recurring_skipped,
        }
        return Response(result, status=201)


class BackfillViewSet(viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """Backfills (POST /api/schedules/{id}/backfill/ makes one) and their progress; cancel."""

    serializer_class = BackfillSerializer
    lookup_value_regex = OBJECT_ID_PATTERN
    filterset_fields = ("status",)
    ordering_fields = ("created_at",)

    def get_queryset(self) -> QuerySet[Backfill]:
        return selectors.backfills_visible_to(self.request.user)

    @extend_schema(request=None, responses=BackfillSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Stop it: one not started yet at once, a running one after its current batch (at most
        50 occurrences). What was dispatched stays dispatched."""
        backfill = self.get_object()
        EmptySerializer(data=request.data).is_valid(raise_exception=True)
        return Response(BackfillSerializer(backfills.backfill_cancel(backfill)).data)
