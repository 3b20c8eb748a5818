"""Replacing celery beat: our scheduler and celery beat sending to a real Celery worker through RabbitMQ.

Not a test: run it on purpose, on an otherwise idle machine (about 5 minutes).

    .venv/bin/python bench/celery_switch.py              # writes docs/celery-benchmark.md
    .venv/bin/python bench/celery_switch.py --seconds 10 --schedules 500
    .venv/bin/python bench/celery_switch.py --scenarios beat ours --profile --no-write   # where our CPU goes

RabbitMQ at 127.0.0.1:5672 (guest/guest), in a vhost of the run's own (``rabbitmqctl``),
removed at the end. One Celery worker (``celery worker -P solo``, on bench/celery_receiver.py)
drains one queue and notes when each task reaches it. Each scenario offers N entries firing
every second, spread over the second, for a window of whole seconds:

- ours: 1 or 2 ``run_scheduler`` and 2 ``run_worker`` processes (bench/engine.py's Harness: a
  private Redis and SecantusDB), N fixed schedules of one celery job; the task id is the fire
  key, so each receipt names its occurrence and nominal time exactly;
- celery beat (file scheduler, bench/celery_switch_beat.py), once with one beat and once with
  two (what happens when a second beat is started by mistake: beat has no lock); a receipt
  names its entry, and its nominal time is the entry's grid slot before the receipt.

Measured: tasks reaching the worker per second (occurrences of the window received), lag
(receipt minus nominal time: p50, p99), misses (occurrences of the window never received) and
duplicates (an occurrence received more than once), and the CPU of the scheduling processes.
With ``--profile``, py-spy samples one of our workers' CPU (every thread) during the window of
"ours, 1 scheduler" and the report says which steps of a celery run it went to.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from e2e_probes import with_retry_writes  # noqa: E402
from e2e_profile import cpu_by_step, read_stacks  # noqa: E402
from engine import Harness, percentile  # noqa: E402
from peers.common import terminate, tree_cpu_seconds  # noqa: E402

DOC = ROOT / "docs" / "celery-benchmark.md"
RESULTS = ROOT / "bench" / "results"  # not versioned
HISTORY = "## Changes measured with this benchmark"  # the doc's section kept across runs
CELERY_WORKER = [sys.executable, "-m", "celery", "-A", "celery_receiver", "worker", "-P", "solo", "-l", "warning"]
CELERY_WORKER += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
SCENARIOS = {"beat": "celery beat, 1 beat", "ours": "ours, 1 scheduler", "ours2": "ours, 2 schedulers"}
SCENARIOS["beat2"] = "celery beat, 2 beats"
SERVERS = "Redis + SecantusDB"  # our servers' CPU, a column of its own
NOT_SCHEDULING = ("Celery worker", SERVERS)

# Where our worker's CPU goes during a celery run, by the first of these frames on a sampled stack.
WORKER_STEPS = [
    ("SendMarks.", "send marks (Redis)"),
    ("create_task_message (celery/", "building the Celery message"),
    ("acquire (kombu/", "taking a producer from the pool"),
    ("release (kombu/", "giving the producer back"),
    ("basic_publish_confirm (amqp/", "publishing and reading the confirm (py-amqp)"),
    ("send_task (celery/", "the rest of Celery's send_task and kombu's publish"),
    ("send (jobs/targets/celery.py", "our checks and bookkeeping around the send"),
    ("Recorder.flush (workers/recorder.py", "writing run records (MongoDB, batched)"),
    ("recorded_attempts (jobs/selectors.py", "which attempts are recorded (MongoDB, per read)"),
    ("run_draft (jobs/services.py", "drafting the run record"),
    ("Worker.read (workers/worker.py", "reading entries (Redis)"),
    ("RunQueue.ack (jobs/runqueue.py", "acknowledging entries (Redis)"),
    ("_keep_loop (workers/loop.py", "keep-alive and heartbeat (Redis)"),
    ("handle (workers/handler.py", "the rest of handling an entry"),
    ("run (workers/loop.py", "the reading loop"),
]


@dataclass
class Outcome:
    name: str
    offered: int
    seconds: int
    received: int = 0  # occurrences of the window received at least once
    delivered: int = 0  # tasks received during the window, whatever their occurrence (a backlog's included)
    misses: int = 0
    duplicates: int = 0
    lags: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    busy: float = 0.0  # the whole machine's CPU use meanwhile, in cores
    profile: list[tuple[str, float]] = field(default_factory=list)  # one worker's CPU by step (--profile)

    @property
    def rate(self) -> float:
        return self.received / self.seconds

    @property
    def scheduling_cpu(self) -> float:
        return sum(value for role, value in self.cpu.items() if role not in NOT_SCHEDULING)

    @property
    def ms_per_task(self) -> float:
        """CPU of the scheduling processes per task delivered during the window, in milliseconds."""
        return 1000 * self.scheduling_cpu * self.seconds / self.delivered if self.delivered else 0.0


def machine_busy_seconds() -> float:
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def plain_environment() -> dict[str, str]:
    """This process's environment without Django's settings: Celery's processes are not ours."""
    return {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


class Bench:
    def __init__(self, workdir: Path, schedules: int, seconds: int, profile: bool = False, slots: int = 64):
        self.workdir = workdir
        self.slots = slots
        self.schedules = schedules
        self.seconds = seconds
        self.profile = profile
        self.vhost = f"bench-{uuid.uuid4().hex[:8]}"
        rabbitmqctl("add_vhost", self.vhost)
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        self.broker = f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}"
        self.queue = "bench"
        self.receipts = workdir / "receipts"
        self.receipts.mkdir()
        self._read: dict[Path, int] = {}
        os.environ["JOBSCHEDULER_CELERY_BROKER_URL"] = self.broker  # before the Harness loads the settings
        self.harness = Harness(workdir)
        self.env = {**self.harness.env, "JOBSCHEDULER_LOG_LEVEL": "WARNING"}
        # As bench/e2e.py: SecantusDB scans its record of retryable writes on every write.
        self.env["MONGODB_URI"] = with_retry_writes(self.env["MONGODB_URI"], False)
        self.worker = subprocess.Popen(
            [*CELERY_WORKER, "-Q", self.queue],
            cwd=ROOT / "bench",
            env={**plain_environment(), "BENCH_BROKER": self.broker, "BENCH_RECEIPTS": str(self.receipts)},
        )

    def close(self) -> None:
        terminate([self.worker], timeout=20)
        self.harness.close()
        rabbitmqctl("delete_vhost", self.vhost)

    def read_receipts(self) -> list[tuple[float, str, str]]:
        """(receipt ms, task id, key) of every receipt since the last call (the worker keeps its
        files open: they are read on from where the last call stopped, never removed)."""
        found = []
        for path in self.receipts.glob("receipts-*.log"):
            with path.open("rb") as receipts:
                receipts.seek(self._read.get(path, 0))
                data = receipts.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._read[path] = self._read.get(path, 0) + len(complete)
            for line in complete.splitlines():
                micros, task_id, key = line.split(b" ", 2)
                found.append((int(micros) / 1000, task_id.decode(), key.decode()))
        return found

    def wait_for_worker(self) -> None:
        """Send probes until one reaches the worker (it is up and consuming)."""
        from celery import Celery

        app = Celery("bench-probe", broker=self.broker, set_as_current=False)
        deadline = time.monotonic() + 60
        while not self.read_receipts():
            app.send_task("bench.receive", args=("probe",), queue=self.queue)
            if time.monotonic() > deadline:
                raise RuntimeError("the Celery worker did not start")
            time.sleep(0.5)

    def drain(self, seconds: float = 3.0) -> None:
        time.sleep(seconds)
        self.read_receipts()

    # --- ours ---------------------------------------------------------------------------------
    def ours(self, schedulers: int, workers: int = 2) -> Outcome:
        from jobs.services import job_create, run_now
        from schedules.services import schedule_bulk_create

        owner = self.harness.reset().owner
        job = job_create(
            owner=owner,
            name="celery",
            target_type="celery",
            target={"task": "bench.receive", "queue": self.queue},
        )
        worker_processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "run_worker",
                    "--name",
                    f"celery-{index}",
                    "--concurrency",
                    str(self.slots),
                ],
                cwd=ROOT,
                env=self.env,
            )
            for index in range(workers)
        ]
        processes = list(worker_processes)
        try:
            deadline = time.monotonic() + 60
            while len(self.harness.coordination.beats("workers")) < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError("workers did not start")
                time.sleep(0.05)
            for _ in range(workers * self.slots):  # every slot sends once: connections open
                run_now(job, user=owner, runqueue=self.harness.index.runqueue)
            time.sleep(2)
            self.read_receipts()
            scheduler_processes = self.harness.start_schedulers(schedulers)
            processes += scheduler_processes
            base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
            step_us = 1_000_000 // self.schedules
            anchors = [base + timedelta(microseconds=i * step_us) for i in range(self.schedules)]
            specs = [
                {
                    "kind": "fixed",
                    "interval_seconds": 1,
                    "anchor": anchor.replace(microsecond=anchor.microsecond // 1000 * 1000),
                }
                for anchor in anchors
            ]
            schedule_bulk_create(job=job, specs=specs)
            window_start = int(time.time()) + 3
            roles = {"schedulers": scheduler_processes, "workers": worker_processes}
            profiled = self.profile and schedulers == 1
            profiler = self.profiler(worker_processes[0].pid, window_start) if profiled else None
            cpu, busy = self.window(window_start, roles)
            time.sleep(3)  # the window's last occurrences reach the worker
        finally:
            terminate(processes, timeout=30)
        outcome = Outcome(f"ours, {schedulers} scheduler{'s' if schedulers > 1 else ''}", self.schedules, self.seconds)
        outcome.cpu, outcome.busy = cpu, busy
        if profiler is not None:
            stacks = read_stacks(*profiler)
            if profiler[1].exists():  # the raw stacks, kept for a closer look
                kept = RESULTS / f"celery-profile-{self.schedules}-{datetime.now(UTC):%H%M%S}.txt"
                RESULTS.mkdir(exist_ok=True)
                shutil.copyfile(profiler[1], kept)
                print(f"  profile: {kept}", flush=True)
            outcome.profile = [(stacks, 1.0)] if isinstance(stacks, str) else cpu_by_step(stacks, WORKER_STEPS)
        start_ms, end_ms = window_start * 1000, (window_start + self.seconds) * 1000
        seen: Counter[str] = Counter()
        for received_ms, task_id, _ in self.read_receipts():
            nominal = int(task_id.rsplit(":", 1)[1]) if ":" in task_id and not task_id.startswith("manual:") else None
            outcome.delivered += nominal is not None and start_ms <= received_ms < end_ms
            if nominal is None or not start_ms <= nominal < end_ms:
                continue
            seen[task_id] += 1
            if seen[task_id] == 1:
                outcome.lags.append(received_ms - nominal)
        self.count(outcome, seen)
        return outcome

    def profiler(self, pid: int, window_start: int) -> tuple[subprocess.Popen[bytes], Path]:
        """py-spy on a worker (CPU samples of every thread) through the window, from its start."""
        time.sleep(max(0.0, window_start - time.time()))
        path = self.workdir / f"profile-{uuid.uuid4().hex[:6]}.txt"
        command = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--rate", "100"]
        command += ["--duration", str(self.seconds), "--format", "raw", "--output", str(path), "--nonblocking"]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), path

    # --- celery beat ----------------------------------------------------------------------------
    def beat(self, beats: int) -> Outcome:
        base_ms = (int(time.time()) + 3) * 1000
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "bench" / "celery_switch_beat.py"),
                    self.broker,
                    self.queue,
                    str(self.schedules),
                    str(base_ms),
                    str(self.workdir / f"beat-{index}-{uuid.uuid4().hex[:4]}"),
                ],
                cwd=ROOT,
                env={**plain_environment(), "PYTHONPATH": str(ROOT / "bench")},
            )
            for index in range(beats)
        ]
        try:
            window_start = base_ms // 1000 + 3
            cpu, busy = self.window(window_start, {"beat": processes})
            time.sleep(3)
        finally:
            terminate(processes, timeout=30)
        outcome = Outcome(f"celery beat, {beats} beat{'s' if beats > 1 else ''}", self.schedules, self.seconds)
        outcome.cpu, outcome.busy = cpu, busy
        start_ms, end_ms = window_start * 1000, (window_start + self.seconds) * 1000
        step_ms = 1000 / self.schedules
        seen: Counter[str] = Counter()
        for received_ms, _, key in self.read_receipts():
            if not key.startswith("s"):
                continue
            outcome.delivered += start_ms <= received_ms < end_ms
            offset = base_ms + int(key[1:]) * step_ms
            slot = offset + ((received_ms - offset) // 1000) * 1000  # the grid time just before the receipt
            if not start_ms <= slot < end_ms:
                continue
            occurrence = f"{key}@{int(slot)}"
            seen[occurrence] += 1
            if seen[occurrence] == 1:
                outcome.lags.append(received_ms - slot)
        self.count(outcome, seen)
        return outcome

    # --- shared ---------------------------------------------------------------------------------
    def window(
        self, window_start: int, roles: dict[str, list[subprocess.Popen[bytes]]]
    ) -> tuple[dict[str, float], float]:
        """Wait through the window; the CPU (cores) each role, the Celery worker, our servers (Redis
        and SecantusDB, busy only in our rows) and the machine used meanwhile."""
        time.sleep(max(0.0, window_start - time.time()))
        cpu0 = {role: sum(tree_cpu_seconds(p.pid) for p in procs) for role, procs in roles.items()}
        cpu0["Celery worker"] = tree_cpu_seconds(self.worker.pid)
        cpu0[SERVERS] = self.servers_cpu()
        busy0, started = machine_busy_seconds(), time.monotonic()
        time.sleep(max(0.0, window_start + self.seconds - time.time()))
        wall = time.monotonic() - started
        cpu = {role: (sum(tree_cpu_seconds(p.pid) for p in procs) - cpu0[role]) / wall for role, procs in roles.items()}
        cpu["Celery worker"] = (tree_cpu_seconds(self.worker.pid) - cpu0["Celery worker"]) / wall
        cpu[SERVERS] = (self.servers_cpu() - cpu0[SERVERS]) / wall
        return cpu, (machine_busy_seconds() - busy0) / wall

    def servers_cpu(self) -> float:
        return tree_cpu_seconds(self.harness.servers.processes[0].pid) + self.harness.redis_cpu()

    def count(self, outcome: Outcome, seen: Counter[str]) -> None:
        expected = self.schedules * self.seconds
        outcome.received = len(seen)
        outcome.misses = max(0, expected - len(seen))
        outcome.duplicates = sum(count - 1 for count in seen.values())


def report(outcomes: list[Outcome], seconds: int, slots: int) -> str:
    load = Path("/proc/loadavg").read_text().split()
    lines = [
        "# Replacing celery beat: sending to a real Celery worker through RabbitMQ",
        "",
        f"Written by `bench/celery_switch.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. N entries firing "
        f"every second, spread over the second, for {seconds} s (load averages at the end: {load[0]} / {load[1]} / "
        f"{load[2]}); one Celery worker (`-P solo`) drains the "
        "queue and notes each receipt. Lag is the receipt minus the occurrence's nominal time (ours: from the task "
        "id, the fire key; beat: the entry's grid slot before the receipt). Misses are occurrences of the window "
        "never received, duplicates occurrences received more than once. 'Tasks/s delivered' counts every task "
        "the worker received during the window, whatever its occurrence: a scheduler behind delivers a backlog "
        "(ours) where beat skips (misses). CPU is in cores over the window; "
        "'scheduling CPU per task' is the scheduling processes' CPU over the tasks delivered; "
        "'Redis + SecantusDB' is our servers' (Redis and MongoDB's stand-in, in memory: beat needs neither, they "
        "idle in its rows); "
        "'machine' is everything on this 2-core machine meanwhile (other work included). Beat's lag is measured "
        "against the slot before the receipt, so it cannot exceed 1 s: a backlog shows as misses.",
        "",
        "| N | scheduler | tasks/s reaching the worker | tasks/s delivered | lag p50 | lag p99 | misses | duplicates | "
        "CPU: scheduling | scheduling CPU per task | CPU: Redis + SecantusDB | CPU: Celery worker | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        detail = ", ".join(f"{role} {value:.2f}" for role, value in outcome.cpu.items() if role not in NOT_SCHEDULING)
        lines.append(
            f"| {outcome.offered} | {outcome.name} | {outcome.rate:.0f} of {outcome.offered} | "
            f"{outcome.delivered / outcome.seconds:.0f} | "
            f"{percentile(outcome.lags, 0.5):.1f} ms | "
            f"{percentile(outcome.lags, 0.99):.1f} ms | {outcome.misses} | {outcome.duplicates} | "
            f"{outcome.scheduling_cpu:.2f} ({detail}) | {outcome.ms_per_task:.2f} ms | {outcome.cpu[SERVERS]:.2f} | "
            f"{outcome.cpu.get('Celery worker', 0):.2f} | {outcome.busy:.2f} |"
        )
    if any(outcome.busy > 1.5 for outcome in outcomes):
        lines += [
            "",
            "**The machine was saturated** (over 1.5 of its 2 cores busy, other work included) during some rows: "
            "there, every process waited for CPU, the Celery worker first, and the figures show how each scheduler "
            "behaves under contention (misses, duplicates) rather than its capacity. "
            "Rerun on an idle machine for that.",
        ]
    lines += [
        "",
        "Ours: `run_scheduler` dispatches each occurrence once through Redis, and `run_worker` sends it with "
        "`send_task` (publisher confirms on, the send marked in Redis so that a worker killed between sending and "
        "recording does not send it again) and records the hand-off in MongoDB: the scheduling CPU includes "
        f"both, and the run records. Our two workers run {slots} slots each (`run_worker --concurrency {slots}`; "
        "the default is 16): a celery run is I/O bound, and more slots waiting on one MongoDB write make "
        "bigger batches of run records. Beat publishes and records nothing.",
        "",
        "Two beats: celery beat has no lock, so a second beat started by mistake (a second replica, a deploy "
        "overlapping the old one) sends every entry again: its duplicates column. Two of our schedulers share "
        "the work, each occurrence claimed once.",
        "",
    ]
    for outcome in outcomes:
        if outcome.profile:
            lines += [
                f"Where one of our two workers spent its CPU, N = {outcome.offered} ({outcome.name}; py-spy, 100 "
                "samples a second of every thread, `--profile`):",
                "",
                *(f"- {100 * share:.0f}% {label}" for label, share in outcome.profile),
                "",
            ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--schedules", type=int, nargs="+", default=[1000, 200], help="Entries per run (each fires every second)."
    )
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument(
        "--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS), help="Which rows to run."
    )
    parser.add_argument("--profile", action="store_true", help="py-spy on one of our workers (ours, 1 scheduler).")
    parser.add_argument("--concurrency", type=int, default=64, help="Slots of each of our workers (run_worker's).")
    parser.add_argument("--no-write", action="store_true", help="Print the table; leave docs/ alone.")
    options = parser.parse_args()
    if not shutil.which("rabbitmqctl"):
        raise SystemExit("bench/celery_switch.py: rabbitmqctl is needed (a vhost of the run's own)")
    workdir = Path(tempfile.mkdtemp(prefix="celery-switch-"))
    bench = Bench(workdir, options.schedules[0], options.seconds, options.profile, options.concurrency)
    outcomes: list[Any] = []
    scenarios = [
        (count, name, run)
        for count in options.schedules
        for name, run in (
            ("beat", lambda: bench.beat(1)),
            ("ours", lambda: bench.ours(1)),
            ("ours2", lambda: bench.ours(2)),
            ("beat2", lambda: bench.beat(2)),
        )
        if name in options.scenarios
    ]
    try:
        bench.wait_for_worker()
        for count, name, run in scenarios:
            bench.schedules = count
            print(f"{SCENARIOS[name]}, {count} entries ...", flush=True)
            outcome = run()
            outcomes.append(outcome)
            delivered = outcome.delivered / outcome.seconds
            print(
                f"  {outcome.rate:.0f}/s ({delivered:.0f}/s delivered), "
                f"lag p99 {percentile(outcome.lags, 0.99):.1f} ms, "
                f"{outcome.misses} misses, {outcome.duplicates} duplicates, cpu {outcome.cpu}, "
                f"{outcome.ms_per_task:.2f} ms CPU per task",
                flush=True,
            )
            bench.drain()
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)
    text = report(outcomes, options.seconds, options.concurrency)
    print(text)
    if not options.no_write:
        # The page's hand-written history (what changed, measured before and after) stays.
        kept = DOC.read_text().partition(HISTORY)[2] if DOC.exists() else ""
        DOC.write_text(text + (f"\n{HISTORY}{kept}" if kept else ""))


if __name__ == "__main__":
    main()
