"""The schedules REST API against real MongoDB and Redis: CRUD, pause/resume, previews, bad input."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.services import job_create
from jobscheduler.epoch import to_epoch_ms
from schedules import services
from schedules.due_index import DueIndex
from schedules.models import Schedule

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    # Throttle counts live in Redis for the whole run; each test starts with none.
    cache.delete_pattern("throttle_*")  # type: ignore[attr-defined]


@pytest.fixture
def other_api(other_user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=other_user).key}")
    return client


@pytest.fixture
def other_schedule(other_user: Any) -> Schedule:
    other_job = job_create(owner=other_user, name="bob's", target_type="python", target={"task": "demo.tasks.hello"})
    return services.schedule_create(job=other_job, kind="fixed", interval_seconds=60)


@pytest.fixture
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def post(api: APIClient, url: str, data: Any) -> Any:
    return api.post(url, data, format="json")


def schedule_state(schedule_id: str, due_index: DueIndex) -> tuple[Any, ...]:
    saved = Schedule.objects.get(pk=schedule_id)
    fields = {f.attname: getattr(saved, f.attname) for f in Schedule._meta.concrete_fields}
    return fields, due_index.state(schedule_id), due_index.due_score(schedule_id)


# --- create, read, update, delete ----------------------------------------------------------


def test_create_answers_string_ids_and_times_with_offsets(api, job, due_index, frozen):
    response = post(api, "/api/schedules/", {"job": str(job.pk), "kind": "fixed", "interval_seconds": 60})
    assert response.status_code == 201, response.data
    body = response.json()
    assert OBJECT_ID.match(body["id"])
    assert body["job"] == str(job.pk)
    assert body["anchor"] == "2026-03-01T12:00:00Z"
    assert body["next_run_at"] == "2026-03-01T12:01:00Z"
    assert body["description"] == "Every minute"
    assert body["run_count"] == 0 and body["last_run_at"] is None
    assert datetime.fromisoformat(body["created_at"]).utcoffset() == timedelta(0)
    saved = Schedule.objects.get(pk=body["id"])
    assert saved.job_id == job.pk
    assert due_index.due_score(body["id"]) == to_epoch_ms(datetime(2026, 3, 1, 12, 1, tzinfo=UTC))


def test_create_cron_with_every_field(api, job, frozen):
    fields = {
        "job": str(job.pk),
        "kind": "cron",
        "expression": "0 9 * * MON-FRI",
        "timezone": "Europe/Paris",
        "start_at": "2026-03-02T00:00:00+01:00",
        "end_at": "2026-12-31T00:00:00+01:00",
        "max_runs": 100,
        "jitter_seconds": 30,
        "misfire_policy": "run_all",
        "misfire_grace_seconds": 120,
        "catchup_window_seconds": 7200,
        "catchup_max_runs": 5,
        "overlap_policy": "buffer_one",
    }
    response = post(api, "/api/schedules/", fields)
    assert response.status_code == 201, response.data
    body = response.json()
    for name in ("expression", "timezone", "max_runs", "jitter_seconds", "misfire_policy", "overlap_policy"):
        assert body[name] == fields[name]
    assert body["start_at"] == "2026-03-01T23:00:00Z"
    assert body["next_run_at"] == "2026-03-02T08:00:00Z"  # 09:00 in Paris (UTC+1)
    assert body["description"] == "At 09:00, Monday through Friday (Europe/Paris), jitter up to 30s"


def test_list_retrieve_and_filters(api, job, user):
    second_job = job_create(owner=user, name="second", target_type="python", target={"task": "demo.tasks.hello"})
    fixed = services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    cron = services.schedule_create(job=second_job, kind="cron", expression="@daily")
    services.schedule_pause(cron)

    listing = api.get("/api/schedules/").json()
    assert listing["count"] == 2
    assert {item["id"] for item in listing["results"]} == {str(fixed.pk), str(cron.pk)}

    def ids(query: str) -> set[str]:
        response = api.get(f"/api/schedules/?{query}")
        assert response.status_code == 200, response.data
        return {item["id"] for item in response.json()["results"]}

    assert ids(f"job={second_job.pk}") == {str(cron.pk)}
    assert ids("kind=fixed") == {str(fixed.pk)}
    assert ids("paused=true") == {str(cron.pk)}
    assert ids("paused=false") == {str(fixed.pk)}
    assert api.get(f"/api/schedules/{cron.pk}/").json()["paused"] is True


@pytest.mark.parametrize(("query", "field"), [("job=nope", "job"), ("kind=hourly", "kind"), ("paused=maybe", "paused")])
def test_bad_filters_are_400(api, query, field):
    response = api.get(f"/api/schedules/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_patch_updates_and_remirrors(api, job, due_index, frozen):
    schedule = services.schedule_create(job=job, kind="cron", expression="0 * * * *")
    response = api.patch(f"/api/schedules/{schedule.pk}/", {"expression": "*/15 * * * *"}, format="json")
    assert response.status_code == 200, response.data
    assert response.json()["next_run_at"] == "2026-03-01T12:15:00Z"
    assert Schedule.objects.get(pk=schedule.pk).expression == "*/15 * * * *"
    assert due_index.due_score(str(schedule.pk)) == to_epoch_ms(datetime(2026, 3, 1, 12, 15, tzinfo=UTC))


def test_put_replaces_the_fields_given(api, job, frozen):
    schedule = services.schedule_create(job=job, kind="cron", expression="0 * * * *")
    response = api.put(
        f"/api/schedules/{schedule.pk}/",
        {"job": str(job.pk), "kind": "fixed", "interval_seconds": 30},
        format="json",
    )
    assert response.status_code == 200, response.data
    assert response.json()["kind"] == "fixed"
    assert response.json()["next_run_at"] == "2026-03-01T12:00:30Z"


def test_a_schedule_cannot_move_to_another_job(api, job, user, due_index):
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    other = job_create(owner=user, name="other", target_type="python", target={"task": "demo.tasks.hello"})
    before = schedule_state(str(schedule.pk), due_index)
    response = api.patch(f"/api/schedules/{schedule.pk}/", {"job": str(other.pk)}, format="json")
    assert response.status_code == 400
    assert "job" in response.json()
    assert schedule_state(str(schedule.pk), due_index) == before


def test_delete_removes_from_mongodb_and_redis(api, job, due_index):
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    response = api.delete(f"/api/schedules/{schedule.pk}/")
    assert response.status_code == 204
    assert not Schedule.objects.filter(pk=schedule.pk).exists()
    assert due_index.state(str(schedule.pk)) == {}
    assert due_index.due_score(str(schedule.pk)) is None


# --- bad input: 400 with a message per field, and nothing changes -------------------------

BAD_CREATES = [
    ({"kind": "cron", "expression": "61 * * * *"}, "expression"),
    ({"kind": "cron", "expression": "* * *"}, "expression"),
    ({"kind": "cron", "expression": ""}, "expression"),
    ({"kind": "cron", "expression": "0 3 * * *", "timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"kind": "fixed", "interval_seconds": 0}, "interval_seconds"),
    ({"kind": "fixed", "interval_seconds": -5}, "interval_seconds"),
    ({"kind": "fixed", "interval_seconds": 10**30}, "interval_seconds"),
    ({"kind": "fixed", "interval_seconds": "often"}, "interval_seconds"),
    ({"kind": "fixed"}, "interval_seconds"),
    (
        {"kind": "fixed", "interval_seconds": 60, "start_at": "2026-05-01T00:00:00Z", "end_at": "2026-04-01T00:00:00Z"},
        "end_at",
    ),
    ({"kind": "fixed", "interval_seconds": 60, "start_at": "2026-05-01T00:00:00"}, "start_at"),
    ({"kind": "fixed", "interval_seconds": 60, "start_at": "next tuesday"}, "start_at"),
    ({"kind": "fixed", "interval_seconds": 60, "start_at": "0001-01-01T00:00:00+01:00"}, "start_at"),
    ({"kind": "fixed", "interval_seconds": 60, "anchor": "9999-12-31T23:00:00Z"}, "anchor"),
    ({"kind": "fixed", "interval_seconds": 60, "jitter_seconds": 7200}, "jitter_seconds"),
    ({"kind": "fixed", "interval_seconds": 60, "max_runs": 0}, "max_runs"),
    ({"kind": "fixed", "interval_seconds": 60, "misfire_policy": "panic"}, "misfire_policy"),
    ({"kind": "fixed", "interval_seconds": 60, "overlap_policy": "queue_all"}, "overlap_policy"),
    ({"kind": "weekly"}, "kind"),
    ({"kind": "fixed", "interval_seconds": 60, "intervall": 5}, "intervall"),
    ({"kind": "fixed", "interval_seconds": 60, "run_count": 5}, "run_count"),
    ({"kind": "fixed", "interval_seconds": 60, "next_run_at": "2026-03-01T00:00:00Z"}, "next_run_at"),
    ({"kind": "fixed", "interval_seconds": 60, "id": "0123456789abcdef01234567"}, "id"),
    ({"kind": "cron", "expression": "0 3 * * *\x00"}, "expression"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_CREATES)
def test_bad_create_is_400_naming_the_field_and_saves_nothing(api, job, due_index, fields, field):
    response = post(api, "/api/schedules/", {"job": str(job.pk), **fields})
    assert response.status_code == 400, response.data
    assert field in response.json(), response.json()
    assert all(isinstance(messages, list) and messages for messages in response.json().values())
    assert Schedule.objects.count() == 0
    assert due_index.earliest_due_ms() is None


def test_unknown_fields_are_named_together_with_shape_errors(api, job):
    response = post(api, "/api/schedules/", {"job": str(job.pk), "kind": "cron", "max_runs": -1, "expresion": "x"})
    assert response.status_code == 400
    assert response.json()["expresion"] == ["Unknown field."]
    assert "max_runs" in response.json()


@pytest.mark.parametrize(
    "job_id", ["not-an-id", 12, None, "0123456789abcdef0123456"], ids=["text", "int", "null", "short"]
)
def test_malformed_job_id_is_400(api, job, job_id):
    response = post(api, "/api/schedules/", {"job": job_id, "kind": "fixed", "interval_seconds": 60})
    assert response.status_code == 400
    assert "job" in response.json()
    assert Schedule.objects.count() == 0


def test_job_of_another_user_or_missing_is_400(api, other_user, due_index):
    theirs = job_create(owner=other_user, name="theirs", target_type="python", target={"task": "demo.tasks.hello"})
    for job_id in (str(theirs.pk), "0123456789abcdef01234567"):
        response = post(api, "/api/schedules/", {"job": job_id, "kind": "fixed", "interval_seconds": 60})
        assert response.status_code == 400
        assert "No such job" in response.json()["job"][0]
    assert Schedule.objects.count() == 0
    assert due_index.earliest_due_ms() is None


def test_bad_update_changes_nothing(api, job, due_index):
    schedule = services.schedule_create(job=job, kind="cron", expression="0 * * * *", timezone="Europe/Paris")
    before = schedule_state(str(schedule.pk), due_index)
    for change in (
        {"expression": "0 25 * * *"},
        {"timezone": "Europe/Atlantis"},
        {"kind": "fixed", "interval_seconds": 0},
        {"start_at": "2026-05-01T00:00:00Z", "end_at": "2026-04-01T00:00:00Z"},
        {"run_count": 3},
        {"colour": "blue"},
    ):
        response = api.patch(f"/api/schedules/{schedule.pk}/", change, format="json")
        assert response.status_code == 400, (change, response.data)
        assert schedule_state(str(schedule.pk), due_index) == before


def test_malformed_and_non_object_bodies_are_400(api, job):
    for body in ('{"job": ', "[1, 2]", '"text"', '{"kind": NaN}'):
        response = api.post("/api/schedules/", body, content_type="application/json")
        assert response.status_code == 400, body
        assert response["Content-Type"] == "application/json"
    assert Schedule.objects.count() == 0


def test_oversized_body_is_400_json(api, job, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"job": str(job.pk), "kind": "fixed", "interval_seconds": 60, "pad": "x" * 2000})
    response = api.post("/api/schedules/", body, content_type="application/json")
    assert response.status_code == 400
    assert "too large" in response.json()["detail"]
    assert Schedule.objects.count() == 0


# --- who may see what ------------------------------------------------------------------------


def test_unauthenticated_is_401(job, other_schedule):
    client = APIClient()
    assert client.get("/api/schedules/").status_code == 401
    assert client.post("/api/schedules/", {}, format="json").status_code == 401
    assert client.get(f"/api/schedules/{other_schedule.pk}/preview/").status_code == 401
    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION="Token 0000")
    assert bad_token.get("/api/schedules/").status_code == 401


def test_other_users_schedules_are_404_and_unchanged(api, job, other_schedule, due_index):
    url = f"/api/schedules/{other_schedule.pk}/"
    before = schedule_state(str(other_schedule.pk), due_index)
    assert api.get(url).status_code == 404
    assert api.patch(url, {"interval_seconds": 5}, format="json").status_code == 404
    assert api.put(url, {"job": str(job.pk), "kind": "fixed", "interval_seconds": 5}, format="json").status_code == 404
    assert api.delete(url).status_code == 404
    assert post(api, url + "pause/", {}).status_code == 404
    assert post(api, url + "resume/", {}).status_code == 404
    assert api.get(url + "preview/").status_code == 404
    assert api.get("/api/schedules/").json()["count"] == 0
    assert api.get(f"/api/schedules/?job={other_schedule.job_id}").json()["count"] == 0
    assert schedule_state(str(other_schedule.pk), due_index) == before


def test_malformed_ids_in_paths_are_404(api):
    assert api.get("/api/schedules/not-an-object-id/").status_code == 404
    assert api.get("/api/schedules/0123456789abcdef01234567/").status_code == 404


def test_superuser_sees_every_schedule(other_schedule, user):
    user.is_superuser = True
    user.save()
    client = APIClient()
    client.force_authenticate(user)
    assert client.get(f"/api/schedules/{other_schedule.pk}/").status_code == 200
    assert client.get("/api/schedules/").json()["count"] == 1


# --- pause and resume -----------------------------------------------------------------------


def test_pause_and_resume_move_next_run_at(api, job, due_index, frozen):
    schedule = services.schedule_create(job=job, kind="cron", expression="*/5 * * * *")
    url = f"/api/schedules/{schedule.pk}/"

    paused = post(api, url + "pause/", None)
    assert paused.status_code == 200, paused.data
    assert paused.json()["paused"] is True and paused.json()["paused_until"] is None
    assert paused.json()["next_run_at"] is None
    assert due_index.due_score(str(schedule.pk)) is None

    resumed = post(api, url + "resume/", None)
    assert resumed.status_code == 200, resumed.data
    assert resumed.json()["paused"] is False
    assert resumed.json()["next_run_at"] == "2026-03-01T12:05:00Z"
    assert due_index.due_score(str(schedule.pk)) == to_epoch_ms(datetime(2026, 3, 1, 12, 5, tzinfo=UTC))


def test_pause_until_skips_the_paused_stretch(api, job, frozen):
    schedule = services.schedule_create(job=job, kind="cron", expression="0 * * * *")
    response = post(api, f"/api/schedules/{schedule.pk}/pause/", {"until": "2026-03-01T16:30:00+01:00"})
    assert response.status_code == 200, response.data
    assert response.json()["paused_until"] == "2026-03-01T15:30:00Z"
    assert response.json()["next_run_at"] == "2026-03-01T16:00:00Z"
    assert Schedule.objects.get(pk=schedule.pk).next_run_at == datetime(2026, 3, 1, 16, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"until": "2026-03-01T11:00:00Z"}, "until"),  # in the past
        ({"until": "tomorrow"}, "until"),
        ({"until": "2026-03-02T11:00:00"}, "until"),  # no offset
        ({"untill": "2026-03-02T11:00:00Z"}, "untill"),
    ],
)
def test_bad_pause_is_400_and_changes_nothing(api, job, frozen, body, field, due_index):
    schedule = services.schedule_create(job=job, kind="cron", expression="0 * * * *")
    before = schedule_state(str(schedule.pk), due_index)
    response = post(api, f"/api/schedules/{schedule.pk}/pause/", body)
    assert response.status_code == 400
    assert field in response.json()
    assert schedule_state(str(schedule.pk), due_index) == before


def test_resume_refuses_a_body(api, job):
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    response = post(api, f"/api/schedules/{schedule.pk}/resume/", {"now": True})
    assert response.status_code == 400
    assert response.json() == {"now": ["Unknown field."]}


# --- previews ---------------------------------------------------------------------------------


def test_preview_of_a_saved_schedule(api, job):
    schedule = services.schedule_create(
        job=job, kind="fixed", interval_seconds=3600, anchor=datetime(2026, 1, 1, tzinfo=UTC)
    )
    response = api.get(f"/api/schedules/{schedule.pk}/preview/", {"count": 3, "after": "2026-03-01T10:00:00Z"})
    assert response.status_code == 200, response.data
    # Strictly after: 10:00 itself is on the grid and is not listed.
    assert response.json() == {
        "occurrences": ["2026-03-01T11:00:00+00:00", "2026-03-01T12:00:00+00:00", "2026-03-01T13:00:00+00:00"],
        "moved_by_dst_gap": [],
        "repeated_by_dst_fall_back": [],
        "skipped": [],
    }


def test_preview_defaults_to_ten_after_now_in_the_schedules_zone(api, job, frozen):
    schedule = services.schedule_create(job=job, kind="cron", expression="0 9 * * *", timezone="Asia/Tokyo")
    response = api.get(f"/api/schedules/{schedule.pk}/preview/")
    assert response.status_code == 200
    occurrences = response.json()["occurrences"]
    assert len(occurrences) == 10
    assert occurrences[0] == "2026-03-02T09:00:00+09:00"


def test_preview_accepts_a_plus_decoded_as_a_space(api, job):
    schedule = services.schedule_create(job=job, kind="cron", expression="0 * * * *")
    # An unencoded '+' in a query string arrives as a space.
    response = api.get(f"/api/schedules/{schedule.pk}/preview/?count=1&after=2026-03-01T10:30:00+01:00")
    assert response.status_code == 200, response.data
    assert response.json()["occurrences"] == ["2026-03-01T10:00:00+00:00"]


def test_preview_shows_a_spring_forward_gap(api, job):
    schedule = services.schedule_create(job=job, kind="cron", expression="30 2 * * *", timezone="America/New_York")
    response = api.get(f"/api/schedules/{schedule.pk}/preview/?count=3&after=2026-03-07T12:00:00Z")
    assert response.status_code == 200
    assert response.json() == {
        "occurrences": ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"],
        "moved_by_dst_gap": [{"at": "2026-03-08T03:00:00-04:00", "wall_time": "2026-03-08T02:30:00"}],
        "repeated_by_dst_fall_back": [],
        "skipped": [],
    }


def test_preview_stops_at_the_schedules_bounds(api, job):
    schedule = services.schedule_create(
        job=job,
        kind="fixed",
        interval_seconds=60,
        anchor=datetime(2026, 3, 1, tzinfo=UTC),
        end_at=datetime(2026, 3, 1, 0, 3, tzinfo=UTC),
    )
    response = api.get(f"/api/schedules/{schedule.pk}/preview/?count=100&after=2026-03-01T00:00:00Z")
    assert len(response.json()["occurrences"]) == 3


def test_preview_allows_the_maximum_count(api, job):
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=1)
    response = api.get(f"/api/schedules/{schedule.pk}/preview/?count=1000")
    assert response.status_code == 200
    assert len(response.json()["occurrences"]) == 1000


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("count=1001", "count"),
        ("count=0", "count"),
        ("count=-3", "count"),
        ("count=ten", "count"),
        ("count=2.5", "count"),
        ("after=yesterday", "after"),
        ("after=2026-03-01T10:00:00", "after"),
        ("after=2026-13-01T10:00:00Z", "after"),
        ("after=0001-01-01T00:00:00Z", "after"),
    ],
)
def test_bad_preview_query_is_400(api, job, query, field):
    schedule = services.schedule_create(job=job, kind="cron", expression="0 * * * *")
    response = api.get(f"/api/schedules/{schedule.pk}/preview/?{query}")
    assert response.status_code == 400
    assert field in response.json()


# Every Sunday that is 29 February (a day-of-week starting with '*' makes both days match):
# one every 28 years or so, so a thousand of them run past the year 9999 (once a 500).
RARE_CRON = "0 0 29 2 */7"


def test_preview_past_the_year_9999_is_400(api, job):
    schedule = services.schedule_create(job=job, kind="cron", expression=RARE_CRON)
    response = api.get(f"/api/schedules/{schedule.pk}/preview/?count=1000")
    assert response.status_code == 400, response.data
    assert response.json() == {"count": ["These occurrences run past the year 9999; ask for fewer."]}
    response = api.get(f"/api/schedules/{schedule.pk}/preview/?count=3&after=2026-01-01T00:00:00Z")
    assert response.status_code == 200
    assert response.json()["occurrences"] == [
        "2032-02-29T00:00:00+00:00",
        "2060-02-29T00:00:00+00:00",
        "2088-02-29T00:00:00+00:00",
    ]


def test_unsaved_preview_past_the_year_9999_is_400(api, job):
    fields = {"job": str(job.pk), "kind": "cron", "expression": RARE_CRON, "count": 1000}
    response = post(api, "/api/schedules/preview/", fields)
    assert response.status_code == 400, response.data
    assert response.json() == {"count": ["These occurrences run past the year 9999; ask for fewer."]}


def test_preview_of_an_unsaved_schedule_saves_nothing(api, job, due_index):
    response = post(
        api,
        "/api/schedules/preview/",
        {
            "job": str(job.pk),
            "kind": "cron",
            "expression": "30 2 * * *",
            "timezone": "America/New_York",
            "count": 2,
            "after": "2026-03-07T12:00:00Z",
        },
    )
    assert response.status_code == 200, response.data
    assert response.json() == {
        "occurrences": ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
        "moved_by_dst_gap": [{"at": "2026-03-08T03:00:00-04:00", "wall_time": "2026-03-08T02:30:00"}],
        "repeated_by_dst_fall_back": [],
        "skipped": [],
    }
    assert Schedule.objects.count() == 0
    assert due_index.earliest_due_ms() is None


def test_preview_of_an_unsaved_fixed_schedule_starts_its_grid_now(api, job, frozen):
    response = post(api, "/api/schedules/preview/", {"job": str(job.pk), "kind": "fixed", "interval_seconds": 90})
    assert response.status_code == 200
    assert response.json()["occurrences"][:2] == ["2026-03-01T12:01:30+00:00", "2026-03-01T12:03:00+00:00"]
    assert len(response.json()["occurrences"]) == 10


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "cron", "expression": "not cron"}, "expression"),
        ({"kind": "cron", "expression": "* * * * *", "timezone": "Nowhere/Special"}, "timezone"),
        ({"kind": "fixed", "interval_seconds": 0}, "interval_seconds"),
        ({"kind": "fixed", "interval_seconds": 60, "count": 5000}, "count"),
        ({"kind": "fixed", "interval_seconds": 60, "count": "many"}, "count"),
        ({"kind": "fixed", "interval_seconds": 60, "after": "soon"}, "after"),
        ({"kind": "fixed", "interval_seconds": 60, "save": True}, "save"),
        ({"kind": "fixed", "interval_seconds": 60, "job": "0123456789abcdef01234567"}, "job"),
        ({"kind": "fixed", "interval_seconds": 60, "job": None}, "job"),
    ],
)
def test_bad_unsaved_preview_is_400_and_saves_nothing(api, job, due_index, fields, field):
    response = post(api, "/api/schedules/preview/", {"job": str(job.pk), **fields})
    assert response.status_code == 400, response.data
    assert field in response.json()
    assert Schedule.objects.count() == 0
    assert due_index.earliest_due_ms() is None


def test_unsaved_preview_needs_authentication(job):
    response = APIClient().post("/api/schedules/preview/", {"kind": "fixed"}, format="json")
    assert response.status_code == 401


def test_engine_fields_are_shown_live_from_the_mirror(api, job, due_index):
    from schedules import engine

    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=10, now=lambda: start)
    engine.dispatch_due(due_index, start + timedelta(seconds=10))
    engine.dispatch_due(due_index, start + timedelta(seconds=20))
    # MongoDB has not been told yet (no sync ran); the API still shows what fired.
    assert Schedule.objects.get(pk=schedule.pk).run_count == 0
    detail = api.get(f"/api/schedules/{schedule.pk}/").json()
    listed = api.get("/api/schedules/").json()["results"][0]
    for shown in (detail, listed):
        assert shown["run_count"] == 2
        assert shown["last_run_at"].startswith("2026-03-01T12:00:20")
        assert shown["next_run_at"].startswith("2026-03-01T12:00:30")


def test_writes_answer_with_the_engine_fields_live(api, job, due_index):
    from schedules import engine

    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=10, now=lambda: start)
    engine.dispatch_due(due_index, start + timedelta(seconds=10))
    engine.dispatch_due(due_index, start + timedelta(seconds=20))
    url = f"/api/schedules/{schedule.pk}/"
    answers = {
        "patch": api.patch(url, {"jitter_seconds": 0}, format="json").json(),
        "pause": post(api, f"{url}pause/", {}).json(),
        "resume": post(api, f"{url}resume/", {}).json(),
    }
    assert Schedule.objects.get(pk=schedule.pk).run_count == 0  # MongoDB still lags
    for action, shown in answers.items():
        assert shown["run_count"] == 2, action
        assert shown["last_run_at"].startswith("2026-03-01T12:00:20"), action
