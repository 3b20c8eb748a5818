"""The API shapes of jobs and runs."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from jobs import services
from jobs.models import Job, Run
from jobscheduler.api import (
    ApiModelSerializer,
    ObjectIdRelatedField,
    check_json_document,
)
from jobscheduler.bounds import MAX_DURATION_SECONDS


class JobSerializer(ApiModelSerializer):
    """A job: what runs. ``secret`` is write-only; ``has_secret`` says whether one is set."""

    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ("id", *services.EDITABLE_FIELDS, "has_secret", "created_at", "updated_at")
        extra_kwargs = {
            # The webhook signing key goes in, never out.
            "secret": {"write_only": True},
            "retry_backoff_seconds": {"max_value": MAX_DURATION_SECONDS},
        }

    def get_has_secret(self, job: Job) -> bool:
        return bool(job.secret)

    def validate_target(self, value: Any) -> Any:
        # The target's meaning is checked by the service; here only that MongoDB can store it.
        check_json_document(value)
        return value


class RunSerializer(ApiModelSerializer):
    """One execution attempt of one occurrence, as the engine recorded it (read-only)."""

    job = ObjectIdRelatedField(read_only=True)
    schedule = ObjectIdRelatedField(read_only=True)

    class Meta:
        model = Run
        fields = (
            "id",
            "job",
            "schedule",
            "fire_key",
            "trigger",
            "status",
            "attempt",
            "nominal_time",
            "dispatched_at",
            "started_at",
            "finished_at",
            "worker",
            "output",
            "error",
            "created_at",
        )
        read_only_fields = fields
