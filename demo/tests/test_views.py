"""The demo's page that enqueues a Django Task: the run appears in the admin and its result reads back."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from jobs.models import Run
from jobs.runqueue import RunQueue
from workers import children
from workers.handler import Handled, handle
from workers.worker import Worker, WorkerOptions


@pytest.fixture
def staff_client(db: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "root-password-1"))
    return client


def test_a_view_enqueues_a_task_and_its_run_is_in_the_admin(staff_client: Client, runqueue: RunQueue) -> None:
    response = staff_client.post(reverse("demo-hello"), {"name": "visitor"})
    assert response.status_code == 202
    body = response.json()
    run = Run.objects.get(fire_key=body["id"])
    assert (run.status, run.trigger) == ("pending", "manual")
    listing = staff_client.get(body["runs"]).content.decode()
    assert body["id"] in listing and "demo.tasks.hello" in listing

    runqueue.ensure_groups()
    worker = Worker(runqueue, name="w1", options=WorkerOptions(concurrency=1, lookup_cache_seconds=0))
    slot = children.Slot(children.child_env())
    try:
        (entry,) = worker.read(1)
        assert handle(worker, entry, slot) == Handled.SUCCEEDED
    finally:
        slot.close()
    result = staff_client.get(body["result"]).json()
    assert result == {
        "id": body["id"],
        "status": "SUCCESSFUL",
        "attempts": 1,
        "return_value": "hello, visitor",
        "errors": [],
    }


def test_the_views_need_a_signed_in_user_and_a_post(db: Any) -> None:
    client = Client()
    assert client.post(reverse("demo-hello")).status_code == 302  # to the login page
    staff = User.objects.create_superuser("root", "root@example.com", "root-password-1")
    client.force_login(staff)
    assert client.get(reverse("demo-hello")).status_code == 405
    assert client.get(reverse("demo-hello-result", args=["manual:none:here"])).status_code == 404
