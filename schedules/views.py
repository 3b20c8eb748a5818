"""REST endpoints for schedules: CRUD, pause, resume and previews, thin over schedules.services."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
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
from schedules import kinds, selectors, services
from schedules.due_index import apply_live_state
from schedules.models import Schedule
from schedules.serializers import (
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
        return Response(preview_data(schedule, after, query.validated_data["count"]))

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
        return Response(preview_data(schedule, after, count))

    def _answer(self, schedule: Schedule) -> Response:
        """One schedule as the API shows it: the engine's fields live from Redis."""
        apply_live_state([schedule])
        return Response(self.get_serializer(schedule).data)
