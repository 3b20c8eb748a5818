"""Our scheduler under the same measuring procedure as the peers; runs in the project's venv.

It reuses bench/engine.py's Harness (private Redis and SecantusDB, ``run_scheduler``
processes, the stream read-back) and takes one workload per line on stdin, answering with
the path of a JSON file of raw figures, so the harness can interleave it with the peers.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))

from engine import Harness  # noqa: E402

from peers.common import Plan, RunSpec, ThreadHandle, Workload, measure, read_edits, run_edits  # noqa: E402


def moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class Ours:
    """Our scheduler as the System of peers.common.measure."""

    def __init__(self, harness: Harness, workdir: Path):
        self.harness = harness
        self.workdir = workdir
        self.processes: list[Any] = []
        self.parked: dict[str, Any] = {}
        self.names: dict[str, str] = {}
        self.plan = Plan(0)

    def setup(self, plan: Plan) -> float:
        from schedules.services import schedule_bulk_create, schedule_create

        self.plan = plan
        (self.workdir / "edits.log").unlink(missing_ok=True)
        job = self.harness.reset()
        # One scheduler runs while the schedules load, as it would in service: each batch
        # fires from when it is saved. Started after it, it would first catch up on every
        # occurrence that fell due during the load (tens of seconds at 40k on SecantusDB).
        self.processes = self.harness.start_schedulers(1)
        specs = []
        parked = []
        for key, anchor, first in plan.items(int(time.time() * 1000)):
            if key.startswith("e"):
                parked.append((key, first))
                continue
            # Steady workloads keep their grid from an anchor in the past; the others start at first.
            start = first if plan.first_due_ms else anchor
            specs.append({"kind": "fixed", "interval_seconds": plan.interval, "anchor": moment(start)})
        started = time.perf_counter()
        schedule_bulk_create(job=job, specs=specs)
        load_seconds = time.perf_counter() - started
        self.parked = {}
        for key, first in parked:
            schedule = schedule_create(job=job, kind="fixed", interval_seconds=plan.interval, anchor=moment(first))
            self.parked[key] = schedule
        self.names = {str(schedule.pk): key for key, schedule in self.parked.items()}
        return load_seconds

    def start(self, count: int) -> tuple[list[int], None]:
        if count > len(self.processes):
            self.processes += self.harness.start_schedulers(count - len(self.processes), first=len(self.processes))
        return [process.pid for process in self.processes], None

    def stop(self) -> None:
        self.harness.stop([process for process in self.processes if process.poll() is None])

    def kill_one(self) -> int:
        victim = self.processes[0]
        victim.kill()
        victim.wait()
        return int(victim.pid)

    def redis_cpu(self) -> float:
        return float(self.harness.redis_cpu())

    def fired_count(self) -> int:
        return int(self.harness.index.runqueue.lengths())

    def read_fires(self) -> list[tuple[float, str, int | None]]:
        fires: list[tuple[float, str, int | None]] = []
        for dispatched, nominal, fire_key in self.harness.read_dispatches():
            schedule_id = fire_key.split(":", 1)[0]
            fires.append((float(dispatched), self.names.get(schedule_id, schedule_id), nominal))
        return fires

    def start_edits(self, plan: Plan, spacing: float) -> ThreadHandle:
        from schedules.services import schedule_update

        def apply(key: str, first_ms: int) -> None:
            schedule_update(self.parked[key], anchor=moment(first_ms))

        spec = RunSpec(workdir=str(self.workdir), fires="", redis_url="", plan=plan)
        return ThreadHandle(lambda: run_edits(spec, apply, spacing))

    def read_edits(self) -> list[tuple[str, float, int, bool]]:
        return read_edits(self.workdir)


def thread_cpu(pid: int) -> tuple[float, float]:
    """(main thread, other threads) CPU seconds of a process, from /proc."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        seconds = proc_cpu_seconds_of(task / "stat")
        if int(task.name) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


def proc_cpu_seconds_of(stat: Path) -> float:
    import os

    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile(harness: Harness, ours: Ours, count: int, seconds: float, out: Path) -> None:
    """Run one run_scheduler under cProfile on ``count`` spread 1 s schedules; write what it found.

    cProfile sees the dispatch loop (the main thread); the housekeeping thread's share and
    Redis's own time per command come from /proc and INFO commandstats.
    """
    import pstats
    import signal
    import subprocess

    plan = Workload("steady", "profile", count).plan(int(time.time() * 1000))
    ours.setup(plan)
    stats_file = out.with_suffix(".pstats")
    process = subprocess.Popen(
        [sys.executable, str(BENCH / "peers" / "profiled_scheduler.py"), str(stats_file)],
        cwd=BENCH.parent,
        env=harness.env,
    )
    try:
        deadline = time.monotonic() + 60
        while "profiled" not in harness.coordination.beats("schedulers") and time.monotonic() < deadline:
            time.sleep(0.05)
        harness.stop(ours.processes)  # the one that ran while loading: the profiled one works alone
        ours.processes = []
        time.sleep(2.0)
        harness.index.client.config_resetstat()
        process.send_signal(signal.SIGUSR1)
        main0, other0 = thread_cpu(process.pid)
        redis0 = harness.redis_cpu()
        fired0 = ours.fired_count()
        time.sleep(seconds)
        process.send_signal(signal.SIGUSR2)
        main1, other1 = thread_cpu(process.pid)
        redis1 = harness.redis_cpu()
        fired = ours.fired_count() - fired0
        commands = harness.index.client.info("commandstats")
        deadline = time.monotonic() + 10
        while not stats_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # let the dump finish
    finally:
        harness.stop([process])
    harness.read_dispatches()  # empty the streams
    per_1k = 1000 / max(fired, 1)
    lines = [
        f"One `run_scheduler` under cProfile, {count:,} schedules every second (spread), {seconds:.0f} s, "
        f"{fired:,} fires; cProfile on for those seconds only (it slows the main thread itself). Waiting shows "
        "as lock acquire (sleeping until due or a change) and socket reads (waiting for Redis).",
        "",
        f"- CPU per 1,000 fires: main thread (dispatch loop) {(main1 - main0) * per_1k:.3f} s, other threads "
        f"(housekeeping: heartbeats, MongoDB sync) {(other1 - other0) * per_1k:.3f} s, "
        f"Redis {(redis1 - redis0) * per_1k:.3f} s.",
        "- Redis time by command (INFO commandstats over the same window):",
        "",
        "| command | calls | usec per call | total s |",
        "|---|---|---|---|",
    ]
    ranked = sorted(commands.items(), key=lambda item: -float(item[1]["usec"]))[:8]
    for name, stat in ranked:
        lines.append(
            f"| {name.removeprefix('cmdstat_')} | {int(stat['calls']):,} | {float(stat['usec_per_call']):.1f} | "
            f"{float(stat['usec']) / 1e6:.3f} |"
        )
    lines += ["", "Main thread, top functions by own time (tottime):", "", "```"]
    import io

    buffer = io.StringIO()
    stats = pstats.Stats(str(stats_file), stream=buffer)
    stats.strip_dirs().sort_stats("tottime").print_stats(18)
    text = buffer.getvalue()
    start = text.find("   ncalls")
    lines += [line.rstrip() for line in text[start:].splitlines() if line.strip()]
    lines += ["```", "", "By cumulative time:", "", "```"]
    buffer = io.StringIO()
    stats = pstats.Stats(str(stats_file), stream=buffer)
    stats.strip_dirs().sort_stats("cumulative").print_stats(14)
    text = buffer.getvalue()
    start = text.find("   ncalls")
    lines += [line.rstrip() for line in text[start:].splitlines() if line.strip()]
    lines.append("```")
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="jobscheduler-peers-ours-"))
    harness = Harness(workdir)
    ours = Ours(harness, workdir)
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            request = json.loads(line)
            out_path = Path(request["out"])
            if "profile" in request:
                try:
                    profile(harness, ours, request["profile"], request["seconds"], out_path)
                except Exception as error:
                    out_path.write_text(f"profiling failed: {type(error).__name__}: {error}\n")
                print(str(out_path), flush=True)
                continue
            workload = Workload(**request["workload"])
            try:
                result = measure(ours, workload, request.get("lead_s", 0.0))
            except Exception as error:  # one failed run must not end the others
                result = {"error": f"{type(error).__name__}: {error}"}
            out_path.write_text(json.dumps(result))
            print(str(out_path), flush=True)
    finally:
        harness.close()


if __name__ == "__main__":
    main()
