"""Benchmark of the scheduling engine: dispatch rate, lag, CPU per 1,000 fires, RSS.

Not a test: run it on purpose, on an otherwise idle machine.

    .venv/bin/python bench/engine.py --quick        # about 5 minutes
    .venv/bin/python bench/engine.py                # the full table (longer windows, 100k)
    .venv/bin/python bench/engine.py --cluster      # on a Redis Cluster beside a single Redis

It starts its own Redis (private port, nothing on disk) and SecantusDB (in memory), loads
schedules through the service layer, runs real ``run_scheduler`` processes, and reads every
dispatched stream entry afterwards: the entry id is Redis's clock at dispatch, so the lag of
each fire is ``entry id ms - nominal ms`` with no consumer in the way. Results go to
docs/engine-benchmark.md (or --out).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devtools.servers import Servers  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Scenario:
    name: str
    count: int
    kind: str = "fixed"  # fixed (1 s) or cron ('* * * * * *')
    aligned: bool = False
    schedulers: int = 1
    seconds: float = 10.0
    interval: int = 1


@dataclass
class Result:
    scenario: Scenario
    code: str
    fires: int
    expected: int
    duplicates: int
    rate: float
    lag_p50: float
    lag_p99: float
    lag_max: float
    cpu_per_1k: float
    redis_cpu_per_1k: float
    rss_mb: float
    load_seconds: float
    drift_ms: float


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Harness:
    def __init__(self, workdir: Path):
        self.servers = Servers()
        self.workdir = workdir
        mongo = self.servers.start_secantus(":memory:", workdir)
        redis_url = self.servers.start_redis(workdir)
        self.env = {
            **os.environ,
            "MONGODB_URI": mongo,
            "MONGODB_DB": "bench",
            "REDIS_URL": redis_url,
            "JOBSCHEDULER_REDIS_PREFIX": "bench",
            # Not debug: Django's debug mode records (deep-copies) every MongoDB query.
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "bench-only-secret-key",
            "DJANGO_SETTINGS_MODULE": "jobscheduler.settings",
            "JOBSCHEDULER_LOG_LEVEL": "WARNING",
            # The demo app: its demo.hello task and its receiver (bench/e2e.py).
            "JOBSCHEDULER_DEMO": "1",
        }
        os.environ.update(self.env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from jobscheduler.coordination import Coordination
        from schedules.due_index import get_due_index

        self.index: Any = get_due_index()
        self.coordination: Any = Coordination(self.index.keyspace)

    def reset(self) -> Any:
        from django.contrib.auth.models import User

        from jobs.models import Job, Run
        from schedules.models import Schedule

        Run.objects.all().delete()
        Schedule.objects.all().delete()
        Job.objects.all().delete()
        self.index.client.flushdb()  # our private Redis, started above
        # As on a Redis a scheduler has run on before: the schedules loaded next are mirrored
        # by the service as they are saved, so no scheduler needs to rebuild the mirror from
        # MongoDB when it starts. The benchmark measures firing, not that rebuild.
        self.index.mark_reconciled()
        # A superuser: the bench loads more schedules than an ordinary owner may have.
        user, _ = User.objects.get_or_create(username="bench", defaults={"is_superuser": True})
        from jobs.services import job_create

        return job_create(owner=user, name="bench", target_type="python", target={"task": "demo.tasks.hello"})

    def start_schedulers(self, count: int, first: int = 0, root: Path = ROOT) -> list[subprocess.Popen[bytes]]:
        """Start ``count`` run_scheduler processes (of the code in ``root``) and wait for their heartbeats."""
        processes = [
            subprocess.Popen(
                [sys.executable, "manage.py", "run_scheduler", "--name", f"bench-{index}"],
                cwd=root,
                env=self.env,
            )
            for index in range(first, first + count)
        ]
        deadline = time.monotonic() + 60
        while len(self.coordination.beats("schedulers")) < first + count:
            if time.monotonic() > deadline:
                raise RuntimeError("schedulers did not start")
            time.sleep(0.05)
        return processes

    def stop(self, processes: list[subprocess.Popen[bytes]]) -> None:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"  scheduler {process.pid} did not stop within 30 s of SIGTERM; killing it", flush=True)
                process.kill()
                process.wait()

    def redis_cpu(self) -> float:
        info = self.index.client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def read_dispatches(self) -> list[tuple[int, int, str]]:
        """(dispatch ms, nominal ms, fire key) of every stream entry, streams emptied."""
        out = []
        for shard in range(self.index.shards):
            key = self.index.runqueue.stream_key(shard)
            start = "-"
            while True:
                entries = self.index.client.xrange(key, min=start, count=20000)
                if not entries:
                    break
                for entry_id, fields in entries:
                    out.append((int(entry_id.split(b"-")[0]), int(fields[b"n"]), fields[b"fk"].decode()))
                start = "(" + entries[-1][0].decode()
            self.index.client.delete(key)
        return out

    def run(self, scenario: Scenario, root: Path = ROOT) -> Result:
        """Run ``scenario`` with the run_scheduler of the code in ``root`` (this tree by default)."""
        from schedules.services import schedule_bulk_create

        job = self.reset()
        processes = self.start_schedulers(scenario.schedulers, root=root)
        try:
            base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
            specs: list[dict[str, Any]]
            if scenario.kind == "cron":
                specs = [{"kind": "cron", "expression": "* * * * * *"} for _ in range(scenario.count)]
            else:
                step_us = 0 if scenario.aligned else 1_000_000 * scenario.interval // scenario.count
                specs = [
                    {
                        "kind": "fixed",
                        "interval_seconds": scenario.interval,
                        "anchor": base + timedelta(microseconds=(index * step_us) // 1000 * 1000),
                    }
                    for index in range(scenario.count)
                ]
            load_started = time.monotonic()
            schedule_bulk_create(job=job, specs=specs)
            load_seconds = time.monotonic() - load_started
            # Measure whole seconds that start after everything was loaded and seen.
            window_start = int(time.time()) + 2
            window_end = window_start + int(scenario.seconds)
            time.sleep(max(0.0, window_start - time.time()))
            cpu0 = sum(proc_cpu_seconds(p.pid) for p in processes)
            redis0 = self.redis_cpu()
            cpu_from_ms = int(time.time() * 1000)
            time.sleep(max(0.0, window_end - time.time()))
            time.sleep(scenario.interval + 1.0)  # let the window's last occurrences fire
            cpu1 = sum(proc_cpu_seconds(p.pid) for p in processes)
            redis1 = self.redis_cpu()
            cpu_to_ms = int(time.time() * 1000)
            rss = max(proc_rss_mb(p.pid) for p in processes)
        finally:
            self.stop(processes)
        dispatches = self.read_dispatches()
        in_window = [d for d in dispatches if window_start * 1000 <= d[1] < window_end * 1000]
        keys = [d[2] for d in in_window]
        lags = [d[0] - d[1] for d in in_window]
        fires = len(in_window)
        expected = scenario.count * int(scenario.seconds) // scenario.interval
        duration = (max(d[0] for d in in_window) - min(d[0] for d in in_window)) / 1000 if in_window else 0
        # CPU was measured over [cpu_from_ms, cpu_to_ms]: divide by what was fired then.
        measured_fires = sum(1 for d in dispatches if cpu_from_ms <= d[0] <= cpu_to_ms)
        quarter = max(1, len(in_window) // 4)
        by_time = sorted(in_window, key=lambda d: d[1])
        # None fired in the window (a load so slow that the schedules fell past their grace
        # time): a row of zeros says so rather than no report.
        drift = (
            statistics.median(d[0] - d[1] for d in by_time[-quarter:])
            - statistics.median(d[0] - d[1] for d in by_time[:quarter])
            if by_time
            else 0
        )
        return Result(
            scenario=scenario,
            code="this tree" if root == ROOT else "baseline",
            fires=fires,
            expected=expected,
            duplicates=len(keys) - len(set(keys)),
            rate=fires / max(duration, 1e-9) if duration else 0.0,
            lag_p50=percentile(lags, 0.5),
            lag_p99=percentile(lags, 0.99),
            lag_max=max(lags) if lags else float("nan"),
            cpu_per_1k=(cpu1 - cpu0) / max(measured_fires, 1) * 1000,
            redis_cpu_per_1k=(redis1 - redis0) / max(measured_fires, 1) * 1000,
            rss_mb=rss,
            load_seconds=load_seconds,
            drift_ms=drift,
        )

    def close(self) -> None:
        self.servers.stop()


def scenarios(quick: bool) -> list[Scenario]:
    seconds = 8.0 if quick else 20.0
    chosen = [
        Scenario("1k fixed, spread", 1_000, seconds=seconds),
        Scenario("1k fixed, aligned", 1_000, aligned=True, seconds=seconds),
        Scenario("10k fixed, spread", 10_000, seconds=seconds),
        Scenario("10k fixed, aligned", 10_000, aligned=True, seconds=seconds),
        Scenario("10k fixed, spread, 2 schedulers", 10_000, schedulers=2, seconds=seconds),
        Scenario("1k cron every second", 1_000, kind="cron", seconds=seconds),
        Scenario("10k cron every second", 10_000, kind="cron", seconds=seconds),
        Scenario("40k fixed, spread", 40_000, seconds=seconds),
    ]
    if not quick:
        chosen += [
            Scenario("40k fixed, spread, 2 schedulers", 40_000, schedulers=2, seconds=seconds),
            Scenario("60k fixed, spread, 2 schedulers", 60_000, schedulers=2, seconds=seconds),
            Scenario("100k fixed every 60 s, aligned (same minute)", 100_000, aligned=True, interval=60, seconds=60),
            Scenario("100k fixed, spread", 100_000, seconds=seconds),
        ]
    return chosen


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def redis_version() -> str:
    """The installed redis-server's version (``Redis server v=7.0.15 ...`` says ``7.0.15``)."""
    return subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2][2:]


def machine() -> str:
    return f"{os.cpu_count()} cores, {cpu_model()}; Python {platform.python_version()}; Redis {redis_version()}"


def write_report(
    results: list[Result], path: Path, quick: bool, load: tuple[tuple[float, ...], tuple[float, ...]]
) -> None:
    before, after = (" / ".join(f"{value:.2f}" for value in average) for average in load)
    lines = [
        "# Scheduling engine benchmark",
        "",
        f"Generated by `bench/engine.py{' --quick' if quick else ''}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        f"Machine: {machine()}. Scheduler, Redis and SecantusDB share the machine.",
        f"Load average before the run {before}, after {after} (1 / 5 / 15 min).",
        "",
        "Lag is Redis's clock at dispatch (the stream entry id) minus the nominal time. CPU is the",
        "scheduler processes' user+system time over the measured window, per 1,000 fires; Redis CPU",
        "likewise for the Redis server. RSS is the largest scheduler's resident memory at the end.",
        "",
        "| scenario | code | fires (expected) | dup | fires/s | lag p50 ms | lag p99 ms | lag max ms | "
        "sched CPU-s/1k | Redis CPU-s/1k | RSS MB | load s | drift ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.scenario.name} | {r.code} | {r.fires} ({r.expected}) | {r.duplicates} | {r.rate:,.0f} | "
            f"{r.lag_p50:.0f} | "
            f"{r.lag_p99:.0f} | {r.lag_max:.0f} | {r.cpu_per_1k:.3f} | {r.redis_cpu_per_1k:.3f} | "
            f"{r.rss_mb:.0f} | {r.load_seconds:.1f} | {r.drift_ms:+.0f} |"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter windows, no 100k runs")
    parser.add_argument("--only", default="", help="run scenarios whose name contains this (or one of a|b|c)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "engine-benchmark.md")
    parser.add_argument(
        "--baseline", type=Path, help="also run each scenario with the run_scheduler of the code in this directory"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="a Redis Cluster beside the single Redis instead (bench/engine_cluster.py): its section of --out",
    )
    args = parser.parse_args()
    if args.cluster:
        import engine_cluster

        engine_cluster.main(args.out, args.only)
        return
    harness = Harness(Path(tempfile.mkdtemp(prefix="jobscheduler-bench-")))
    results = []
    roots = [ROOT] + ([args.baseline.resolve()] if args.baseline else [])
    load_before = os.getloadavg()
    try:
        for scenario in scenarios(args.quick):
            if args.only and not any(part in scenario.name for part in args.only.split("|")):
                continue
            for root in roots:
                print(f"running: {scenario.name} ({'this tree' if root == ROOT else root}) ...", flush=True)
                result = harness.run(scenario, root)
                results.append(result)
                print(
                    f"  fires={result.fires}/{result.expected} dup={result.duplicates} rate={result.rate:,.0f}/s "
                    f"lag p50={result.lag_p50:.0f} p99={result.lag_p99:.0f} max={result.lag_max:.0f} ms "
                    f"cpu/1k={result.cpu_per_1k:.3f}s redis/1k={result.redis_cpu_per_1k:.3f}s "
                    f"rss={result.rss_mb:.0f}MB load={result.load_seconds:.1f}s drift={result.drift_ms:+.0f}ms",
                    flush=True,
                )
    finally:
        harness.close()
    write_report(results, args.out, args.quick, (load_before, os.getloadavg()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
