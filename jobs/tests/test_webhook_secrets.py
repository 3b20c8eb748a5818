"""Webhook secrets: generated when a webhook job has none, shown once, rotated with an overlap.

Signatures are recomputed here (``standard_webhooks_signature``) rather than taken from the
code under test; deliveries go through the worker's slot to a real receiver on loopback.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from django.test import override_settings

from jobs.models import Job
from jobs.services import job_create, job_rotate_secret, job_update
from jobs.tests.webhook_doubles import Receiver, standard_webhooks_signature
from workers.children import Slot

HTTP_TARGET = {"url": "https://hooks.example.com/run", "method": "POST"}
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.delete_pattern("throttle_*")  # type: ignore[attr-defined]


def key_of(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def webhook(user: Any, **fields: Any) -> Job:
    return job_create(owner=user, **{"name": "hook", "target_type": "http", "target": HTTP_TARGET, **fields})


# --- Generated at creation ----------------------------------------------------------------------


def test_a_webhook_job_created_without_a_secret_gets_a_strong_one(user: Any) -> None:
    job = webhook(user)
    assert job.secret.startswith("whsec_")
    assert len(key_of(job.secret)) == 32
    assert webhook(user, name="other").secret != job.secret


def test_a_given_secret_is_kept_and_other_targets_get_none(user: Any) -> None:
    assert webhook(user, secret="their-own-secret").secret == "their-own-secret"
    python = job_create(owner=user, name="py", target_type="python", target={"task": "demo.tasks.hello"})
    assert python.secret == ""


def test_the_api_shows_a_generated_secret_once(api: Any) -> None:
    created = api.post("/api/jobs/", {"name": "hook", "target_type": "http", "target": HTTP_TARGET}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["has_secret"] is True
    assert Job.objects.get(pk=body["id"]).secret == body["secret"]
    again = api.get(f"/api/jobs/{body['id']}/").json()
    assert "secret" not in again and again["has_secret"] is True
    listed = api.get("/api/jobs/").json()["results"]
    assert all("secret" not in job for job in listed)


def test_the_api_does_not_echo_a_secret_the_creator_gave(api: Any) -> None:
    fields = {"name": "hook", "target_type": "http", "target": HTTP_TARGET, "secret": "mine"}
    created = api.post("/api/jobs/", fields, format="json")
    assert created.status_code == 201
    assert "secret" not in created.json()


# --- Rotation -------------------------------------------------------------------------------------


def test_rotating_keeps_the_previous_secret_for_the_overlap(user: Any) -> None:
    job = webhook(user)
    old = job.secret
    new = job_rotate_secret(job, now=lambda: NOW)
    stored = Job.objects.get(pk=job.pk)
    assert new.startswith("whsec_") and new != old
    assert (stored.secret, stored.previous_secret) == (new, old)
    assert stored.previous_secret_expires_at == NOW + timedelta(hours=24)
    assert stored.signing_secrets(NOW + timedelta(hours=23, minutes=59)) == [new, old]
    assert stored.signing_secrets(NOW + timedelta(hours=24)) == [new]


def test_setting_a_new_secret_is_a_rotation_and_clearing_ends_signing(user: Any) -> None:
    job = webhook(user, secret="first")
    with override_settings(JOBSCHEDULER_WEBHOOK_SECRET_OVERLAP_HOURS=2):
        job_update(job, secret="second", now=lambda: NOW)
    assert (job.previous_secret, job.previous_secret_expires_at) == ("first", NOW + timedelta(hours=2))
    job_update(job, description="unrelated", now=lambda: NOW + timedelta(hours=1))
    assert job.signing_secrets(NOW + timedelta(hours=1)) == ["second", "first"]
    job_update(job, secret="")
    stored = Job.objects.get(pk=job.pk)
    assert (stored.secret, stored.previous_secret, stored.previous_secret_expires_at) == ("", "", None)
    assert stored.signing_secrets(NOW) == []


def test_the_api_rotates_and_shows_the_new_secret_once(api: Any, user: Any, other_user: Any) -> None:
    job = webhook(user)
    old = job.secret
    with time_machine.travel(NOW, tick=False):
        rotated = api.post(f"/api/jobs/{job.pk}/rotate-secret/")
    assert rotated.status_code == 200, rotated.json()
    body = rotated.json()
    assert body["secret"] != old and body["secret"].startswith("whsec_")
    assert body["previous_secret_expires_at"] == "2026-03-02T09:00:00Z"
    stored = Job.objects.get(pk=job.pk)
    assert (stored.secret, stored.previous_secret) == (body["secret"], old)
    assert "previous_secret" not in api.get(f"/api/jobs/{job.pk}/").json()

    python = job_create(owner=user, name="py", target_type="python", target={"task": "demo.tasks.hello"})
    assert api.post(f"/api/jobs/{python.pk}/rotate-secret/").status_code == 400
    theirs = job_create(owner=other_user, name="theirs", target_type="http", target=HTTP_TARGET)
    assert api.post(f"/api/jobs/{theirs.pk}/rotate-secret/").status_code == 404


# --- Deliveries during and after a rotation ---------------------------------------------------------


def test_deliveries_carry_both_signatures_until_the_previous_secret_expires(
    user: Any, receiver: Receiver, allow_loopback: None
) -> None:
    job = job_create(
        owner=user, name="hook", target_type="http", target={"url": f"http://127.0.0.1:{receiver.port}/", "body": "{}"}
    )
    old = job.secret
    new = job_rotate_secret(job, now=lambda: NOW)
    slot = Slot(env={}, output_limit=100)  # webhooks run in the slot's thread, no child
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        assert slot.execute(job, fire_key="s:1", attempt=1).status == "succeeded"
    with time_machine.travel(NOW + timedelta(hours=24), tick=False):
        assert slot.execute(job, fire_key="s:2", attempt=1).status == "succeeded"

    during, after = receiver.requests
    both = f"{standard_webhooks_signature(key_of(new), during)} {standard_webhooks_signature(key_of(old), during)}"
    assert during.header("webhook-signature") == both
    assert after.header("webhook-signature") == standard_webhooks_signature(key_of(new), after)
