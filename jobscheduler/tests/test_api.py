"""The API-wide pieces: the exception handler, the bounded JSON parser, time parsing, throttling."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.test import override_settings
from rest_framework import exceptions, serializers
from rest_framework.settings import api_settings
from rest_framework.test import APIClient
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from jobs.views import JobViewSet
from jobscheduler import api


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.delete_pattern("throttle_*")  # type: ignore[attr-defined]


def test_service_validation_errors_become_400_per_field():
    response = api.exception_handler(DjangoValidationError({"expression": "Bad."}), {})
    assert response is not None
    assert response.status_code == 400
    assert response.data == {"expression": ["Bad."]}
    response = api.exception_handler(DjangoValidationError("Whole thing is wrong."), {})
    assert response is not None
    assert response.data == {"non_field_errors": ["Whole thing is wrong."]}


def test_request_data_too_big_becomes_a_json_400():
    # Django raises it when form parsing reads an oversized body.
    response = api.exception_handler(RequestDataTooBig("too big"), {})
    assert response is not None
    assert response.status_code == 400
    assert response.data == {"detail": f"Request body too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."}


def test_other_exceptions_are_left_to_django():
    assert api.exception_handler(RuntimeError("boom"), {}) is None


def test_bounded_parser_reads_at_most_the_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    parser = api.BoundedJSONParser()
    assert parser.parse(io.BytesIO(b'{"a": 1}')) == {"a": 1}
    with pytest.raises(exceptions.ParseError, match="too large"):
        parser.parse(io.BytesIO(b'{"a": "0123456789"}'))
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None  # Django's "no limit"
    assert parser.parse(io.BytesIO(b'{"a": "0123456789"}')) == {"a": "0123456789"}


def test_bounded_parser_turns_runaway_nesting_into_a_parse_error():
    with pytest.raises(exceptions.ParseError, match="nested too deeply"):
        api.BoundedJSONParser().parse(io.BytesIO(b"[" * 200_000))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-08T02:30:00Z", datetime(2026, 3, 8, 2, 30, tzinfo=UTC)),
        ("2026-03-08T02:30:00+01:00", datetime(2026, 3, 8, 1, 30, tzinfo=UTC)),
        ("2026-03-08T02:30:00 01:00", datetime(2026, 3, 8, 1, 30, tzinfo=UTC)),  # '+' lost in a query string
        ("2026-03-08T02:30:00.123456-05:00", datetime(2026, 3, 8, 7, 30, 0, 123_000, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_time_accepts_iso_times_with_offsets(text, expected):
    assert api.parse_time(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-03-08T02:30:00", "UTC offset"),
        ("2026-03-08", "UTC offset"),
        ("soon", "ISO 8601"),
        ("2026-02-30T00:00:00Z", "ISO 8601"),
        ("1969-12-31T23:59:59Z", "between"),
        ("3000-01-01T00:00:00Z", "between"),
        ("0001-01-01T00:00:00+05:00", "between"),
        ("9999-12-31T23:59:59-05:00", "between"),
    ],
)
def test_parse_time_refuses_ambiguous_or_unsupported_times(text, message):
    with pytest.raises(ValueError, match=message):
        api.parse_time(text)


def test_object_id_field_round_trips_strings():
    field = api.ObjectIdField()
    value = field.to_internal_value("0123456789abcdef01234567")
    assert field.to_representation(value) == "0123456789abcdef01234567"
    for bad in ("0123", 12, None, "zz23456789abcdef01234567"):
        with pytest.raises(serializers.ValidationError):
            field.to_internal_value(bad)


@pytest.mark.parametrize(
    "value", [{"n": 2**63}, {"n": -(2**63) - 1}, {"n": float("nan")}, {"a\x00": 1}, [[[{"n": 2**64}]]]]
)
def test_json_documents_mongodb_cannot_store_are_refused(value):
    with pytest.raises(serializers.ValidationError):
        api.check_json_document(value)


def test_json_documents_within_bounds_pass():
    api.check_json_document({"n": 2**63 - 1, "f": 1.5, "s": "a\x00b", "$key": [True, None, {"a.b": -(2**63)}]})


def test_throttling_is_active_on_the_api(db, user):
    assert UserRateThrottle in JobViewSet.throttle_classes
    assert AnonRateThrottle in JobViewSet.throttle_classes
    low = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "2/min", "user": "3/min"}}
    with override_settings(REST_FRAMEWORK=low), pytest.MonkeyPatch.context() as patch:
        # DRF copies the rates onto the throttle class at import; point it at the overridden ones.
        patch.setattr(SimpleRateThrottle, "THROTTLE_RATES", api_settings.DEFAULT_THROTTLE_RATES)
        client = APIClient()
        client.force_authenticate(user)
        statuses = [client.get("/api/jobs/").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert "Retry-After" in client.get("/api/jobs/")
        # Anonymous calls to the API stop at 401 before throttling; a public schema counts them.
        with override_settings(JOBSCHEDULER_PUBLIC_API_DOCS=True):
            anonymous = [APIClient().get("/api/schema/").status_code for _ in range(3)]
        assert anonymous == [200, 200, 429]


@pytest.fixture
def low_anon_rate() -> Iterator[None]:
    low = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "2/min", "user": "3/min"}}
    with (
        override_settings(REST_FRAMEWORK=low, JOBSCHEDULER_PUBLIC_API_DOCS=True),
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(SimpleRateThrottle, "THROTTLE_RATES", api_settings.DEFAULT_THROTTLE_RATES)
        yield


def test_a_forged_x_forwarded_for_does_not_change_the_throttle_identity(db, low_anon_rate):
    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == 0
    forged = ["203.0.113.1", "203.0.113.2", "203.0.113.3, 198.51.100.7"]
    statuses = [APIClient().get("/api/schema/", HTTP_X_FORWARDED_FOR=ip).status_code for ip in forged]
    assert statuses == [200, 200, 429]


def test_behind_one_proxy_the_client_is_the_address_the_proxy_saw(db, low_anon_rate):
    one_proxy = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    with override_settings(REST_FRAMEWORK=one_proxy):
        # The proxy appends the address it saw last; what the client wrote before that is not trusted.
        first = [APIClient().get("/api/schema/", HTTP_X_FORWARDED_FOR=f"{forged}, 192.0.2.10") for forged in "ab"]
        other = APIClient().get("/api/schema/", HTTP_X_FORWARDED_FOR="a, 192.0.2.11")
        again = APIClient().get("/api/schema/", HTTP_X_FORWARDED_FOR="c, 192.0.2.10")
    assert [response.status_code for response in first] == [200, 200]
    assert other.status_code == 200
    assert again.status_code == 429
