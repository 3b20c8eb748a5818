"""The jobs and runs REST API against real MongoDB and Redis: CRUD, secrets, filters, access, bad input."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.models import Job, Run
from jobs.services import job_create
from schedules import services as schedule_services
from schedules.models import Schedule
from schedules.timeline import fire_key

OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HTTP_TARGET = {"url": "https://hooks.example.com/run", "method": "POST"}


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    # Throttle counts live in Redis for the whole run; each test starts with none.
    cache.delete_pattern("throttle_*")  # type: ignore[attr-defined]


@pytest.fixture
def other_job(other_user: Any) -> Job:
    return job_create(owner=other_user, name="bob's", target_type="python", target={"task": "demo.tasks.hello"})


def post(api: APIClient, url: str, data: Any) -> Any:
    return api.post(url, data, format="json")


def job_fields(job_id: Any) -> dict[str, Any]:
    saved = Job.objects.get(pk=job_id)
    return {f.attname: getattr(saved, f.attname) for f in Job._meta.concrete_fields}


def make_run(job: Job, schedule: Schedule | None = None, minutes: int = 0, **fields: Any) -> Run:
    """Runs are the engine's to write; tests record them directly."""
    nominal = T0 + timedelta(minutes=minutes)
    key = fire_key(schedule.pk if schedule else f"manual-{job.pk}", nominal)
    return Run.objects.create(job=job, schedule=schedule, fire_key=key, nominal_time=nominal, **fields)


# --- jobs: create, read, update, delete -------------------------------------------------------


def test_create_answers_string_id_and_hides_the_secret(api, user):
    response = post(
        api,
        "/api/jobs/",
        {"name": "webhook", "target_type": "http", "target": HTTP_TARGET, "secret": "s3cret-signing-key"},
    )
    assert response.status_code == 201, response.data
    body = response.json()
    assert OBJECT_ID.match(body["id"])
    assert "secret" not in body
    assert body["has_secret"] is True
    assert body["enabled"] is True and body["timeout_seconds"] == 300
    assert datetime.fromisoformat(body["created_at"]).utcoffset() == timedelta(0)
    saved = Job.objects.get(pk=body["id"])
    assert saved.secret == "s3cret-signing-key"
    assert saved.owner_id == user.pk

    retrieved = api.get(f"/api/jobs/{body['id']}/").json()
    assert "secret" not in retrieved and retrieved["has_secret"] is True
    assert "s3cret" not in json.dumps(api.get("/api/jobs/").json())


def test_secret_can_be_replaced_and_cleared_but_is_kept_when_absent(api, job):
    url = f"/api/jobs/{job.pk}/"
    assert api.get(url).json()["has_secret"] is False
    assert api.patch(url, {"secret": "first"}, format="json").json()["has_secret"] is True
    assert api.patch(url, {"description": "still signed"}, format="json").json()["has_secret"] is True
    assert Job.objects.get(pk=job.pk).secret == "first"
    assert api.patch(url, {"secret": ""}, format="json").json()["has_secret"] is False


def test_list_search_filter_and_order(api, user, job):
    job_create(owner=user, name="nightly report", description="emails the team", target_type="http", target=HTTP_TARGET)
    job_create(owner=user, name="cleanup", target_type="python", target={"task": "demo.tasks.echo"}, enabled=False)

    def names(query: str = "") -> list[str]:
        response = api.get(f"/api/jobs/?{query}")
        assert response.status_code == 200, response.data
        return [item["name"] for item in response.json()["results"]]

    assert names() == ["cleanup", "hello", "nightly report"]
    assert names("search=emails") == ["nightly report"]
    assert names("search=CLEAN") == ["cleanup"]
    assert names("enabled=false") == ["cleanup"]
    assert names("target_type=python") == ["cleanup", "hello"]
    assert names("ordering=-name") == ["nightly report", "hello", "cleanup"]
    assert api.get("/api/jobs/").json()["count"] == 3


@pytest.mark.parametrize(("query", "field"), [("enabled=perhaps", "enabled"), ("target_type=ftp", "target_type")])
def test_bad_job_filters_are_400(api, query, field):
    response = api.get(f"/api/jobs/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_put_and_patch_go_through_the_service(api, job):
    url = f"/api/jobs/{job.pk}/"
    response = api.put(
        url, {"name": "renamed", "target_type": "python", "target": {"task": "demo.tasks.echo"}}, format="json"
    )
    assert response.status_code == 200, response.data
    assert Job.objects.get(pk=job.pk).name == "renamed"
    response = api.patch(url, {"max_attempts": 3, "retry_backoff_seconds": 30}, format="json")
    assert response.status_code == 200
    assert (response.json()["max_attempts"], response.json()["retry_backoff_seconds"]) == (3, 30)


def test_delete_unschedules_the_jobs_schedules(api, job, due_index):
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    response = api.delete(f"/api/jobs/{job.pk}/")
    assert response.status_code == 204
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not Schedule.objects.filter(pk=schedule.pk).exists()
    assert due_index.due_score(str(schedule.pk)) is None
    assert due_index.state(str(schedule.pk)) == {}


def test_run_now_dispatches_a_manual_run(api, job, other_job, runqueue):
    response = post(api, f"/api/jobs/{job.pk}/run/", {})
    assert response.status_code == 202
    key = response.json()["fire_key"]
    assert key.startswith(f"manual:{job.pk}:")
    run = Run.objects.get(fire_key=key)
    assert (run.trigger, run.status, run.attempt, run.schedule_id) == ("manual", "pending", 1, None)
    entries = runqueue.client.xrange(runqueue.stream_key(runqueue.keyspace.shard_of(str(job.pk))))
    assert [fields[b"fk"].decode() for _, fields in entries] == [key]
    assert post(api, f"/api/jobs/{other_job.pk}/run/", {}).status_code == 404


def test_run_now_with_a_body_that_is_not_an_object_is_400(api, job):
    # Found by the API fuzz test: a list was taken for an empty body and the job ran.
    for body in ([], ["schedule"], "now", 5):
        response = post(api, f"/api/jobs/{job.pk}/run/", body)
        assert response.status_code == 400, body
        assert response.json() == {"non_field_errors": ["Expected a JSON object."]}
    assert api.post(f"/api/jobs/{job.pk}/run/").status_code == 202  # no body at all is fine
    assert Run.objects.count() == 1


def test_runs_without_a_schedule_show_it_as_null(api, job):
    key = post(api, f"/api/jobs/{job.pk}/run/", {}).json()["fire_key"]
    run = api.get("/api/runs/").json()["results"][0]
    assert (run["fire_key"], run["schedule"]) == (key, None)


def test_run_now_for_a_schedule_of_the_job_only(api, job, other_job):
    mine = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    theirs = schedule_services.schedule_create(job=other_job, kind="fixed", interval_seconds=60)
    before = Schedule.objects.get(pk=mine.pk).next_run_at
    response = post(api, f"/api/jobs/{job.pk}/run/", {"schedule": str(mine.pk)})
    assert response.status_code == 202
    assert Run.objects.get(fire_key=response.json()["fire_key"]).schedule_id == mine.pk
    assert Schedule.objects.get(pk=mine.pk).next_run_at == before  # run now moves no schedule
    for bad in (str(theirs.pk), "nope", 5):
        response = post(api, f"/api/jobs/{job.pk}/run/", {"schedule": bad})
        assert response.status_code == 400
        assert "schedule" in response.json()
    assert Run.objects.count() == 1


# --- jobs: bad input ----------------------------------------------------------------------------

BAD_JOBS = [
    ({"target_type": "python", "target": {"task": "demo.tasks.hello"}}, "name"),
    ({"name": "x" * 201, "target_type": "python", "target": {"task": "demo.tasks.hello"}}, "name"),
    ({"name": "a\x00b", "target_type": "python", "target": {"task": "demo.tasks.hello"}}, "name"),
    ({"name": "hello", "target_type": "python", "target": {"task": "demo.tasks.hello"}}, "name"),  # taken
    ({"name": "x", "target_type": "shell", "target": {}}, "target_type"),
    ({"name": "x", "target_type": "python", "target": {"function": "os.system"}}, "target"),
    ({"name": "x", "target_type": "python", "target": ["demo.hello"]}, "target"),
    # Not a string where a name goes: once a TypeError (500) looking it up.
    ({"name": "x", "target_type": "python", "target": {"function": ["demo.hello"]}}, "target"),
    ({"name": "x", "target_type": "python", "target": {"function": {"name": "demo.hello"}}}, "target"),
    ({"name": "x", "target_type": "python", "target": {"function": None}}, "target"),
    ({"name": "x", "target_type": "command", "target": {"command": ["flush"]}}, "target"),
    ({"name": "x", "target_type": "command", "target": {"command": {"name": "flush"}}}, "target"),
    ({"name": "x", "target_type": "http", "target": {"url": ["https://hooks.example.com/"]}}, "target"),
    ({"name": "x", "target_type": "http", "target": {"url": HTTP_TARGET["url"], "method": ["POST"]}}, "target"),
    ({"name": "x", "target_type": "http", "target": {"url": HTTP_TARGET["url"], "headers": ["X-A: 1"]}}, "target"),
    ({"name": "x", "target_type": "http", "target": {"url": HTTP_TARGET["url"], "body": {"a": 1}}}, "target"),
    ({"name": "x", "target_type": "command", "target": {"command": "flush"}}, "target"),
    ({"name": "x", "target_type": "http", "target": {"url": "ftp://example.com/"}}, "target"),
    ({"name": "x", "target_type": "http", "target": {"url": "https://u:p@example.com/"}}, "target"),
    ({"name": "x", "target_type": "python", "target": {"task": "demo.tasks.echo", "kwargs": {"n": 10**30}}}, "target"),
    ({"name": "x", "target_type": "python", "target": {"task": "demo.tasks.echo", "kwargs": {"a\x00": 1}}}, "target"),
    (
        {"name": "x", "target_type": "python", "target": {"task": "demo.tasks.hello"}, "timeout_seconds": 0},
        "timeout_seconds",
    ),
    (
        {"name": "x", "target_type": "python", "target": {"task": "demo.tasks.hello"}, "max_attempts": 99},
        "max_attempts",
    ),
    (
        {"name": "x", "target_type": "python", "target": {"task": "demo.tasks.hello"}, "retry_backoff_seconds": 10**19},
        "retry_backoff_seconds",
    ),
    ({"name": "x", "target_type": "python", "target": {"task": "demo.tasks.hello"}, "enabled": "sometimes"}, "enabled"),
    ({"name": "x", "target_type": "python", "target": {"task": "demo.tasks.hello"}, "owner": "me"}, "owner"),
    ({"name": "x", "target_type": "python", "target": {"task": "demo.tasks.hello"}, "has_secret": True}, "has_secret"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_JOBS)
def test_bad_job_is_400_naming_the_field_and_saves_nothing(api, job, fields, field):
    response = post(api, "/api/jobs/", fields)
    assert response.status_code == 400, response.data
    assert field in response.json(), response.json()
    assert Job.objects.count() == 1


# Targets every delivery would refuse: the URL and headers are read by delivery's own parser.
UNDELIVERABLE_HTTP_TARGETS = [
    ({"url": HTTP_TARGET["url"], "headers": {"X-Evil": "a\r\nX-Injected: 1"}}, "Invalid value for header 'X-Evil'."),
    ({"url": HTTP_TARGET["url"], "headers": {"X-Evil": "a\nb"}}, "Invalid value for header 'X-Evil'."),
    (
        {"url": HTTP_TARGET["url"], "headers": {"X-Unicode": "snowman \u2603"}},
        "Header 'X-Unicode' has characters outside Latin-1.",
    ),
    ({"url": HTTP_TARGET["url"], "headers": {"X-Nul": "a\x00b"}}, "Invalid value for header 'X-Nul'."),
    ({"url": HTTP_TARGET["url"], "headers": {"Bad Name": "x"}}, "Invalid header name 'Bad Name'."),
    ({"url": HTTP_TARGET["url"], "headers": {"X-A\r\nX-B": "x"}}, "Invalid header name 'X-A\\r\\nX-B'."),
    ({"url": HTTP_TARGET["url"], "headers": {"X-\u00e9": "x"}}, "Invalid header name 'X-\u00e9'."),
    ({"url": "http://[::1"}, "Invalid URL (Invalid IPv6 URL)."),
    ({"url": "http://hooks.example.com:99999/"}, "Invalid URL (Port out of range 0-65535)."),
]


@pytest.mark.parametrize(("target", "message"), UNDELIVERABLE_HTTP_TARGETS)
def test_http_target_delivery_would_refuse_is_400_and_saves_nothing(api, job, target, message):
    response = post(api, "/api/jobs/", {"name": "webhook", "target_type": "http", "target": target})
    assert response.status_code == 400, response.data
    assert response.json()["target"] == [message]
    assert Job.objects.count() == 1


# Literal hosts the address policy refuses: known when the job is saved, so refused then.
REFUSED_WEBHOOK_URLS = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254 is a cloud metadata address"),
    ("http://169.254.1.1/", "169.254.1.1 is a link-local address"),
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
    ("http://[::1]/", "::1 is a loopback address"),
    ("https://10.0.0.5/", "10.0.0.5 is a private address"),
    ("http://192.168.1.10/", "192.168.1.10 is a private address"),
    ("http://[fd12::1]/", "fd12::1 is a private address"),
    ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
    ("http://[::]/", ":: is an unspecified address"),
    ("http://[::ffff:127.0.0.1]/", "an IPv4-mapped address of 127.0.0.1, which is a loopback address"),
    ("http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe embeds 169.254.169.254, a cloud metadata address"),
    ("http://0x7f.1/", "127.0.0.1 is a loopback address (from 0x7f.1)"),
    ("http://2130706433/", "127.0.0.1 is a loopback address (from 2130706433)"),
    ("http://0177.0.0.1/", "127.0.0.1 is a loopback address (from 0177.0.0.1)"),
    ("http://127.1./", "127.0.0.1 is a loopback address (from 127.1)"),
    ("https://0xa9fea9fe/", "169.254.169.254 is a cloud metadata address, never reachable (from 0xa9fea9fe)"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_WEBHOOK_URLS)
def test_webhook_to_a_refused_literal_address_is_400_and_saves_nothing(api, job, no_allow_list, url, reason):
    response = post(api, "/api/jobs/", {"name": "webhook", "target_type": "http", "target": {"url": url}})
    assert response.status_code == 400, response.data
    [message] = response.json()["target"]
    assert message.startswith("The URL's host is off limits: ") and reason in message, message
    assert Job.objects.count() == 1


def test_webhook_moved_to_a_refused_literal_address_is_400_and_unchanged(api, user, no_allow_list):
    webhook = job_create(owner=user, name="webhook", target_type="http", target=HTTP_TARGET)
    before = job_fields(webhook.pk)
    response = api.patch(f"/api/jobs/{webhook.pk}/", {"target": {"url": "http://169.254.169.254/"}}, format="json")
    assert response.status_code == 400
    assert "169.254.169.254 is a cloud metadata address" in response.json()["target"][0]
    assert job_fields(webhook.pk) == before


def test_allow_listed_literal_addresses_and_any_names_save(api, job, settings):
    settings.JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS = ["10.0.0.0/8", "127.0.0.1"]
    # Names are judged on the addresses they resolve to, when delivering.
    for name, url in [
        ("private", "http://10.1.2.3:8080/hook"),
        ("loopback", "http://0x7f.1/"),
        ("named", "http://hooks.internal.example/"),
    ]:
        response = post(api, "/api/jobs/", {"name": name, "target_type": "http", "target": {"url": url}})
        assert response.status_code == 201, (url, response.data)
    settings.JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS = []
    response = post(
        api, "/api/jobs/", {"name": "private2", "target_type": "http", "target": {"url": "http://10.1.2.3/"}}
    )
    assert response.status_code == 400


def test_numbers_json_cannot_show_back_are_400(api, job):
    # 1e400 parses to infinity, which MongoDB would store and JSON could never answer.
    body = '{"name": "x", "target_type": "python", "target": {"task": "demo.tasks.echo", "kwargs": {"n": 1e400}}}'
    response = api.post("/api/jobs/", body, content_type="application/json")
    assert response.status_code == 400
    assert "target" in response.json()
    assert Job.objects.count() == 1


def test_deeply_nested_target_is_400(api, job):
    nested: Any = 1
    for _ in range(40):
        nested = {"a": nested}
    response = post(api, "/api/jobs/", {"name": "deep", "target_type": "python", "target": nested})
    assert response.status_code == 400
    assert "target" in response.json()
    assert Job.objects.count() == 1


def test_bad_update_changes_nothing(api, user, job):
    job_create(owner=user, name="taken", target_type="python", target={"task": "demo.tasks.hello"})
    before = job_fields(job.pk)
    for change in (
        {"name": "taken"},
        {"target": {"function": "nope"}},
        {"target_type": "http"},
        {"timeout_seconds": 86_401},
        {"created_at": "2026-01-01T00:00:00Z"},
        {"colour": "blue"},
    ):
        response = api.patch(f"/api/jobs/{job.pk}/", change, format="json")
        assert response.status_code == 400, (change, response.data)
        assert job_fields(job.pk) == before


def test_malformed_json_is_400(api, job):
    for body in ('{"name": "x",', "{'name': 'x'}", "[]", "null", '{"name": Infinity}', "[" * 100_000):
        response = api.post("/api/jobs/", body, content_type="application/json")
        assert response.status_code == 400, body[:20]
        assert response["Content-Type"] == "application/json"
    assert Job.objects.count() == 1


def test_oversized_json_body_is_400(api, job, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = {"name": "big", "target_type": "python", "target": {"task": "demo.tasks.echo"}, "description": "x" * 4096}
    response = post(api, "/api/jobs/", body)
    assert response.status_code == 400
    assert response.json() == {"detail": "Request body too large: at most 2048 bytes."}
    assert api.patch(f"/api/jobs/{job.pk}/", {"description": "y" * 4096}, format="json").status_code == 400
    assert Job.objects.get(pk=job.pk).description == ""
    assert Job.objects.count() == 1


def test_form_bodies_are_refused_even_oversized_with_session_auth(api, user, job, settings):
    response = api.post("/api/jobs/", {"name": "form"}, format="multipart")
    assert response.status_code == 415
    # Session auth's CSRF check reads the body through DRF's parsers, so it is refused unread.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.cookies["csrftoken"] = "a" * 32
    response = client.post("/api/jobs/", {"name": "big", "description": "x" * 4096})
    assert response.status_code == 415
    assert response["Content-Type"] == "application/json"
    assert Job.objects.count() == 1


# --- jobs: who may see what -----------------------------------------------------------------------


def test_unauthenticated_is_401(job):
    client = APIClient()
    assert client.get("/api/jobs/").status_code == 401
    assert client.get(f"/api/jobs/{job.pk}/").status_code == 401
    assert client.post("/api/jobs/", {"name": "x"}, format="json").status_code == 401
    assert client.delete(f"/api/jobs/{job.pk}/").status_code == 401
    assert client.get("/api/runs/").status_code == 401
    assert Job.objects.filter(pk=job.pk).exists()


def test_session_login_works_too(client, user, job):
    client.force_login(user)
    assert client.get("/api/jobs/").json()["count"] == 1


def test_other_users_jobs_are_404_and_unchanged(api, job, other_job):
    url = f"/api/jobs/{other_job.pk}/"
    before = job_fields(other_job.pk)
    assert api.get(url).status_code == 404
    assert api.patch(url, {"name": "mine now"}, format="json").status_code == 404
    assert api.put(url, {"name": "mine", "target_type": "python", "target": {}}, format="json").status_code == 404
    assert api.delete(url).status_code == 404
    assert [item["id"] for item in api.get("/api/jobs/").json()["results"]] == [str(job.pk)]
    assert job_fields(other_job.pk) == before


def test_same_name_as_another_users_job_is_fine(api, other_job):
    response = post(
        api, "/api/jobs/", {"name": other_job.name, "target_type": "python", "target": {"task": "demo.tasks.hello"}}
    )
    assert response.status_code == 201


def test_superuser_sees_every_job(user, job, other_job):
    user.is_superuser = True
    user.save()
    client = APIClient()
    client.force_authenticate(user)
    assert client.get("/api/jobs/").json()["count"] == 2
    assert client.get(f"/api/jobs/{other_job.pk}/").status_code == 200


# --- runs ------------------------------------------------------------------------------------------


def test_runs_are_read_only_with_string_ids(api, job):
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    run = make_run(job, schedule, status=Run.Status.SUCCEEDED, worker="w1", output="hello, world")
    response = api.get(f"/api/runs/{run.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(run.pk)
    assert body["job"] == str(job.pk) and body["schedule"] == str(schedule.pk)
    assert body["fire_key"] == run.fire_key
    assert body["nominal_time"] == "2026-03-01T12:00:00Z"
    assert (body["status"], body["trigger"], body["attempt"]) == ("succeeded", "schedule", 1)
    assert post(api, "/api/runs/", {}).status_code == 405
    assert api.patch(f"/api/runs/{run.pk}/", {"status": "failed"}, format="json").status_code == 405
    assert api.delete(f"/api/runs/{run.pk}/").status_code == 405
    assert Run.objects.get(pk=run.pk).status == Run.Status.SUCCEEDED


def test_manual_runs_have_no_schedule(api, job):
    run = make_run(job, trigger=Run.Trigger.MANUAL)
    assert api.get(f"/api/runs/{run.pk}/").json()["schedule"] is None


def test_run_filters_and_ordering(api, user, job):
    second = job_create(owner=user, name="second", target_type="python", target={"task": "demo.tasks.hello"})
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    early = make_run(job, schedule, minutes=0, status=Run.Status.SUCCEEDED)
    middle = make_run(job, schedule, minutes=10, status=Run.Status.FAILED)
    late = make_run(second, None, minutes=20, status=Run.Status.SUCCEEDED, trigger=Run.Trigger.MANUAL)

    def ids(query: str = "") -> list[str]:
        response = api.get(f"/api/runs/?{query}")
        assert response.status_code == 200, response.data
        return [item["id"] for item in response.json()["results"]]

    assert ids() == [str(late.pk), str(middle.pk), str(early.pk)]  # newest nominal time first
    assert ids(f"job={job.pk}") == [str(middle.pk), str(early.pk)]
    assert ids(f"schedule={schedule.pk}") == [str(middle.pk), str(early.pk)]
    assert ids("status=succeeded") == [str(late.pk), str(early.pk)]
    assert ids("trigger=manual") == [str(late.pk)]
    assert ids("nominal_after=2026-03-01T12:10:00Z") == [str(late.pk), str(middle.pk)]
    assert ids("nominal_before=2026-03-01T12:10:00Z") == [str(early.pk)]
    assert ids("nominal_after=2026-03-01T13:05:00%2B01:00&nominal_before=2026-03-01T12:15:00Z") == [str(middle.pk)]
    assert ids("ordering=nominal_time") == [str(early.pk), str(middle.pk), str(late.pk)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("job=123", "job"),
        ("schedule=zz", "schedule"),
        ("status=exploded", "status"),
        ("trigger=cosmic_ray", "trigger"),
        ("nominal_after=yesterday", "nominal_after"),
        ("nominal_before=2026-03-01T12:00:00", "nominal_before"),
    ],
)
def test_bad_run_filters_are_400(api, query, field):
    response = api.get(f"/api/runs/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_other_users_runs_are_hidden_and_404(api, job, other_job):
    mine = make_run(job)
    theirs = make_run(other_job, minutes=1)
    assert [item["id"] for item in api.get("/api/runs/").json()["results"]] == [str(mine.pk)]
    assert api.get(f"/api/runs/{theirs.pk}/").status_code == 404
    assert api.get(f"/api/runs/?job={other_job.pk}").json()["count"] == 0


def test_runs_are_paginated(api, job):
    for minute in range(55):
        make_run(job, minutes=minute)
    first = api.get("/api/runs/").json()
    assert first["count"] == 55 and len(first["results"]) == 50 and first["next"]
    assert len(api.get(first["next"]).json()["results"]) == 5


def test_another_token_sees_its_own(other_user, other_job, job):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=other_user).key}")
    assert [item["name"] for item in client.get("/api/jobs/").json()["results"]] == ["bob's"]
