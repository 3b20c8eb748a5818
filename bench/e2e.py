"""End-to-end benchmark: fire -> worker -> webhook receiver -> run recorded in MongoDB.

Not a test: run it on purpose, on an otherwise idle machine (about 3 minutes).

    .venv/bin/python bench/e2e.py                 # writes docs/e2e-benchmark.md
    .venv/bin/python bench/e2e.py --profile       # plus a py-spy profile of a saturated worker
    .venv/bin/python bench/e2e.py --retry-writes  # pymongo's retryable writes left on (see below)

Through bench/engine.py's Harness it starts a private Redis (nothing on disk) and SecantusDB
(in memory); then the demo webhook receiver (``manage.py demo_receiver``, signatures checked),
and per scenario one ``run_scheduler`` and 1 or 2 ``run_worker`` processes, all real. Each
scenario loads N schedules firing every second (spread over the second) of one job: a
webhook to the receiver (127.0.0.1 allow-listed) or the python task ``demo.hello``. Over a
fixed window it measures

- runs/s: runs recorded ``succeeded`` in MongoDB whose ``finished_at`` falls in the window,
  per second; with N above what the workers manage, that is their capacity;
- lag: for occurrences nominally in the window, the receiver's clock at receipt (webhooks)
  or the run's ``started_at`` (python) minus the nominal time, and ``finished_at`` (the
  outcome recorded) minus the nominal time; under saturation the backlog grows, so lags
  grow with the window and only the runs/s figure means something;
- CPU of each process (workers with their run processes) over the window.

Two probes follow: what one compare-and-set update costs on SecantusDB with the ORM's
``$and`` filter and with the flat one, and what one insert costs once SecantusDB holds its
maximum of retryable-write records (why the scenarios connect with ``retryWrites=false``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engine import CLOCK_TICKS, Harness, machine, percentile, proc_cpu_seconds  # noqa: E402
from peers.common import proc_rss_mb  # noqa: E402

from devtools.servers import free_port, port_open  # noqa: E402

# Before the Harness copies the environment: the receiver listens on 127.0.0.1.
os.environ["JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"


@dataclass
class Scenario:
    name: str
    target: str  # "http" (webhook to the receiver) or "python" (demo.hello)
    schedules: int  # each fires every second: the offered load in runs/s
    workers: int = 1
    concurrency: int = 16  # run_worker's default
    old_runs: int = 0  # finished runs already in the collection (a service that has been running)
    profile: bool = False


@dataclass
class Result:
    scenario: Scenario
    seconds: int
    succeeded: int  # finished (succeeded) inside the window
    failed: int  # any other finished status, whole run
    due: int  # occurrences nominally in the window
    done_of_due: int  # of those, recorded succeeded by the end
    lag_p50: float
    lag_p99: float
    recorded_p50: float
    recorded_p99: float
    duplicates: int  # deliveries the receiver saw twice (or runs recorded twice)
    unverified: int  # deliveries the receiver refused
    cpu: dict[str, float]  # role -> CPU seconds per wall second over the window
    collection_runs: int  # documents in the runs collection at the end
    profile: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.succeeded / self.seconds

    @property
    def saturated(self) -> bool:
        return self.done_of_due < 0.98 * self.due


@dataclass(frozen=True)
class RunRow:
    fire_key: str
    status: str
    nominal_ms: int | None
    started_ms: int | None
    finished_ms: int | None


def epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a worker's run processes), from /proc."""
    parents: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents[ppid].append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds spent by everything on the machine (all cores, not idle or waiting on I/O)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def tree_cpu(pid: int) -> float:
    total = 0.0
    for each in descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):  # ended meanwhile
            total += proc_cpu_seconds(each)
    return total


class EndToEnd:
    def __init__(self, workdir: Path, seconds: int, retry_writes: bool = False):
        self.seconds = seconds
        self.workdir = workdir
        self.harness = Harness(workdir)
        self.env = {**self.harness.env, "JOBSCHEDULER_LOG_LEVEL": "WARNING"}
        if not retry_writes:
            # SecantusDB scans its record of retryable writes on every write (probe_retryable_writes):
            # off, so that a row does not pay for the writes of the rows before it.
            self.env["MONGODB_URI"] = with_retry_writes(self.env["MONGODB_URI"], False)
        self.receiver_port = free_port()
        self.receiver_log = workdir / "receiver.jsonl"
        self._receiver_out = self.receiver_log.open("w")
        self.receiver = subprocess.Popen(
            [sys.executable, "manage.py", "demo_receiver", "--port", str(self.receiver_port)],
            cwd=ROOT,
            env=self.env,
            stdout=self._receiver_out,
        )
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", self.receiver_port):
            if self.receiver.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the demo receiver did not start")
            time.sleep(0.05)

    def close(self) -> None:
        self.receiver.send_signal(signal.SIGTERM)
        try:
            self.receiver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.receiver.kill()
            self.receiver.wait()
        self._receiver_out.close()
        self.harness.close()

    # --- processes ------------------------------------------------------------------------
    def start_workers(self, scenario: Scenario) -> list[subprocess.Popen[bytes]]:
        return [
            subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "run_worker",
                    "--name",
                    f"e2e-{index}",
                    "--concurrency",
                    str(scenario.concurrency),
                ],
                cwd=ROOT,
                env=self.env,
            )
            for index in range(scenario.workers)
        ]

    def wait_for_workers(self, workers: list[subprocess.Popen[bytes]]) -> None:
        deadline = time.monotonic() + 60
        while len(self.harness.coordination.beats("workers")) < len(workers):
            if time.monotonic() > deadline or any(worker.poll() is not None for worker in workers):
                raise RuntimeError("workers did not start")
            time.sleep(0.05)

    def warm_up(self, job: Any, runs: int) -> None:
        """Run the job by hand until every slot has run once: run processes started, caches warm."""
        from jobs.models import Run
        from jobs.services import run_now

        keys = [run_now(job, user=job.owner, runqueue=self.harness.index.runqueue) for _ in range(runs)]
        deadline = time.monotonic() + 60
        while Run.objects.filter(fire_key__in=keys, status=Run.Status.SUCCEEDED).count() < len(keys):
            if time.monotonic() > deadline:
                raise RuntimeError("warm-up runs did not finish")
            time.sleep(0.1)

    def drain(self, scenario: Scenario, seconds: float = 2.0) -> None:
        """Give the window's last occurrences time to finish, unless a backlog shows they will not."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            open_entries = self.harness.index.runqueue.lengths()  # acknowledged entries are deleted
            if open_entries == 0 or open_entries > scenario.schedules:
                return
            time.sleep(0.1)

    def stop(self, processes: Iterable[subprocess.Popen[bytes]]) -> None:
        processes = list(processes)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"  pid {process.pid} did not stop within 30 s of SIGTERM; killing it", flush=True)
                process.kill()
                process.wait()

    # --- one scenario ---------------------------------------------------------------------
    def job_for(self, scenario: Scenario) -> Any:
        from jobs.services import job_create

        python_job = self.harness.reset()  # empties MongoDB's collections and the private Redis
        if scenario.target == "python":
            return python_job
        return job_create(
            owner=python_job.owner,
            name="e2e webhook",
            target_type="http",
            target={
                "method": "POST",
                "url": f"http://127.0.0.1:{self.receiver_port}/demo-webhook",
                "body": '{"hello": "from the e2e benchmark"}',
            },
            secret=_demo_secret(),
            timeout_seconds=10,
        )

    def start_to_first_run(self, target: str) -> tuple[float, float]:
        """Seconds from starting ``run_worker`` to the end of a run waiting for it (a manual run of a
        ``target`` job, put on the stream first: ``demo.hello`` or a webhook to the receiver), and the
        worker's RSS then (MB, run processes included)."""
        from jobs.models import Run
        from jobs.services import run_now

        job = self.job_for(Scenario("start", target, 1))
        key = run_now(job, user=job.owner, runqueue=self.harness.index.runqueue)
        started = time.time()
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker", "--name", "e2e-start"], cwd=ROOT, env=self.env
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                run = Run.objects.filter(fire_key=key, status=Run.Status.SUCCEEDED).first()
                if run is not None and run.finished_at is not None:
                    break
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError("the first run did not finish")
                time.sleep(0.02)
            rss = sum(proc_rss_mb(pid) for pid in descendants(worker.pid))
            return run.finished_at.timestamp() - started, rss
        finally:
            self.stop([worker])

    def run(self, scenario: Scenario) -> Result:
        from jobs.models import Run
        from schedules.services import schedule_bulk_create

        job = self.job_for(scenario)
        processes: list[subprocess.Popen[bytes]] = []
        profilers: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        try:
            workers = self.start_workers(scenario)  # they start while the scheduler does
            processes += workers
            processes += self.harness.start_schedulers(1)
            scheduler = processes[-1]
            self.wait_for_workers(workers)
            self.warm_up(job, scenario.workers * scenario.concurrency * 2)
            if scenario.old_runs:
                add_old_runs(job, scenario.old_runs)
            receiver_offset = self.receiver_log.stat().st_size
            base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
            step_us = 1_000_000 // scenario.schedules
            specs = [
                {
                    "kind": "fixed",
                    "interval_seconds": 1,
                    "anchor": base + timedelta(microseconds=i * step_us // 1000 * 1000),
                }
                for i in range(scenario.schedules)
            ]
            schedule_bulk_create(job=job, specs=specs)
            window_start = int(time.time()) + 2  # whole seconds, after the first fires
            window_end = window_start + self.seconds
            time.sleep(max(0.0, window_start - time.time()))
            roles = {
                "workers": [w.pid for w in workers],
                "scheduler": [scheduler.pid],
                "receiver": [self.receiver.pid] if scenario.target == "http" else [],
                "SecantusDB": [self.harness.servers.processes[0].pid],
            }
            cpu0 = {role: sum(tree_cpu(pid) for pid in pids) for role, pids in roles.items()}
            redis0 = self.harness.redis_cpu()
            busy0 = machine_busy_seconds()
            started = time.monotonic()
            if scenario.profile:
                profilers = self.start_profilers(workers[0].pid)
            time.sleep(max(0.0, window_end - time.time()))
            wall = time.monotonic() - started
            cpu = {role: (sum(tree_cpu(pid) for pid in pids) - cpu0[role]) / wall for role, pids in roles.items()}
            cpu["Redis"] = (self.harness.redis_cpu() - redis0) / wall
            # Whatever else ran meanwhile (the bench itself, py-spy, other people's work).
            cpu["others"] = max(0.0, (machine_busy_seconds() - busy0) / wall - sum(cpu.values()))
            if not roles["receiver"]:
                del cpu["receiver"]
            self.drain(scenario)
        finally:
            self.stop(processes)
        profile = [line for name, process, path in profilers for line in summarize_profile(name, process, path)]
        runs = [
            RunRow(key, status, epoch_ms(nominal), epoch_ms(started), epoch_ms(finished))
            for key, status, nominal, started, finished in Run.objects.filter(
                job=job, trigger=Run.Trigger.SCHEDULE
            ).values_list("fire_key", "status", "nominal_time", "started_at", "finished_at")
        ]
        received = self.receiver_lines(receiver_offset) if scenario.target == "http" else []
        result = self.result(scenario, runs, received, window_start, window_end, cpu, profile)
        result.collection_runs = Run.objects.count()
        return result

    def receiver_lines(self, offset: int) -> list[dict[str, Any]]:
        with self.receiver_log.open() as log:
            log.seek(offset)
            return [json.loads(line) for line in log if '"webhook_id"' in line]

    def result(
        self,
        scenario: Scenario,
        runs: list[RunRow],
        received: list[dict[str, Any]],
        window_start: int,
        window_end: int,
        cpu: dict[str, float],
        profile: list[str],
    ) -> Result:
        start_ms, end_ms = window_start * 1000, window_end * 1000
        succeeded = [run for run in runs if run.status == "succeeded"]
        in_window = [run for run in succeeded if run.finished_ms is not None and start_ms <= run.finished_ms < end_ms]
        due = [run for run in succeeded if run.nominal_ms is not None and start_ms <= run.nominal_ms < end_ms]
        recorded = [run.finished_ms - run.nominal_ms for run in due if run.finished_ms and run.nominal_ms]
        if scenario.target == "http":
            nominal_of = {run.fire_key: run.nominal_ms for run in due if run.nominal_ms}
            lags = [
                line["received_ms"] - nominal_of[line["webhook_id"]]
                for line in received
                if line["webhook_id"] in nominal_of
            ]
            ids = [line["webhook_id"] for line in received if line["verified"]]
            duplicates = len(ids) - len(set(ids))
            unverified = sum(1 for line in received if not line["verified"])
        else:
            lags = [run.started_ms - run.nominal_ms for run in due if run.started_ms and run.nominal_ms]
            duplicates = unverified = 0
        keys = [run.fire_key for run in runs]
        duplicates += len(keys) - len(set(keys))
        expected = scenario.schedules * (window_end - window_start)
        return Result(
            scenario=scenario,
            seconds=window_end - window_start,
            succeeded=len(in_window),
            failed=sum(1 for run in runs if run.status not in ("succeeded", "pending", "running")),
            due=expected,
            done_of_due=len(due),
            lag_p50=percentile(lags, 0.5),
            lag_p99=percentile(lags, 0.99),
            recorded_p50=percentile(recorded, 0.5),
            recorded_p99=percentile(recorded, 0.99),
            duplicates=duplicates,
            unverified=unverified,
            cpu=cpu,
            collection_runs=0,
            profile=profile,
        )

    # --- profiling ------------------------------------------------------------------------
    def start_profilers(self, worker_pid: int) -> list[tuple[str, subprocess.Popen[bytes], Path]]:
        """py-spy on the worker (every thread, waiting included) and on SecantusDB (CPU only)."""
        py_spy = str(Path(sys.executable).with_name("py-spy"))
        targets = [
            ("worker", worker_pid, ["--idle", "--threads"]),
            ("SecantusDB", self.harness.servers.processes[0].pid, ["--threads"]),
        ]
        profilers = []
        for name, pid, extra in targets:
            path = self.workdir / f"profile-{name}.txt"
            command = [py_spy, "record", "--pid", str(pid), "--duration", str(self.seconds - 1), "--rate", "200"]
            command += ["--format", "raw", "--output", str(path), "--nonblocking", *extra]
            profilers.append((name, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), path))
        return profilers


# --- the $and probe ---------------------------------------------------------------------------
# django-mongodb-backend sends a filter of several conditions as {"$and": [{...}, {...}]}.
# MongoDB's planner uses the _id index for that; SecantusDB 0.7.0b3 scans the collection.
# The worker's compare-and-set updates therefore go through pymongo with a flat filter
# (jobs.services._compare_and_set); probe_filters measures the difference.


def flatten_and(query: dict[str, Any]) -> dict[str, Any]:
    """``{"$and": [{a: 1}, {b: 2}]}`` as ``{a: 1, b: 2}`` (parts with distinct field names)."""
    merged: dict[str, Any] = {}
    for part in query["$and"]:
        merged.update(part)
    return merged


def with_retry_writes(uri: str, on: bool) -> str:
    parts = urlsplit(uri)
    query = "&".join(item for item in parts.query.split("&") if item and not item.startswith("retryWrites="))
    query = "&".join(filter(None, [query, f"retryWrites={'true' if on else 'false'}"]))
    return urlunsplit(parts._replace(query=query))


def probe_retryable_writes(uri: str, held: int = 10_000, sample: int = 500) -> list[tuple[str, float]]:
    """ms per insert: retryable writes off; on, while few are recorded; on, once ``held`` are.

    SecantusDB records each retryable write (pymongo's default) for 30 minutes, at most
    10,000, and prunes the whole record on every write (sorting it once at the cap).
    """
    from pymongo import MongoClient

    rows = []
    for label, on, before in (("retryable writes off", False, 0), ("on, few recorded", True, 0), ("on", True, held)):
        client: MongoClient[dict[str, Any]] = MongoClient(with_retry_writes(uri, on))
        try:
            probe = client["bench"]["e2e_write_probe"]
            for index in range(before):
                probe.insert_one({"i": index})
            started = time.perf_counter()
            for index in range(sample):
                probe.insert_one({"i": index})
            per_write = (time.perf_counter() - started) / sample * 1000
            rows.append((f"{label}, {held:,} recorded" if before else label, per_write))
            probe.drop()
        finally:
            client.close()
    return rows


def probe_filters(sizes: Iterable[int] = (1_000, 5_000, 20_000)) -> list[tuple[int, float, float]]:
    """(documents, ms per update filtered by {$and: [{_id}, {status}]}, ms per the same as {_id, status})."""
    from bson import ObjectId
    from django.db import connection

    probe = connection.get_database()["e2e_filter_probe"]  # type: ignore[attr-defined]
    probe.drop()
    rows = []
    stored = 0
    try:
        for size in sizes:
            filler = [{"_id": ObjectId(), "status": "succeeded", "output": "HTTP 200"} for _ in range(size - stored)]
            for start in range(0, len(filler), 1000):
                probe.insert_many(filler[start : start + 1000])
            stored = size
            timings = []
            for flat in (False, True):
                ids = [ObjectId() for _ in range(10)]
                probe.insert_many([{"_id": oid, "status": "pending"} for oid in ids])
                started = time.perf_counter()
                for oid in ids:
                    query = {"$and": [{"_id": oid}, {"status": "pending"}]}
                    probe.update_many(flatten_and(query) if flat else query, [{"$set": {"status": "running"}}])
                timings.append((time.perf_counter() - started) / len(ids) * 1000)
            rows.append((size, timings[0], timings[1]))
    finally:
        probe.drop()
    return rows


def add_old_runs(job: Any, count: int) -> None:
    """Finished manual runs of ``job`` from yesterday, written straight into the collection."""
    from bson import ObjectId

    from jobs.models import Run
    from jobscheduler.mongo import collection

    yesterday = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)
    documents = [
        {
            "_id": ObjectId(),
            "job_id": job.pk,
            "schedule_id": None,
            "fire_key": f"manual:{job.pk}:old{index}",
            "trigger": Run.Trigger.MANUAL.value,
            "status": Run.Status.SUCCEEDED.value,
            "attempt": 1,
            "nominal_time": yesterday,
            "dispatched_at": yesterday,
            "started_at": yesterday,
            "finished_at": yesterday,
            "worker": "e2e-old",
            "output": "HTTP 200",
            "error": "",
            "created_at": yesterday,
        }
        for index in range(count)
    ]
    for start in range(0, count, 1000):
        collection(Run).insert_many(documents[start : start + 1000])


def _demo_secret() -> str:
    from demo.receiver import DEMO_SECRET

    return DEMO_SECRET


# --- profile summaries ------------------------------------------------------------------------

# Where a slot thread of the worker spends its time, by the first of these frames on its stack.
WORKER_STEPS = [
    ("Recorder.finish (workers/recorder.py", "wait for the batch that records the run (MongoDB)"),
    ("run_begin (jobs/services.py", "read a taken-over or manual run's record (MongoDB)"),
    ("Worker.job (workers/worker.py", "look up the job (MongoDB, cached until it changes)"),
    ("Worker.schedule_policy (workers/worker.py", "look up the overlap policy (MongoDB, cached until it changes)"),
    ("overlap_enter (jobs/runqueue.py", "overlap bookkeeping (Redis)"),
    ("overlap_leave (jobs/runqueue.py", "overlap bookkeeping (Redis)"),
    ("deliver (jobs/targets/http/transport.py", "the webhook itself (HTTP to the receiver)"),
    ("_in_child (workers/children.py", "the python task (in the run process)"),
    ("ack (jobs/runqueue.py", "acknowledge the entry (Redis)"),
    ("Queue.get (queue.py", "idle: waiting for work"),
]


def summarize_profile(name: str, process: subprocess.Popen[bytes], path: Path) -> list[str]:
    _, errors = process.communicate(timeout=60)
    if process.returncode != 0 or not path.exists():
        return [f"py-spy on the {name} failed: {errors.decode(errors='replace').strip()[-300:]}"]
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return summarize_worker(stacks) if name == "worker" else summarize_cpu(name, stacks)


def summarize_worker(stacks: list[tuple[list[str], int]]) -> list[str]:
    """Shares of the slot threads' wall time by step, and how much of each is spent in pymongo."""
    steps: collections.Counter[str] = collections.Counter()
    in_pymongo: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, count in stacks:
        if "): slot-" not in frames[0]:  # "thread (1234): slot-0": py-spy --threads names the thread first
            continue
        total += count
        step = next((label for marker, label in WORKER_STEPS if any(marker in f for f in frames)), "other")
        steps[step] += count
        if any("pymongo/" in frame for frame in frames):
            in_pymongo[step] += count
    if not total:
        return ["worker profile: no samples of the slot threads"]
    idle = steps.pop("idle: waiting for work", 0)
    busy = total - idle
    lines = [f"worker slot threads: {total} samples of wall time (waiting included), {100 * idle / total:.0f}% idle;"]
    lines.append("busy time by step (share inside pymongo, i.e. a MongoDB round trip):")
    for step, count in steps.most_common():
        mongo = f" ({100 * in_pymongo[step] / count:.0f}% in pymongo)" if in_pymongo[step] else ""
        lines.append(f"  {100 * count / max(busy, 1):5.1f}%  {step}{mongo}")
    return lines


def summarize_cpu(name: str, stacks: list[tuple[list[str], int]]) -> list[str]:
    """CPU by the command being served (SecantusDB's handlers), then the functions with most self time."""
    commands: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = sum(count for _, count in stacks)
    for frames, count in stacks:
        own[_short(frames[-1])] += count
        handler = "other"
        for index, frame in enumerate(frames[:-1]):
            if frame.startswith("dispatch (secantus/commands.py"):
                handler = frames[index + 1].split(" (", 1)[0]
                break
            if frame.startswith("read_message (secantus/wire.py"):
                handler = "reading requests off the socket"
                break
        commands[handler] += count
    lines = [f"{name}: {total} CPU samples; by command handler:"]
    lines += [f"  {100 * count / max(total, 1):5.1f}%  {handler}" for handler, count in commands.most_common(6)]
    lines.append("functions with the most self time:")
    lines += [f"  {100 * count / max(total, 1):5.1f}%  {frame}" for frame, count in own.most_common(8)]
    return lines


def _short(frame: str) -> str:
    return frame if len(frame) < 110 else frame[:107] + "..."


# --- the report -------------------------------------------------------------------------------


def scenarios(light: int, heavy: int, profile: bool) -> list[Scenario]:
    chosen = [
        Scenario(f"webhook, {light}/s, 1 worker", "http", light),
        Scenario(f"webhook, {heavy}/s, 1 worker", "http", heavy),
        Scenario(f"webhook, {heavy}/s, 2 workers", "http", heavy, workers=2),
        Scenario(f"webhook, {heavy}/s, 1 worker, concurrency 4", "http", heavy, concurrency=4),
        Scenario(f"webhook, {heavy}/s, 1 worker, 5,000 older runs stored", "http", heavy, old_runs=5000),
        Scenario(f"python, {light}/s, 1 worker", "python", light),
        Scenario(f"python, {heavy}/s, 1 worker", "python", heavy),
        Scenario(f"python, {heavy}/s, 2 workers", "python", heavy, workers=2),
    ]
    if profile:
        chosen.append(Scenario(f"webhook, {heavy}/s, 1 worker, under py-spy", "http", heavy, profile=True))
    return chosen


def _find(results: list[Result], name: str) -> Result | None:
    return next((r for r in results if r.scenario.name == name), None)


def _rate(result: Result | None) -> str:
    return f"{result.rate:.0f}" if result else "?"


def _cpu(result: Result | None, role: str = "SecantusDB") -> str:
    return f"{result.cpu.get(role, float('nan')):.2f}" if result else "?"


def findings(results: list[Result], heavy: int, writes: list[tuple[str, float]]) -> list[str]:
    """What the table says, its figures filled in from this run."""
    h = f"{heavy}/s"
    one, two = _find(results, f"webhook, {h}, 1 worker"), _find(results, f"webhook, {h}, 2 workers")
    slots = _find(results, f"webhook, {h}, 1 worker, concurrency 4")
    stored = _find(results, f"webhook, {h}, 1 worker, 5,000 older runs stored")
    python_one, python_two = _find(results, f"python, {h}, 1 worker"), _find(results, f"python, {h}, 2 workers")
    lines = ["## What it shows", ""]
    for r in results:
        if r.scenario.schedules < heavy:
            lines.append(
                f"- **Light load ({r.scenario.name})**: {r.done_of_due} of {r.due} occurrences recorded; "
                f"fire to {'receipt' if r.scenario.target == 'http' else 'start'} p50 {r.lag_p50:.0f} ms, "
                f"p99 {r.lag_p99:.0f} ms; outcome recorded p50 {r.recorded_p50:.0f} ms."
            )
    lines += [
        f"- **Capacity**: one worker (16 slots) records about {_rate(one)} webhook runs/s and "
        f"{_rate(python_one)} python runs/s; two workers {_rate(two)} and {_rate(python_two)}; one worker "
        f"with 4 slots {_rate(slots)} webhook runs/s. CPU per wall second, one worker / two workers: the "
        f"workers {_cpu(one, 'workers')} / {_cpu(two, 'workers')}, SecantusDB {_cpu(one)} / {_cpu(two)} "
        f"(a Python server on the same two cores), the receiver {_cpu(one, 'receiver')} / "
        f"{_cpu(two, 'receiver')}. A worker records a run in about one write: the attempts that end while "
        "a batch is written go into the next one (an unordered insert of each with its outcome; a run "
        "lasting over 50 ms is inserted as running first and updated at its end), plus one indexed "
        "look-up per read of the stream (which of the attempts read are recorded already: a replay must "
        "not run again). Slots wait for their batch, so more slots make bigger batches. A real MongoDB, "
        "which serves requests in parallel, was not measured.",
        f"- **Runs already stored**: with 5,000 older runs in the collection one worker records {_rate(stored)} "
        "webhook runs/s. The writes and look-ups by fire key use indexes (the unique (fire key, attempt) "
        "index is partial, which a plain query cannot use, so runs have a plain fire-key index too), and "
        "the compare-and-sets go through pymongo with a flat filter `{_id, status}`: the ORM's form, "
        '`{"$and": [{"_id": ...}, {"status": ...}]}`, makes SecantusDB 0.7.0b3 scan the collection '
        "(the probe below).",
    ]
    if len(writes) == 3:
        lines.append(
            f"- **Retryable writes** (second probe): with pymongo's default, once SecantusDB holds 10,000 "
            f"records of them every write costs {writes[2][1]:.1f} ms instead of {writes[0][1]:.1f} ms. "
            "That is what a SecantusDB running for a while (a long `bin/run`, a test session) pays on every "
            "write; `retryWrites=false` in its URI avoids it (there is no failover to retry across)."
        )
    lines.append("")
    return lines


def write_report(
    results: list[Result],
    probe: list[tuple[int, float, float]],
    writes: list[tuple[str, float]],
    starts: list[tuple[str, float, float]],
    path: Path,
    command: str,
    load: str,
    heavy: int,
    retry_writes: bool,
) -> None:
    """``load``: the load averages at start and end (other work on the machine skews the figures)."""
    roles = ["workers", "scheduler", "receiver", "SecantusDB", "Redis", "others"]
    retry_note = "on (pymongo's default)" if retry_writes else "off (`retryWrites=false`; see the second probe)"
    lines = [
        "# End-to-end benchmark",
        "",
        f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        f"Machine: {machine()}.",
        "Every process (scheduler, workers, receiver, SecantusDB in memory, Redis) shares the machine;",
        f"load averages (1, 5, 15 min) {load}.",
        "",
        "Each scenario: N schedules every second (spread over the second) of one job, a signed",
        "webhook to `manage.py demo_receiver` (signature checked) or the python task `demo.hello`;",
        "one `run_scheduler`; workers of `--concurrency` 16 (the default) unless said. Scheduler and workers connect",
        f"with retryable writes {retry_note}.",
        f"Measured over a window of {results[0].seconds if results else 0} s after a warm-up:",
        "",
        "- **runs/s**: runs recorded `succeeded` in MongoDB with `finished_at` in the window, per second.",
        "- **done**: occurrences nominally in the window that were recorded `succeeded` by its end (+2 s).",
        "- **lag**: receiver's clock at receipt (webhook) or `started_at` (python) minus nominal time;",
        "  **recorded**: `finished_at` minus nominal time; p50 / p99 in ms. Under saturation (done well",
        "  below 100 %) the backlog grows through the window and so do these: read runs/s there.",
        "- **dup**: deliveries the receiver saw twice; **refused**: deliveries whose signature it refused;",
        "  **failed**: runs not `succeeded`.",
        "- **runs stored**: documents in the runs collection at the end (each scenario starts empty",
        "  unless it says older runs are stored).",
        "- **CPU**: CPU seconds per wall second over the window (1.00 = one core), workers including",
        "  their run processes; **others**: the rest of the machine (this script, py-spy, anything else",
        "  running). High values there mean the row was measured on a busy machine.",
        "",
        "| scenario | runs/s | done | lag p50 / p99 ms | recorded p50 / p99 ms | dup | refused | failed "
        "| runs stored | " + " | ".join(f"CPU {role}" for role in roles) + " |",
        "|---|---|---|---|---|---|---|---|---|" + "---|" * len(roles),
    ]
    for r in results:
        cpus = " | ".join(f"{r.cpu[role]:.2f}" if role in r.cpu else "-" for role in roles)
        done = f"{100 * r.done_of_due / max(r.due, 1):.0f}% of {r.due}"
        lines.append(
            f"| {r.scenario.name} | {r.rate:.1f} | {done} | {r.lag_p50:.0f} / {r.lag_p99:.0f} | "
            f"{r.recorded_p50:.0f} / {r.recorded_p99:.0f} | {r.duplicates} | {r.unverified} | {r.failed} | "
            f"{r.collection_runs:,} | {cpus} |"
        )
    lines += ["", *findings(results, heavy, writes)]
    if starts:
        lines += [
            "## Worker start to first run",
            "",
            "A manual run waits on the stream; `run_worker` starts (a new process: Python, Django, the",
            "connections; for python, its first run process too); seconds until the run's `finished_at`,",
            "and the worker's resident memory then (its run processes included):",
            "",
            "| target | start to first run done, s | worker RSS MB |",
            "|---|---|---|",
            *(f"| {target} | {seconds:.2f} | {rss:.0f} |" for target, seconds, rss in starts),
            "",
        ]
    if probe:
        lines += [
            "## Probe: one compare-and-set update on SecantusDB, by documents stored",
            "",
            "`update_many` of one pending document by `_id` and `status`, in the form django-mongodb-backend",
            "sends and flat (the form the worker now sends); ms per update, the mean of 10.",
            "",
            '| documents | `{"$and": [{"_id": x}, {"status": "pending"}]}` | `{"_id": x, "status": "pending"}` |',
            "|---|---|---|",
            *(f"| {size:,} | {with_and:.2f} | {flat:.2f} |" for size, with_and, flat in probe),
            "",
        ]
    if writes:
        lines += [
            "## Probe: one insert on SecantusDB, by retryable writes recorded",
            "",
            "SecantusDB 0.7.0b3 keeps a record of every retryable write (pymongo's default) for 30 minutes,",
            "up to 10,000, and prunes that record on every write, sorting all of it once it is full. A",
            "SecantusDB that has taken 10,000 writes in half an hour (a long `bin/run`, a test session,",
            "this benchmark's earlier rows) pays that on every write; ms per insert, the mean of 500:",
            "",
            "| connection | ms per insert |",
            "|---|---|",
            *(f"| {label} | {per_write:.2f} |" for label, per_write in writes),
            "",
        ]
    profiled = [r for r in results if r.profile]
    if profiled:
        lines += [
            "## Where the time goes (py-spy)",
            "",
            "In the scenarios marked 'under py-spy', the worker sampled with `py-spy record --idle",
            "--threads` (wall time of its slot threads, waiting on sockets included) and SecantusDB with",
            "`py-spy record --threads` (CPU only). Sampling slows the run down; the shares are what matters.",
            "",
        ]
        for r in profiled:
            lines += [f"### {r.scenario.name}", "", "```", *r.profile, "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=12, help="measured window per scenario")
    parser.add_argument("--light", type=int, default=10, help="schedules (runs/s offered) of the light scenarios")
    parser.add_argument("--heavy", type=int, default=1200, help="schedules of the saturating scenarios")
    parser.add_argument("--profile", action="store_true", help="add a scenario profiled with py-spy")
    parser.add_argument(
        "--retry-writes", action="store_true", help="keep pymongo's retryable writes on (rows then depend on order)"
    )
    parser.add_argument("--only", default="", help="run scenarios whose name contains this")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "e2e-benchmark.md")
    args = parser.parse_args()
    load = "at start " + " / ".join(f"{value:.2f}" for value in os.getloadavg())
    e2e = EndToEnd(Path(tempfile.mkdtemp(prefix="jobscheduler-e2e-")), args.seconds, args.retry_writes)
    results = []
    try:
        for scenario in scenarios(args.light, args.heavy, args.profile):
            if args.only and args.only not in scenario.name:
                continue
            print(f"running: {scenario.name} ...", flush=True)
            result = e2e.run(scenario)
            results.append(result)
            cpu = " ".join(f"{role}={value:.2f}" for role, value in result.cpu.items())
            print(
                f"  {result.rate:.1f} runs/s, done {result.done_of_due}/{result.due}, "
                f"lag p50={result.lag_p50:.0f} p99={result.lag_p99:.0f} ms, recorded p50={result.recorded_p50:.0f} "
                f"p99={result.recorded_p99:.0f} ms, dup={result.duplicates} refused={result.unverified} "
                f"failed={result.failed} stored={result.collection_runs}; CPU {cpu}",
                flush=True,
            )
            for line in result.profile:
                print("  " + line, flush=True)
        starts = []
        if not args.only:
            for target in ("http", "python"):
                seconds, rss = e2e.start_to_first_run(target)
                starts.append((target, seconds, rss))
                print(f"worker start to first {target} run done: {seconds:.2f} s, RSS {rss:.0f} MB", flush=True)
        print("probing one update's cost by documents stored ...", flush=True)
        probe = probe_filters()
        for size, with_and, flat in probe:
            print(f"  {size:>6} documents: $and {with_and:.2f} ms, flattened {flat:.2f} ms", flush=True)
        print("probing one insert's cost with retryable writes recorded ...", flush=True)
        writes = probe_retryable_writes(e2e.harness.env["MONGODB_URI"])
        for label, per_write in writes:
            print(f"  {label}: {per_write:.2f} ms", flush=True)
    finally:
        e2e.close()
    load += ", at end " + " / ".join(f"{value:.2f}" for value in os.getloadavg())
    command = ".venv/bin/python bench/e2e.py " + " ".join(sys.argv[1:])
    write_report(results, probe, writes, starts, args.out, command.strip(), load, args.heavy, args.retry_writes)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
