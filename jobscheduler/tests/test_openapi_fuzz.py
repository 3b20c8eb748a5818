"""Property-based fuzzing of the REST API against its own OpenAPI document (schemathesis, in-process).

Every operation the document lists gets generated requests, valid and invalid by the schema,
sent through the WSGI app as an authenticated user: no answer may be a 5xx, and every answer
must be one the document describes (status code, content type, body). Ids in paths and the
``job`` of a schedule name the user's own objects, so requests get past the 404 to validation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from jobs.models import Job, Run
from jobs.services import job_create
from jobscheduler.wsgi import application
from schedules import backfills, calendar_services
from schedules import services as schedule_services
from schedules.models import Backfill, ExclusionCalendar, Schedule

# Per operation; with ~20 operations the whole fuzz stays well under a minute on 2 cores.
MAX_EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Bodies are held to the document exactly (unknown, read-only and mistyped fields are
# refused). Query strings are not: as django-filter and DRF read them, an empty filter means
# no filter and an unknown ordering field is ignored, so a request off the document there
# can rightly succeed.
BODY_CHECKS = [*CHECKS, negative_data_rejection]


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.delete_pattern("throttle_*")  # type: ignore[attr-defined]


@pytest.fixture
def token(user: User) -> str:
    return Token.objects.create(user=user).key


def served_document() -> dict[str, Any]:
    """The OpenAPI document /api/schema/ serves (built the same way: no request, no database)."""
    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


CONFIG = SchemathesisConfig.from_dict(
    {"generation": {"mode": "all", "deterministic": True}, "phases": {"coverage": {"enabled": False}}}
)
schema = schemathesis.openapi.from_dict(served_document(), config=CONFIG)
schema.app = application


class Owned:
    """The user's own job, schedule and run, made again if a fuzzed DELETE removed them."""

    def __init__(self, user: User) -> None:
        self.user = user

    def job(self) -> Job:
        job = Job.objects.filter(owner=self.user, name="fuzz target").first()
        return job or job_create(
            owner=self.user, name="fuzz target", target_type="python", target={"task": "demo.tasks.hello"}
        )

    def schedule(self) -> Schedule:
        job = self.job()
        schedule = Schedule.objects.filter(job=job).first()
        return schedule or schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)

    def calendar(self) -> ExclusionCalendar:
        found = ExclusionCalendar.objects.filter(owner=self.user).first()
        return found or calendar_services.calendar_create(
            owner=self.user, name="fuzz calendar", timezone="UTC", days=[]
        )

    def backfill(self) -> Backfill:
        found = Backfill.objects.filter(schedule=self.schedule()).first()
        moment = timezone.now() - timedelta(hours=1)
        return found or backfills.backfill_request(self.schedule(), start=moment - timedelta(hours=1), end=moment)[0]

    def run(self) -> Run:
        job = self.job()
        return Run.objects.filter(job=job).first() or Run.objects.create(job=job, fire_key=f"fuzz:{job.pk}")


# Which of the user's objects a path's {id} names, by the path's first segment.
_OWNED_BY_PATH: dict[str, Callable[[Owned], Any]] = {
    "/api/jobs/": Owned.job,
    "/api/schedules/": Owned.schedule,
    "/api/runs/": Owned.run,
    "/api/calendars/": Owned.calendar,
    "/api/backfills/": Owned.backfill,
}


def aim_at_own_objects(case: Any, owned: Owned) -> None:
    """Point ids at the user's objects: random ids would only ever reach a 404."""
    if "id" in (case.path_parameters or {}):
        for prefix, pick in _OWNED_BY_PATH.items():
            if case.path.startswith(prefix):
                case.path_parameters["id"] = str(pick(owned).pk)
    if case.path.startswith("/api/schedules/") and isinstance(case.body, dict) and "job" in case.body:
        case.body["job"] = str(owned.job().pk)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_only_documented_answers(case: Any, token: str, user: User) -> None:
    aim_at_own_objects(case, Owned(user))
    response = case.call(headers={"Authorization": f"Token {token}"})
    case.validate_response(response, checks=BODY_CHECKS if case.operation.body else CHECKS)


# Bad input the issue and the document name, each answered 400 naming the field (once some were 500s).
DOCUMENTED_BAD_INPUT = [
    ("/api/jobs/", {"target_type": "python", "target": {"function": ["demo.hello"]}}, "target"),
    ("/api/jobs/", {"target_type": "http", "target": {"url": "http://[::1"}}, "target"),
    ("/api/jobs/", {"target_type": "http", "target": {"url": "http://169.254.169.254/latest/meta-data/"}}, "target"),
    ("/api/jobs/", {"target_type": "http", "target": {"url": "http://0x7f.1/"}}, "target"),
    (
        "/api/jobs/",
        {"target_type": "http", "target": {"url": "https://hooks.example.com/", "headers": {"X": "a\r\nb"}}},
        "target",
    ),
    (
        "/api/jobs/",
        {"target_type": "http", "target": {"url": "https://hooks.example.com/", "headers": {"X": "\u2603"}}},
        "target",
    ),
    ("/api/jobs/", {"target_type": "shell", "target": {}}, "target_type"),
    ("/api/schedules/preview/", {"kind": "cron", "expression": "0 0 29 2 */7", "count": 1000}, "count"),
    (
        "/api/schedules/preview/",
        {"kind": "cron", "expression": "0 3 * * *", "timezone": "Mars/Olympus_Mons"},
        "timezone",
    ),
    ("/api/schedules/", {"kind": "cron", "expression": "61 * * * *"}, "expression"),
    ("/api/schedules/", {"kind": "fixed", "interval_seconds": 0}, "interval_seconds"),
]


@pytest.mark.parametrize(("path", "fields", "field"), DOCUMENTED_BAD_INPUT)
def test_documented_bad_input_is_400(path: str, fields: dict[str, Any], field: str, token: str, user: User) -> None:
    if path.startswith("/api/schedules/"):
        body = {"job": str(Owned(user).job().pk), **fields}
    else:
        body = {"name": "bad input", **fields}
    case = schema[path]["POST"].Case(body=body, media_type="application/json")
    response = case.call(headers={"Authorization": f"Token {token}"})
    assert response.status_code == 400, response.text
    assert field in response.json(), response.json()
    case.validate_response(response, checks=CHECKS)
