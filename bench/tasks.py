"""Django Tasks benchmark: ``enqueue()`` to completion through our backend beside django-tasks' own.

Not a test: run it on purpose, on an otherwise idle machine (about 5 minutes).

    .venv/bin/python bench/tasks.py                 # writes docs/tasks-benchmark.md
    .venv/bin/python bench/tasks.py --tasks 1000    # a shorter drain

The same no-op Task (``hello(name)`` returning a greeting: our ``demo.tasks.hello``, and its copy
``peers.tasks_noop.hello``) through three backends, in one run, each with its real workers:

- ours, ``jobs.tasks_backend.RunQueueBackend``: a private Redis (nothing on disk) and SecantusDB
  (in memory), as bench/e2e.py; ``manage.py run_worker``;
- django-tasks-db's ``DatabaseBackend``: SQLite on /dev/shm, and a PostgreSQL database of the
  bench's own on 127.0.0.1:5432 (created, then dropped); ``manage.py db_worker``;
- django-tasks-rq's ``RQBackend``: a private redis-server; django-rq's ``manage.py rqworker
  --job-class django_tasks_rq.Job`` (RQ's worker, a work horse forked per job).

Django-tasks' backends run in bench/.venvs/django-tasks (bench/requirements-django-tasks.txt,
built by ``bench/run --venvs-only`` on first use), never in the project's venv. Every backend is
driven by one script (peers/tasks_driver.py) through the Tasks API alone: ``task.enqueue()``,
then ``get_result()`` for the status and the ``finished_at`` the backend recorded. Measured:

- **drain**: N Tasks enqueued up front by a process that exits before the workers start, then
  completions per second between the 10th and the 90th percentile ``finished_at`` (a backlog
  all along: saturated), worker start to the first completion, and the CPU of the workers
  (every process below them) and of the store (SecantusDB and Redis; PostgreSQL's server
  processes for the bench's database; Redis) over that span;
- **latency**: after a warm-up, Tasks enqueued at a steady rate (50/s) for a while; each one's
  recorded ``finished_at`` minus the moment just before its ``enqueue()``, p50 / p99 / max.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from e2e_peers import ensure_venv  # noqa: E402
from e2e_probes import with_retry_writes  # noqa: E402
from engine import Harness, percentile  # noqa: E402
from peers.common import descendants, proc_cpu_seconds, terminate  # noqa: E402
from peers.executors import steady_span  # noqa: E402
from tasks_report import write_report  # noqa: E402

from devtools.servers import Servers  # noqa: E402

VENV = BENCH / ".venvs" / "django-tasks"
REQUIREMENTS = BENCH / "requirements-django-tasks.txt"
OUR_TASK = "demo.tasks.hello"
PEER_TASK = "peers.tasks_noop.hello"
QUIET = ("--no-startup-delay", "--verbosity", "0")  # db_worker: no random start delay, no log line per Task


@dataclass
class Drain:
    tasks: int
    done: int = 0
    failed: int = 0
    rate: float = 0.0  # completions/s over the steady span
    span_s: float = 0.0
    start_to_first_s: float = 0.0
    enqueue_s: float = 0.0  # the N enqueues, one process, one after the other
    worker_cpu: float = 0.0  # cores over the span
    store_cpu: float = 0.0
    error: str = ""

    @property
    def cpu_ms_per_task(self) -> float:
        return 1000 * (self.worker_cpu + self.store_cpu) / self.rate if self.rate else 0.0


@dataclass
class Latency:
    rate: float  # offered, per second
    seconds: float
    enqueued: int = 0
    done: int = 0
    failed: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    error: str = ""


@dataclass
class Row:
    name: str
    workers: str  # how its workers ran, for the table
    drain: Drain | None = None
    latencies: list[tuple[str, Latency]] = field(default_factory=list)  # (variant, figures)


@dataclass
class Sample:
    at: float
    workers: float  # CPU seconds so far
    store: float


def cpu_at(samples: Sequence[Sample], moment: float, attribute: str) -> float:
    """A sampled counter at ``moment``, linear between the samples around it (clamped at the ends)."""
    if not samples:
        return 0.0
    for before, after in itertools.pairwise(samples):
        if before.at <= moment <= after.at:
            share = (moment - before.at) / (after.at - before.at) if after.at > before.at else 0.0
            low, high = getattr(before, attribute), getattr(after, attribute)
            return float(low + share * (high - low))
    return float(getattr(samples[0] if moment < samples[0].at else samples[-1], attribute))


class Backend:
    """One backend under test: how to run the driver and the workers, and what its store costs."""

    name = ""

    def __init__(self, workdir: Path, python: str, env: dict[str, str], cwd: Path, task: str):
        self.workdir, self.python, self.env, self.cwd, self.task = workdir, python, env, cwd, task
        self.workdir.mkdir(parents=True, exist_ok=True)

    def driver(self, *args: str, timeout: float = 600) -> str:
        done = subprocess.run(
            [self.python, "-m", "peers.tasks_driver", *args],
            cwd=BENCH,
            env=self.env,
            capture_output=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"tasks_driver {args[0]} failed: {done.stderr.decode(errors='replace')[-800:]}")
        return done.stdout.decode()

    def worker_commands(self, variant: str) -> list[list[str]]:
        raise NotImplementedError

    def store_cpu(self) -> float:
        return 0.0

    def reset(self) -> None:
        """Empty the store between two measurements."""

    def close(self) -> None:
        pass


class Ours(Backend):
    """Our backend on the bench's one Harness (Django is set up once in this process, on it)."""

    harness: Harness | None = None

    def __init__(self, workdir: Path, processes: int):
        if Ours.harness is None:
            servers = workdir.parent / "ours-servers"
            servers.mkdir()
            Ours.harness = Harness(servers)
        harness = Ours.harness
        env = {
            **harness.env,
            "JOBSCHEDULER_LOG_LEVEL": "WARNING",
            # As bench/e2e.py: SecantusDB scans its record of retryable writes on every write.
            "MONGODB_URI": with_retry_writes(harness.env["MONGODB_URI"], False),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)]),
        }
        super().__init__(workdir, sys.executable, env, ROOT, OUR_TASK)
        self.processes = processes
        self.name = "ours"

    def worker_commands(self, variant: str) -> list[list[str]]:
        command = [sys.executable, str(ROOT / "manage.py"), "run_worker", "--name", f"tasks-{uuid.uuid4().hex[:6]}"]
        return [[*command, "--processes", str(self.processes)]]

    def store_cpu(self) -> float:
        assert self.harness is not None
        return proc_cpu_seconds(self.harness.servers.processes[0].pid) + self.harness.redis_cpu()

    def reset(self) -> None:
        assert self.harness is not None
        self.harness.reset()

    @classmethod
    def stop_servers(cls) -> None:
        if cls.harness is not None:
            cls.harness.close()
            cls.harness = None


class Peer(Backend):
    """django-tasks-db or django-tasks-rq in bench/.venvs/django-tasks."""

    def __init__(self, workdir: Path, backend: str, extra_env: dict[str, str]):
        env = {
            **os.environ,
            "PYTHONPATH": str(BENCH),
            "DJANGO_SETTINGS_MODULE": "peers.tasks_settings",
            "BENCH_TASKS_BACKEND": backend,
            **extra_env,
        }
        super().__init__(workdir, str(VENV / "bin" / "python"), env, BENCH, PEER_TASK)


class DatabasePeer(Peer):
    def __init__(self, workdir: Path, postgres: bool):
        self.shm = Path(tempfile.mkdtemp(prefix="bench-tasks-", dir="/dev/shm")) if Path("/dev/shm").is_dir() else None
        self.database = f"bench_tasks_{os.getpid()}" if postgres else ""
        extra = (
            {"BENCH_PG_DB": self.database} if postgres else {"BENCH_SQLITE": str((self.shm or workdir) / "db.sqlite3")}
        )
        super().__init__(workdir, "db", extra)
        if postgres:
            subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", self.database], check=True)
        self.driver("migrate")
        self.name = "db-pg" if postgres else "db-sqlite"

    def worker_commands(self, variant: str) -> list[list[str]]:
        interval = variant or "1"  # db_worker's default: seconds it sleeps when it found nothing
        return [
            [self.python, "-m", "django", "db_worker", "--worker-id", f"w{index}", "--interval", interval, *QUIET]
            for index in range(2)
        ]

    def store_cpu(self) -> float:
        if not self.database:
            return 0.0  # SQLite runs inside the workers
        # PostgreSQL's server processes serving the bench's database (connections are kept: see
        # peers.tasks_settings); their title is "postgres: USER DATABASE HOST(PORT) STATE".
        total = 0.0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if f" {self.database} ".encode() in (entry / "cmdline").read_bytes().replace(b"\0", b" "):
                        total += proc_cpu_seconds(int(entry.name))
        return total

    def reset(self) -> None:
        self.driver("reset")

    def close(self) -> None:
        if self.database:
            subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--force", self.database], check=False)
        if self.shm is not None:
            shutil.rmtree(self.shm, ignore_errors=True)


class RQPeer(Peer):
    def __init__(self, workdir: Path):
        self.servers = Servers()
        self.redis_url = self.servers.start_redis(workdir)
        super().__init__(workdir, "rq", {"BENCH_REDIS_URL": self.redis_url})
        import redis

        self.redis = redis.Redis.from_url(self.redis_url)
        self.name = "rq"

    def worker_commands(self, variant: str) -> list[list[str]]:
        return [
            [
                self.python,
                "-m",
                "django",
                "rqworker",
                "--job-class",
                "django_tasks_rq.Job",
                "--name",
                f"w{index}",
                "-v",
                "0",
            ]
            for index in range(2)
        ]

    def store_cpu(self) -> float:
        info: Any = self.redis.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def reset(self) -> None:
        self.redis.flushdb()  # our private redis-server, started above

    def close(self) -> None:
        self.redis.close()
        self.servers.stop()


# --- measuring ----------------------------------------------------------------------------------


def start_workers(backend: Backend, variant: str) -> list[subprocess.Popen[bytes]]:
    log = (backend.workdir / "workers.log").open("ab")
    return [
        subprocess.Popen(command, cwd=backend.cwd, env=backend.env, stdout=log, stderr=log)
        for command in backend.worker_commands(variant)
    ]


def collect(
    backend: Backend, ids: Path, workers: list[subprocess.Popen[bytes]], timeout: float
) -> tuple[dict[str, Any], list[Sample]]:
    """Run the driver's collect while sampling the workers' and the store's CPU every 0.2 s."""
    out = ids.with_suffix(".results.json")
    command = [backend.python, "-m", "peers.tasks_driver", "collect", str(ids), str(out), str(timeout)]
    collector = subprocess.Popen(command, cwd=BENCH, env=backend.env, stderr=subprocess.PIPE)
    samples = []
    while True:
        pids = [pid for worker in workers for pid in descendants(worker.pid)]
        cpu = sum(proc_cpu_seconds(pid, reaped=True) for pid in pids)
        samples.append(Sample(time.time(), cpu, backend.store_cpu()))
        if collector.poll() is not None:
            break
        if any(worker.poll() is not None for worker in workers):
            collector.kill()
            collector.wait()
            raise RuntimeError(f"a worker exited; see {backend.workdir / 'workers.log'}")
        time.sleep(0.2)
    if collector.returncode != 0:
        assert collector.stderr is not None
        raise RuntimeError(f"collect failed: {collector.stderr.read().decode(errors='replace')[-800:]}")
    collected: dict[str, Any] = json.loads(out.read_text())
    return collected, samples


def measure_drain(backend: Backend, tasks: int) -> Drain:
    drain = Drain(tasks)
    backend.reset()
    ids = backend.workdir / f"drain-{uuid.uuid4().hex[:6]}.json"
    drain.enqueue_s = float(backend.driver("enqueue", backend.task, str(tasks), str(ids)).split()[-1])
    started = time.time()
    workers = start_workers(backend, "")
    try:
        collected, samples = collect(backend, ids, workers, timeout=max(120.0, tasks / 5))
    finally:
        terminate(workers, timeout=30)
    results = collected["results"]
    ok = [row["finished"] for row in results if row["status"] == "SUCCESSFUL" and row["finished"]]
    drain.done, drain.failed = len(ok), len(results) - len(ok)
    if collected["open"] or drain.failed:
        drain.error = f"{collected['open']} never finished, {drain.failed} failed"
    if len(ok) < 2:
        return drain
    drain.start_to_first_s = min(ok) - started
    start, end, completions = steady_span(ok)
    if end > start:
        drain.span_s = end - start
        drain.rate = completions / drain.span_s
        drain.worker_cpu = (cpu_at(samples, end, "workers") - cpu_at(samples, start, "workers")) / drain.span_s
        drain.store_cpu = (cpu_at(samples, end, "store") - cpu_at(samples, start, "store")) / drain.span_s
    return drain


def measure_latency(backend: Backend, variant: str, rate: float, seconds: float) -> Latency:
    latency = Latency(rate, seconds)
    backend.reset()
    workers = start_workers(backend, variant)
    try:
        warm = backend.workdir / f"warm-{uuid.uuid4().hex[:6]}.json"  # workers up, connections open
        backend.driver("enqueue", backend.task, "20", str(warm))
        collect(backend, warm, workers, timeout=120)
        ids = backend.workdir / f"steady-{uuid.uuid4().hex[:6]}.json"
        backend.driver("steady", backend.task, str(rate), str(seconds), str(ids), timeout=seconds + 120)
        collected, _ = collect(backend, ids, workers, timeout=120)
    finally:
        terminate(workers, timeout=30)
    results = collected["results"]
    latency.enqueued = len(results) + collected["open"]
    lags = [
        1000 * (row["finished"] - row["enqueued"])
        for row in results
        if row["status"] == "SUCCESSFUL" and row["finished"]
    ]
    latency.done, latency.failed = len(lags), len(results) - len(lags)
    if collected["open"] or latency.failed:
        latency.error = f"{collected['open']} never finished, {latency.failed} failed"
    if lags:
        latency.p50_ms, latency.p99_ms, latency.max_ms = percentile(lags, 0.5), percentile(lags, 0.99), max(lags)
    return latency


@dataclass(frozen=True)
class Plan:
    name: str
    workers: str
    make: Callable[[Path], Backend]
    latency_variants: tuple[tuple[str, str], ...] = (("", ""),)  # (label, worker variant)


PLANS = [
    Plan("ours, `RunQueueBackend`", "1 `run_worker --processes 2`", lambda path: Ours(path, 2)),
    Plan("ours, `RunQueueBackend`", "1 `run_worker` (4 run processes, its default)", lambda path: Ours(path, 4)),
    Plan(
        "django-tasks-db 0.13, SQLite (/dev/shm)",
        "2 `db_worker`",
        lambda path: DatabasePeer(path, postgres=False),
        (("--interval 1 (default)", "1"), ("--interval 0.1", "0.1")),
    ),
    Plan(
        "django-tasks-db 0.13, PostgreSQL 15",
        "2 `db_worker`",
        lambda path: DatabasePeer(path, postgres=True),
        (("--interval 1 (default)", "1"), ("--interval 0.1", "0.1")),
    ),
    Plan("django-tasks-rq 0.12 (RQ 3.0)", "2 `rqworker`", RQPeer),
]


def run_plan(plan: Plan, workroot: Path, tasks: int, rate: float, seconds: float) -> Row:
    row = Row(plan.name, plan.workers)
    folder = workroot / f"{len(list(workroot.iterdir())):02d}"
    print(f"running: {plan.name}, {plan.workers} ...", flush=True)
    backend = plan.make(folder)
    try:
        try:
            row.drain = measure_drain(backend, tasks)
        except Exception as error:  # a failing backend gets a row saying so; the others still run
            row.drain = Drain(tasks, error=f"{type(error).__name__}: {error}")
        d = row.drain
        print(
            f"  drain: {d.rate:.0f} tasks/s over {d.span_s:.1f} s, done {d.done}/{tasks}, first after "
            f"{d.start_to_first_s:.2f} s, enqueue {d.enqueue_s:.1f} s, CPU workers {d.worker_cpu:.2f} store "
            f"{d.store_cpu:.2f} ({d.cpu_ms_per_task:.2f} ms/task) {d.error}",
            flush=True,
        )
        for label, variant in plan.latency_variants:
            try:
                latency = measure_latency(backend, variant, rate, seconds)
            except Exception as error:
                latency = Latency(rate, seconds, error=f"{type(error).__name__}: {error}")
            row.latencies.append((label, latency))
            print(
                f"  latency {label}: {latency.done}/{latency.enqueued} at {rate:.0f}/s, p50 {latency.p50_ms:.0f} "
                f"p99 {latency.p99_ms:.0f} max {latency.max_ms:.0f} ms {latency.error}",
                flush=True,
            )
    finally:
        backend.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1500, help="Tasks enqueued up front per drain")
    parser.add_argument("--rate", type=float, default=50.0, help="Tasks enqueued per second for the latency")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the steady rate lasts")
    parser.add_argument("--only", default="", help="run the rows whose name contains this")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "tasks-benchmark.md")
    args = parser.parse_args()
    ensure_venv(VENV, REQUIREMENTS)
    load = "at start " + " / ".join(f"{value:.2f}" for value in os.getloadavg())
    workroot = Path(tempfile.mkdtemp(prefix="jobscheduler-tasks-"))
    try:
        rows = [
            run_plan(plan, workroot, args.tasks, args.rate, args.seconds)
            for plan in PLANS
            if not args.only or args.only in plan.name
        ]
    finally:
        Ours.stop_servers()
    load += ", at end " + " / ".join(f"{value:.2f}" for value in os.getloadavg())
    command = ".venv/bin/python bench/tasks.py " + " ".join(sys.argv[1:])
    write_report(rows, args.out, command.strip(), load, args.tasks, args.rate, args.seconds)
    print(f"wrote {args.out} (logs in {workroot})")


if __name__ == "__main__":
    main()
