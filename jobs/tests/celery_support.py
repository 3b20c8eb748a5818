"""Real brokers and a real Celery worker for the celery target's tests.

- RabbitMQ at 127.0.0.1:5672 (guest/guest): a vhost of the test run's own, made and removed
  with ``rabbitmqctl``; without it, the default vhost, where the tests' queues (uniquely named)
  are deleted afterwards.
- Redis: the suite's (``REDIS_URL``), every Celery key under a prefix of the test's own
  (kombu's and the result backend's ``global_keyprefix``), deleted afterwards.
- A ``celery worker`` process (solo pool: one task at a time, little CPU) on
  jobs/tests/celery_tasks.py, serving one queue of the test's own; ended by its PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import override_settings

from devtools.pytest_servers import delete_keys_with_prefix
from jobs.tests.celery_tasks import receipts_key

ROOT = Path(__file__).resolve().parents[2]
RABBITMQ = ("127.0.0.1", 5672)


def answers(address: tuple[str, int]) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(address, timeout=1):
        return True
    return False


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of this test run's, removed at the end (the default one without rabbitmqctl)."""
    if not answers(RABBITMQ):
        pytest.skip("no RabbitMQ answers at 127.0.0.1:5672")
    if not shutil.which("rabbitmqctl"):
        yield "/"
        return
    name = f"jstest-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


@dataclass
class Broker:
    """A broker for one test module: its URL and the Celery configuration that keeps it private."""

    kind: str
    url: str
    prefix: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def backend_url(self) -> str:
        return os.environ["REDIS_URL"]

    @property
    def backend_config(self) -> dict[str, Any]:
        return {"result_backend_transport_options": {"global_keyprefix": f"{self.prefix}:"}}


def make_broker(kind: str, vhost: str) -> Broker:
    prefix = f"{os.environ['JOBSCHEDULER_REDIS_PREFIX']}:celery-{uuid.uuid4().hex[:6]}"
    if kind == "rabbitmq":
        path = "" if vhost == "/" else vhost
        return Broker(kind, f"amqp://guest:guest@127.0.0.1:5672/{path}", prefix)
    transport = {"global_keyprefix": f"{prefix}:"}
    return Broker(kind, os.environ["REDIS_URL"], prefix, {"broker_transport_options": transport})


@dataclass
class CeleryWorker:
    """A real ``celery worker`` process serving ``queue`` through ``broker``."""

    broker: Broker
    queue: str
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def receipts(self) -> list[dict[str, Any]]:
        """Every task execution so far, in order."""
        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        return [json.loads(item) for item in client.lrange(receipts_key(self.broker.prefix), 0, -1)]

    def wait_for_receipts(self, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        return wait_until(lambda: (found := self.receipts()) and len(found) >= count and found, timeout, "receipts")

    def settings(self, *, results: bool) -> override_settings:
        """Our side's settings for this broker, with (or without) the result backend."""
        config = {**self.broker.config, **(self.broker.backend_config if results else {})}
        return override_settings(
            JOBSCHEDULER_CELERY_BROKER_URL=self.broker.url,
            JOBSCHEDULER_CELERY_RESULT_BACKEND=self.broker.backend_url if results else "",
            JOBSCHEDULER_CELERY_APP="",
            JOBSCHEDULER_CELERY_CONFIG=config,
        )

    def env(self, *, results: bool) -> dict[str, str]:
        """The same settings as environment variables, for a run_worker process."""
        config = {**self.broker.config, **(self.broker.backend_config if results else {})}
        return {
            "JOBSCHEDULER_CELERY_BROKER_URL": self.broker.url,
            "JOBSCHEDULER_CELERY_RESULT_BACKEND": self.broker.backend_url if results else "",
            "JOBSCHEDULER_CELERY_CONFIG": json.dumps(config),
        }

    def start(self, log_dir: Path) -> CeleryWorker:
        self.log = log_dir / f"celery-{self.queue}.log"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "JSTEST_CELERY_PREFIX": self.broker.prefix,
            "JSTEST_CELERY_BROKER": self.broker.url,
            "JSTEST_CELERY_BACKEND": self.broker.backend_url,
            "JSTEST_CELERY_CONFIG": json.dumps({**self.broker.config, **self.broker.backend_config}),
            "JSTEST_CELERY_REDIS": os.environ["REDIS_URL"],
        }
        command = [sys.executable, "-m", "celery", "-A", "jobs.tests.celery_tasks", "worker", "-P", "solo"]
        command += ["-Q", self.queue, "-n", f"{self.queue}@%h", "-l", "info"]
        command += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        log = self.log
        wait_until(lambda: b" ready." in log.read_bytes() or self._died(), 60, "the Celery worker to start")
        assert self.process.poll() is None, log.read_text()
        return self

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def delete_rabbitmq_queues(url: str, names: list[str]) -> None:
    """Remove queues (and their exchanges, named alike by Celery) from a shared vhost."""
    from kombu import Connection

    with Connection(url) as connection:
        channel = connection.channel()
        for name in names:
            with contextlib.suppress(Exception):
                channel.queue_delete(name)
            with contextlib.suppress(Exception):
                channel.exchange_delete(name)


@contextlib.contextmanager
def celery_worker_on(broker: Broker, vhost: str) -> Iterator[CeleryWorker]:
    worker = CeleryWorker(broker, f"jstest-{uuid.uuid4().hex[:8]}")
    log_dir = Path(os.environ.get("JOBSCHEDULER_TEST_LOG_DIR") or "/tmp")
    try:
        yield worker.start(log_dir)
    finally:
        worker.stop()
        if broker.kind == "rabbitmq" and vhost == "/":
            delete_rabbitmq_queues(broker.url, [worker.queue])
        delete_keys_with_prefix(os.environ["REDIS_URL"], broker.prefix)


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
