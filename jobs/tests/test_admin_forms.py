"""The job form edits a target by its type, validates it with the API's own check, and shows a webhook secret once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client, override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from jobs.models import Job
from jobs.services import job_create
from jobs.targets import clean_target
from jobs.tests.test_admin import job_post

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
COMMANDS = {"clearsessions": [], "purge_runs": {"--days": {"type": "int", "min": 7, "max": 365}}}


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.delete_pattern("throttle_*")  # type: ignore[attr-defined]


@pytest.fixture
def admin_user(db: Any) -> User:
    return User.objects.create_superuser("root", "root@example.com", "root-password-1")


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def admin_api(admin_user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def post_job(client: Client, **fields: str) -> Any:
    data = job_post(fields.pop("name", "edited"))
    user = client.session.get("_auth_user_id")
    if User.objects.get(pk=user).is_superuser:
        data["owner"] = str(user)
    data["schedules-TOTAL_FORMS"] = "0"
    data.update(fields)
    return client.post(reverse("admin:jobs_job_add"), data)


def form_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, "the form was accepted"
    return {name: list(messages) for name, messages in response.context["adminform"].form.errors.items()}


# --- Each type's fields make its target ----------------------------------------------------------


def test_a_python_job_is_a_chosen_task_with_json_arguments(admin_client: Client) -> None:
    response = post_job(
        admin_client, python_task="demo.tasks.echo", python_args='["ops", 3]', python_kwargs='{"dry_run": false}'
    )
    assert response.status_code == 302, form_errors(response)
    job = Job.objects.get(name="edited")
    assert job.target == {"task": "demo.tasks.echo", "args": ["ops", 3], "kwargs": {"dry_run": False}}
    page = admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
    assert '<option value="demo.tasks.echo" selected>' in page
    assert "[&quot;ops&quot;, 3]" in page  # the arguments come back as JSON to edit


def test_the_chooser_shows_each_tasks_docstring(admin_client: Client) -> None:
    page = admin_client.get(reverse("admin:jobs_job_add")).content.decode()
    assert "demo.tasks.echo: Returns its arguments: shows what a run was given." in page
    # The whole docstring, not only its first line, under the chooser.
    assert "Says which attempt this is (the Task context); fails the attempts before" in page


def test_arguments_that_are_not_json_are_an_error_on_their_field(admin_client: Client) -> None:
    errors = form_errors(post_job(admin_client, python_args="[1,", python_kwargs="{'a': 1}"))
    assert errors["python_args"][0].startswith("Not valid JSON:")
    assert errors["python_kwargs"][0].startswith("Not valid JSON:")
    assert "python_task" not in errors  # no check of a target that could not be read
    assert not Job.objects.exists()


def test_a_command_job_chooses_an_allowed_command_with_one_argument_per_line(admin_client: Client) -> None:
    with override_settings(JOBSCHEDULER_ALLOWED_COMMANDS=COMMANDS):
        page = admin_client.get(reverse("admin:jobs_job_add")).content.decode()
        assert '<option value="purge_runs">purge_runs</option>' in page
        assert "--days N (a whole number from 7 to 365)" in page  # what each command allows
        response = post_job(admin_client, target_type="command", command_name="purge_runs", command_args="--days\n30\n")
    assert response.status_code == 302, form_errors(response)
    assert Job.objects.get(name="edited").target == {"command": "purge_runs", "args": ["--days", "30"]}


def test_a_command_must_be_chosen(admin_client: Client) -> None:
    with override_settings(JOBSCHEDULER_ALLOWED_COMMANDS=COMMANDS):
        errors = form_errors(post_job(admin_client, target_type="command", command_name=""))
    assert errors == {"command_name": ["Choose one of the allowed commands."]}


def test_a_webhook_job_has_url_method_headers_and_body(admin_client: Client) -> None:
    response = post_job(
        admin_client,
        target_type="http",
        webhook_url="https://hooks.example.com/run",
        webhook_method="PUT",
        webhook_headers="X-Team: ops\nAuthorization: Bearer abc:def",
        webhook_body='{"hello": "world"}',
        timeout_seconds="20",
    )
    assert response.status_code == 200  # the generated secret's page
    job = Job.objects.get(name="edited")
    assert job.target == {
        "url": "https://hooks.example.com/run",
        "method": "PUT",
        "headers": {"X-Team": "ops", "Authorization": "Bearer abc:def"},
        "body": '{"hello": "world"}',
    }
    assert job.timeout_seconds == 20
    page = admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
    assert "X-Team: ops" in page and 'value="https://hooks.example.com/run"' in page


def test_a_header_line_without_a_colon_is_an_error(admin_client: Client) -> None:
    errors = form_errors(
        post_job(admin_client, target_type="http", webhook_url="https://a.example/", webhook_headers="X-A")
    )
    assert errors == {"webhook_headers": ["Line 1: write a header as Name: value."]}


def test_only_the_chosen_types_fields_are_read(admin_client: Client) -> None:
    # Without JavaScript every type's fields are posted; the others are ignored, broken or not.
    response = post_job(
        admin_client, python_task="demo.tasks.hello", command_name="nope", webhook_url="not a url", webhook_headers="X"
    )
    assert response.status_code == 302, form_errors(response)
    assert Job.objects.get(name="edited").target == {"task": "demo.tasks.hello"}


def test_every_types_fields_are_on_the_page_with_its_fieldset_marked(admin_client: Client) -> None:
    page = admin_client.get(reverse("admin:jobs_job_add")).content.decode()
    for kind, names in {
        "python": ("python_task", "python_args", "python_kwargs"),
        "command": ("command_name", "command_args"),
        "http": ("webhook_url", "webhook_method", "webhook_headers", "webhook_body", "secret"),
    }.items():
        assert f"target-fields target-{kind}" in page
        for name in names:
            assert f'name="{name}"' in page and f'for="id_{name}"' in page
    assert "jobs/job_form.js" in page
    assert 'name="target"' not in page  # no raw JSON to write by hand


def test_a_declared_jobs_target_stays_read_only(admin_client: Client, user: User) -> None:
    declared = job_create(
        owner=user, name="declared", code_key="nightly", target_type="python", target={"task": "demo.tasks.hello"}
    )
    page = admin_client.get(reverse("admin:jobs_job_change", args=[declared.pk])).content.decode()
    assert 'name="python_task"' not in page and 'name="target_type"' not in page
    assert "demo.tasks.hello" in page


# --- The admin and the API refuse a bad target with the same message ------------------------------


BAD_TARGETS = [
    # (target type, the API's target, the admin's fields, the field the message lands on)
    ("python", {"task": "demo.tasks.hello", "args": {"a": 1}}, {"python_args": '{"a": 1}'}, "python_args"),
    ("python", {"task": "demo.tasks.hello", "kwargs": [1]}, {"python_kwargs": "[1]"}, "python_kwargs"),
    ("command", {"command": "purge_runs", "args": ["--days", "1"]}, {"command_args": "--days\n1"}, "command_args"),
    ("command", {"command": "purge_runs", "args": ["--all"]}, {"command_args": "--all"}, "command_args"),
    ("http", {"url": "https://user:pw@example.com/"}, {"webhook_url": "https://user:pw@example.com/"}, "webhook_url"),
    ("http", {"url": "ftp://example.com/"}, {"webhook_url": "ftp://example.com/"}, "webhook_url"),
    ("http", {"url": "http://127.0.0.1/"}, {"webhook_url": "http://127.0.0.1/"}, "webhook_url"),
    (
        "http",
        {"url": "https://example.com/", "headers": {"X-Bad": "é€"}},
        {"webhook_url": "https://example.com/", "webhook_headers": "X-Bad: é€"},
        "webhook_headers",
    ),
    (
        "http",
        {"url": "https://example.com/", "headers": {"Bad Name": "x"}},
        {"webhook_url": "https://example.com/", "webhook_headers": "Bad Name: x"},
        "webhook_headers",
    ),
    (
        "http",
        {"url": "https://example.com/", "body": "x" * 70_000},
        {"webhook_url": "https://example.com/", "webhook_body": "x" * 70_000},
        "webhook_body",
    ),
]


@pytest.mark.parametrize(("target_type", "target", "fields", "field"), BAD_TARGETS)
def test_the_admin_and_the_api_refuse_a_bad_target_with_the_same_message(
    admin_client: Client,
    admin_api: APIClient,
    target_type: str,
    target: dict[str, Any],
    fields: dict[str, str],
    field: str,
) -> None:
    with override_settings(JOBSCHEDULER_ALLOWED_COMMANDS=COMMANDS, JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=[]):
        api = admin_api.post(
            "/api/jobs/", {"name": "by-api", "target_type": target_type, "target": target}, format="json"
        )
        if target_type == "command":
            fields = {"command_name": target["command"], **fields}
        admin = post_job(admin_client, target_type=target_type, **fields)
    assert api.status_code == 400, api.json()
    (message,) = api.json()["target"]
    assert form_errors(admin) == {field: [message]}
    assert not Job.objects.exists()


def test_a_python_job_needs_a_task(admin_client: Client) -> None:
    errors = form_errors(post_job(admin_client, python_task=""))
    assert errors == {"python_task": [clean_target("python", {})["target"]]}
    assert errors["python_task"][0].startswith('"task" must name a Django Task by its import path; discovered: ')


def test_a_missing_permission_is_refused_by_both_with_the_same_message(plain_user: User) -> None:
    from django.contrib.auth.models import Permission

    plain_user.is_staff = True
    plain_user.save()
    plain_user.user_permissions.set(Permission.objects.filter(codename__in=["add_job", "change_job", "view_job"]))
    browser, api = Client(), APIClient()
    browser.force_login(plain_user)
    api.force_authenticate(plain_user)
    refused = api.post(
        "/api/jobs/", {"name": "x", "target_type": "python", "target": {"task": "demo.tasks.hello"}}, format="json"
    )
    assert refused.status_code == 403
    errors = form_errors(post_job(browser))
    assert errors == {"target_type": [refused.json()["detail"]]}


# --- A webhook's secret: generated, shown once -------------------------------------------------------


def test_a_new_webhook_job_shows_its_generated_secret_once(admin_client: Client) -> None:
    response = post_job(admin_client, target_type="http", webhook_url="https://hooks.example.com/run")
    assert response.status_code == 200
    job = Job.objects.get(name="edited")
    assert job.secret.startswith("whsec_")
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert f'value="{job.secret}"' in page and '<label for="webhook-secret">' in page
    again = admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
    assert job.secret not in again and "Generate a new secret" in again


def test_generating_a_secret_asks_first_then_shows_the_new_one_once(admin_client: Client, user: User) -> None:
    job = job_create(owner=user, name="hook", target_type="http", target={"url": "https://hooks.example.com/"})
    old = job.secret
    url = reverse("admin:jobs_job_secret", args=[job.pk])
    confirm = admin_client.get(url)
    assert confirm.status_code == 200 and "24 hours" in confirm.content.decode()
    assert Job.objects.get(pk=job.pk).secret == old  # a GET changes nothing
    with time_machine.travel(NOW, tick=False):
        shown = admin_client.post(url)
    assert shown.status_code == 200 and "no-store" in shown["Cache-Control"]
    stored = Job.objects.get(pk=job.pk)
    assert stored.secret != old and stored.secret.startswith("whsec_")
    assert (stored.previous_secret, stored.previous_secret_expires_at) == (old, NOW + timedelta(hours=24))
    assert f'value="{stored.secret}"' in shown.content.decode()
    assert "2026-03-02 09:00 UTC" in shown.content.decode()


def test_only_webhook_jobs_made_here_have_a_secret_to_generate(admin_client: Client, job: Job) -> None:
    response = admin_client.post(reverse("admin:jobs_job_secret", args=[job.pk]))
    assert response.status_code == 302
    assert Job.objects.get(pk=job.pk).secret == ""


def test_another_users_job_has_no_secret_page(other_user: User, user: User) -> None:
    from django.contrib.auth.models import Permission

    theirs = job_create(owner=user, name="hook", target_type="http", target={"url": "https://hooks.example.com/"})
    other_user.is_staff = True
    other_user.save()
    other_user.user_permissions.add(*Permission.objects.filter(codename__in=["change_job", "view_job"]))
    browser = Client()
    browser.force_login(other_user)
    assert browser.post(reverse("admin:jobs_job_secret", args=[theirs.pk])).status_code == 404
    assert Job.objects.get(pk=theirs.pk).secret == theirs.secret
