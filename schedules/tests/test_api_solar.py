"""Solar schedules through the REST API and the admin's live preview: saved, validated, previewed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from schedules.models import Schedule

TROMSO: dict[str, Any] = {"latitude": 69.6496, "longitude": 18.956, "timezone": "Europe/Oslo"}


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.delete_pattern("throttle_*")  # type: ignore[attr-defined]


def post(api: Any, url: str, data: Any) -> Any:
    return api.post(url, data, format="json")


def test_create_and_preview_a_solar_schedule(api: Any, job: Any, due_index: Any) -> None:
    fields = {
        "job": str(job.pk),
        "kind": "solar",
        "solar_event": "sunset",
        "latitude": 51.5074,
        "longitude": -0.1278,
        "solar_offset_seconds": -1800,
        "timezone": "Europe/London",
    }
    response = post(api, "/api/schedules/", fields)
    assert response.status_code == 201, response.data
    body = response.json()
    assert {name: body[name] for name in fields} == fields
    assert body["description"] == "30 minutes before sunset at 51.5074°N 0.1278°W (Europe/London)"
    stored = Schedule.objects.get(pk=body["id"])
    assert (stored.latitude, stored.longitude) == (51.5074, -0.1278)
    assert due_index.state(body["id"])["latitude"] == "51.5074"
    preview = api.get(f"/api/schedules/{body['id']}/preview/", {"count": 2, "after": "2026-06-20T12:00:00Z"})
    assert preview.status_code == 200
    # London's published sunsets: 21:21 BST on 20 and 21 June; half an hour before.
    assert preview.json()["occurrences"] == ["2026-06-20T20:50:59+01:00", "2026-06-21T20:51:12+01:00"]
    assert preview.json()["skipped"] == []


def test_polar_night_is_said_clearly_in_the_preview(api: Any, job: Any) -> None:
    response = post(
        api,
        "/api/schedules/preview/",
        {
            "job": str(job.pk),
            "kind": "solar",
            "solar_event": "sunrise",
            **TROMSO,
            "count": 2,
            "after": "2027-01-13T00:00:00Z",
        },
    )
    assert response.status_code == 200, response.data
    body = response.json()
    assert body["occurrences"] == ["2027-01-16T11:19:56+01:00", "2027-01-17T11:06:54+01:00"]
    assert body["skipped"] == [
        {
            "day": f"2027-01-{day}",
            "reason": "polar_night",
            "message": f"No sunrise at 69.6496°N 18.9560°E on 2027-01-{day}: the sun does not come up that day "
            "(polar night).",
            "wall_time": None,
        }
        for day in (13, 14, 15)
    ]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"solar_event": "noon"}, "solar_event"),
        ({"latitude": 91}, "latitude"),
        ({"longitude": -180.5}, "longitude"),
        ({"solar_offset_seconds": 21601}, "solar_offset_seconds"),
        ({"latitude": None}, "latitude"),
    ],
)
def test_bad_solar_fields_are_400_naming_the_field(api: Any, job: Any, fields: dict[str, Any], field: str) -> None:
    body = {"job": str(job.pk), "kind": "solar", "solar_event": "dawn", "latitude": 10.0, "longitude": 20.0, **fields}
    response = post(api, "/api/schedules/", body)
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert Schedule.objects.count() == 0


def test_the_admin_preview_says_when_the_sun_does_not_set(db: Any) -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "root-password-1"))
    with time_machine.travel(datetime(2026, 7, 24, 12, 0, tzinfo=UTC), tick=False):
        response = client.get(
            reverse("admin:schedules_schedule_preview"),
            {"kind": "solar", "solar_event": "sunset", **TROMSO, "solar_offset_seconds": "0"},
        )
    body = response.json()
    assert body["errors"] == {}
    assert body["description"] == "At sunset at 69.6496°N 18.9560°E (Europe/Oslo)"
    rows = body["occurrences"]
    assert [(row["shown"], row["at"] is None) for row in rows[:5]] == [
        ("Fri 2026-07-24", True),  # today: no sunset either
        ("Sat 2026-07-25", True),
        ("Sun 2026-07-26", True),
        ("Mon 2026-07-27 23:56:45 CEST", False),
        ("Tue 2026-07-28 23:45:50 CEST", False),
    ]
    assert (
        "No sunset at 69.6496°N 18.9560°E on 2026-07-25: the sun does not go down that day (midnight sun)."
        in (body["html"])
    )
