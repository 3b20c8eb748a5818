"""Backfills against real MongoDB and Redis: what is dispatched, idempotence, pacing, cancel,
a runner that dies, the API, the admin action and the backfill command."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from jobs.models import Run
from jobs.runqueue import RunQueue
from jobscheduler.epoch import from_epoch_ms, to_epoch_ms
from schedules import backfills, services
from schedules.models import Backfill, Schedule
from workers import backfills as worker_backfills
from workers.handler import handle
from workers.tests.test_worker import Clock, Scripted, make_worker

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
END = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)  # 24 hourly occurrences


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.delete_pattern("throttle_*")  # type: ignore[attr-defined]


@pytest.fixture
def hourly(job: Any) -> Schedule:
    return services.schedule_create(job=job, kind="cron", expression="0 * * * *", now=lambda: START - timedelta(days=1))


class FakeTime:
    """The runner's clock and sleep: sleeping moves the clock (no real waiting)."""

    def __init__(self, start: datetime = NOW) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        return False


def stream_nominals(runqueue: RunQueue) -> list[datetime]:
    found = []
    for shard in range(runqueue.shards):
        raw: Any = runqueue.client.xrange(runqueue.stream_key(shard))
        for _, fields in raw:
            entry = {key.decode(): value.decode() for key, value in fields.items()}
            assert entry["t"] == "catch_up"
            found.append(from_epoch_ms(int(entry["n"])))
    return sorted(found)


def run_to_end(backfill: Backfill, runqueue: RunQueue, time: FakeTime, owner: str = "runner") -> Backfill:
    claimed = backfills.backfill_claim(owner, time.now, backfill_id=backfill.pk)
    assert claimed is not None
    return backfills.backfill_run(claimed, runqueue=runqueue, owner=owner, clock=time.clock, sleep=time.sleep)


def test_each_occurrence_without_a_record_is_dispatched_once_paced(hourly: Schedule, runqueue: RunQueue) -> None:
    for hour in (3, 4):  # these two ran already
        moment = START + timedelta(hours=hour)
        Run.objects.create(
            job=hourly.job, schedule=hourly, fire_key=f"{hourly.pk}:{to_epoch_ms(moment)}", status="succeeded"
        )
    backfill, created = backfills.backfill_request(hourly, start=START, end=END, rate_per_second=4, now=lambda: NOW)
    assert created and backfill.total == 24 and backfill.status == "pending"
    time = FakeTime()
    done = run_to_end(backfill, runqueue, time)
    assert (done.status, done.dispatched, done.already_recorded) == ("done", 22, 2)
    expected = [START + timedelta(hours=hour) for hour in range(24) if hour not in (3, 4)]
    assert stream_nominals(runqueue) == expected
    # Four a second: the 22nd went out 21/4 s after the first.
    assert abs((time.now - NOW).total_seconds() - 21 / 4) < 0.01
    # The same request again is the same backfill and sends nothing new.
    again, created = backfills.backfill_request(hourly, start=START, end=END, rate_per_second=4, now=lambda: NOW)
    assert (again.pk, created) == (backfill.pk, False)
    assert backfills.backfill_claim("runner", NOW, backfill_id=again.pk) is None
    assert len(stream_nominals(runqueue)) == 22


def test_a_new_backfill_over_runs_already_dispatched_and_recorded_sends_nothing(
    hourly: Schedule, runqueue: RunQueue, worker_for
) -> None:
    first, _ = backfills.backfill_request(hourly, start=START, end=START + timedelta(hours=2), now=lambda: NOW)
    run_to_end(first, runqueue, FakeTime())
    worker = worker_for(runqueue)
    for _ in range(3):
        (entry,) = worker.read(1)
        assert handle(worker, entry, Scripted()) == "succeeded"
    assert Run.objects.filter(schedule=hourly, trigger="catch_up").count() == 3
    # Another policy is another request, but every occurrence has its record now.
    second, created = backfills.backfill_request(
        hourly, start=START, end=START + timedelta(hours=2), overlap_policy="skip", now=lambda: NOW
    )
    assert created
    done = run_to_end(second, runqueue, FakeTime())
    assert (done.dispatched, done.already_recorded) == (0, 3)


def test_the_backfills_overlap_policy_reaches_the_worker(hourly: Schedule, runqueue: RunQueue, worker_for) -> None:
    backfill, _ = backfills.backfill_request(
        hourly, start=START, end=START + timedelta(hours=1), overlap_policy="skip", now=lambda: NOW
    )
    run_to_end(backfill, runqueue, FakeTime())
    # A run of the schedule is still going: the schedule allows overlap, the backfill does not.
    assert runqueue.overlap_enter(str(hourly.pk), "other", "allow", now_ms=to_epoch_ms(NOW), lease_ms=600_000) == "run"
    worker = worker_for(runqueue)
    outcomes = [handle(worker, worker.read(1)[0], Scripted()) for _ in range(2)]
    assert outcomes == ["skipped", "skipped"]


def test_cancel_stops_a_pending_one_at_once_and_a_running_one_after_its_batch(
    hourly: Schedule, runqueue: RunQueue
) -> None:
    pending, _ = backfills.backfill_request(hourly, start=START, end=END, now=lambda: NOW)
    assert backfills.backfill_cancel(pending).status == "cancelled"
    assert backfills.backfill_claim("runner", NOW, backfill_id=pending.pk) is None
    # A long one (every minute for a day: 1440), cancelled while it runs.
    minutely = services.schedule_create(job=hourly.job, kind="cron", expression="* * * * *", now=lambda: START)
    running, _ = backfills.backfill_request(minutely, start=START, end=END, now=lambda: NOW)
    claimed = backfills.backfill_claim("runner", NOW, backfill_id=running.pk)
    assert claimed is not None
    time = FakeTime()

    def sleep_then_cancel(seconds: float) -> bool:
        if len(time.slept) == 10:
            backfills.backfill_cancel(Backfill.objects.get(pk=running.pk))
        return time.sleep(seconds)

    done = backfills.backfill_run(claimed, runqueue=runqueue, owner="runner", clock=time.clock, sleep=sleep_then_cancel)
    assert done.status == "cancelled" and done.cancel_requested
    assert done.dispatched == backfills.BATCH  # the batch under way when it was cancelled
    assert len(stream_nominals(runqueue)) == backfills.BATCH


def test_a_runner_that_stops_leaves_the_rest_to_another_from_its_cursor(hourly: Schedule, runqueue: RunQueue) -> None:
    backfill, _ = backfills.backfill_request(hourly, start=START, end=END, rate_per_second=1, now=lambda: NOW)
    claimed = backfills.backfill_claim("first", NOW, backfill_id=backfill.pk)
    assert claimed is not None
    time = FakeTime()
    stopping = lambda seconds: len(time.slept) >= 5 or time.sleep(seconds)  # noqa: E731 (the worker stops)
    left = backfills.backfill_run(claimed, runqueue=runqueue, owner="first", clock=time.clock, sleep=stopping)
    assert (left.status, left.dispatched) == ("running", 6)
    assert backfills.backfill_claim("second", NOW + timedelta(seconds=10)) is None  # its lease still holds
    later = NOW + backfills.LEASE + timedelta(minutes=1)
    taken = backfills.backfill_claim("second", later)
    assert taken is not None and taken.pk == backfill.pk
    done = backfills.backfill_run(
        taken, runqueue=runqueue, owner="second", clock=FakeTime(later).clock, sleep=FakeTime(later).sleep
    )
    assert (done.status, done.dispatched) == ("done", 24)
    assert stream_nominals(runqueue) == [START + timedelta(hours=hour) for hour in range(24)]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"end": "2026-03-01T00:00:00Z"}, "end"),
        ({"end": "2099-01-01T00:00:00Z"}, "end"),
        ({"rate_per_second": 0}, "rate_per_second"),
        ({"rate_per_second": 1000}, "rate_per_second"),
        ({"overlap_policy": "queue"}, "overlap_policy"),
        ({"start": "2026-03-01T00:00:00"}, "start"),  # no offset
    ],
)
def test_bad_backfill_requests_are_400_naming_the_field(
    api: Any, hourly: Schedule, fields: dict[str, Any], field: str
) -> None:
    body = {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z", **fields}
    with time_machine.travel(NOW, tick=False):
        response = api.post(f"/api/schedules/{hourly.pk}/backfill/", body, format="json")
    assert response.status_code == 400, response.data
    assert list(response.json()) == [field]
    assert Backfill.objects.count() == 0


def test_the_api_makes_follows_and_cancels_a_backfill(api: Any, hourly: Schedule, other_user: Any) -> None:
    body = {"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T23:59:00Z", "overlap_policy": "buffer_one"}
    with time_machine.travel(NOW, tick=False):
        first = api.post(f"/api/schedules/{hourly.pk}/backfill/", body, format="json")
        again = api.post(f"/api/schedules/{hourly.pk}/backfill/", body, format="json")
    assert first.status_code == 201, first.data
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    shown = api.get(f"/api/backfills/{first.json()['id']}/").json()
    assert {key: shown[key] for key in ("status", "total", "dispatched", "remaining", "overlap_policy")} == {
        "status": "pending",
        "total": 24,
        "dispatched": 0,
        "remaining": 24,
        "overlap_policy": "buffer_one",
    }
    assert [item["id"] for item in api.get("/api/backfills/").json()["results"]] == [first.json()["id"]]
    cancelled = api.post(f"/api/backfills/{first.json()['id']}/cancel/", {}, format="json")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    client = Client()
    client.force_login(other_user)
    assert client.get(f"/api/backfills/{first.json()['id']}/").status_code == 404


def test_a_workers_backfill_thread_runs_what_is_requested(
    hourly: Schedule, runqueue: RunQueue, worker_for, settings
) -> None:
    settings.JOBSCHEDULER_BACKFILL_MAX_RATE = 1000
    backfill, _ = backfills.backfill_request(hourly, start=START, end=END)
    worker = worker_for(runqueue)
    stop = threading.Event()
    assert worker_backfills.run_one(worker, stop)
    assert Backfill.objects.get(pk=backfill.pk).status == "done"
    assert not worker_backfills.run_one(worker, stop)  # nothing else waits
    assert len(stream_nominals(runqueue)) == 24


def test_the_admin_action_asks_for_the_range_then_makes_a_backfill(db: Any, hourly: Schedule) -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "root-password-1"))
    url = reverse("admin:schedules_schedule_changelist")
    asked = client.post(url, {"action": "backfill_action", "_selected_action": [str(hourly.pk)]})
    assert asked.status_code == 200 and b"Backfill schedules" in asked.content
    with time_machine.travel(NOW, tick=False):
        done = client.post(
            url,
            {
                "action": "backfill_action",
                "_selected_action": [str(hourly.pk)],
                "confirm": "yes",
                "start": "2026-03-01 00:00:00",
                "end": "2026-03-01 23:59:00",
                "overlap_policy": "allow",
            },
        )
    assert done.status_code == 302
    backfill = Backfill.objects.get()
    assert (backfill.schedule_id, backfill.total) == (hourly.pk, 24)
    page = client.get(reverse("admin:schedules_backfill_changelist")).content.decode()
    assert "0 of 24 (0 sent, 0 recorded already)" in page


def test_the_command_runs_a_backfill_with_a_progress_bar(hourly: Schedule, runqueue: RunQueue, settings) -> None:
    settings.JOBSCHEDULER_BACKFILL_MAX_RATE = 1000
    out = io.StringIO()
    call_command(
        "backfill", str(hourly.pk), "--start", "2026-03-01T00:00:00Z", "--end", "2026-03-01T23:59:00Z", stdout=out
    )
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("(new)")
    assert lines[-1] == f"[{'#' * 30}] 24/24 (100%) dispatched 24, recorded already 0 - done"
    again = io.StringIO()
    call_command(
        "backfill", str(hourly.pk), "--start", "2026-03-01T00:00:00Z", "--end", "2026-03-01T23:59:00Z", stdout=again
    )
    assert again.getvalue().splitlines()[0].endswith("(the same request made before)")
    assert again.getvalue().splitlines()[-1].endswith("dispatched 24, recorded already 0 - done")
    assert len(stream_nominals(runqueue)) == 24


@pytest.fixture
def worker_for() -> Any:
    def make(runqueue: RunQueue) -> Any:
        runqueue.ensure_groups()
        return make_worker(runqueue, Clock(NOW.timestamp()))

    return make


def test_the_document_describes_backfills_with_examples(api: Any) -> None:
    document = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    request = document["paths"]["/api/schedules/{id}/backfill/"]["post"]["requestBody"]["content"]["application/json"]
    assert any(example["value"].get("overlap_policy") == "allow" for example in request["examples"].values())
    answer = document["paths"]["/api/backfills/{id}/"]["get"]["responses"]["200"]["content"]["application/json"]
    assert any(example["value"]["status"] == "running" for example in answer["examples"].values())
    assert "/api/backfills/{id}/cancel/" in document["paths"]
    fields = document["components"]["schemas"]["Backfill"]["properties"]
    assert {"total", "dispatched", "already_recorded", "remaining", "status"} <= set(fields)
