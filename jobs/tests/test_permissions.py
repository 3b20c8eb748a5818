"""Who may create which target, per-owner limits and the preview throttle: API and admin agree."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client, override_settings
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.models import Job
from jobs.services import job_create, job_update
from schedules.services import schedule_bulk_create, schedule_create

PYTHON: dict[str, Any] = {"name": "py", "target_type": "python", "target": {"task": "demo.tasks.hello"}}
COMMAND: dict[str, Any] = {"name": "cmd", "target_type": "command", "target": {"command": "clearsessions"}}
PUBLIC_WEBHOOK: dict[str, Any] = {
    "name": "hook",
    "target_type": "http",
    "target": {"url": "https://hooks.example.com/x"},
}
INTERNAL_WEBHOOK: dict[str, Any] = {
    "name": "internal",
    "target_type": "http",
    "target": {"url": "http://10.1.2.3/hook"},
}
INTERNAL_NAME_WEBHOOK: dict[str, Any] = {
    "name": "internal-name",
    "target_type": "http",
    "target": {"url": "https://ci.corp/hook"},
}


def api_for(person: User) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=person)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def grant(person: User, *codenames: str) -> User:
    person.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames))
    return User.objects.get(pk=person.pk)  # a fresh object: permissions are cached per instance


@pytest.fixture(autouse=True)
def _settings() -> Any:
    with override_settings(
        JOBSCHEDULER_ALLOWED_COMMANDS="clearsessions",
        JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["10.1.0.0/16", "ci.corp"],
    ):
        yield


@pytest.mark.parametrize(
    ("fields", "permission"),
    [
        (PYTHON, "jobs.create_python_jobs"),
        (COMMAND, "jobs.create_command_jobs"),
        (INTERNAL_WEBHOOK, "jobs.create_internal_webhooks"),
        (INTERNAL_NAME_WEBHOOK, "jobs.create_internal_webhooks"),
    ],
)
def test_a_user_without_the_permission_gets_403_from_the_api(
    plain_user: User, fields: dict[str, Any], permission: str
) -> None:
    response = api_for(plain_user).post("/api/jobs/", fields, format="json")
    assert response.status_code == 403, response.content
    assert permission in response.json()["detail"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("fields", "codename"),
    [
        (PYTHON, "create_python_jobs"),
        (COMMAND, "create_command_jobs"),
        (INTERNAL_WEBHOOK, "create_internal_webhooks"),
    ],
)
def test_the_permission_lets_the_user_create_it(plain_user: User, fields: dict[str, Any], codename: str) -> None:
    response = api_for(grant(plain_user, codename)).post("/api/jobs/", fields, format="json")
    assert response.status_code == 201, response.content


def test_public_webhooks_need_no_permission(plain_user: User) -> None:
    assert api_for(plain_user).post("/api/jobs/", PUBLIC_WEBHOOK, format="json").status_code == 201


def test_changing_a_job_into_a_forbidden_target_is_refused(plain_user: User) -> None:
    job = job_create(owner=plain_user, **PUBLIC_WEBHOOK)
    client = api_for(plain_user)
    response = client.patch(
        f"/api/jobs/{job.pk}/", {"target_type": "command", "target": COMMAND["target"]}, format="json"
    )
    assert response.status_code == 403
    response = client.patch(f"/api/jobs/{job.pk}/", {"target": INTERNAL_WEBHOOK["target"]}, format="json")
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.target == PUBLIC_WEBHOOK["target"]
    # Other edits of a job whose target does not change are not judged again.
    assert client.patch(f"/api/jobs/{job.pk}/", {"description": "noted"}, format="json").status_code == 200


def test_an_existing_target_is_not_judged_again_when_it_does_not_change(plain_user: User, user: User) -> None:
    job = job_create(owner=plain_user, by=user, **PYTHON)  # a trusted user made it for them
    job_update(job, description="renamed")
    with pytest.raises(PermissionDenied):
        job_update(job, target={"task": "demo.tasks.echo"})


def test_superusers_hold_every_permission(db: Any) -> None:
    root = User.objects.create_superuser("root", "root@example.com", "root-password-1")
    for fields in (PYTHON, COMMAND, INTERNAL_WEBHOOK):
        job_create(owner=root, **fields)


def test_the_admin_shows_the_refusal_as_a_form_error(plain_user: User) -> None:
    plain_user.is_staff = True
    plain_user.save()
    plain_user.user_permissions.add(*Permission.objects.filter(codename__in=["add_job", "change_job", "view_job"]))
    client = Client()
    client.force_login(plain_user)
    data = {
        "name": "nightly",
        "description": "",
        "enabled": "on",
        "target_type": "command",
        "command_name": "clearsessions",
        "timeout_seconds": "300",
        "max_attempts": "1",
        "retry_backoff_seconds": "10",
        "secret": "",
    }
    with override_settings(JOBSCHEDULER_ALLOWED_COMMANDS=["clearsessions"]):
        response = client.post(reverse("admin:jobs_job_add"), data)
    assert response.status_code == 200
    assert "jobs.create_command_jobs" in str(response.context["adminform"].form.errors["target_type"])
    assert not Job.objects.exists()


# --- per-owner limits ---------------------------------------------------------------------------


@override_settings(JOBSCHEDULER_MAX_JOBS_PER_OWNER=2)
def test_an_owner_may_have_at_most_the_job_limit(plain_user: User) -> None:
    client = api_for(plain_user)
    for index in range(2):
        body = {**PUBLIC_WEBHOOK, "name": f"hook-{index}"}
        assert client.post("/api/jobs/", body, format="json").status_code == 201
    response = client.post("/api/jobs/", {**PUBLIC_WEBHOOK, "name": "one-too-many"}, format="json")
    assert response.status_code == 400
    assert "at most 2 jobs" in str(response.json())


@override_settings(JOBSCHEDULER_MAX_SCHEDULES_PER_OWNER=3)
def test_an_owner_may_have_at_most_the_schedule_limit(plain_user: User) -> None:
    job = job_create(owner=plain_user, **PUBLIC_WEBHOOK)
    schedule_create(job=job, kind="fixed", interval_seconds=60)
    with pytest.raises(ValidationError, match="at most 3 schedules"):
        schedule_bulk_create(job=job, specs=[{"kind": "fixed", "interval_seconds": 60}] * 3)
    assert schedule_bulk_create(job=job, specs=[{"kind": "fixed", "interval_seconds": 60}] * 2) == 2
    response = api_for(plain_user).post(
        "/api/schedules/", {"job": str(job.pk), "kind": "fixed", "interval_seconds": 60}, format="json"
    )
    assert response.status_code == 400 and "at most 3 schedules" in str(response.json())


@override_settings(JOBSCHEDULER_MIN_INTERVAL_SECONDS=300)
def test_schedules_may_not_fire_more_often_than_the_shortest_interval(plain_user: User) -> None:
    job = job_create(owner=plain_user, **PUBLIC_WEBHOOK)
    with pytest.raises(ValidationError, match="Fires every 60s; the shortest interval allowed is 300s"):
        schedule_create(job=job, kind="fixed", interval_seconds=60)
    with pytest.raises(ValidationError, match="Fires every 60s"):
        schedule_create(job=job, kind="cron", expression="0,1 * * * *")
    schedule_create(job=job, kind="cron", expression="*/5 * * * *")
    schedule_create(job=job, kind="fixed", interval_seconds=300)
    root = User.objects.create_superuser("root", "root@example.com", "root-password-1")
    schedule_create(job=job_create(owner=root, **PUBLIC_WEBHOOK), kind="fixed", interval_seconds=1)


# --- the preview throttle -----------------------------------------------------------------------


def test_previews_are_throttled_per_user(plain_user: User, other_user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    from jobscheduler.api import PreviewRateThrottle

    monkeypatch.setattr(PreviewRateThrottle, "THROTTLE_RATES", {"preview": "2/min"})
    body = {"kind": "cron", "expression": "0 * * * *", "count": 5}
    for person, answers in ((plain_user, [200, 200, 429]), (other_user, [200])):
        job = job_create(owner=person, **{**PUBLIC_WEBHOOK, "name": f"hook-{person.pk}"})
        client = api_for(person)
        got = [
            client.post("/api/schedules/preview/", {**body, "job": str(job.pk)}, format="json").status_code
            for _ in answers
        ]
        assert got == answers
    # Other requests are not previews: not throttled by it.
    assert api_for(plain_user).get("/api/schedules/").status_code == 200
