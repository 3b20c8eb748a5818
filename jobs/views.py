"""REST endpoints for jobs and their runs: thin viewsets over jobs.services."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import django_filters
from bson import ObjectId
from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import selectors, services
from jobs.admin_paging import RunsPaginator
from jobs.models import Job, Run
from jobs.serializers import JobSerializer, RunSerializer
from jobscheduler.api import (
    OBJECT_ID_PATTERN,
    PARSER_CLASSES,
    AwareDateTimeFilter,
    ObjectIdFilter,
    Pagination,
    StrictBooleanFilter,
)

_RUN_NOW_REQUEST = inline_serializer(
    "RunNowRequest",
    fields={"schedule": serializers.CharField(required=False, help_text="Run it for this schedule of the job.")},
)
_RUN_NOW_ACCEPTED = inline_serializer("RunNowAccepted", fields={"fire_key": serializers.CharField()})
_SECRET_HELP = "The webhook signing secret (whsec_...), shown this once: store it with the receiver."  # noqa: S105
_SECRET_ROTATED = inline_serializer(
    "SecretRotated",
    fields={
        "secret": serializers.CharField(help_text=_SECRET_HELP),
        "previous_secret_expires_at": serializers.DateTimeField(
            allow_null=True, help_text="Until then deliveries carry a signature with the previous secret too."
        ),
    },
)


class JobCreatedSerializer(JobSerializer):
    """The create response's shape (for the schema): a job, plus the secret generated for it."""

    secret = serializers.CharField(
        read_only=True,
        required=False,
        help_text=f"Only when generated (a webhook job created without one). {_SECRET_HELP}",
    )


class JobFilter(django_filters.FilterSet):
    enabled = StrictBooleanFilter()
    target_type = django_filters.ChoiceFilter(choices=Job.TargetType.choices)

    class Meta:
        model = Job
        fields = ("enabled", "target_type")


class JobViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Jobs: what runs. Searchable by name and description; filter by enabled and target_type."""

    serializer_class = JobSerializer
    parser_classes = PARSER_CLASSES
    lookup_value_regex = OBJECT_ID_PATTERN
    filterset_class = JobFilter
    search_fields = ("name", "description")
    ordering_fields = ("name", "created_at", "updated_at")
    _generated_secret = ""  # set by perform_create for create() to show once

    def get_queryset(self) -> QuerySet[Job]:
        return selectors.jobs_visible_to(self.request.user)

    @extend_schema(responses={201: JobCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create a job; a webhook job sent without ``secret`` gets a generated one, shown in this response only."""
        self._generated_secret = ""
        response = super().create(request, *args, **kwargs)
        if self._generated_secret:
            response.data["secret"] = self._generated_secret
        return response

    def perform_create(self, serializer: Any) -> None:
        # IsAuthenticated let only a real user this far.
        owner = cast(User, self.request.user)
        job = services.job_create(owner=owner, **serializer.validated_data)
        if job.secret and not serializer.validated_data.get("secret"):
            self._generated_secret = job.secret
        serializer.instance = job

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.job_update(
            serializer.instance, by=cast(User, self.request.user), **serializer.validated_data
        )

    def perform_destroy(self, instance: Job) -> None:
        services.job_delete(instance)

    @extend_schema(
        request=_RUN_NOW_REQUEST,
        responses={202: OpenApiResponse(_RUN_NOW_ACCEPTED, description="Dispatched; a worker runs it shortly.")},
    )
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        """Run the job now, outside its schedules (none of them moves); optionally for one of them.

        Answers the run's fire key: its runs are listed at ``/api/runs/?job=<id>``.
        """
        job = self.get_object()  # another user's job is still a 404
        if not isinstance(request.data, Mapping):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        schedule_id = request.data.get("schedule")
        schedule = None
        if schedule_id not in (None, ""):
            if isinstance(schedule_id, str) and ObjectId.is_valid(schedule_id):
                schedule = job.schedules.filter(pk=ObjectId(schedule_id)).first()
            if schedule is None:
                raise serializers.ValidationError({"schedule": ["Not a schedule of this job."]})
        fire_key = services.run_now(job, schedule=schedule, user=request.user)
        return Response({"fire_key": fire_key}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: _SECRET_ROTATED})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        """Give the job a new generated webhook secret, shown in this response only.

        The previous secret keeps signing deliveries beside the new one (two ``v1,`` entries in
        ``webhook-signature``) for ``JOBSCHEDULER_WEBHOOK_SECRET_OVERLAP_HOURS``.
        """
        job = self.get_object()  # another user's job is still a 404
        secret = services.job_rotate_secret(job)
        expires = job.previous_secret_expires_at
        shown = serializers.DateTimeField().to_representation(expires) if expires else None
        return Response({"secret": secret, "previous_secret_expires_at": shown})


class RunFilter(django_filters.FilterSet):
    job = ObjectIdFilter(field_name="job")
    schedule = ObjectIdFilter(field_name="schedule")
    status = django_filters.ChoiceFilter(choices=Run.Status.choices)
    trigger = django_filters.ChoiceFilter(choices=Run.Trigger.choices)
    nominal_after = AwareDateTimeFilter(
        field_name="nominal_time", lookup_expr="gte", label="Nominal time at or after (ISO 8601 with offset)"
    )
    nominal_before = AwareDateTimeFilter(
        field_name="nominal_time", lookup_expr="lt", label="Nominal time before (ISO 8601 with offset)"
    )

    class Meta:
        model = Run
        fields = ("job", "schedule", "status", "trigger", "nominal_after", "nominal_before")


class RunPagination(Pagination):
    """Pages of runs: the admin's paginator (jobs.admin_paging), which neither counts nor sorts
    every run of an unfiltered list."""

    django_paginator_class = RunsPaginator


class RunViewSet(viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """Runs: one record per execution attempt, written by the engine; read-only here."""

    serializer_class = RunSerializer
    lookup_value_regex = OBJECT_ID_PATTERN
    filterset_class = RunFilter
    ordering_fields = ("nominal_time", "created_at", "dispatched_at", "started_at", "finished_at", "status")
    # Newest first, ties by id: the order of the (nominal time, id) index, so a page is read
    # from it instead of a sort of every run; unfiltered, counted and paged as the admin's list.
    ordering = ("-nominal_time", "-id")
    pagination_class = RunPagination

    def get_queryset(self) -> QuerySet[Run]:
        return selectors.runs_visible_to(self.request.user)
