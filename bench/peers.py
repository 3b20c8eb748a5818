"""Side-by-side benchmark: our scheduler and its peers, measured the same way, on one machine, in one run.

    bench/run --quick      # under 10 minutes: 1k/10k rows, a 10k burst, 2 schedulers, failover, edits, idle
    bench/run              # the full table: longer windows, the rate sweep, 100k, three runs interleaved

bench/run builds the peers' venvs and calls this file. Every system gets a private
redis-server (loopback, a free port, nothing on disk) started and stopped here, loads the same
plan of fixed-interval schedules through its own public API, and runs its real scheduler
processes. Each fire is recorded where the scheduler hands the job off (for the Celery-based
peers, a publish hook in place of the broker), with the wall-clock time; ours is read back
from its Redis streams, whose entry ids are Redis's clock at dispatch. Lag is measured against
the ideal grid ``start + k * interval`` of each schedule. Results go to docs/benchmarks.md and
docs/img/*.png.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import math
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
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

OURS = "ours (run_scheduler)"
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


# ---- analysis ------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return math.nan
    return values[min(len(values) - 1, int(fraction * len(values)))]


@dataclass
class Row:
    system: str
    workload: str
    kind: str
    count: int
    values: dict[str, float] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)  # a sample, for the charts
    error: str = ""


def analyse(system: str, workload: Workload, raw: dict[str, Any]) -> Row:
    """Match every fire to its schedule's ideal grid and compute the row's figures."""
    row = Row(system, workload.label, workload.kind, workload.count)
    if "error" in raw:
        row.error = raw["error"]
        return row
    interval = raw["interval_ms"]
    anchors: dict[str, int] = raw["anchors"]
    window_start, window_end = raw["window"]
    early = 2  # ms: clock rounding; a fire earlier than its time counts for the previous one
    matched: dict[tuple[str, int], float] = {}
    duplicates = 0
    by_nominal: list[tuple[float, float]] = []
    for fired, key, nominal in raw["fires"]:
        if key.startswith("e"):  # the edit workload's own schedules
            continue
        # Peers' keys are the plan's; ours are schedule ids whose entries carry their nominal time.
        anchor = anchors.get(key, nominal % interval if nominal is not None else None)
        if anchor is None:
            continue
        if nominal is not None:
            # Ours names the occurrence (fire key): count it where it belongs, however late,
            # so a late fire is a late fire, not a duplicate of the next one and a miss.
            step = round((nominal - anchor) / interval)
        else:
            step = math.floor((fired + early - anchor) / interval)
        grid = anchor + step * interval
        if not window_start <= grid < window_end:
            continue
        if (key, step) in matched:
            duplicates += 1
            continue
        matched[(key, step)] = fired
        by_nominal.append((grid, fired - grid))
    values: dict[str, float] = {"load_s": raw.get("load_s") or math.nan, "rss_mb": raw.get("rss_mb", math.nan)}
    if workload.kind == "idle":
        values["idle_cpu_pct"] = 100 * raw["idle_cpu_s"] / raw["idle_seconds"]
        values["idle_redis_cpu_pct"] = 100 * raw["idle_redis_cpu_s"] / raw["idle_seconds"]
        row.values = values
        return row
    expected = 0
    for anchor in anchors.values():
        before_end = math.ceil((window_end - anchor) / interval)
        expected += max(0, before_end - max(0, math.ceil((window_start - anchor) / interval)))
    if not anchors:  # ours: one grid point per schedule and interval in the window
        expected = workload.count * max(1, (window_end - window_start) // interval)
    lags = sorted(lag for _, lag in by_nominal)
    fires = len(matched)
    values.update(
        fires=fires,
        expected=expected,
        misses=max(0, expected - fires),
        duplicates=duplicates,
        lag_p50=percentile(lags, 0.5),
        lag_p99=percentile(lags, 0.99),
        lag_max=lags[-1] if lags else math.nan,
    )
    if workload.kind == "burst":
        values["all_done_s"] = (max(matched.values()) - window_start) / 1000 if matched else math.nan
        values["late_start"] = float(bool(raw.get("late_start")))
    else:
        values["rate"] = fires / ((window_end - window_start) / 1000)
        by_nominal.sort()
        quarter = max(1, len(by_nominal) // 4)
        if len(by_nominal) >= 4:
            values["drift_ms"] = statistics.median(lag for _, lag in by_nominal[-quarter:]) - statistics.median(
                lag for _, lag in by_nominal[:quarter]
            )
    if raw.get("cpu_s") is not None:
        cpu_from, cpu_to = raw["cpu_window"]
        in_cpu_window = sum(1 for fired, _, _ in raw["fires"] if cpu_from <= fired <= cpu_to)
        values["cpu_per_1k"] = raw["cpu_s"] / max(in_cpu_window, 1) * 1000
        values["redis_cpu_per_1k"] = raw["redis_cpu_s"] / max(in_cpu_window, 1) * 1000
        redis_part = 0.0 if math.isnan(values["redis_cpu_per_1k"]) else values["redis_cpu_per_1k"]
        values["total_cpu_per_1k"] = values["cpu_per_1k"] + redis_part
    if workload.kind == "failover":
        kill = raw["kill_ms"]
        after = sorted(fired for fired, _, _ in raw["fires"] if kill <= fired <= window_end)
        moments = [kill, *after, window_end]  # the time to the window's end counts as a silence too
        values["silence_s"] = max(b - a for a, b in itertools.pairwise(moments)) / 1000
        values["resumed"] = float(bool(after) and window_end - after[-1] < 1000)
        late = [lag for grid, lag in by_nominal if grid >= kill]
        values["lag_max_after_kill"] = max(late) if late else math.nan
    if workload.kind == "edit":
        firsts: dict[str, float] = {}
        for fired, key, _ in raw["fires"]:
            if key.startswith("e"):
                firsts[key] = min(firsts.get(key, math.inf), fired)
        effects = []
        unseen = failed = 0
        for key, _, first_ms, succeeded in raw.get("edits", []):
            failed += not succeeded
            if key in firsts:
                effects.append(firsts[key] - first_ms)
            else:
                unseen += 1
        effects.sort()
        values.update(
            edits=len(raw.get("edits", [])),
            edit_unseen=unseen,
            edit_failed=failed,
            edit_p50=percentile(effects, 0.5),
            edit_p99=percentile(effects, 0.99),
            edit_max=effects[-1] if effects else math.nan,
        )
    row.values = values
    row.lags = [round(lag, 2) for lag in lags[:: max(1, len(lags) // 5000)]]
    return row


def combine(rows: list[Row]) -> Row:
    """Median of the repeats of one (system, workload)."""
    if len(rows) == 1:
        return rows[0]
    good = [row for row in rows if not row.error] or rows
    first = good[0]
    merged = Row(first.system, first.workload, first.kind, first.count, error=first.error if not rows else "")
    keys = {key for row in good for key in row.values}
    for key in keys:
        numbers = [row.values[key] for row in good if key in row.values and not math.isnan(row.values[key])]
        merged.values[key] = statistics.median(numbers) if numbers else math.nan
    merged.lags = sorted(lag for row in good for lag in row.lags)
    merged.values["repeats"] = len(good)
    return merged


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
        "consecutive runs of different rows, e.g. a run stopped midway and one of the rows it did not reach)",
    )
    args = parser.parse_args()
    if args.report_from:
        saved = merge_results([load_results(path) for path in args.report_from])
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


# ---- keeping results -------------------------------------------------------------------------
# Every run keeps what it measured, so that the report can be rewritten (a fix to the analysis or
# the tables) without measuring again for an hour.


def saved_run(
    results: dict[tuple[str, str], list[Row]],
    skipped: dict[tuple[str, str], str],
    chosen: list[Workload],
    systems: list[Any],
    args: argparse.Namespace,
    started: float,
    load_before: tuple[float, float, float],
    profile: str = "",
) -> dict[str, Any]:
    return {
        "rows": [asdict(row) for rows in results.values() for row in rows],
        "skipped": [[system, label, reason] for (system, label), reason in skipped.items()],
        "workloads": [asdict(workload) for workload in chosen],
        "systems": [system.name for system in systems],
        "limits": {system.name: system.limits for system in systems},
        "quick": args.quick,
        "repeats": args.repeats or (1 if args.quick else 3),
        "duration": time.time() - started,
        "loads": [list(load_before), list(os.getloadavg())],
        "command": "bench/run"
        + "".join(f" {flag}" for flag in (args.quick and "--quick", args.only and f'--only "{args.only}"') if flag),
        "machine": machine(),
        "profile": profile,
    }


def save_results(path: Path, saved: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with gzip.open(partial, "wt") as out:
        json.dump(saved, out, default=str)
    partial.replace(path)


def load_results(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt") as source:
        saved: dict[str, Any] = json.load(source)
    return saved


def merge_results(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Consecutive runs as one: their rows and skips, workloads in the order first met."""
    merged = dict(runs[0])
    for run in runs[1:]:
        merged["rows"] = merged["rows"] + run["rows"]
        merged["skipped"] = merged["skipped"] + run["skipped"]
        known = {workload["label"] for workload in merged["workloads"]}
        merged["workloads"] = merged["workloads"] + [w for w in run["workloads"] if w["label"] not in known]
        merged["systems"] = merged["systems"] + [s for s in run["systems"] if s not in merged["systems"]]
        merged["limits"] = {**run["limits"], **merged["limits"]}
        merged["duration"] = merged["duration"] + run["duration"]
        merged["loads"] = [merged["loads"][0], run["loads"][1]]
        merged["command"] = f"{merged['command']} then {run['command']}"
        merged["profile"] = run["profile"] or merged["profile"]
    # A row measured in both (a run stopped during it): the later run's skip does not hide it.
    measured = {(row["system"], row["workload"]) for row in merged["rows"]}
    merged["skipped"] = [entry for entry in merged["skipped"] if (entry[0], entry[1]) not in measured]
    return merged


def write_saved_report(out: Path, saved: dict[str, Any]) -> None:
    from report import write_report

    results: dict[tuple[str, str], list[Row]] = {}
    for fields in saved["rows"]:
        row = Row(**fields)
        results.setdefault((row.system, row.workload), []).append(row)
    write_report(
        out,
        {key: combine(rows) for key, rows in results.items()},
        {(system, label): reason for system, label, reason in saved["skipped"]},
        [Workload(**fields) for fields in saved["workloads"]],
        saved["systems"],
        saved["limits"],
        quick=saved["quick"],
        repeats=saved["repeats"],
        duration=saved["duration"],
        loads=(tuple(saved["loads"][0]), tuple(saved["loads"][1])),
        command=saved["command"],
        machine=saved["machine"],
        profile=saved["profile"],
    )


def run_one(system: Any, workload: Workload, max_life: float, lead_s: float) -> dict[str, Any]:
    try:
        result: dict[str, Any] = system.run(workload, max_life, lead_s)
    except Exception as error:  # one failed run must not end the others
        result = {"error": f"{type(error).__name__}: {error}"}
    return result


def stop_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def kept_up(row: Row) -> bool:
    values = row.values
    return (
        not row.error
        and values.get("expected", 0) > 0
        and values.get("misses", math.inf) <= 0.01 * values["expected"]
        and values.get("lag_p99", math.inf) < 500
    )


def summary(row: Row) -> str:
    if row.error:
        return f"ERROR {row.error}"
    v = row.values
    parts = []
    for key in (
        "fires",
        "expected",
        "misses",
        "duplicates",
        "rate",
        "lag_p50",
        "lag_p99",
        "lag_max",
        "all_done_s",
        "cpu_per_1k",
        "rss_mb",
        "load_s",
        "silence_s",
        "edit_p50",
        "edit_p99",
        "idle_cpu_pct",
    ):
        if key in v and not (isinstance(v[key], float) and math.isnan(v[key])):
            parts.append(f"{key}={v[key]:.4g}")
    return " ".join(parts)


def machine() -> dict[str, str]:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    return {
        "cpu": f"{os.cpu_count()} cores, {model}",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis": redis_version[2:],
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    }


if __name__ == "__main__":
    main()
