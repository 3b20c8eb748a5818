"""A cron schedule's daylight saving choice through the REST API: saved, validated, previewed."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache

from schedules.models import Schedule


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.delete_pattern("throttle_*")  # type: ignore[attr-defined]


def post(api: Any, url: str, data: Any) -> Any:
    return api.post(url, data, format="json")


def cron(job: Any, **fields: Any) -> dict[str, Any]:
    return {"job": str(job.pk), "kind": "cron", "expression": "30 2 * * *", "timezone": "America/New_York", **fields}


def test_create_defaults_to_debians_rules_and_takes_a_choice(api: Any, job: Any, due_index: Any) -> None:
    plain = post(api, "/api/schedules/", cron(job))
    assert plain.status_code == 201, plain.data
    assert (plain.json()["dst_gap"], plain.json()["dst_repeat"]) == ("shift", "once")
    chosen = post(api, "/api/schedules/", cron(job, dst_gap="skip", dst_repeat="twice"))
    assert chosen.status_code == 201, chosen.data
    body = chosen.json()
    assert (body["dst_gap"], body["dst_repeat"]) == ("skip", "twice")
    assert body["description"].endswith("; not on days clocks skip its time; twice when clocks go back over its time")
    saved = Schedule.objects.get(pk=body["id"])
    assert (saved.dst_gap, saved.dst_repeat) == ("skip", "twice")
    assert due_index.state(body["id"])["dst_gap"] == "skip"
    patched = api.patch(f"/api/schedules/{body['id']}/", {"dst_gap": "shift"}, format="json")
    assert patched.status_code == 200, patched.data
    assert due_index.state(body["id"])["dst_gap"] == "shift"


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"dst_gap": "later"}, "dst_gap", "is not a valid choice"),
        ({"dst_repeat": "thrice"}, "dst_repeat", "is not a valid choice"),
        ({"expression": "*/15 * * * *", "dst_gap": "skip"}, "dst_gap", "follows elapsed time"),
        ({"expression": "0 30 2 * * *", "dst_repeat": "twice"}, "dst_repeat", "follows elapsed time"),
    ],
)
def test_a_choice_that_cannot_apply_is_400_naming_the_field(
    api: Any, job: Any, fields: dict[str, Any], field: str, words: str
) -> None:
    response = post(api, "/api/schedules/", cron(job, **fields))
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert words in " ".join(response.json()[field])
    assert Schedule.objects.count() == 0


def test_preview_marks_skipped_days_and_both_passes(api: Any, job: Any) -> None:
    created = post(api, "/api/schedules/", cron(job, dst_gap="skip")).json()
    spring = api.get(f"/api/schedules/{created['id']}/preview/", {"count": 2, "after": "2026-03-07T12:00:00Z"})
    assert spring.status_code == 200
    assert spring.json() == {
        "occurrences": ["2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"],
        "moved_by_dst_gap": [],
        "repeated_by_dst_fall_back": [],
        "skipped": [
            {
                "day": "2026-03-08",
                "reason": "dst_gap",
                "message": "02:30 is not on the clock on 2026-03-08 (clocks spring forward): "
                "skipped that day (dst_gap: skip).",
                "wall_time": "2026-03-08T02:30:00",
            }
        ],
    }
    autumn = post(
        api,
        "/api/schedules/preview/",
        cron(job, expression="30 1 * * *", dst_repeat="twice", count=3, after="2026-10-31T12:00:00Z"),
    )
    assert autumn.status_code == 200, autumn.data
    assert autumn.json() == {
        "occurrences": ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00"],
        "moved_by_dst_gap": [],
        "repeated_by_dst_fall_back": [
            {"at": "2026-11-01T01:30:00-04:00", "wall_time": "2026-11-01T01:30:00", "pass_number": 1},
            {"at": "2026-11-01T01:30:00-05:00", "wall_time": "2026-11-01T01:30:00", "pass_number": 2},
        ],
        "skipped": [],
    }


def test_the_document_describes_the_choice_with_examples(api: Any) -> None:
    document = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    fields = document["components"]["schemas"]["Schedule"]["properties"]
    for name, values in (("dst_gap", ["shift", "skip"]), ("dst_repeat", ["once", "twice"])):
        assert "fixed minute and hour" in fields[name]["description"]
        enum = document["components"]["schemas"][fields[name]["allOf"][0]["$ref"].split("/")[-1]]["enum"]
        assert enum == values
    create = document["paths"]["/api/schedules/"]["post"]["requestBody"]["content"]["application/json"]
    assert any(example["value"].get("dst_gap") == "skip" for example in create["examples"].values())
    preview = document["paths"]["/api/schedules/{id}/preview/"]["get"]["responses"]["200"]["content"]
    assert any(example["value"]["skipped"] for example in preview["application/json"]["examples"].values())
