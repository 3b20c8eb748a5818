"""Outages and faults with real processes: schedulers and workers ride out a MongoDB or Redis
outage, and survive SIGKILLs, a Redis flush and a MongoDB restart without losing or doubling a run.

Each test has servers of its own (a SecantusDB and a redis-server on free loopback ports), so
it can kill and restart them without disturbing the suite's; they and every process started
here are ended by PID. The backoff cap is 1 s here (10 s by default), so recovery is quick.
JOBSCHEDULER_FAULT_SECONDS lengthens the fault test (40 s of faults by default).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import itertools
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from django.contrib.auth.models import User
from django.db import connections
from django.test import override_settings
from django_mongodb_backend.base import DatabaseWrapper

from devtools.servers import Servers
from jobs.models import Job, Run
from jobs.runqueue import RunQueue
from jobs.services import job_create
from jobscheduler import health
from jobscheduler.coordination import SCHEDULERS, WORKERS, Coordination
from jobscheduler.epoch import to_epoch_ms
from jobscheduler.keyspace import Keyspace, default_keyspace, use_keyspace
from schedules import services as schedule_services
from schedules.models import Schedule

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FAULT_SECONDS = float(os.environ.get("JOBSCHEDULER_FAULT_SECONDS", "40"))
SHARDS = 4


# --- servers of the test's own --------------------------------------------------------------
@dataclass
class Private:
    """A SecantusDB and a redis-server of this test's, which it may kill, restart and flush."""

    tmp: Path
    servers: Servers = field(default_factory=Servers)
    mongodb_port: int = 0
    redis_port: int = 0
    database: str = field(default_factory=lambda: f"outage_{uuid.uuid4().hex[:8]}")
    prefix: str = field(default_factory=lambda: f"jsoutage:{uuid.uuid4().hex[:8]}")
    mongodb: subprocess.Popen[bytes] | None = None
    redis: subprocess.Popen[bytes] | None = None

    @property
    def mongodb_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongodb_port}/"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start_mongodb(self) -> None:
        # Synced on commit: a SIGKILLed server keeps what it acknowledged (a journaled mongod).
        uri = self.servers.start_secantus(
            str(self.tmp / "mongodb"), self.tmp, self.mongodb_port or None, options=["--sync-on-commit"]
        )
        self.mongodb_port = int(uri.rsplit(":", 1)[1].strip("/"))
        self.mongodb = self.servers.processes[-1]

    def start_redis(self) -> None:
        url = self.servers.start_redis(self.tmp, self.redis_port or None)
        self.redis_port = int(url.rsplit(":", 1)[1].split("/")[0])
        self.redis = self.servers.processes[-1]

    def kill_mongodb(self) -> None:
        assert self.mongodb is not None
        self.mongodb.kill()
        self.mongodb.wait()

    def kill_redis(self) -> None:
        assert self.redis is not None
        self.redis.kill()
        self.redis.wait()

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "jobscheduler.settings",
            "DJANGO_DEBUG": "1",
            "MONGODB_URI": self.mongodb_uri,
            "MONGODB_DB": self.database,
            "MONGODB_TIMEOUT_MS": "2000",
            "REDIS_URL": self.redis_url,
            "JOBSCHEDULER_REDIS_PREFIX": self.prefix,
            "JOBSCHEDULER_SHARDS": str(SHARDS),
            "JOBSCHEDULER_LOG_LEVEL": "INFO",  # to files in the test's folder
            "JOBSCHEDULER_OUTAGE_BACKOFF_CAP_SECONDS": os.environ.get("JOBSCHEDULER_OUTAGE_BACKOFF_CAP_SECONDS", "1"),
            "JOBSCHEDULER_WORKER_TAKEOVER_SECONDS": "2",
            "JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            **extra,
        }


@pytest.fixture
def private(tmp_path: Path, django_db_blocker: Any) -> Iterator[Private]:
    """Private servers, migrated; this process's ORM and Redis keys point at them meanwhile."""
    servers = Private(tmp_path)
    try:
        servers.start_mongodb()
        servers.start_redis()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=servers.env(), check=True, timeout=120
        )
        wrapper = connections["default"]
        saved = {"HOST": wrapper.settings_dict["HOST"], "NAME": wrapper.settings_dict["NAME"]}
        # The backend keeps one MongoClient per alias: put the suite's aside for this test.
        suite_pool = DatabaseWrapper._connection_pools.pop("default", None)
        wrapper.connection = None
        wrapper.__dict__.pop("database", None)  # a cached property: the suite's database
        wrapper.settings_dict.update(HOST=servers.mongodb_uri, NAME=servers.database)
        client = redis.Redis.from_url(servers.redis_url)
        previous = use_keyspace(Keyspace(client, servers.prefix, SHARDS))
        try:
            with django_db_blocker.unblock():
                yield servers
                with contextlib.suppress(Exception):
                    cast(Any, wrapper).close_pool()
        finally:
            use_keyspace(previous)
            client.close()
            wrapper.connection = None
            wrapper.__dict__.pop("database", None)
            wrapper.settings_dict.update(saved)
            DatabaseWrapper._connection_pools.pop("default", None)
            if suite_pool is not None:
                DatabaseWrapper._connection_pools["default"] = suite_pool
    finally:
        servers.servers.stop()


# --- processes ------------------------------------------------------------------------------
@dataclass
class Processes:
    """run_scheduler and run_worker processes, each logging to a file, ended by PID."""

    private: Private
    env: dict[str, str]
    started: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)
    kills: list[tuple[float, str]] = field(default_factory=list)  # (time, name) of each SIGKILL

    def start(self, command: str, name: str) -> subprocess.Popen[bytes]:
        log = self.private.tmp / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "manage.py", command, "--name", name],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started.append((name, process, log))
        return process

    def running(self, command: str) -> list[tuple[str, subprocess.Popen[bytes]]]:
        return [
            (name, process)
            for name, process, _ in self.started
            if process.poll() is None and process.args[2] == command  # type: ignore[index]
        ]

    def kill(self, name: str, process: subprocess.Popen[bytes]) -> None:
        process.kill()
        process.wait()
        self.kills.append((time.time(), name))

    def stop(self, command: str) -> dict[str, int]:
        """SIGTERM every running process of ``command``; their exit codes by name."""
        live = self.running(command)
        for _, process in live:
            process.send_signal(signal.SIGTERM)
        return {name: process.wait(timeout=60) for name, process in live}

    def logs(self) -> str:
        return "".join(log.read_text(errors="replace") for _, _, log in self.started if log.exists())

    def end(self) -> None:
        for _, process, _ in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def processes(private: Private) -> Iterator[Processes]:
    started = Processes(private, private.env())
    yield started
    started.end()


# --- a signed-webhook receiver ----------------------------------------------------------------
class Receiver(http.server.BaseHTTPRequestHandler):
    """Counts deliveries by (webhook-id, attempt), checking each signature with its own HMAC code."""

    secret = ""
    url = ""
    deliveries: list[tuple[float, str, int, bool]] = []  # (time, webhook-id, attempt, valid)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        msg_id, stamp = self.headers["webhook-id"], self.headers["webhook-timestamp"]
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        signed = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        valid = "v1," + base64.b64encode(signed).decode() in self.headers["webhook-signature"].split()
        self.deliveries.append((time.time(), msg_id, int(self.headers["X-Jobscheduler-Attempt"]), valid))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    Receiver.deliveries = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield Receiver.url
    server.shutdown()
    server.server_close()


def webhook_schedules(url: str, count: int) -> tuple[Job, list[Schedule]]:
    """A signed webhook job with ``count`` schedules every second, spread over the second."""
    owner = User.objects.create_superuser(f"ops-{uuid.uuid4().hex[:6]}", "ops@example.com", "ops-password-1")
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):  # the receiver is on loopback
        job = job_create(
            owner=owner,
            name="hook",
            target_type="http",
            target={"url": url, "method": "POST", "body": '{"event": "tick"}'},
            secret=Receiver.secret,
            timeout_seconds=5,
            max_attempts=5,
            retry_backoff_seconds=1,
        )
    anchor = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    schedules = [
        schedule_services.schedule_create(
            job=job, kind="fixed", interval_seconds=1, anchor=anchor + timedelta(milliseconds=index * 1000 // count)
        )
        for index in range(count)
    ]
    return job, schedules


# --- waiting and checking -------------------------------------------------------------------
def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def wait_for_beats(kind: str, count: int) -> None:
    coordination = Coordination(default_keyspace())
    wait_until(lambda: len(coordination.beats(kind)) >= count, 60, f"{count} {kind} to come up")


def expected_fire_keys(schedules: list[Schedule], start: float, end: float) -> set[str]:
    """Every occurrence of the schedules with a nominal time in [start, end] (epoch seconds)."""
    keys = set()
    for schedule in schedules:
        assert schedule.anchor is not None
        first = max(0, int(start - schedule.anchor.timestamp()) + 1)
        moment = schedule.anchor + timedelta(seconds=first)
        while moment.timestamp() <= end:
            keys.add(f"{schedule.pk}:{to_epoch_ms(moment)}")
            moment += timedelta(seconds=1)
    return keys


def backlog() -> int:
    """Entries waiting in the streams and the delayed sets."""
    runqueue = RunQueue(default_keyspace())
    return sum(
        runqueue.client.xlen(runqueue.stream_key(shard)) + runqueue.client.zcard(runqueue.delayed_key(shard))
        for shard in range(SHARDS)
    )


def drain(processes: Processes, timeout: float = 120) -> None:
    """Stop the schedulers, wait until every dispatched run has ended, then stop the workers.

    Each must exit 0: none stopped on its own, and each stops cleanly when asked.
    """
    assert set(processes.stop("run_scheduler").values()) == {0}

    def settled() -> bool:
        return backlog() == 0 and not Run.objects.filter(status__in=["pending", "running"]).exists()

    try:
        wait_until(settled, timeout, "the runs dispatched to end")
    except AssertionError:
        left = list(Run.objects.filter(status__in=["pending", "running"]).values_list("fire_key", "attempt", "status"))
        raise AssertionError(f"not drained: backlog {backlog()}, open runs {left[:5]} ({len(left)})") from None
    assert set(processes.stop("run_worker").values()) == {0}


@dataclass
class Figures:
    expected: int
    recorded: int
    missing: list[str]
    missed_status: int
    same_attempt_twice: int
    left_open: int
    deliveries: int
    duplicate_deliveries: int
    explained: Counter[str]
    unexplained: list[str]
    invalid_signatures: int

    def show(self) -> str:
        return json.dumps({**self.__dict__, "missing": self.missing[:5], "unexplained": self.unexplained[:5]})


def figures(
    schedules: list[Schedule],
    start: float,
    end: float,
    kills: list[tuple[float, str]],
    flushes: Sequence[float] = (),
) -> Figures:
    """What the service did with every occurrence in [start, end], and how each duplicate came about."""
    expected = expected_fire_keys(schedules, start, end)
    runs = list(Run.objects.values_list("fire_key", "attempt", "status", "trigger", "error"))
    attempts = Counter((key, attempt) for key, attempt, _, _, _ in runs)
    by_key: dict[str, list[tuple[int, str, str, str]]] = defaultdict(list)
    for key, attempt, status, trigger, error in runs:
        by_key[key].append((attempt, status, trigger, error))
    missing = sorted(expected - set(by_key))
    delivered: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for at, key, attempt, _ in Receiver.deliveries:
        delivered[key].append((at, attempt))
    explained: Counter[str] = Counter()
    unexplained = []
    for key, seen in delivered.items():
        seen.sort()
        for (before, first_attempt), (at, attempt) in itertools.pairwise(seen):
            if attempt != first_attempt:
                # Another attempt: recorded as a retry (the one before failed, or its worker was lost).
                recorded = {number: (status, error) for number, status, _, error in by_key[key]}
                reason = "takeover" if "lost mid-run" in recorded.get(first_attempt, ("", ""))[1] else "retry"
                explained[reason] += 1
            elif any(before - 0.5 <= killed <= at for killed, _ in kills):
                # The same attempt again: its process was SIGKILLed before it recorded the delivery.
                explained["takeover of the same attempt (its worker was killed between)"] += 1
            elif any(before - 5 <= flushed <= at for flushed in flushes):
                # Replayed after Redis lost the entry, before the first delivery was recorded.
                explained["replay after Redis lost data"] += 1
            else:
                unexplained.append(f"{key} attempt {attempt} at {before:.3f} and {at:.3f}")
    return Figures(
        expected=len(expected),
        recorded=len(expected & set(by_key)),
        missing=missing,
        missed_status=sum(1 for key in expected for _, status, _, _ in by_key.get(key, []) if status == "missed"),
        same_attempt_twice=sum(1 for count in attempts.values() if count > 1),
        left_open=sum(1 for _, _, status, _, _ in runs if status in ("pending", "running")),
        deliveries=len(Receiver.deliveries),
        duplicate_deliveries=sum(len(seen) - 1 for seen in delivered.values()),
        explained=explained,
        unexplained=unexplained,
        invalid_signatures=sum(1 for _, _, _, valid in Receiver.deliveries if not valid),
    )


def log_lines(processes: Processes) -> list[dict[str, Any]]:
    lines = []
    for line in processes.logs().splitlines():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(line))
    return lines


def count_messages(lines: list[dict[str, Any]], text: str) -> int:
    return sum(1 for line in lines if text in str(line.get("msg", "")))


# JOBSCHEDULER_OUTAGE_TEST_SECONDS=60 (with JOBSCHEDULER_OUTAGE_BACKOFF_CAP_SECONDS=10, the
# production default) shows the minute-long outage production rides out.
OUTAGE_SECONDS = float(os.environ.get("JOBSCHEDULER_OUTAGE_TEST_SECONDS", "5"))


def test_schedulers_and_workers_ride_out_a_mongodb_then_a_redis_outage(private, processes, receiver, client):
    # /readyz asks this test's servers (its ORM connection points at the private SecantusDB).
    health_redis = default_keyspace().client
    original_redis_client = health.redis_client
    health.redis_client = lambda: health_redis  # type: ignore[assignment]
    try:
        _ride_out(private, processes, client)
    finally:
        health.redis_client = original_redis_client  # type: ignore[assignment]


def _ride_out(private: Private, processes: Processes, client: Any) -> None:
    _, schedules = webhook_schedules(Receiver.url, 10)
    processes.start("run_scheduler", "s1")
    processes.start("run_worker", "w1")
    wait_for_beats(SCHEDULERS, 1)
    wait_for_beats(WORKERS, 1)
    start = time.time()
    wait_until(lambda: len(Receiver.deliveries) >= 20, 60, "deliveries before the outages")

    private.kill_mongodb()
    mongodb_down = time.time()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"mongodb": "down", "redis": "ok"}
    time.sleep(OUTAGE_SECONDS)
    private.start_mongodb()
    mongodb_up = time.time()
    wait_until(lambda: client.get("/readyz").status_code == 200, 30, "MongoDB to be ready")
    delivered = len(Receiver.deliveries)
    # What queued up meanwhile is run before Redis goes (else Redis's restart loses it, and the
    # rebuilt mirror replays it: not what this part checks).
    wait_until(lambda: len(Receiver.deliveries) >= delivered + 20 and backlog() == 0, 60, "the runs queued meanwhile")

    private.kill_redis()
    redis_down = time.time()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"mongodb": "ok", "redis": "down"}
    time.sleep(OUTAGE_SECONDS)
    private.start_redis()  # empty: it kept nothing on disk; the schedulers rebuild the mirror
    wait_until(lambda: client.get("/readyz").status_code == 200, 30, "Redis to be ready")
    delivered = len(Receiver.deliveries)
    wait_until(lambda: len(Receiver.deliveries) >= delivered + 20, 60, "deliveries after the Redis outage")
    end = time.time()
    stopped = [name for name, process, _ in processes.started if process.poll() is not None]
    assert stopped == [], f"stopped on their own: {stopped}"
    drain(processes)

    result = figures(schedules, start + 1, end - 1, processes.kills)
    print(f"ride-out: {result.show()}")
    assert result.missing == [], f"{len(result.missing)} occurrences neither run nor recorded"
    assert result.same_attempt_twice == 0
    assert result.left_open == 0
    assert result.unexplained == []
    assert result.invalid_signatures == 0
    # While MongoDB was away the scheduler went on firing what Redis held, on time.
    during = Run.objects.filter(
        nominal_time__gte=datetime.fromtimestamp(mongodb_down + 0.5, UTC),
        nominal_time__lte=datetime.fromtimestamp(mongodb_up - 0.5, UTC),
    )
    lags = [
        (run.dispatched_at - run.nominal_time).total_seconds()
        for run in during
        if run.dispatched_at and run.nominal_time
    ]
    assert lags and max(lags) < 1, f"dispatch lags while MongoDB was away: {sorted(lags)[-3:]}"
    # Each outage was logged when it began and when it ended, not at every attempt.
    lines = log_lines(processes)
    assert count_messages(lines, "mongodb unavailable") >= 1
    assert count_messages(lines, "mongodb is back") >= 1
    assert count_messages(lines, "redis unavailable") >= 1
    assert count_messages(lines, "redis is back") >= 1
    assert count_messages(lines, "unavailable") <= 20, [line["msg"] for line in lines if "unavailable" in line["msg"]]
    assert count_messages(lines, "failed") == 0, [line["msg"] for line in lines if "failed" in line["msg"]]
    print(f"mongodb down {mongodb_up - mongodb_down:.1f}s; redis down at +{redis_down - start:.1f}s")


def test_faults_lose_no_occurrence_and_record_no_attempt_twice(private, processes, receiver):
    """3 schedulers and 2 workers; a random one SIGKILLed (and started again) every few seconds;
    Redis flushed once; the MongoDB server SIGKILLed and restarted once."""
    _, schedules = webhook_schedules(Receiver.url, 30)
    serial = iter(range(1000))
    for _ in range(3):
        processes.start("run_scheduler", f"s{next(serial)}")
    for _ in range(2):
        processes.start("run_worker", f"w{next(serial)}")
    wait_for_beats(SCHEDULERS, 3)
    wait_for_beats(WORKERS, 2)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    start = time.time()
    flush_at, mongodb_at = start + FAULT_SECONDS / 3, start + FAULT_SECONDS * 2 / 3
    flushes: list[float] = []
    mongodb_restarted = False
    while time.time() < start + FAULT_SECONDS:
        time.sleep(rng.uniform(2, 4))
        command = rng.choice(["run_scheduler", "run_worker"])
        name, victim = rng.choice(processes.running(command))
        processes.kill(name, victim)
        processes.start(command, f"{command[4]}{next(serial)}")
        if not flushes and time.time() >= flush_at:
            redis.Redis.from_url(private.redis_url).flushall()  # the test's own redis-server
            flushes.append(time.time())
        if not mongodb_restarted and time.time() >= mongodb_at:
            private.kill_mongodb()
            time.sleep(3)
            private.start_mongodb()
            mongodb_restarted = True
    end = time.time()
    time.sleep(3)
    killed = {name for _, name in processes.kills}
    stopped = [n for n, process, _ in processes.started if process.poll() is not None and n not in killed]
    assert stopped == [], f"stopped on their own: {stopped}"
    drain(processes, timeout=180)

    result = figures(schedules, start + 1, end - 1, processes.kills, flushes)
    print(f"faults (seed {seed}, {len(processes.kills)} kills): {result.show()}")
    assert result.missing == [], f"{len(result.missing)} occurrences neither run nor recorded"
    assert result.same_attempt_twice == 0
    assert result.left_open == 0
    assert result.unexplained == []
    assert result.invalid_signatures == 0
