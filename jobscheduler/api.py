"""API-wide pieces: the one exception handler and the fields, parser and filters every app's API shares."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import django_filters
from bson import ObjectId
from django import forms
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Paginator
from django.db import models
from django.utils.dateparse import parse_datetime
from django.utils.functional import cached_property
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, permissions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from jobscheduler import mongo

# Router lookups accept only ObjectId text, so a malformed id is a plain 404 and never
# reaches the database (where the backend would raise on it).
OBJECT_ID_PATTERN = "[0-9a-fA-F]{24}"
# The times the API accepts: Mongo keeps milliseconds since the epoch (and the Redis mirror
# uses -1 as "none", so nothing before the epoch), and the schedule maths must stay inside
# what datetime can represent while looking a thousand occurrences ahead.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(3000, 1, 1, tzinfo=UTC)
# BSON refuses integers outside int64 and documents nested deeper than 100 levels; JSON
# targets stay well inside that.
_INT64 = (-(2**63), 2**63 - 1)
MAX_JSON_DEPTH = 32
# A '+' in a query string decodes to a space: "...T02:30:00 01:00" meant "+01:00".
_PLUS_AS_SPACE = re.compile(r"^(\S+T\S+) (\d{2}:?\d{2})$")


class ApiDocsPermission(permissions.BasePermission):
    """The OpenAPI schema and docs page: for anyone with ``JOBSCHEDULER_PUBLIC_API_DOCS``, else signed-in users.

    Read per request (drf-spectacular fixes its views' permissions at import), so the
    setting can be changed in tests and is the one place that decides.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        if getattr(settings, "JOBSCHEDULER_PUBLIC_API_DOCS", False):
            return True
        return bool(request.user and request.user.is_authenticated)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Turn model and service validation errors into 400s with a message per field."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    elif isinstance(exc, RequestDataTooBig):
        # Django raises it when anything reads an oversized body through request.body or a
        # form parser; left alone it becomes an HTML 400 page instead of the API's JSON.
        exc = exceptions.ParseError(detail=_too_big_message())
    return drf_exception_handler(exc, context)


# What every answer but a success can be, as exception_handler shapes it: {"detail": "..."}
# for the whole request, else a list of messages per field (nested for nested fields).
_ERROR_SCHEMA = {
    "type": "object",
    "description": 'An error: {"detail": "..."}, or a list of messages per field.',
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {},
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def document_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular hook: add the error answers every operation can give to the document.

    Views only describe their successes; without these a client (or a fuzzer checking answers
    against the document) cannot know that bad input is a 400 or an unknown id a 404.
    """
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            errors = {"401": _error("Not authenticated."), "429": _error("Too many requests; retry later.")}
            if "requestBody" in operation or operation.get("parameters"):
                errors["400"] = _error("Bad input: a message per field.")
            if "requestBody" in operation:
                errors["415"] = _error("The body must be JSON.")
            if "{id}" in path:
                errors["404"] = _error("No such object, or not yours.")
            elif any(parameter.get("name") == "page" for parameter in operation.get("parameters", [])):
                errors["404"] = _error("No such page.")
            for status, response in errors.items():
                responses.setdefault(status, response)
    return result


class PreviewRateThrottle(UserRateThrottle):
    """Previews per user (``JOBSCHEDULER_THROTTLE_PREVIEW``): one of 1,000 occurrences costs
    a fifth of a CPU-second, far more than any other request."""

    scope = "preview"


def _too_big_message() -> str:
    return f"Request body too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."


class BoundedJSONParser(JSONParser):
    """JSON bodies up to DATA_UPLOAD_MAX_MEMORY_SIZE bytes.

    DRF reads the raw request stream, past the size check Django applies to ``request.body``,
    so the limit is enforced here; deep nesting that exhausts the parser is a 400 too.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None:
            body = stream.read(limit + 1)
            if len(body) > limit:
                raise exceptions.ParseError(detail=_too_big_message())
            stream = io.BytesIO(body)
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(detail="JSON parse error - nested too deeply.") from None


# The API speaks JSON only: no form parsing path that would bypass the size limit above.
PARSER_CLASSES = [BoundedJSONParser]


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a UTC offset, in UTC; ValueError with a readable message otherwise."""
    text = _PLUS_AS_SPACE.sub(r"\1+\2", text.strip())
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise ValueError("Not an ISO 8601 time; use e.g. 2026-03-08T02:30:00+01:00 or 2026-03-08T01:30:00Z.")
    return check_time(moment)


def check_time(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("Include a UTC offset (e.g. +01:00 or Z): a time without one is ambiguous.")
    out_of_range = f"Must lie between {EARLIEST_TIME.isoformat()} and {LATEST_TIME.isoformat()}."
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(out_of_range) from None
    if not EARLIEST_TIME <= moment < LATEST_TIME:
        raise ValueError(out_of_range)
    # MongoDB keeps milliseconds: answer with the time that is stored.
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time that must carry its UTC offset, within the range the engine supports."""

    def to_internal_value(self, value: Any) -> datetime:
        try:
            if isinstance(value, str):
                return parse_time(value)
            if isinstance(value, datetime):
                return check_time(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None
        self.fail("invalid", format="ISO 8601 with a UTC offset")
        raise AssertionError  # fail() always raises


@extend_schema_field(OpenApiTypes.STR)
class ObjectIdField(serializers.Field):
    """An ObjectId shown as its 24-character hex string (DRF would take it for an integer)."""

    default_error_messages = {"invalid": "Not a valid id: expected 24 hexadecimal characters."}

    def to_representation(self, value: Any) -> str:
        return str(value)

    def to_internal_value(self, data: Any) -> ObjectId:
        if not isinstance(data, str) or not re.fullmatch(OBJECT_ID_PATTERN, data):
            self.fail("invalid")
        return ObjectId(data)


@extend_schema_field(OpenApiTypes.STR)
class ObjectIdRelatedField(serializers.PrimaryKeyRelatedField):  # type: ignore[type-arg]
    """A foreign key given and shown as its ObjectId string.

    Lookups run only among the objects ``visible_to(user)`` returns, so another user's id
    answers "does not exist", exactly like a missing one. Shown from the stored id, no join.
    """

    default_error_messages = {
        "invalid": "Not a valid id: expected 24 hexadecimal characters.",
        "does_not_exist": "No such {model} (or not yours): {pk_value}.",
    }

    def __init__(self, *, visible_to: Callable[[Any], models.QuerySet[Any]] | None = None, **kwargs: Any):
        self.visible_to = visible_to
        super().__init__(**kwargs)

    def get_queryset(self) -> models.QuerySet[Any]:
        if self.visible_to is not None:
            return self.visible_to(self.context["request"].user)
        queryset = super().get_queryset()
        assert queryset is not None, "a writable ObjectIdRelatedField needs a queryset or visible_to"
        return queryset

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str) or not re.fullmatch(OBJECT_ID_PATTERN, data):
            self.fail("invalid")
        queryset = self.get_queryset()
        try:
            return queryset.get(pk=ObjectId(data))
        except queryset.model.DoesNotExist:
            self.fail("does_not_exist", model=queryset.model._meta.verbose_name, pk_value=data)

    def to_representation(self, value: Any) -> str:
        return str(value.pk)


def check_json_document(value: Any, depth: int = 0) -> None:
    """Raise ValidationError unless MongoDB can store ``value`` and JSON can show it back."""
    if depth > MAX_JSON_DEPTH:
        raise serializers.ValidationError(f"Nested more than {MAX_JSON_DEPTH} levels deep.")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise serializers.ValidationError(f"Integer {value} does not fit in 64 bits.")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise serializers.ValidationError("Numbers must be finite.")
    elif isinstance(value, list):
        for item in value:
            check_json_document(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise serializers.ValidationError("Keys must not contain the NUL character.")
            check_json_document(item, depth + 1)


class StrictFieldsMixin:
    """Refuse keys the serializer does not know or may not write, naming each one.

    A misspelt field silently ignored would leave a schedule other than the client meant.
    """

    fields: Any

    def to_internal_value(self, data: Any) -> Any:
        errors: dict[str, Any] = {}
        if isinstance(data, Mapping):
            for name in sorted(set(data) - {n for n, f in self.fields.items() if not f.read_only}):
                errors[name] = ["Read-only field." if name in self.fields else "Unknown field."]
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except serializers.ValidationError as error:
            if not errors or not isinstance(error.detail, dict):
                raise
            errors = {**error.detail, **errors}
        if errors:
            raise serializers.ValidationError(errors)
        return value


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans (DRF's CharField turns them into text)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class ApiModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):  # type: ignore[type-arg]
    """A ModelSerializer for MongoDB models: string ids, times with offsets, strict keys."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: AwareDateTimeField,
    }
    id = ObjectIdField(read_only=True)


class ObjectIdFormField(forms.CharField):
    default_error_messages = {"invalid": "Not a valid id: expected 24 hexadecimal characters."}

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        if not re.fullmatch(OBJECT_ID_PATTERN, value):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return ObjectId(value)


class ObjectIdFilter(django_filters.Filter):
    """Filter on a foreign key by its ObjectId string; malformed ids are a 400."""

    field_class = ObjectIdFormField


class AwareDateTimeFormField(forms.Field):
    def to_python(self, value: Any) -> datetime | None:
        if value in self.empty_values:
            return None
        try:
            return parse_time(str(value))
        except ValueError as error:
            raise forms.ValidationError(str(error), code="invalid") from None


class AwareDateTimeFilter(django_filters.Filter):
    """Filter on a time given in ISO 8601 with a UTC offset."""

    field_class = AwareDateTimeFormField


class StrictBooleanFormField(forms.NullBooleanField):
    widget = forms.TextInput  # the default select widget turns unknown values into "no filter"

    def to_python(self, value: Any) -> bool | None:  # type: ignore[override]
        if value in self.empty_values:
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")


class StrictBooleanFilter(django_filters.BooleanFilter):
    """A true/false filter that refuses other values (django-filter would ignore them)."""

    field_class = StrictBooleanFormField


class EstimatingPaginator(Paginator):
    """Counts an unfiltered list by the collection's metadata (MongoDB's estimated count), not by
    reading every document: a superuser's list of a million schedules counts in one round trip.
    Filtered lists count what matches, through the index on their condition."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, models.QuerySet) and not queryset.query.where:
            return mongo.collection(queryset.model).estimated_document_count()
        return int(super().count)


class Pagination(PageNumberPagination):
    """The API's pages (DEFAULT_PAGINATION_CLASS): numbered, counted as EstimatingPaginator does."""

    django_paginator_class: type[Paginator] = EstimatingPaginator
