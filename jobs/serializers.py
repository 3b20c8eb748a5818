"""The API shapes of jobs and runs."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from jobs import services
from jobs.models import Job, Run
from jobs.targets.http import HTTP_METHODS, MAX_BODY_CHARS
from jobscheduler.api import (
    ApiModelSerializer,
    ObjectIdRelatedField,
    check_json_document,
)
from jobscheduler.bounds import MAX_DURATION_SECONDS


# The shape of ``target`` for each target_type, for the OpenAPI document only: jobs.targets
# checks targets (when a job is saved), so clients and fuzzers see what is checked there.
class PythonTargetSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """target_type ``python``: a Django Task, named by its import path in an installed app's
    ``tasks`` module, called with ``args`` and ``kwargs``. (The deprecated ``function`` form,
    an old registry name, is still read.)"""

    task = serializers.CharField(help_text="The Task's import path, e.g. demo.tasks.hello.")
    args = serializers.ListField(required=False, help_text="Positional arguments (a JSON array).")
    kwargs = serializers.DictField(required=False, help_text="Keyword arguments (a JSON object).")


class CommandTargetSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """target_type ``command``: a management command named in JOBSCHEDULER_ALLOWED_COMMANDS."""

    command = serializers.CharField()
    args = serializers.ListField(child=serializers.CharField(), required=False)


class HttpTargetSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """target_type ``http``: a signed webhook to a public address (private, loopback,
    link-local and metadata ones are refused; operators can allow trusted internal hosts)."""

    url = serializers.URLField(help_text="http or https, no credentials.")
    method = serializers.ChoiceField(choices=HTTP_METHODS, required=False, default="POST")
    headers = serializers.DictField(
        child=serializers.CharField(), required=False, help_text="Latin-1 values, no line breaks."
    )
    body = serializers.CharField(required=False, allow_blank=True, max_length=MAX_BODY_CHARS)


class CeleryTargetSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """target_type ``celery``: a task of the team's Celery workers, sent by name through the
    configured broker; its task id is the run's fire key."""

    task = serializers.CharField(help_text="The Celery task's name, e.g. proj.tasks.report.")
    args = serializers.ListField(required=False, help_text="Positional arguments (a JSON array).")
    kwargs = serializers.DictField(required=False, help_text="Keyword arguments (a JSON object).")
    queue = serializers.CharField(required=False)
    exchange = serializers.CharField(required=False)
    routing_key = serializers.CharField(required=False)
    priority = serializers.IntegerField(required=False, min_value=0, max_value=255)
    expires = serializers.FloatField(required=False, help_text="Seconds after the send; a later task is dropped.")
    headers = serializers.DictField(required=False, help_text="Message headers (strings, numbers, booleans).")
    ignore_result = serializers.BooleanField(required=False, help_text="Record the hand-off only.")


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="JobTarget",
        serializers=[PythonTargetSerializer, CommandTargetSerializer, HttpTargetSerializer, CeleryTargetSerializer],
        resource_type_field_name=None,
        many=False,
    )
)
class TargetField(serializers.JSONField):
    """A job's target: any JSON here (checked by jobs.targets), documented per target_type."""


def target_shapes_any_of(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular hook: a target may fit several shapes (``{"task": ...}`` is a python and a
    celery target; target_type says which), so the document lists them as anyOf, not oneOf."""
    shapes = result.get("components", {}).get("schemas", {}).get("JobTarget", {})
    if "oneOf" in shapes:
        shapes["anyOf"] = shapes.pop("oneOf")
    return result


class JobSerializer(ApiModelSerializer):
    """A job: what runs. ``secret`` is write-only; ``has_secret`` says whether one is set."""

    target = TargetField(
        required=False, help_text="What a run does; its shape depends on target_type (python, command, http, celery)."
    )
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ("id", *services.EDITABLE_FIELDS, "has_secret", "code_key", "created_at", "updated_at")
        read_only_fields = ("code_key",)
        extra_kwargs = {
            "code_key": {
                "help_text": "Set on a job declared in code: the declaration's name. Only enabled can change here."
            },
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
    schedule = ObjectIdRelatedField(read_only=True, allow_null=True)  # manual runs have none

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
            "target",
            "queue",
            "return_value",
            "exception_class",
            "external_id",
            "created_at",
        )
        read_only_fields = fields
