"""End-to-end benchmark: fire -> worker -> webhook receiver -> run recorded in MongoDB.

Not a test: run it on purpose, on an otherwise idle machine (about 10 minutes).

    .venv/bin/python bench/e2e.py --light 200     # writes docs/e2e-benchmark.md and docs/img/e2e-rate.png
    .venv/bin/python bench/e2e.py --no-peers      # ours only (no Celery, RQ, django-q2)
    .venv/bin/python bench/e2e.py --profile       # plus a py-spy profile of a saturated worker
    .venv/bin/python bench/e2e.py --retry-writes  # pymongo's retryable writes left on (see below)

Through bench/engine.py's Harness it starts a private Redis (nothing on disk) and SecantusDB
(in memory); then the demo webhook receiver (``manage.py demo_receiver``, signatures checked),
and per scenario one ``run_scheduler`` and 1 or 2 ``run_worker`` processes, all real. Each
scenario loads N schedules firing every second (spread over the second) of one job: a
webhook to the receiver (127.0.0.1 allow-listed) or the python task ``demo.hello``. Over a
fixed window it measures (e2e_results.py)

- runs/s: runs recorded ``succeeded`` in MongoDB whose ``finished_at`` falls in the window,
  per second; with N above what the workers manage, that is their capacity;
- lag: for occurrences nominally in the window, the receiver's clock at receipt (webhooks)
  or the run's ``started_at`` (python) minus the nominal time, and ``finished_at`` (the
  outcome recorded) minus the nominal time; under saturation the backlog grows, so lags
  grow with the window and only the runs/s figure means something;
- CPU of each process (workers with their run processes) over the window.

Two probes follow (e2e_probes.py): what one compare-and-set update costs on SecantusDB with the
ORM's ``$and`` filter and with the flat one, and what one insert costs once SecantusDB holds its
maximum of retryable-write records (why the scenarios connect with ``retryWrites=false``).

Then, with our servers stopped, the execution peers (e2e_peers.py, bench/peers/executors.py in
bench/.venv-peers, built on first use as bench/run does): a Celery worker, RQ workers and a
django-q2 cluster draining the same no-op task; the report (e2e_report.py) puts them beside us.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from e2e_peers import draw_chart, ensure_venv, run_peers  # noqa: E402
from e2e_probes import probe_filters, probe_retryable_writes, server_requests, with_retry_writes  # noqa: E402
from e2e_profile import start_profilers, summarize_profile  # noqa: E402
from e2e_report import side_by_side, write_report  # noqa: E402
from e2e_results import Result, RunRow, Scenario, epoch_ms, result_of  # noqa: E402
from engine import CLOCK_TICKS, Harness  # noqa: E402
from peers.common import terminate, tree_cpu_seconds, tree_rss_mb  # noqa: E402

from devtools.servers import free_port, port_open  # noqa: E402

# Before the Harness copies the environment: the receiver listens on 127.0.0.1.
os.environ["JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"


def machine_busy_seconds() -> float:
    """CPU seconds spent by everything on the machine (all cores, not idle or waiting on I/O)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


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
        for pid in terminate(processes, timeout=30):
            print(f"  pid {pid} did not stop within 30 s of SIGTERM; killed", flush=True)

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
            rss = tree_rss_mb(worker.pid)
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
            cpu0 = {role: sum(tree_cpu_seconds(pid) for pid in pids) for role, pids in roles.items()}
            redis0 = self.harness.redis_cpu()
            busy0 = machine_busy_seconds()
            requests0 = server_requests()
            started = time.monotonic()
            if scenario.profile:
                secantus = self.harness.servers.processes[0].pid
                profilers = start_profilers(workers[0].pid, secantus, self.workdir, self.seconds - 1)
            time.sleep(max(0.0, window_end - time.time()))
            wall = time.monotonic() - started
            requests = {bucket: count - requests0[bucket] for bucket, count in server_requests().items()}
            rss = sum(tree_rss_mb(worker.pid) for worker in workers)
            cpu = {
                role: (sum(tree_cpu_seconds(pid) for pid in pids) - cpu0[role]) / wall for role, pids in roles.items()
            }
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
        result = result_of(scenario, runs, received, window_start, window_end, cpu, profile)
        result.collection_runs = Run.objects.count()
        result.rss_mb = rss
        result.requests = requests
        return result

    def receiver_lines(self, offset: int) -> list[dict[str, Any]]:
        with self.receiver_log.open() as log:
            log.seek(offset)
            return [json.loads(line) for line in log if '"webhook_id"' in line]


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
        chosen.append(Scenario(f"python, {heavy}/s, 1 worker, under py-spy", "python", heavy, profile=True))
    return chosen


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
    parser.add_argument("--no-peers", action="store_true", help="skip Celery, RQ and django-q2")
    parser.add_argument("--peer-tasks", type=int, default=5000, help="no-op tasks each peer drains")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "e2e-benchmark.md")
    args = parser.parse_args()
    if not args.no_peers:
        ensure_venv()  # before the scenarios: a build that fails should not cost their minutes
    load = "at start " + " / ".join(f"{value:.2f}" for value in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="jobscheduler-e2e-"))
    e2e = EndToEnd(workdir, args.seconds, args.retry_writes)
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
            buckets = ", ".join(f"{b} {result.per_run(b):.2f}" for b in ("insert", "query", "update", "command"))
            print(f"  SecantusDB requests per run: {result.per_run('all'):.2f} ({buckets})", flush=True)
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
    peers: list[dict[str, Any]] = []
    chart = None
    if not args.no_peers:  # with our servers stopped: the peers get the machine as we had it
        peers = run_peers(args.peer_tasks, workdir)
        chart = "img/e2e-rate.png"
        draw_chart(side_by_side(results, starts, peers, args.heavy), args.out.parent / chart)
    load += ", at end " + " / ".join(f"{value:.2f}" for value in os.getloadavg())
    command = ".venv/bin/python bench/e2e.py " + " ".join(sys.argv[1:])
    write_report(
        results, probe, writes, starts, args.out, command.strip(), load, args.heavy, args.retry_writes, peers, chart
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
