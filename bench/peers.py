"""Side-by-side benchmark: our scheduler and its peers, measured the same way, on one machine, in one run.

    bench/run --quick      # under 10 minutes: 1k/10k rows, a 10k burst, 2 schedulers, failover, edits, idle
    bench/run              # the full table: longer windows, the rate sweep, 100k, three runs interleaved

bench/run builds the peers' venvs and calls this file. Every system gets a private
redis-server (loopback, a free port, nothing on disk) started and stopped here, loads the same
plan of fixed-interval schedules through its own public API, and runs its real scheduler
processes. Each fire is recorded where the scheduler hands the job off (for the Celery-based
peers, a publish hook in place of the broker), with the wall-clock time; ours is read back
from its Redis streams, whose entry ids are Redis's clock at dispatch. Lag is measured against
the ideal grid ``start + k * interval`` of each schedule (peers_analysis.py). Results go to
docs/benchmarks.md and docs/img/*.png (report.py), and every measured row is kept as gzipped
JSON, from which --report-from rewrites the report (peers_results.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from peers.aps import APSchedulerMemory, APSchedulerRedis  # noqa: E402
from peers.base import PeerSystem  # noqa: E402
from peers.celerybeat_django import DjangoCeleryBeat  # noqa: E402
from peers.celerybeat_file import CeleryBeatFile  # noqa: E402
from peers.celerybeat_redbeat import RedBeat  # noqa: E402
from peers.common import Workload, measure  # noqa: E402
from peers.djangoq import DjangoQ2  # noqa: E402
from peers.rqcron import RQCron  # noqa: E402
from peers.rqsched import RQScheduler  # noqa: E402
from peers_analysis import Row, analyse, combine, kept_up, summary  # noqa: E402
from peers_results import load_results, merge_results, save_results, saved_run, write_saved_report  # noqa: E402
from report_tables import OURS  # noqa: E402

PEERS: list[type[PeerSystem]] = [
    APSchedulerMemory,
    APSchedulerRedis,
    RQCron,
    RQScheduler,
    CeleryBeatFile,
    DjangoCeleryBeat,
    RedBeat,
    DjangoQ2,
]


class Ours:
    """Our scheduler, run by peers/ours_driver.py in the project's venv (engine.py's Harness)."""

    name = OURS
    limits: dict[str, str] = {}
    load_rate = 2500.0  # 5k/s to load, and run_scheduler's start reconciles them all from MongoDB

    def __init__(self, workroot: Path):
        self.workroot = workroot
        python = ROOT / ".venv" / "bin" / "python"
        self.log = (workroot / "ours-driver.log").open("ab")
        self.process = subprocess.Popen(
            [str(python), str(BENCH / "peers" / "ours_driver.py")],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        self.runs = 0
        self._read_until("ready", timeout=180)

    def _read_until(self, prefix: str, timeout: float) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 1.0)
            if not ready:
                if self.process.poll() is not None:
                    break
                continue
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                if text.startswith(prefix):
                    return text
                self.log.write(line + b"\n")
        raise RuntimeError(f"our driver gave no '{prefix}' within {timeout:.0f} s; see {self.workroot}/ours-driver.log")

    def cannot(self, workload: Workload) -> str | None:
        return None

    def sweep_aligned(self) -> bool:
        return False

    def run(self, workload: Workload, max_life: float, lead_s: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.runs += 1
        out = self.workroot / f"ours-{self.runs}.json"
        request = {"workload": asdict(workload), "out": str(out), "lead_s": lead_s}
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        self._read_until(str(out), timeout=max_life)
        result: dict[str, Any] = json.loads(out.read_text())
        return result

    def profile(self, count: int, seconds: float) -> str:
        """Where our scheduler's time goes: cProfile of the dispatch loop, thread CPU, Redis commands."""
        assert self.process.stdin is not None
        out = self.workroot / "ours-profile.md"
        request = {"profile": count, "seconds": seconds, "out": str(out)}
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        self._read_until(str(out), timeout=300)
        return out.read_text()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Peer:
    """A peer as the harness drives it: one fresh private Redis (and database) per run."""

    def __init__(self, cls: type[PeerSystem], workroot: Path):
        self.cls = cls
        self.name = cls.name
        self.limits = cls.limits
        self.load_rate = cls.load_rate
        venv = getattr(cls, "venv", None)
        python = BENCH / ".venvs" / venv / "bin" / "python" if venv else Path(sys.executable)
        self.system = cls(workroot, str(python))

    def cannot(self, workload: Workload) -> str | None:
        return self.system.cannot(workload)

    def sweep_aligned(self) -> bool:
        return self.system.sweep_aligned()

    def run(self, workload: Workload, max_life: float, lead_s: float) -> dict[str, Any]:
        try:
            self.system.prepare(workload, max_life)
            return measure(self.system, workload, lead_s)
        finally:
            self.system.close()

    def close(self) -> None:
        self.system.close()


# ---- workloads ---------------------------------------------------------------------------


def workloads(quick: bool) -> list[Workload]:
    seconds = 2.0 if quick else 10.0
    warmup = 0.5 if quick else 3.0
    rows = [
        Workload("steady", "1k every second, spread", 1_000, seconds=seconds, sweep=True, repeat=True),
        Workload("steady", "1k every second, aligned", 1_000, aligned=True, seconds=seconds, sweep=True, repeat=True),
        Workload("steady", "10k every second, spread", 10_000, seconds=seconds, sweep=True, repeat=True),
        Workload("steady", "10k every second, aligned", 10_000, aligned=True, seconds=seconds, sweep=True, repeat=True),
    ]
    if not quick:
        rows += [
            Workload("steady", f"{n // 1000}k every second (sweep)", n, seconds=seconds, sweep=True)
            for n in (2_000, 5_000, 20_000, 40_000, 60_000, 100_000)
        ]
    burst = 10_000 if quick else 100_000
    rows += [
        Workload(
            "burst",
            f"{burst // 1000}k due at the same instant",
            burst,
            aligned=True,
            interval=60,
            cap=6 if quick else 60,
        ),
        Workload("multi", "1k spread, 2 schedulers at once", 1_000, schedulers=2, seconds=seconds),
    ]
    if not quick:
        rows.append(Workload("multi", "1k spread, 3 schedulers at once", 1_000, schedulers=3, seconds=seconds))
    rows += [
        Workload(
            "failover",
            f"SIGKILL one of {2 if quick else 3} schedulers (1k spread)",
            1_000,
            schedulers=2 if quick else 3,
            seconds=6.0 if quick else 40.0,
            kill_after=2.0 if quick else 5.0,
        ),
        Workload("edit", "edit to effect (1k spread running)", 1_000, edits=3 if quick else 20, seconds=seconds),
        Workload(
            "idle", f"idle, {burst // 1000}k schedules a day ahead", burst, interval=60, seconds=3 if quick else 20
        ),
    ]
    return [replace(row, warmup=warmup) for row in rows]


def lead_for(system: Any, workload: Workload, ready_seen: dict[tuple[str, int], float]) -> float:
    """How far ahead to put a burst so that loading and starting end before it (the report flags it if not).

    A guess from the system's load rate, or, if larger, from how long the same system took to load and
    start schedules in this run's earlier rows, scaled to the burst's size.
    """
    if workload.kind != "burst":
        return 0.0
    margin = 1.5 if workload.count <= 10_000 else 2.0  # starting with 100k loaded takes longer too
    guess = 5.0 + margin * workload.count / system.load_rate
    seen = [ready * workload.count / count for (name, count), ready in ready_seen.items() if name == system.name]
    return max([guess, *(3.0 + 1.5 * value for value in seen)])


def cap_for(system: Any, workload: Workload) -> Workload:
    if workload.kind == "burst" and system.name == DjangoQ2.name:
        # Its scheduler looks every 30 s: give it one full pass and the time to do it.
        return replace(workload, cap=max(workload.cap, 30.0))
    return workload


# ---- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short windows, one run each (under 10 minutes)")
    parser.add_argument(
        "--repeats", type=int, default=0, help="runs of each 1k/10k steady row, interleaved (1 quick, 3 full)"
    )
    parser.add_argument("--only", default="", help="'|'-separated substrings: run only matching workloads")
    parser.add_argument("--systems", default="", help="'|'-separated substrings: run only matching systems")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile of our scheduler")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="where to keep every measured row as gzipped JSON, rewritten after each row "
        "(default: bench/results/<quick|full>-<date>.json.gz)",
    )
    parser.add_argument(
        "--report-from",
        type=Path,
        nargs="+",
        default=None,
        help="measure nothing: rewrite the report from results files earlier runs kept (several: "
        "consecutive runs of different rows, e.g. a run stopped midway and one of the rows it did not reach; "
        "a row measured again replaces the earlier samples; with --results, the merged rows are kept there)",
    )
    args = parser.parse_args()
    if args.report_from:
        saved = merge_results([load_results(path) for path in args.report_from])
        if args.results:  # the merged rows, to rewrite the report from later
            save_results(args.results, saved)
        write_saved_report(args.out, saved)
        print(f"wrote {args.out} from {', '.join(map(str, args.report_from))}")
        return
    signal.signal(signal.SIGTERM, stop_on_signal)  # so the finally below stops every server started here
    repeats = args.repeats or (1 if args.quick else 3)
    max_life = 300.0 if args.quick else 900.0
    workroot = Path(tempfile.mkdtemp(prefix="jobscheduler-peers-"))
    load_before = os.getloadavg()
    started = time.time()
    print(f"work folder {workroot}; load average {load_before[0]:.2f}", flush=True)

    wanted_systems = [part.strip() for part in args.systems.split("|") if part.strip()]
    systems: list[Any] = []
    if not wanted_systems or any(part in OURS for part in wanted_systems):
        systems.append(Ours(workroot))
    for cls in PEERS:
        if not wanted_systems or any(part in cls.name for part in wanted_systems):
            systems.append(Peer(cls, workroot))
    chosen = [w for w in workloads(args.quick) if not args.only or any(p in w.label for p in args.only.split("|"))]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%MZ")
    results_path = args.results or BENCH / "results" / f"{'quick' if args.quick else 'full'}-{stamp}.json.gz"
    print(f"results kept in {results_path} (bench/peers.py --report-from rewrites the report from it)", flush=True)
    results: dict[tuple[str, str], list[Row]] = {}
    skipped: dict[tuple[str, str], str] = {}
    failed_sweep: dict[str, int] = {}
    ready_seen: dict[tuple[str, int], float] = {}  # (system, schedules): seconds to load and start
    try:
        for workload in chosen:
            for repeat in range(repeats if workload.repeat else 1):
                # Interleave: each repeat starts from a different system.
                order = systems[repeat % len(systems) :] + systems[: repeat % len(systems)]
                for system in order:
                    this = workload
                    standard = workload.kind == "steady" and workload.count in (1_000, 10_000)
                    if not workload.aligned and not standard and workload.kind != "idle" and system.sweep_aligned():
                        # A system that cannot spread start times runs the other rows aligned.
                        this = replace(workload, aligned=True, label=workload.label + " [aligned]")
                    reason = system.cannot(this)
                    if (
                        workload.sweep
                        and workload.count > 10_000
                        and failed_sweep.get(system.name, math.inf) < workload.count
                    ):
                        reason = reason or f"did not keep up with {failed_sweep[system.name]:,} schedules"
                    if args.quick and standard and workload.count == 10_000:
                        one_k = results.get((system.name, workload.label.replace("10k", "1k")))
                        if one_k and not kept_up(one_k[0]):
                            reason = reason or "quick mode: did not keep up with 1k (the full mode runs it)"
                    if reason:
                        skipped[(system.name, this.label)] = reason
                        continue
                    print(f"[{time.time() - started:6.0f}s] {this.label} / {system.name} ...", flush=True)
                    raw = run_one(system, cap_for(system, this), max_life, lead_for(system, this, ready_seen))
                    if raw.get("late_start"):  # loading and starting overran the burst's time: once more, later
                        print("         not ready in time; again with twice the lead", flush=True)
                        raw = run_one(system, cap_for(system, this), max_life, 2 * lead_for(system, this, ready_seen))
                    if "ready_s" in raw and this.kind == "steady":
                        key = (system.name, this.count)
                        ready_seen[key] = max(ready_seen.get(key, 0.0), raw["ready_s"])
                    row = analyse(system.name, this, raw)
                    results.setdefault((system.name, this.label), []).append(row)
                    print(f"         {summary(row)}", flush=True)
                    save_results(results_path, saved_run(results, skipped, chosen, systems, args, started, load_before))
            if workload.sweep:
                # Judged on the median of the repeats, as the report shows it: one unlucky run
                # does not end a system's sweep.
                for (name, label), rows in results.items():
                    if label.startswith(workload.label) and not kept_up(combine(rows)):
                        failed_sweep[name] = min(failed_sweep.get(name, math.inf), workload.count)
        profile = ""
        ours = next((system for system in systems if isinstance(system, Ours)), None)
        if ours is not None and not args.no_profile:
            print(f"[{time.time() - started:6.0f}s] profiling ours ...", flush=True)
            profile = ours.profile(10_000, 4.0 if args.quick else 20.0)
    finally:
        for system in systems:
            system.close()
    saved = saved_run(results, skipped, chosen, systems, args, started, load_before, profile=profile)
    save_results(results_path, saved)
    write_saved_report(args.out, saved)
    print(f"wrote {args.out} in {saved['duration']:.0f} s; results in {results_path}")


def run_one(system: Any, workload: Workload, max_life: float, lead_s: float) -> dict[str, Any]:
    try:
        result: dict[str, Any] = system.run(workload, max_life, lead_s)
    except Exception as error:  # one failed run must not end the others
        result = {"error": f"{type(error).__name__}: {error}"}
    return result


def stop_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


if __name__ == "__main__":
    main()
