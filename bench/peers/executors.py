"""Execution peers for bench/e2e.py: Celery, RQ and django-q2 workers draining the same no-op task.

    cd bench && .venv-peers/bin/python -m peers.executors --tasks 5000 --workdir /tmp/peers --out /tmp/peers.json

bench/e2e.py runs this in the peers' venv and puts its figures beside ours. For each peer: a
private redis-server (loopback, a free port, nothing on disk, stopped by PID), N tasks enqueued
up front through the peer's public API by a process that exits first (peers.enqueue), then the
peer's real worker processes as a user deploys them. Every task notes when it ran in a file of
its process (peers.noop), so completions are counted the same way for every peer, without
asking the peer and at a few microseconds per task. Measured:

- tasks/s: completions per second between the 10th and the 90th percentile completion, a span
  over which the backlog keeps every worker busy (start-up and the drained tail left out);
- start to first: the worker processes started -> the first task done;
- CPU of the worker processes (every process below those started, per-job forks included) and
  of Redis over that same span, as cores and as CPU ms per task;
- RSS: the worker processes' resident memory, summed, the highest of the samples.

The peers that keep results in SQLite get it on /dev/shm where there is one (memory-backed, as
our SecantusDB in the benchmark), else in the run's folder.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH.parent))

from devtools.servers import Servers  # noqa: E402
from peers import firelog  # noqa: E402
from peers.common import descendants, proc_cpu_seconds, proc_rss_mb, terminate  # noqa: E402
from peers.django_common import copy_migrated_db  # noqa: E402

Commands = Callable[[Path, str], list[list[str]]]  # (venv bin, Redis URL) -> one command per process


def celery_worker(bin_dir: Path, redis_url: str) -> list[list[str]]:
    # One worker, a prefork pool of 2: Celery's default pool, sized to the machine's two cores.
    return [[str(bin_dir / "celery"), "-A", "peers.exec_celery", "worker", "-c", "2", "-P", "prefork", "-l", "WARNING"]]


def rq_workers(bin_dir: Path, redis_url: str) -> list[list[str]]:
    # `rq worker` with its default Worker (a work horse forked per job); --burst only makes it exit
    # once the queue is empty, which is how the harness knows they are done.
    return [
        [str(bin_dir / "rq"), "worker", "--burst", "--url", redis_url, "--logging_level", "WARNING", "-n", f"w{i}"]
        for i in range(2)
    ]


def django_q2_cluster(bin_dir: Path, redis_url: str) -> list[list[str]]:
    return [[str(bin_dir / "python"), "-m", "django", "qcluster"]]


@dataclass(frozen=True)
class Peer:
    name: str
    enqueue: str  # a peer of peers.enqueue
    workers: Commands
    env: dict[str, str] = field(default_factory=dict)
    database: bool = False  # needs the migrated SQLite database of peers.django_settings
    results: str = ""  # where results are kept, to count them: "redis:PATTERN" or "sql:TABLE"


PEERS = [
    Peer("Celery 5.7, -c 2, results ignored", "celery", celery_worker, {"BENCH_CELERY_RESULTS": "ignored"}),
    Peer(
        "Celery 5.7, -c 2, Redis result backend",
        "celery",
        celery_worker,
        {"BENCH_CELERY_RESULTS": "redis"},
        results="redis:celery-task-meta-*",
    ),
    Peer(
        "Celery 5.7, -c 2, django-celery-results (SQLite)",
        "celery",
        celery_worker,
        {"BENCH_CELERY_RESULTS": "django-db"},
        database=True,
        results="sql:django_celery_results_taskresult",
    ),
    Peer("RQ 3.0, 2 workers", "rq", rq_workers, results="redis:rq:results:*"),
    Peer(
        "django-q2 1.11, cluster of 2 workers",
        "django-q2",
        django_q2_cluster,
        {"BENCH_Q_WORKERS": "2"},
        database=True,
        results="sql:django_q_task",
    ),
]


@dataclass
class Sample:
    at: float  # wall clock
    cpu: float  # worker processes, CPU seconds so far
    redis_cpu: float
    rss_mb: float  # worker processes, now


@dataclass
class Outcome:
    name: str
    tasks: int
    done: int = 0  # distinct tasks that ran
    duplicates: int = 0  # tasks that ran more than once
    rate: float = 0.0  # tasks/s over the steady span
    span_s: float = 0.0
    start_to_first_s: float = 0.0
    rss_mb: float = 0.0
    cpu_cores: float = 0.0
    cpu_ms_per_task: float = 0.0
    redis_cpu_cores: float = 0.0
    results_kept: int | None = None
    enqueue_s: float = 0.0
    database: str = ""  # the SQLite file, for the peers that keep results in one
    error: str = ""


def steady_span(times: Sequence[float], trim: float = 0.1) -> tuple[float, float, int]:
    """(start, end, completions after start up to end) between the ``trim`` and ``1 - trim`` quantiles."""
    ordered = sorted(times)
    if len(ordered) < 2:
        return 0.0, 0.0, 0
    first = round(trim * (len(ordered) - 1))
    last = len(ordered) - 1 - first
    return ordered[first], ordered[last], last - first


def value_at(samples: Sequence[Sample], moment: float, attribute: str) -> float:
    """A sampled counter at ``moment``, linear between the samples around it (clamped at the ends)."""
    if not samples:
        return 0.0
    for before, after in itertools.pairwise(samples):
        if before.at <= moment <= after.at:
            share = (moment - before.at) / (after.at - before.at) if after.at > before.at else 0.0
            low, high = getattr(before, attribute), getattr(after, attribute)
            return float(low + share * (high - low))
    edge = samples[0] if moment < samples[0].at else samples[-1]
    return float(getattr(edge, attribute))


def summarize(outcome: Outcome, times: list[float], names: list[str], started: float, samples: list[Sample]) -> None:
    outcome.done = len(set(names))
    outcome.duplicates = len(names) - outcome.done
    if not times:
        return
    outcome.start_to_first_s = min(times) - started
    start, end, completions = steady_span(times)
    outcome.span_s = end - start
    if end <= start:
        return
    outcome.rate = completions / (end - start)
    cpu = value_at(samples, end, "cpu") - value_at(samples, start, "cpu")
    outcome.cpu_cores = cpu / (end - start)
    outcome.cpu_ms_per_task = 1000 * cpu / completions
    outcome.redis_cpu_cores = (value_at(samples, end, "redis_cpu") - value_at(samples, start, "redis_cpu")) / (
        end - start
    )
    outcome.rss_mb = max((s.rss_mb for s in samples), default=0.0)


class Run:
    """One peer's run: its Redis, its database, its enqueue, its workers, and their samples."""

    def __init__(self, peer: Peer, workroot: Path, tasks: int, timeout: float):
        self.peer, self.tasks, self.timeout = peer, tasks, timeout
        self.workdir = workroot / re.sub(r"[^a-z0-9]+", "-", peer.name.lower()).strip("-")
        self.fires = self.workdir / "fires"
        self.fires.mkdir(parents=True)
        self.servers = Servers()
        self.redis_url = self.servers.start_redis(self.workdir)
        import redis

        self.redis = redis.Redis.from_url(self.redis_url)
        # On a memory-backed file system where there is one: our SecantusDB runs in memory, and a
        # commit per result on a shared disk measures that disk's fsync rather than the peer.
        shm = Path("/dev/shm")
        self.database_dir = Path(tempfile.mkdtemp(prefix="bench-", dir=shm)) if shm.is_dir() else self.workdir
        self.sqlite = self.database_dir / "db.sqlite3"
        if peer.database:
            copy_migrated_db(sys.executable, workroot, str(self.sqlite))
        self.env = {
            **os.environ,
            "PYTHONPATH": str(BENCH),
            "DJANGO_SETTINGS_MODULE": "peers.django_settings",
            "BENCH_REDIS_URL": self.redis_url,
            "BENCH_SQLITE": str(self.sqlite),
            "BENCH_FIRES": str(self.fires),
            "BENCH_Q_LOG_LEVEL": "WARNING",
            **peer.env,
        }
        self.workers: list[subprocess.Popen[bytes]] = []

    def measure(self) -> Outcome:
        outcome = Outcome(self.peer.name, self.tasks, database=str(self.sqlite) if self.peer.database else "")
        enqueue = subprocess.run(
            [sys.executable, "-m", "peers.enqueue", self.peer.enqueue, str(self.tasks)],
            cwd=BENCH,
            env=self.env,
            capture_output=True,
            timeout=self.timeout,
        )
        if enqueue.returncode != 0:
            raise RuntimeError(f"enqueue failed: {enqueue.stderr.decode(errors='replace')[-500:]}")
        outcome.enqueue_s = float(enqueue.stdout.split()[-1])
        started = time.time()
        log = (self.workdir / "workers.log").open("ab")
        for command in self.peer.workers(Path(sys.executable).parent, self.redis_url):
            self.workers.append(subprocess.Popen(command, cwd=BENCH, env=self.env, stdout=log, stderr=log))
        samples = self.watch(started)
        self.stop_workers()
        fires = firelog.read(self.fires)
        summarize(outcome, [ms / 1000 for ms, _, _ in fires], [name for _, name, _ in fires], started, samples)
        outcome.results_kept = self.results_kept()
        if outcome.done < self.tasks:
            outcome.error = f"{self.tasks - outcome.done} of {self.tasks} tasks never ran; see {self.workdir}"
        return outcome

    def watch(self, started: float) -> list[Sample]:
        """Sample the workers every 0.2 s until every task ran, they all exited, or the time is up."""
        samples = []
        while True:
            pids = [pid for worker in self.workers for pid in descendants(worker.pid)]
            info = self.redis.info("cpu")
            samples.append(
                Sample(
                    time.time(),
                    sum(proc_cpu_seconds(pid, reaped=True) for pid in pids),
                    float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
                    sum(proc_rss_mb(pid) for pid in pids),
                )
            )
            done = sum(path.read_bytes().count(b"\n") for path in self.fires.glob("fires-*.log"))
            exited = all(worker.poll() is not None for worker in self.workers)
            if done >= self.tasks or exited or time.time() > started + self.timeout:
                return samples
            time.sleep(0.2)

    def stop_workers(self) -> None:
        terminate(self.workers, timeout=30)

    def results_kept(self) -> int | None:
        kind, _, where = self.peer.results.partition(":")
        if kind == "redis":
            return sum(1 for _ in self.redis.scan_iter(match=where, count=1000))
        if kind == "sql":
            with sqlite3.connect(self.sqlite) as connection:
                return int(connection.execute(f"SELECT COUNT(*) FROM {where}").fetchone()[0])  # noqa: S608
        return None

    def close(self) -> None:
        self.stop_workers()
        self.redis.close()
        self.servers.stop()
        if self.database_dir != self.workdir:
            shutil.rmtree(self.database_dir, ignore_errors=True)


def measure_all(peers: Sequence[Peer], tasks: int, workroot: Path, only: str = "") -> list[Outcome]:
    outcomes = []
    for peer in peers:
        if only and only not in peer.name:
            continue
        print(f"running peer: {peer.name}, {tasks} tasks ...", flush=True)
        run = Run(peer, workroot, tasks, timeout=max(120.0, tasks / 10))
        try:
            outcome = run.measure()
        except Exception as error:  # a peer that fails gets a row saying so; the others still run
            outcome = Outcome(peer.name, tasks, error=f"{type(error).__name__}: {error}")
        finally:
            run.close()
        print(
            f"  {outcome.rate:.0f} tasks/s over {outcome.span_s:.1f} s, done {outcome.done}/{tasks} "
            f"dup={outcome.duplicates}, first after {outcome.start_to_first_s:.2f} s, RSS {outcome.rss_mb:.0f} MB, "
            f"CPU {outcome.cpu_cores:.2f} cores ({outcome.cpu_ms_per_task:.2f} ms/task), Redis "
            f"{outcome.redis_cpu_cores:.2f}, results kept {outcome.results_kept} {outcome.error}",
            flush=True,
        )
        outcomes.append(outcome)
    return outcomes


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=5000, help="no-op tasks enqueued up front per peer")
    parser.add_argument("--only", default="", help="run the peers whose name contains this")
    parser.add_argument("--workdir", type=Path, required=True, help="an empty folder for logs and databases")
    parser.add_argument("--out", type=Path, required=True, help="where to write the outcomes (JSON)")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    outcomes = measure_all(PEERS, args.tasks, args.workdir, args.only)
    args.out.write_text(json.dumps([asdict(outcome) for outcome in outcomes], indent=1))


if __name__ == "__main__":
    main()
