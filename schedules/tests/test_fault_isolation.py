"""One bad schedule stops only itself: the engine pauses it with the reason and goes on with the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from prometheus_client import REGISTRY

from jobscheduler import mongo
from schedules import engine, services
from schedules.due_index import DueIndex
from schedules.models import Schedule
from schedules.tests.test_engine import fire_keys

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def create(job: Any, **fields: Any) -> Schedule:
    return services.schedule_create(job=job, now=lambda: T0, **fields)


def quarantined_total() -> float:
    return REGISTRY.get_sample_value("jobscheduler_schedules_quarantined_total") or 0.0


def run_engine(due_index: DueIndex, until: datetime, step: timedelta = timedelta(seconds=10)) -> None:
    moment = T0
    while moment <= until:
        engine.dispatch_due(due_index, moment)
        engine.handle_work(due_index, moment)
        moment += step


def assert_paused_with_reason(schedule: Schedule, due_index: DueIndex, words: str) -> None:
    schedule.refresh_from_db()
    assert schedule.paused and schedule.next_run_at is None
    assert "could not compute this schedule" in schedule.pause_reason and words in schedule.pause_reason
    assert due_index.state(str(schedule.pk)) == {}  # out of the mirror: nothing of it fires


@pytest.mark.parametrize(
    ("kind", "field", "value", "words"),
    [
        ("fixed", "grace", "soon", "mirror field 'grace' is not an integer: 'soon'"),
        ("fixed", "interval", "", "mirror field 'interval' is not an integer"),
        ("fixed", "count", "x", "mirror field 'count' is not an integer"),
        ("fixed", "next", "tomorrow", "mirror field 'next' is not an integer"),
        ("fixed", "max", "lots", "mirror field 'max' is not an integer"),
        ("fixed", "job", "", "mirror field 'job' is missing"),
        ("cron", "ahead", "1,,2", "mirror field 'ahead' is not a list of times"),
        ("cron", "n_ahead", "many", "mirror field 'n_ahead' is not an integer"),
        ("cron", "kind", "weekly", "Unknown schedule kind 'weekly'"),
        ("cron", "expression", "every tuesday", "A cron expression has 5 fields"),
        ("cron", "timezone", "Mars/Olympus_Mons", "Mars/Olympus_Mons"),
        ("cron", "grace", str(10**18), "OverflowError"),
    ],
)
def test_a_malformed_mirror_pauses_only_its_schedule(
    job: Any, due_index: DueIndex, kind: str, field: str, value: str, words: str
) -> None:
    good = create(job, kind="fixed", interval_seconds=10)
    good_cron = create(job, kind="cron", expression="* * * * *")
    spec = {"kind": "fixed", "interval_seconds": 10} if kind == "fixed" else {"kind": "cron", "expression": "* * * * *"}
    bad = create(job, misfire_grace_seconds=5, **spec)
    due_index.client.hset(due_index.state_key(str(bad.pk)), field, value)
    if field in ("kind", "expression", "timezone"):
        # Read only by Python: the schedule needs it once its carried times run low.
        due_index.client.hset(due_index.state_key(str(bad.pk)), mapping={"ahead": "", "n_ahead": "0"})
    if field == "grace" and kind == "cron":
        # Too large for the misfire maths: reached once Python computes the schedule's times.
        due_index.client.hset(due_index.state_key(str(bad.pk)), mapping={"ahead": "", "n_ahead": "0"})
    before = quarantined_total()

    run_engine(due_index, T0 + timedelta(minutes=3))

    assert_paused_with_reason(bad, due_index, words)
    assert quarantined_total() == before + 1
    keys = fire_keys(due_index)
    assert sum(key.startswith(f"{good.pk}:") for key in keys) == 18  # every 10 s for 3 minutes
    assert sum(key.startswith(f"{good_cron.pk}:") for key in keys) == 3
    # At most the occurrence it still carried before its times ran out; none once paused.
    assert sum(key.startswith(f"{bad.pk}:") for key in keys) <= 1


def test_a_paused_schedule_shows_its_reason_and_resumes_once_fixed(job: Any, due_index: DueIndex, api: Any) -> None:
    bad = create(job, kind="cron", expression="* * * * *")
    due_index.client.hset(
        due_index.state_key(str(bad.pk)), mapping={"timezone": "Nowhere/Land", "n_ahead": "0", "ahead": ""}
    )
    run_engine(due_index, T0 + timedelta(minutes=1))
    shown = api.get(f"/api/schedules/{bad.pk}/").json()
    assert shown["paused"] is True and "Nowhere/Land" in shown["pause_reason"]
    assert api.post(f"/api/schedules/{bad.pk}/resume/").status_code == 200
    bad.refresh_from_db()
    assert not bad.paused and bad.pause_reason == ""
    assert due_index.state(str(bad.pk))["timezone"] == "UTC"  # mirrored again from MongoDB's good copy


def test_a_schedule_written_around_the_services_is_paused_by_reconcile(job: Any, due_index: DueIndex) -> None:
    good = create(job, kind="fixed", interval_seconds=10)
    bad = create(job, kind="cron", expression="* * * * *")
    mongo.collection(Schedule).update_one(
        {"_id": bad.pk}, {"$set": {"timezone": "Not/AZone"}, "$inc": {"generation": 1}}
    )
    report = engine.reconcile(due_index, T0)
    assert report["paused"] == 1 and report["checked"] == 2
    assert_paused_with_reason(bad, due_index, "Not/AZone")
    run_engine(due_index, T0 + timedelta(seconds=30))
    assert sum(key.startswith(f"{good.pk}:") for key in fire_keys(due_index)) == 3


@pytest.mark.parametrize(
    "field", ["misfire_grace_seconds", "catchup_window_seconds", "interval_seconds", "catchup_max_runs", "max_runs"]
)
def test_bounds_live_in_the_models_validation(job: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        fields: dict[str, Any] = {"kind": "fixed", "interval_seconds": 10, field: 10**15}
        services.schedule_create(job=job, **fields)
    assert field in caught.value.message_dict
    assert not Schedule.objects.exists()


def test_the_admin_form_refuses_an_out_of_bounds_grace(job: Any) -> None:
    from schedules.admin import ScheduleForm

    form = ScheduleForm(
        data={
            "job": str(job.pk),
            "kind": "fixed",
            "interval_seconds": "10",
            "timezone": "UTC",
            "jitter_seconds": "0",
            "misfire_policy": "skip",
            "misfire_grace_seconds": str(10**15),
            "catchup_window_seconds": "3600",
            "catchup_max_runs": "100",
            "overlap_policy": "allow",
        }
    )
    assert not form.is_valid()
    assert "misfire_grace_seconds" in form.errors


def test_the_admin_shows_why_a_schedule_was_paused(job: Any, due_index: DueIndex, client: Any) -> None:
    from django.contrib.auth.models import User
    from django.urls import reverse

    bad = create(job, kind="cron", expression="* * * * *")
    due_index.client.hset(due_index.state_key(str(bad.pk)), mapping={"kind": "weekly", "n_ahead": "0", "ahead": ""})
    run_engine(due_index, T0 + timedelta(minutes=1))
    client.force_login(User.objects.create_superuser("root", "root@example.com", "root-password-1"))
    page = client.get(reverse("admin:schedules_schedule_change", args=[bad.pk]))
    assert page.status_code == 200
    assert b"Unknown schedule kind" in page.content
