"""Real run_worker processes on one Redis and MongoDB: takeover after SIGKILL, SIGTERM, webhooks.

Each test starts its own processes (with this test's private Redis prefix) and ends them by
PID. Takeover is set to 1.5 s here so a dead worker's run moves on quickly.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from jobs.models import Job, Run
from jobs.runqueue import WORKER_GROUP
from jobs.services import job_create, run_now
from jobscheduler.coordination import Coordination
from schedules import services as schedule_services

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@pytest.fixture
def process_env(process_env: dict[str, str]) -> dict[str, str]:
    return {
        **process_env,
        "JOBSCHEDULER_WORKER_TAKEOVER_SECONDS": "1.5",
        "JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    }


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
    codes = {}
    for process in started:
        try:
            codes[process.pid] = (process.args[2], process.wait(timeout=30))  # type: ignore[index]
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    # Workers stop cleanly on SIGTERM (or were SIGKILLed by the test).
    assert {code for command, code in codes.values() if command == "run_worker"} <= {0, -signal.SIGKILL}


def wait_until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def wait_for_workers(coordination: Coordination, *names: str) -> None:
    wait_until(lambda: set(names) <= set(coordination.beats("workers")), 30, f"workers {names} to come up")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(") ", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def sleeper(user: Any, seconds: float, **fields: Any) -> Job:
    return job_create(
        owner=user,
        name=f"sleep-{seconds}",
        target_type="python",
        target={"task": "demo.tasks.sleep", "kwargs": {"seconds": seconds}},
        **fields,
    )


def attempts(key: str) -> list[tuple[int, str, str, str]]:
    return list(
        Run.objects.filter(fire_key=key).order_by("attempt").values_list("attempt", "trigger", "status", "worker")
    )


def test_a_worker_killed_mid_run_leaves_the_run_to_the_other_recorded_once(user, runqueue, start, coordination):
    job = sleeper(user, 3, timeout_seconds=30)
    workers = {name: start("run_worker", "--name", name, "--concurrency", "1") for name in ("wa", "wb")}
    wait_for_workers(coordination, "wa", "wb")
    key = run_now(job, user=user)
    running = wait_until(
        lambda: Run.objects.filter(fire_key=key, attempt=1, status="running").first(), 30, "the run to start"
    )
    victim_name = running.worker
    survivor_name = "wb" if victim_name == "wa" else "wa"
    victim = workers[victim_name]
    # Recorded as running once it has run 50 ms, which on a busy machine can be before its
    # run process is up: wait for that process.
    its_children = wait_until(lambda: children_of(victim.pid), 10, "the worker's run process")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    # The task's process dies with its worker (PR_SET_PDEATHSIG); it does not run on unsupervised.
    wait_until(lambda: not any(alive(pid) for pid in its_children), 5, "the dead worker's run process to end")
    wait_until(lambda: Run.objects.filter(fire_key=key, status="succeeded").exists(), 30, "the run to finish")
    finished_after = time.monotonic() - killed_at
    time.sleep(1.5)  # nothing more turns up
    recorded = attempts(key)
    assert recorded == [(1, "manual", "failed", victim_name), (2, "retry", "succeeded", survivor_name)]
    lost = Run.objects.get(fire_key=key, attempt=1)
    assert lost.error == f"Worker {victim_name} lost mid-run; taken over by {survivor_name}."
    assert runqueue.client.xlen(runqueue.stream_key(runqueue.keyspace.shard_of(str(job.pk)))) == 0
    print(f"run finished {finished_after:.1f}s after the kill (takeover 1.5 s + a 3 s task)")


def test_sigterm_finishes_the_current_run_and_takes_no_new_one(user, runqueue, coordination, start):
    job = sleeper(user, 2)
    worker = start("run_worker", "--name", "wt", "--concurrency", "1")
    wait_for_workers(coordination, "wt")
    key = run_now(job, user=user)
    wait_until(lambda: Run.objects.filter(fire_key=key, status="running").exists(), 30, "the run to start")
    worker.send_signal(signal.SIGTERM)
    later = run_now(job, user=user)
    assert worker.wait(timeout=30) == 0
    assert attempts(key) == [(1, "manual", "succeeded", "wt")]
    assert Run.objects.get(fire_key=later).status == "pending"
    shard = runqueue.keyspace.shard_of(str(job.pk))
    assert runqueue.client.xlen(runqueue.stream_key(shard)) == 1
    pending: Any = runqueue.client.xpending(runqueue.stream_key(shard), WORKER_GROUP)
    assert pending["pending"] == 0  # left for any worker, not held by the one that stopped
    assert "wt" not in coordination.beats("workers")


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook receiver that checks the Standard Webhooks signature with its own HMAC code."""

    secret = ""
    answers: list[int] = []
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        msg_id, stamp = self.headers["webhook-id"], self.headers["webhook-timestamp"]
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        signed = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(signed).decode()
        offered = self.headers["webhook-signature"].split()
        self.seen.append(
            {
                "id": msg_id,
                "idempotency": self.headers["Idempotency-Key"],
                "attempt": self.headers["X-Jobscheduler-Attempt"],
                "valid": any(hmac.compare_digest(expected, sig) for sig in offered),
                "fresh": abs(time.time() - int(stamp)) < 60,
                "body": body,
            }
        )
        status = self.answers.pop(0) if self.answers else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(settings: Any) -> Iterator[str]:
    # Loopback allowed here too (not only in the workers' environment): the job is saved here.
    settings.JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    Receiver.secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    Receiver.answers, Receiver.seen = [503], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_http_target_reaches_a_real_receiver_signed_and_retried_with_the_same_id(user, start, receiver, coordination):
    job = job_create(
        owner=user,
        name="hook",
        target_type="http",
        target={"url": receiver, "method": "POST", "body": '{"event": "tick"}'},
        secret=Receiver.secret,
        timeout_seconds=5,
        max_attempts=2,
        retry_backoff_seconds=1,
    )
    start("run_worker", "--name", "wh")
    wait_for_workers(coordination, "wh")
    key = run_now(job, user=user)
    wait_until(lambda: Run.objects.filter(fire_key=key, status="succeeded").exists(), 30, "the delivery")
    assert [(seen["id"], seen["idempotency"], seen["attempt"]) for seen in Receiver.seen] == [
        (key, key, "1"),
        (key, key, "2"),
    ]
    assert all(seen["valid"] and seen["fresh"] and seen["body"] == b'{"event": "tick"}' for seen in Receiver.seen)
    first, second = Run.objects.filter(fire_key=key).order_by("attempt")
    assert (first.status, first.output, first.error) == ("failed", "HTTP 503\nok", "HTTP 503 Service Unavailable")
    assert (second.status, second.trigger, second.output) == ("succeeded", "retry", "HTTP 200\nok")
    assert first.finished_at is not None and second.started_at is not None
    gap = (second.started_at - first.finished_at).total_seconds()
    assert 0.8 <= gap < 3  # 1 s backoff +-20 %, released within a quarter second


def test_scheduled_occurrences_are_run_and_recorded_once(user, start, coordination):
    job = job_create(owner=user, name="tick", target_type="python", target={"task": "demo.tasks.hello"})
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1)
    start("run_worker", "--name", "w1", "--concurrency", "2")
    start("run_worker", "--name", "w2", "--concurrency", "2")
    start("run_scheduler", "--name", "s1")
    wait_for_workers(coordination, "w1", "w2")
    wait_until(lambda: Run.objects.filter(schedule=schedule, status="succeeded").count() >= 4, 30, "four runs")
    recorded = list(Run.objects.filter(schedule=schedule).values_list("fire_key", "attempt", "status", "trigger"))
    assert len({(key, attempt) for key, attempt, _, _ in recorded}) == len(recorded)
    assert {status for _, _, status, _ in recorded} <= {"succeeded", "pending", "running"}
    assert {trigger for _, _, _, trigger in recorded} == {"schedule"}
