"""The dashboard with a real run_scheduler and run_worker: they show up, their runs and lags are
counted as they happen, and the warnings come back when they stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from jobs.services import job_create
from jobscheduler.coordination import Coordination
from schedules import services as schedule_services

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@pytest.fixture
def start(process_env: dict[str, str]) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*command: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "manage.py", *command], cwd=ROOT, env=process_env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_live_processes_their_runs_and_lags_then_the_warnings_when_they_stop(
    db: Any, user: User, start: Callable[..., subprocess.Popen[bytes]], coordination: Coordination
) -> None:
    root = User.objects.create_superuser("root", "root@example.com", "root-password-1")
    client = Client()
    client.force_login(root)

    def figures() -> dict[str, Any]:
        return client.get(reverse("dashboard-data")).json()["figures"]

    texts = [warning["text"] for warning in figures()["warnings"]]
    assert "No scheduler is alive: nothing fires." in texts
    assert any(text.startswith("No worker is alive") for text in texts)
    ok = job_create(owner=user, name="ok", target_type="python", target={"task": "demo.tasks.hello"})
    bad = job_create(
        owner=user, name="bad", target_type="python", target={"task": "demo.tasks.fail", "kwargs": {"message": "nope"}}
    )
    schedule_services.schedule_create(job=ok, kind="fixed", interval_seconds=1)
    schedule_services.schedule_create(job=bad, kind="fixed", interval_seconds=1)
    scheduler = start("run_scheduler", "--name", "dash-s")
    worker = start("run_worker", "--name", "dash-w", "--concurrency", "2", "--processes", "1")

    def counted() -> dict[str, Any] | None:
        found = figures()
        runs = (found["runs"] or {}).get("last_hour", {})
        ready = (
            runs.get("succeeded", 0) >= 2 and runs.get("failed", 0) >= 2 and found["dispatch_lag"]["fires_last_hour"]
        )
        return found if ready and found["schedulers"] and found["workers"] else None

    found = wait_until(counted, 60, "runs of both schedules to be counted")
    (live_scheduler,) = found["schedulers"]
    (live_worker,) = found["workers"]
    assert (live_scheduler["name"], live_scheduler["pid"]) == ("dash-s", scheduler.pid)
    assert (live_worker["name"], live_worker["pid"], live_worker["capacity"]) == ("dash-w", worker.pid, 2)
    assert found["dispatch_lag"]["p50_ms"] is not None
    assert any(failure["error"].endswith("nope") for failure in found["latest_failures"])
    assert 0 < found["runs"]["failure_rate_last_hour"] < 1
    assert not any(warning["text"].startswith("No ") for warning in found["warnings"])

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    wait_until(
        lambda: any(warning["text"].startswith("No worker is alive") for warning in figures()["warnings"]),
        30,
        "the no-worker warning",
    )
    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=30) == 0
    texts = [warning["text"] for warning in figures()["warnings"]]
    assert "No scheduler is alive: nothing fires." in texts
