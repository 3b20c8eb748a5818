"""The dashboard as the admin's index and its JSON endpoint, against the real MongoDB and Redis.

Heartbeats, due index and counters are written by the code that writes them in production
(Coordination.beat, the schedule services, the recorder and services), never by hand.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from jobs import run_records, services
from jobs.models import Job, Run
from jobs.services import job_create
from jobscheduler.coordination import SCHEDULERS, WORKERS, Coordination
from jobscheduler.keyspace import Keyspace, use_keyspace
from schedules import services as schedule_services
from schedules.due_index import DueIndex
from workers.recorder import Recorder

DATA = "dashboard-data"


@pytest.fixture
def root(db: Any) -> User:
    return User.objects.create_superuser("root", "root@example.com", "root-password-1")


@pytest.fixture
def admin_client(root: User) -> Client:
    client = Client()
    client.force_login(root)
    return client


def figures(client: Client) -> dict[str, Any]:
    response = client.get(reverse(DATA))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.json()["figures"]


def warnings_of(client: Client) -> list[str]:
    return [warning["text"] for warning in figures(client)["warnings"]]


def test_the_admin_index_is_the_dashboard_with_the_app_list(admin_client: Client) -> None:
    page = admin_client.get(reverse("admin:index"))
    assert page.status_code == 200
    html = page.content.decode()
    for panel in ("dash-warnings", "dash-processes", "dash-due", "dash-runs", "dash-failures", "dash-upcoming"):
        assert f'id="{panel}"' in html
    assert reverse(DATA) in html  # what the script polls
    assert "dashboard/dashboard.js" in html and "dashboard/dashboard.css" in html
    assert reverse("admin:jobs_run_changelist") in html  # the app list is still there


def test_the_json_endpoint_renders_every_panel_and_its_figures(admin_client: Client) -> None:
    body = admin_client.get(reverse(DATA)).json()
    assert set(body["panels"]) == {
        "dash-warnings",
        "dash-processes",
        "dash-due",
        "dash-runs",
        "dash-failures",
        "dash-upcoming",
    }
    assert body["updated_text"].startswith("Updated at ")
    assert body["figures"]["redis_ok"] and body["figures"]["mongodb_ok"]
    # The page's panels and the endpoint's are the same templates: the script swaps one for the other.
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert body["panels"]["dash-due"].split("<dt>")[1] in page


def test_staff_only(db: Any, client: Client, plain_user: User) -> None:
    response = client.get(reverse(DATA))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(plain_user)  # not staff
    assert client.get(reverse(DATA)).status_code == 302
    assert client.post(reverse(DATA)).status_code in (302, 405)


def test_warnings_when_no_scheduler_or_worker_is_alive_and_the_mirror_is_missing(
    admin_client: Client, coordination: Coordination, due_index: DueIndex
) -> None:
    texts = warnings_of(admin_client)
    assert any(text.startswith("No scheduler is alive") for text in texts)
    assert any(text.startswith("No worker is alive") for text in texts)
    assert any("mirror in Redis is missing" in text for text in texts)
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "No scheduler is alive" in page and "No worker is alive" in page

    coordination.beat(SCHEDULERS, "s1", {"pid": 11, "started": 0, "fired": 7})
    coordination.beat(WORKERS, "w1", {"pid": 12, "started": 0, "concurrency": 16, "busy": 3, "done": 40})
    due_index.mark_reconciled()
    assert warnings_of(admin_client) == []
    assert "All clear" in admin_client.get(reverse(DATA)).json()["panels"]["dash-warnings"]

    coordination.forget_beat(WORKERS, "w1")  # a worker stopping says so; an expired beat counts as gone too
    texts = warnings_of(admin_client)
    assert len(texts) == 1 and texts[0].startswith("No worker is alive")


def test_processes_with_host_pid_version_heartbeat_and_runs_in_flight(
    admin_client: Client, coordination: Coordination
) -> None:
    import jobscheduler

    coordination.beat(SCHEDULERS, "box:11", {"pid": 11, "started": 1000.0, "fired": 7})
    coordination.beat(
        WORKERS, "box:12", {"pid": 12, "started": 1000.0, "concurrency": 16, "busy": 3, "done": 40, "queues": ["q"]}
    )
    found = figures(admin_client)
    (scheduler,) = found["schedulers"]
    (worker,) = found["workers"]
    assert (scheduler["name"], scheduler["pid"], scheduler["done"]) == ("box:11", 11, 7)
    assert scheduler["version"] == worker["version"] == jobscheduler.__version__
    assert scheduler["host"] and scheduler["host"] == worker["host"]
    assert 0 <= scheduler["last_beat_seconds_ago"] < 5
    assert (worker["in_flight"], worker["capacity"], worker["done"], worker["queues"]) == (3, 16, 40, ["q"])
    html = admin_client.get(reverse(DATA)).json()["panels"]["dash-processes"]
    assert "box:12" in html and "3 of 16" in html and jobscheduler.__version__ in html


def test_the_due_index_figures(admin_client: Client, job: Job, due_index: DueIndex) -> None:
    schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    schedule_services.schedule_create(job=job, kind="cron", expression="0 3 * * *", timezone="Europe/London")
    due = figures(admin_client)["due_index"]
    assert due["scheduled"] == 2 and due["due_now"] == 0 and due["in_streams"] == 0
    next_due = datetime.fromisoformat(due["next_due_at"])
    assert datetime.now(UTC) < next_due <= datetime.now(UTC) + timedelta(seconds=61)
    services.run_now(job, user=job.owner)  # a manual run goes on the stream at once
    assert figures(admin_client)["due_index"]["in_streams"] == 1


def draft(job: Job, key: str, attempt: int = 1) -> Run:
    now = datetime.now(UTC)
    return run_records.run_draft(
        job_id=job.pk,
        schedule_id="",
        fire_key=key,
        attempt=attempt,
        trigger="schedule",
        nominal_time=now,
        dispatched_at=now,
        worker="w1",
    )


def test_runs_recorded_by_the_recorder_are_counted_charted_and_listed(admin_client: Client, job: Job) -> None:
    recorder = Recorder(insert_after=60)
    recorder.start()
    try:
        for number in range(3):
            run = draft(job, f"ok:{number}")
            recorder.started(run, worker="w1", now=datetime.now(UTC), dispatched_at=datetime.now(UTC))
            assert recorder.finish(run, status="succeeded", now=datetime.now(UTC))
        failing = draft(job, "bad:1")
        recorder.started(failing, worker="w1", now=datetime.now(UTC), dispatched_at=datetime.now(UTC))
        error = "Traceback (most recent call last):\n  File x\nRuntimeError: the receiver said no"
        assert recorder.finish(failing, status="failed", now=datetime.now(UTC), error=error)
    finally:
        recorder.stop()
    body = admin_client.get(reverse(DATA)).json()
    runs = body["figures"]["runs"]
    assert runs["last_hour"] == {"succeeded": 3, "failed": 1} == runs["last_day"]
    assert runs["failure_rate_last_hour"] == pytest.approx(0.25)
    assert sum(runs["per_minute"]["succeeded"]) == 3 and len(runs["per_minute"]["succeeded"]) == 24 * 60
    (failure,) = body["figures"]["latest_failures"]
    assert (failure["fire_key"], failure["job_name"], failure["status"]) == ("bad:1", job.name, "failed")
    assert failure["run"] == str(Run.objects.get(fire_key="bad:1").pk)
    panel = body["panels"]["dash-failures"]
    assert "RuntimeError: the receiver said no" in panel  # the traceback's last line is the summary
    assert reverse("admin:jobs_run_change", args=[failure["run"]]) in panel
    chart = body["panels"]["dash-runs"]
    assert "<svg" in chart and "dash-s-succeeded" in chart and "dash-s-failed" in chart
    assert "<dd>25%</dd>" in chart  # the failure rate


def test_every_path_that_records_an_outcome_is_counted_once(admin_client: Client, job: Job) -> None:
    # A stored attempt finished by a takeover (run_records.run_finish), a missed run recorded by the
    # engine (run_records.runs_record), and a replay of that same missed run (refused: not counted).
    stored, _ = run_records.run_begin(draft(job, "taken:1"))
    assert run_records.run_started(stored, worker="w1", now=datetime.now(UTC))
    assert run_records.run_finish(stored, status="failed", now=datetime.now(UTC), error="lost mid-run")
    assert not run_records.run_finish(stored, status="failed", now=datetime.now(UTC))  # not running any more

    def missed() -> Run:
        now = datetime.now(UTC)
        return Run(job=job, fire_key="s:missed", status="missed", nominal_time=now, finished_at=now)

    assert run_records.runs_record([missed()]) == 1
    assert run_records.runs_record([missed()]) == 0
    assert figures(admin_client)["runs"]["last_hour"] == {"failed": 1, "missed": 1}


def test_schedules_paused_by_the_service_are_listed_with_their_reason(admin_client: Client, job: Job) -> None:
    failing = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    by_user = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=120)
    schedule_services.schedule_pause(failing, reason="Paused after 3 failed runs in a row.")
    schedule_services.schedule_pause(by_user)
    body = admin_client.get(reverse(DATA)).json()
    paused = body["figures"]["paused_by_service"]
    assert paused["total"] == 1
    assert [(row["schedule"], row["reason"]) for row in paused["schedules"]] == [
        (str(failing.pk), "Paused after 3 failed runs in a row.")
    ]
    assert any("1 schedule was paused by the service" in warning["text"] for warning in body["figures"]["warnings"])
    assert reverse("admin:schedules_schedule_change", args=[failing.pk]) in body["panels"]["dash-failures"]
    schedule_services.schedule_resume(failing)  # resuming clears the reason
    assert figures(admin_client)["paused_by_service"]["total"] == 0


def test_what_runs_next_over_24_hours(admin_client: Client, job: Job) -> None:
    every_minute = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    hourly = schedule_services.schedule_create(job=job, kind="cron", expression="0 * * * *")
    once = schedule_services.schedule_create(
        job=job, kind="at", anchor=datetime.now(UTC) + timedelta(hours=2), misfire_policy="skip"
    )
    later = schedule_services.schedule_create(
        job=job, kind="at", anchor=datetime.now(UTC) + timedelta(hours=30), misfire_policy="skip"
    )
    body = admin_client.get(reverse(DATA)).json()
    rows = {row["schedule"]: row for row in body["figures"]["upcoming"]}
    assert str(later.pk) not in rows  # beyond the horizon
    assert rows[str(hourly.pk)]["count"] == 24 and not rows[str(hourly.pk)]["more"]
    assert rows[str(once.pk)]["count"] == 1 and len(rows[str(once.pk)]["times"]) == 1
    minutely = rows[str(every_minute.pk)]
    assert minutely["more"] and minutely["count"] == 120  # 1,440 in the day: drawn as a band after 120
    assert len(minutely["times"]) == 24  # the JSON lists the first few
    times = [datetime.fromisoformat(moment) for moment in minutely["times"]]
    assert all(later - earlier == timedelta(seconds=60) for earlier, later in itertools.pairwise(times))
    first = body["figures"]["upcoming"][0]["schedule"]
    assert first == str(every_minute.pk)  # the one that fires first leads
    panel = body["panels"]["dash-upcoming"]
    assert panel.count('class="dash-strip"') == 3 and "120+" in panel


def test_staff_see_only_their_own_jobs_in_the_lists(db: Any, job: Job, other_user: User) -> None:
    # other_user's failing job and schedule are theirs; job (alice's) is not.
    other_user.is_staff = True
    other_user.save()
    other_user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["jobs", "schedules"]))
    theirs = job_create(owner=other_user, name="theirs", target_type="python", target={"task": "demo.tasks.hello"})
    for owned in (job, theirs):
        schedule_services.schedule_create(job=owned, kind="fixed", interval_seconds=60)
        stored, _ = run_records.run_begin(draft(owned, f"{owned.name}:1"))
        run_records.run_started(stored, worker="w1", now=datetime.now(UTC))
        run_records.run_finish(stored, status="failed", now=datetime.now(UTC), error="no")
    client = Client()
    client.force_login(other_user)
    found = figures(client)
    assert [row["job_name"] for row in found["latest_failures"]] == ["theirs"]
    assert [row["job_name"] for row in found["upcoming"]] == ["theirs"]
    assert found["runs"]["last_hour"] == {"failed": 2}  # service-wide figures, as at /metrics


def test_the_page_survives_redis_being_away(admin_client: Client, keyspace: Keyspace) -> None:
    dead = Keyspace(redis.Redis(port=1, socket_connect_timeout=0.2), keyspace.prefix, keyspace.shards)
    previous = use_keyspace(dead)
    try:
        page = admin_client.get(reverse("admin:index"))
        body = admin_client.get(reverse(DATA)).json()
    finally:
        use_keyspace(previous)
    assert page.status_code == 200 and "Redis does not answer" in page.content.decode()
    found = body["figures"]
    assert not found["redis_ok"] and found["mongodb_ok"]
    assert found["schedulers"] is None and found["runs"] is None
    assert found["paused_by_service"] == {"total": 0, "schedules": []}  # MongoDB's part still shown


def test_a_dashboard_that_fails_leaves_the_admin_index_working(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard.templatetags import dashboard as tags

    def broken(user: Any) -> Any:
        raise RuntimeError("a bug in the dashboard")

    monkeypatch.setattr(tags, "build_overview", broken)
    page = admin_client.get(reverse("admin:index"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "the dashboard could not be built" in html
    assert reverse("admin:jobs_job_changelist") in html  # the app list is there to go on from


def test_the_json_is_compressed_for_browsers(admin_client: Client, job: Job) -> None:
    import gzip
    import json

    schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    plain = admin_client.get(reverse(DATA))
    packed = admin_client.get(reverse(DATA), HTTP_ACCEPT_ENCODING="gzip")
    assert packed["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain
    assert len(packed.content) < len(plain.content) / 2
    assert set(json.loads(gzip.decompress(packed.content))["panels"]) == set(plain.json()["panels"])
