"""Real run_worker processes sending celery targets to a real Celery worker, killed with SIGKILL.

Worker A reaches MongoDB through a proxy of the test's that holds the first write to the runs
collection: A has sent the task (the Celery worker ran it, the send is marked) but cannot record
the run, and is killed there, between sending and recording. Worker B takes the attempt over:
the task is sent once, its id is the fire key, and the run is recorded once. Then the same with
A killed after recording the hand-off, while the task runs: B's results watcher records the
outcome. Both brokers: RabbitMQ (a vhost of the test run's) and Redis (a key prefix).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from jobs.models import Job, Run
from jobs.services import job_create
from jobs.targets import celery
from jobs.targets.celery import SendMarks
from jobs.tests.celery_support import (
    CeleryWorker,
    celery_worker_on,
    make_broker,
    rabbitmq_vhost,  # noqa: F401 (a fixture)
    wait_until,
)
from schedules import services as schedule_services

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUNS_COLLECTION = b"jobs_run"
WRITE_COMMANDS = {b"insert", b"update", b"findAndModify", b"delete"}


def writes_runs(message: bytes) -> bool:
    """Whether a MongoDB wire message (OP_MSG) is a write command on the runs collection."""
    if len(message) < 21 or int.from_bytes(message[12:16], "little") != 2013:
        return False
    position = 20  # header (16 bytes) and flag bits (4)
    while position < len(message):
        kind = message[position]
        position += 1
        if kind == 1:  # a document sequence: its size, then skip it
            position += int.from_bytes(message[position : position + 4], "little")
            continue
        document = message[position:]
        element_type, name_end = document[4], document.index(b"\0", 5)
        name = document[5:name_end]
        if element_type != 2:  # the command's first field names the collection, as a string
            return False
        size = int.from_bytes(document[name_end + 1 : name_end + 5], "little")
        collection = document[name_end + 5 : name_end + 5 + size - 1]
        return name in WRITE_COMMANDS and collection == RUNS_COLLECTION
    return False


class HoldingProxy:
    """A TCP proxy to MongoDB that passes everything until the first write to the runs
    collection; that write, and everything after it, is held (never forwarded)."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.held = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self.listener]

    def start(self) -> HoldingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            threading.Thread(target=self._requests, args=(client, server), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket) -> None:
        buffer = b""
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                buffer += data
                while len(buffer) >= 4 and len(buffer) >= (length := int.from_bytes(buffer[:4], "little")):
                    message, buffer = buffer[:length], buffer[length:]
                    if self.held.is_set() or writes_runs(message):
                        self.held.set()
                        continue
                    server.sendall(message)
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.close()

    def _replies(self, server: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                client.sendall(data)
        with contextlib.suppress(OSError):
            client.close()


@pytest.fixture(scope="module", params=["rabbitmq", "redis"])
def celery_worker(request: Any, rabbitmq_vhost: str) -> Iterator[CeleryWorker]:  # noqa: F811
    with celery_worker_on(make_broker(request.param, rabbitmq_vhost), rabbitmq_vhost) as worker:
        yield worker


@pytest.fixture
def proxy() -> Iterator[HoldingProxy]:
    address = urlsplit(os.environ["MONGODB_URI"])
    holding = HoldingProxy((address.hostname or "127.0.0.1", address.port or 27017)).start()
    yield holding
    holding.close()


@pytest.fixture
def start(process_env: dict[str, str], celery_worker: CeleryWorker) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a run_worker process (ended by PID at the end of the test)."""
    started: list[subprocess.Popen[bytes]] = []
    env = {
        **process_env,
        **celery_worker.env(results=True),
        "JOBSCHEDULER_WORKER_TAKEOVER_SECONDS": "1.5",
        "JOBSCHEDULER_WORKER_PROCESSES": "1",
    }

    def start(name: str, **more_env: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "manage.py", "run_worker", "--name", name, "--concurrency", "2"]
        process = subprocess.Popen(command, cwd=ROOT, env={**env, **more_env})
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


def celery_job(user: Any, celery_worker: CeleryWorker, task: str, **target: Any) -> Job:
    with celery_worker.settings(results=True):
        return job_create(
            owner=user,
            name=f"celery-{uuid.uuid4().hex[:6]}",
            target_type="celery",
            target={"task": task, "queue": celery_worker.queue, **target},
        )


def dispatch(runqueue: Any, job: Job, nominal_ms: int) -> str:
    """An occurrence of a new hourly schedule of ``job`` on its stream, as the scheduler puts it."""
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=3600)
    sid = str(schedule.pk)
    fields = {"fk": f"{sid}:{nominal_ms}", "s": sid, "j": str(job.pk), "n": str(nominal_ms), "t": "schedule"}
    runqueue.ensure_groups()
    runqueue.client.xadd(runqueue.stream_key(runqueue.keyspace.shard_of(sid)), fields)
    return f"{sid}:{nominal_ms}"


def recorded(fire_key: str) -> list[tuple[int, str, str]]:
    return list(Run.objects.filter(fire_key=fire_key).order_by("attempt").values_list("attempt", "status", "worker"))


def only_sends(celery_worker: CeleryWorker, before: int) -> list[str]:
    """The ids of every task the Celery worker ran since ``before``, once a sentinel sent now has
    come through: a copy queued before it would have come first (one queue, tasks in order)."""
    sentinel = f"sentinel-{uuid.uuid4().hex[:6]}"
    with celery_worker.settings(results=False):
        celery.celery_app().send_task("jstest.record", task_id=sentinel, queue=celery_worker.queue, ignore_result=True)
    found = wait_until(
        lambda: (got := celery_worker.receipts()[before:]) and got[-1]["id"] == sentinel and got, 30, "the sentinel"
    )
    return [receipt["id"] for receipt in found[:-1]]


def test_a_worker_killed_between_sending_and_recording_sends_once_and_records_once(
    user, runqueue, keyspace, celery_worker, proxy, start
):
    before = len(celery_worker.receipts())
    key = dispatch(runqueue, celery_job(user, celery_worker, "jstest.record", args=["once"]), 1000)
    uri = f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true"
    first = start("A", MONGODB_URI=uri)
    wait_until(proxy.held.is_set, 60, "worker A to try recording the run")
    wait_until(lambda: SendMarks(keyspace).read(key, 1) == ("sent", "A"), 30, "worker A's send")
    (receipt,) = celery_worker.wait_for_receipts(before + 1)[before:]
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert recorded(key) == []  # A sent the task and died before recording anything

    start("B")
    run = wait_until(
        lambda: (runs := list(Run.objects.filter(fire_key=key))) and runs[0].status == "succeeded" and runs[0],
        60,
        "worker B to record the run",
    )
    assert recorded(key) == [(1, "succeeded", "B")]
    assert run.external_id == key
    assert "by worker A, which stopped before recording it; not sent again." in run.output
    assert run.return_value == {"args": ["once"], "kwargs": {}}
    assert (receipt["id"], receipt["fire_key"], receipt["attempt"]) == (key, key, 1)
    assert only_sends(celery_worker, before) == [key]
    assert SendMarks(keyspace).read(key, 1) is None


def test_a_worker_killed_while_its_task_runs_leaves_the_outcome_to_another_worker(
    user, runqueue, keyspace, celery_worker, start
):
    before = len(celery_worker.receipts())
    key = dispatch(runqueue, celery_job(user, celery_worker, "jstest.sleep", args=[3]), 1000)
    first = start("A")
    wait_until(lambda: recorded(key) == [(1, "running", "A")], 60, "worker A to record the hand-off")
    celery_worker.wait_for_receipts(before + 1)  # the task is running
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    start("B")
    run = wait_until(
        lambda: (runs := list(Run.objects.filter(fire_key=key))) and runs[0].status == "succeeded" and runs[0],
        60,
        "worker B to record the task's outcome",
    )
    assert recorded(key) == [(1, "succeeded", "A")]  # A's attempt, its outcome recorded by B's watcher
    assert run.return_value == "slept 3s"
    assert only_sends(celery_worker, before) == [key]
