"""The live preview a schedule's form calls as its fields change: words, next occurrences, DST moves marked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from jobs.models import Job
from schedules import services
from schedules.models import Schedule

PREVIEW = "admin:schedules_schedule_preview"
# Before London's 2026 spring-forward (29 March, 01:00 UTC).
BEFORE_GAP = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def admin_client(db: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "root-password-1"))
    return client


def preview(client: Client, **fields: str) -> Any:
    response = client.get(reverse(PREVIEW), fields)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.json()


def test_a_cron_schedule_being_typed_is_described_and_previewed_with_dst_moves_marked(admin_client: Client) -> None:
    with time_machine.travel(BEFORE_GAP, tick=False):
        body = preview(admin_client, kind="cron", expression="30 1 * * *", timezone="Europe/London")
    assert body["errors"] == {}
    assert body["description"] == "At 01:30 (Europe/London)"
    first = body["occurrences"][:3]
    assert [row["shown"] for row in first] == [
        "Sat 2026-03-28 01:30:00 GMT",
        "Sun 2026-03-29 02:00:00 BST",  # 01:30 does not exist that day: fired at the jump
        "Mon 2026-03-30 01:30:00 BST",
    ]
    assert [row["moved_from"] for row in first] == [None, "01:30", None]
    assert first[1]["at"] == "2026-03-29T02:00:00+01:00"
    assert len(body["occurrences"]) == 10
    assert "moved from 01:30 by a daylight saving gap" in body["html"]


def test_each_edit_gives_a_new_answer(admin_client: Client) -> None:
    with time_machine.travel(BEFORE_GAP, tick=False):
        weekdays = preview(admin_client, kind="cron", expression="30 2 * * 1-5", timezone="UTC")
        hourly = preview(admin_client, kind="cron", expression="@hourly", timezone="UTC")
    assert weekdays["description"] == "At 02:30, Monday through Friday (UTC)"
    assert weekdays["occurrences"][0]["shown"] == "Mon 2026-03-30 02:30:00 UTC"
    assert hourly["description"] == "Every hour (UTC)"
    assert hourly["occurrences"][0]["shown"] == "Fri 2026-03-27 13:00:00 UTC"


def test_fixed_and_one_off_schedules_read_the_admins_split_date_time_fields(admin_client: Client) -> None:
    with time_machine.travel(BEFORE_GAP, tick=False):
        fixed = preview(
            admin_client,
            kind="fixed",
            interval_seconds="300",
            anchor_0="2026-03-27",
            anchor_1="12:02:00",
            timezone="UTC",
        )
        once = preview(admin_client, kind="at", anchor_0="2026-04-01", anchor_1="09:30:00", timezone="UTC")
    assert fixed["description"] == "Every 5 minutes"
    assert [row["shown"][-12:] for row in fixed["occurrences"][:2]] == ["12:02:00 UTC", "12:07:00 UTC"]
    assert once["description"] == "Once, at 2026-04-01 09:30 (UTC)"
    assert [row["at"] for row in once["occurrences"]] == ["2026-04-01T09:30:00+00:00"]


def test_fields_that_make_no_schedule_get_the_forms_messages(admin_client: Client) -> None:
    body = preview(admin_client, kind="cron", expression="61 * * * *", timezone="Mars/Base")
    assert set(body["errors"]) == {"expression", "timezone"}
    assert body["occurrences"] == [] and body["description"] == ""
    assert "No preview until these are fixed" in body["html"]
    assert body["errors"]["timezone"] == ["Unknown time zone 'Mars/Base'; use an IANA name such as 'Europe/Paris'."]


def test_a_saved_schedules_runs_so_far_bound_max_runs(admin_client: Client, job: Job) -> None:
    schedule = services.schedule_create(job=job, kind="cron", expression="@hourly", max_runs=5)
    Schedule.objects.filter(pk=schedule.pk).update(run_count=3)
    body = preview(
        admin_client, kind="cron", expression="@hourly", timezone="UTC", max_runs="5", schedule=str(schedule.pk)
    )
    assert len(body["occurrences"]) == 2


def test_nothing_is_saved(admin_client: Client, job: Job) -> None:
    schedule = services.schedule_create(job=job, kind="cron", expression="@hourly")
    preview(admin_client, kind="cron", expression="@daily", timezone="UTC", schedule=str(schedule.pk))
    stored = Schedule.objects.get(pk=schedule.pk)
    assert (stored.expression, stored.generation) == ("@hourly", 1)


def test_the_preview_needs_a_staff_login_and_a_visible_schedule(job: Job, other_user: User) -> None:
    schedule = services.schedule_create(job=job, kind="cron", expression="@hourly")
    anonymous = Client().get(reverse(PREVIEW), {"kind": "cron", "expression": "@daily"})
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    other_user.is_staff = True
    other_user.save()
    other_user.user_permissions.add(*Permission.objects.filter(codename="view_schedule"))
    browser = Client()
    browser.force_login(other_user)
    assert browser.get(reverse(PREVIEW), {"kind": "cron", "expression": "@daily"}).status_code == 200
    theirs = browser.get(reverse(PREVIEW), {"kind": "cron", "expression": "@daily", "schedule": str(schedule.pk)})
    assert theirs.status_code == 404
    assert browser.get(reverse(PREVIEW), {"schedule": "not-an-id"}).status_code == 404


@pytest.mark.parametrize("page", ["schedule", "job"])
def test_the_forms_carry_the_live_preview(admin_client: Client, job: Job, page: str) -> None:
    schedule = services.schedule_create(job=job, kind="cron", expression="30 2 * * 1-5", timezone="Europe/London")
    url = (
        reverse("admin:schedules_schedule_change", args=[schedule.pk])
        if page == "schedule"
        else reverse("admin:jobs_job_change", args=[job.pk])
    )
    html = admin_client.get(url).content.decode()
    assert f'data-preview-url="{reverse(PREVIEW)}"' in html
    assert f'data-schedule="{schedule.pk}"' in html
    assert '<div class="schedule-upcoming" aria-live="polite">' in html
    assert "At 02:30, Monday through Friday (Europe/London)" in html
    assert "schedules/preview.js" in html
    add = admin_client.get(reverse("admin:jobs_job_add")).content.decode()
    assert 'data-schedule=""' in add and "Fill in the fields to see them." in add


def test_the_list_shows_each_schedule_in_words(admin_client: Client, job: Job) -> None:
    services.schedule_create(job=job, kind="cron", expression="0 9 * * MON-FRI", timezone="Europe/Paris")
    services.schedule_create(job=job, kind="fixed", interval_seconds=300)
    html = admin_client.get(reverse("admin:schedules_schedule_changelist")).content.decode()
    assert "At 09:00, Monday through Friday (Europe/Paris)" in html
    assert "Every 5 minutes" in html


def test_the_daylight_saving_choice_is_previewed_with_skipped_days_and_both_passes_marked(
    admin_client: Client,
) -> None:
    with time_machine.travel(BEFORE_GAP, tick=False):
        skip = preview(admin_client, kind="cron", expression="30 1 * * *", timezone="Europe/London", dst_gap="skip")
    assert skip["errors"] == {}
    assert skip["description"] == "At 01:30 (Europe/London); not on days clocks skip its time"
    assert [(row["shown"], row["at"] is None) for row in skip["occurrences"][:3]] == [
        ("Sat 2026-03-28 01:30:00 GMT", False),
        ("Sun 2026-03-29 01:30:00", True),  # not on the clock that day: skipped, listed as such
        ("Mon 2026-03-30 01:30:00 BST", False),
    ]
    assert "skipped: 01:30 is not on the clock on 2026-03-29" in skip["html"]
    with time_machine.travel(datetime(2026, 10, 24, 12, 0, tzinfo=UTC), tick=False):
        twice = preview(
            admin_client, kind="cron", expression="30 1 * * *", timezone="Europe/London", dst_repeat="twice"
        )
    assert [(row["shown"], row["repeated_pass"]) for row in twice["occurrences"][:3]] == [
        ("Sun 2026-10-25 01:30:00 BST", 1),
        ("Sun 2026-10-25 01:30:00 GMT", 2),
        ("Mon 2026-10-26 01:30:00 GMT", None),
    ]
    assert "second pass of a wall time the clocks go back over" in twice["html"]


def test_a_choice_an_elapsed_time_expression_cannot_take_is_a_form_error(admin_client: Client) -> None:
    body = preview(admin_client, kind="cron", expression="*/10 * * * *", timezone="Europe/London", dst_repeat="twice")
    assert list(body["errors"]) == ["dst_repeat"]
    assert "follows elapsed time" in body["errors"]["dst_repeat"][0]


def test_the_schedule_page_has_the_daylight_saving_fields(admin_client: Client, job: Job) -> None:
    schedule = services.schedule_create(
        job=job, kind="cron", expression="30 2 * * *", timezone="America/New_York", dst_gap="skip"
    )
    html = admin_client.get(reverse("admin:schedules_schedule_change", args=[schedule.pk])).content.decode()
    assert "Daylight saving (cron at a fixed time)" in html
    assert '<option value="skip" selected>Skip: not that day</option>' in html
    assert "Fall-back repeat" in html
    response = admin_client.post(
        reverse("admin:schedules_schedule_change", args=[schedule.pk]),
        {
            "kind": "cron",
            "expression": "30 2 * * *",
            "timezone": "America/New_York",
            "dst_gap": "shift",
            "dst_repeat": "twice",
            "solar_offset_seconds": "0",
            "jitter_seconds": "0",
            "misfire_policy": "skip",
            "misfire_grace_seconds": "60",
            "catchup_window_seconds": "3600",
            "catchup_max_runs": "100",
            "overlap_policy": "allow",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    stored = Schedule.objects.get(pk=schedule.pk)
    assert (stored.dst_gap, stored.dst_repeat) == ("shift", "twice")
