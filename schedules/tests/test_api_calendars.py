"""Exclusion calendars through the REST API and the admin: owned, imported from .ics, named by
schedules, honoured by previews."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from schedules import calendar_services
from schedules.models import ExclusionCalendar, Schedule
from schedules.tests.test_calendars import HOLIDAYS_ICS


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.delete_pattern("throttle_*")  # type: ignore[attr-defined]


def post(api: Any, url: str, data: Any) -> Any:
    return api.post(url, data, format="json")


UK = {
    "name": "UK holidays",
    "timezone": "Europe/London",
    "days": [
        {"start": "2026-12-25", "name": "Christmas Day"},
        {"start": "2026-12-28", "end": "2026-12-28", "name": "Boxing Day (substitute day)"},
    ],
}


def test_calendars_are_created_listed_and_changed(api: Any, user: Any) -> None:
    created = post(api, "/api/calendars/", UK)
    assert created.status_code == 201, created.data
    body = created.json()
    assert body["days"] == [
        {"start": "2026-12-25", "end": "2026-12-25", "name": "Christmas Day"},
        {"start": "2026-12-28", "end": "2026-12-28", "name": "Boxing Day (substitute day)"},
    ]
    assert ExclusionCalendar.objects.get(pk=body["id"]).owner_id == user.pk
    assert [item["name"] for item in api.get("/api/calendars/").json()["results"]] == ["UK holidays"]
    patched = api.patch(f"/api/calendars/{body['id']}/", {"days": [{"start": "2027-01-01"}]}, format="json")
    assert patched.status_code == 200, patched.data
    assert patched.json()["days"] == [{"start": "2027-01-01", "end": "2027-01-01", "name": ""}]
    assert post(api, "/api/calendars/", UK).json() == {"name": ["You already have a calendar called 'UK holidays'."]}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"days": [{"start": "2026-12-25", "end": "2026-12-24"}]}, "days"),
        ({"days": [{"start": "25/12/2026"}]}, "days"),
        ({"days": [{"start": "2026-12-25", "colour": "red"}]}, "days"),
    ],
)
def test_bad_calendars_are_400_naming_the_field(api: Any, fields: dict[str, Any], field: str) -> None:
    response = post(api, "/api/calendars/", {**UK, **fields})
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert ExclusionCalendar.objects.count() == 0


def test_other_users_calendars_are_invisible_and_cannot_be_named(api: Any, job: Any, other_user: Any) -> None:
    theirs = calendar_services.calendar_create(owner=other_user, name="Theirs", timezone="UTC", days=[])
    assert api.get(f"/api/calendars/{theirs.pk}/").status_code == 404
    response = post(
        api,
        "/api/schedules/",
        {"job": str(job.pk), "kind": "cron", "expression": "0 9 * * *", "exclusion_calendars": [str(theirs.pk)]},
    )
    assert response.status_code == 400
    assert response.json() == {"exclusion_calendars": [f"No calendar of yours has the id(s) {theirs.pk}."]}


def test_an_ics_import_makes_a_calendar_and_a_second_one_adds_nothing(api: Any) -> None:
    first = post(api, "/api/calendars/import/", {"ics": HOLIDAYS_ICS, "name": "Imported", "timezone": "Europe/London"})
    assert first.status_code == 201, first.data
    body = first.json()
    assert body["imported"] == 4
    assert body["recurring_not_imported"] == ["Every New Year's Day"]
    assert [day["name"] for day in body["calendar"]["days"]] == [
        "Change freeze",
        "Christmas Day",
        "Boxing Day (substitute day)",
        "New Year maintenance",
    ]
    again = post(api, "/api/calendars/import/", {"ics": HOLIDAYS_ICS, "calendar": body["calendar"]["id"]})
    assert again.status_code == 201, again.data
    assert again.json()["calendar"]["days"] == body["calendar"]["days"]
    bad = post(api, "/api/calendars/import/", {"ics": "not a calendar", "name": "Broken"})
    assert bad.status_code == 400 and list(bad.json()) == ["file"]
    assert post(api, "/api/calendars/import/", {"ics": HOLIDAYS_ICS}).status_code == 400  # no name, no calendar


def test_a_schedule_naming_a_calendar_previews_without_its_days(api: Any, job: Any) -> None:
    calendar = post(api, "/api/calendars/", UK).json()
    created = post(
        api,
        "/api/schedules/",
        {
            "job": str(job.pk),
            "kind": "cron",
            "expression": "0 9 * * *",
            "timezone": "Europe/London",
            "exclusion_calendars": [calendar["id"]],
        },
    )
    assert created.status_code == 201, created.data
    assert created.json()["exclusion_calendars"] == [calendar["id"]]
    preview = api.get(f"/api/schedules/{created.json()['id']}/preview/", {"count": 3, "after": "2026-12-24T12:00:00Z"})
    assert preview.status_code == 200
    body = preview.json()
    assert body["occurrences"] == [
        "2026-12-26T09:00:00+00:00",
        "2026-12-27T09:00:00+00:00",
        "2026-12-29T09:00:00+00:00",
    ]
    assert body["skipped"] == [
        {
            "day": "2026-12-25",
            "reason": "calendar",
            "message": "Skipped: 2026-12-25 is in the exclusion calendar 'UK holidays' (Christmas Day).",
            "wall_time": None,
            "at": "2026-12-25T09:00:00+00:00",
            "calendar": calendar["id"],
        },
        {
            "day": "2026-12-28",
            "reason": "calendar",
            "message": "Skipped: 2026-12-28 is in the exclusion calendar 'UK holidays' (Boxing Day (substitute day)).",
            "wall_time": None,
            "at": "2026-12-28T09:00:00+00:00",
            "calendar": calendar["id"],
        },
    ]
    # A calendar a schedule names is not deleted from under it.
    refused = api.delete(f"/api/calendars/{calendar['id']}/")
    assert refused.status_code == 400
    assert "1 schedule still names this calendar" in str(refused.json())
    api.patch(f"/api/schedules/{created.json()['id']}/", {"exclusion_calendars": []}, format="json")
    assert api.delete(f"/api/calendars/{calendar['id']}/").status_code == 204


def test_the_admin_edits_days_as_text_and_adds_an_ics_files(db: Any) -> None:
    root = User.objects.create_superuser("root", "root@example.com", "root-password-1")
    client = Client()
    client.force_login(root)
    response = client.post(
        reverse("admin:schedules_exclusioncalendar_add"),
        {
            "name": "Office",
            "description": "",
            "timezone": "Europe/London",
            "days_text": "2026-08-31 Summer bank holiday\n",
            "ics_file": SimpleUploadedFile("holidays.ics", HOLIDAYS_ICS.encode(), "text/calendar"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    calendar = ExclusionCalendar.objects.get(name="Office")
    assert [entry.label for entry in calendar.ranges()] == [
        "Summer bank holiday",
        "Change freeze",
        "Christmas Day",
        "Boxing Day (substitute day)",
        "New Year maintenance",
    ]
    page = client.get(reverse("admin:schedules_exclusioncalendar_change", args=[calendar.pk])).content.decode()
    assert "2026-12-21 to 2027-01-04 Change freeze" in page
    bad = client.post(
        reverse("admin:schedules_exclusioncalendar_change", args=[calendar.pk]),
        {"name": "Office", "description": "", "timezone": "Europe/London", "days_text": "31/08/2026"},
    )
    assert bad.status_code == 200 and "Line 1: write a day" in bad.content.decode()
    # The schedule form offers the calendar; its live preview honours it.
    form = client.get(reverse("admin:schedules_schedule_add")).content.decode()
    assert f'<option value="{calendar.pk}">Office (Europe/London)</option>' in form
    with time_machine.travel(datetime(2026, 8, 29, 12, 0, tzinfo=UTC), tick=False):
        preview = client.get(
            reverse("admin:schedules_schedule_preview"),
            {
                "kind": "cron",
                "expression": "0 9 * * *",
                "timezone": "Europe/London",
                "exclusion_calendars": str(calendar.pk),
            },
        ).json()
    assert preview["errors"] == {}
    rows = [(row["shown"], row["skipped"]) for row in preview["occurrences"][:4]]
    assert rows == [
        ("Sun 2026-08-30 09:00:00 BST", None),
        (
            "Mon 2026-08-31 09:00:00 BST",
            "Skipped: 2026-08-31 is in the exclusion calendar 'Office' (Summer bank holiday).",
        ),
        ("Tue 2026-09-01 09:00:00 BST", None),
        ("Wed 2026-09-02 09:00:00 BST", None),
    ]
    assert "(skipped: 2026-08-31 is in the exclusion calendar" in preview["html"]
    rows = [(row["shown"], row["skipped"]) for row in preview["occurrences"][:4]]
    assert rows == [
        ("Sun 2026-08-30 09:00:00 BST", None),
        (
            "Mon 2026-08-31 09:00:00 BST",
            "Skipped: 2026-08-31 is in the exclusion calendar 'Office' (Summer bank holiday).",
        ),
        ("Tue 2026-09-01 09:00:00 BST", None),
        ("Wed 2026-09-02 09:00:00 BST", None),
    ]
    assert "(skipped: 2026-08-31 is in the exclusion calendar" in preview["html"]
    assert Schedule.objects.count() == 0  # previewing saved nothing
