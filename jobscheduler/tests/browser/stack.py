"""The live service the browser tests drive: web server, scheduler, worker and webhook receiver, as real processes.

Each is a ``manage.py`` command on this test run's MongoDB database and a Redis prefix of its
own, logging to a file; they are ended by PID, receiver last. The web server is the one
``bin/run`` uses (runserver, no reloader) on a free loopback port; webhooks may reach 127.0.0.1,
where the demo's receiver listens (its secret is ``demo.receiver.DEMO_SECRET``). A secret the
admin generates is only known once shown: ``receiver_knowing`` serves one more receiver, in a
thread of the test, that holds that secret alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import redis

from demo.receiver import PATH as RECEIVER_PATH
from demo.receiver import Receiver, serve
from devtools.servers import free_port, port_open
from jobscheduler.coordination import SCHEDULERS, WORKERS, Coordination
from jobscheduler.keyspace import Keyspace

ROOT = Path(__file__).resolve().parents[3]
SHARDS = 4
START_SECONDS = 60  # a cold Django start on a busy two-core machine takes a few seconds
STOP_SECONDS = 20
# The superuser the browser signs in as (the live fixture creates it).
ADMIN_USERNAME = "browser-admin"
ADMIN_PASSWORD = "browser-admin-password-1"
T = TypeVar("T")


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something true; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(interval)


@dataclass
class LiveStack:
    """The processes and where to reach them; ``start`` brings them up, ``stop`` ends them."""

    env: dict[str, str]  # the processes' environment: database, Redis prefix, allowed webhook hosts
    log_dir: Path
    redis_url: str
    prefix: str
    web_port: int = field(default_factory=free_port)
    receiver_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def receiver_url(self) -> str:
        return receiver_url(self.receiver_port)

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def coordination(self) -> Coordination:
        return Coordination(Keyspace(redis.Redis.from_url(self.redis_url), self.prefix, SHARDS))

    def start(self) -> None:
        """Start everything and wait until each answers: ports open, heartbeats seen."""
        self._run("receiver", "demo_receiver", "--port", str(self.receiver_port))
        self._run("web", "runserver", f"127.0.0.1:{self.web_port}", "--noreload")
        self._run("scheduler", "run_scheduler", "--name", "browser-scheduler")
        self._run("worker", "run_worker", "--name", "browser-worker", "--concurrency", "2")
        coordination = self.coordination()
        try:
            for name, ready in (
                ("receiver", lambda: port_open("127.0.0.1", self.receiver_port)),
                ("web", lambda: port_open("127.0.0.1", self.web_port)),
                ("scheduler", lambda: "browser-scheduler" in coordination.beats(SCHEDULERS)),
                ("worker", lambda: "browser-worker" in coordination.beats(WORKERS)),
            ):
                self._wait_ready(name, ready)
        finally:
            coordination.client.close()

    def _run(self, name: str, *command: str) -> None:
        out = self.log(name).open("ab")
        self._logs.append(out)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
        )

    def _wait_ready(self, name: str, ready: Callable[[], bool]) -> None:
        wait_until(lambda: self._alive(name) and ready(), START_SECONDS, f"{name} (log: {self.log(name)})")

    def _alive(self, name: str) -> bool:
        code = self.processes[name].poll()
        assert code is None, f"{name} exited with {code}; its log {self.log(name)} ends:\n{self.tail(name)}"
        return True

    def tail(self, name: str, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log(name).read_text(errors="replace").splitlines()[-lines:])
        return ""

    def deliveries(self) -> list[dict[str, Any]]:
        """What the receiver logged, one dict per webhook delivery it judged."""
        return delivery_lines(self.log("receiver").read_text(errors="replace"))

    def stop(self) -> None:
        """SIGTERM each process by PID (the receiver last, after the worker), SIGKILL any that hangs."""
        for name in ("web", "scheduler", "worker", "receiver"):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for out in self._logs:
            out.close()


def delivery_lines(log: str) -> list[dict[str, Any]]:
    """A receiver's JSON lines about deliveries (not its other lines), in order."""
    found = []
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and "webhook_id" in entry:
                found.append(entry)
    return found


def receiver_url(port: int) -> str:
    return f"http://127.0.0.1:{port}{RECEIVER_PATH}"


@contextlib.contextmanager
def receiver_knowing(secret: str, port: int) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The demo's receiver on ``port``, verifying with ``secret`` alone, while the block runs.

    Yields a function returning the deliveries it judged so far. It runs in a thread of this
    process (the secret was learned from a page mid-test); the live worker delivers to it
    like any other receiver.
    """
    out = io.StringIO()
    receiver = Receiver(port, secret=secret, out=out)
    thread = threading.Thread(target=serve, args=(receiver,), name=f"receiver-{port}", daemon=True)
    thread.start()
    try:
        yield lambda: delivery_lines(out.getvalue())
    finally:
        receiver.shutdown()
        thread.join(STOP_SECONDS)
