"""The workloads, the one measuring procedure every system goes through, and helpers for the peers' processes.

Standard library only: the harness imports it from the peers' venv, our own driver from the
project's venv, and each peer's child process from wherever it runs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

DAY_MS = 86_400_000


@dataclass
class Plan:
    """The schedules of one run: ``count`` fixed-interval schedules on an ideal grid.

    Schedule ``k{i}`` has its grid at ``base_ms + offset(i) + j * interval``; nothing is due
    before ``first_due_ms``. ``edits`` more schedules (``e{j}``) are parked a day ahead, for
    the edit-to-effect workload to move.
    """

    count: int
    interval: int = 1  # seconds
    aligned: bool = False
    base_ms: int = 0
    first_due_ms: int = 0
    edits: int = 0

    @property
    def interval_ms(self) -> int:
        return self.interval * 1000

    def offset_ms(self, index: int) -> int:
        return 0 if self.aligned else index * self.interval_ms // self.count

    def anchor_ms(self, index: int) -> int:
        return self.base_ms + self.offset_ms(index)

    def anchors(self) -> dict[str, int]:
        return {f"k{index}": self.anchor_ms(index) for index in range(self.count)}

    def first_at_or_after(self, anchor_ms: int, moment_ms: int) -> int:
        steps = max(0, math.ceil((moment_ms - anchor_ms) / self.interval_ms))
        return anchor_ms + steps * self.interval_ms

    def items(self, now_ms: int) -> Iterator[tuple[str, int, int]]:
        """(key, anchor ms, first due ms) of every schedule, as loaded at ``now_ms``."""
        start = max(now_ms, self.first_due_ms)
        for index in range(self.count):
            anchor = self.anchor_ms(index)
            yield f"k{index}", anchor, self.first_at_or_after(anchor, start)
        parked = self.first_at_or_after(self.base_ms, now_ms + DAY_MS)
        for index in range(self.edits):
            yield f"e{index}", self.base_ms, parked


@dataclass
class Workload:
    """One row of the report: what to load, how many schedulers, and how long to watch."""

    kind: str  # steady, multi, failover, edit, burst, idle
    label: str
    count: int
    aligned: bool = False
    interval: int = 1
    schedulers: int = 1
    seconds: float = 5.0  # measured window (steady kinds) or idle window
    warmup: float = 2.0
    edits: int = 0
    kill_after: float = 3.0  # failover: seconds into the window
    cap: float = 20.0  # burst: the longest wait after the burst's time
    sweep: bool = False  # a point of the rate sweep
    repeat: bool = False  # run it --repeats times, interleaved (the standard rows)

    def plan(self, now_ms: int, lead_s: float = 0.0) -> Plan:
        if self.kind == "burst":
            due = (now_ms // 1000 + 1) * 1000 + int(lead_s * 1000)
            return Plan(self.count, self.interval, aligned=True, base_ms=due, first_due_ms=due)
        base = (now_ms // 1000 - 60) * 1000
        if self.kind == "idle":
            return Plan(self.count, self.interval, self.aligned, base_ms=base, first_due_ms=now_ms + DAY_MS)
        return Plan(self.count, self.interval, self.aligned, base_ms=base, edits=self.edits)


@dataclass
class RunSpec:
    """What a peer's child process needs to know, written to a JSON file it reads."""

    workdir: str
    fires: str
    redis_url: str
    plan: Plan
    schedulers: int = 1
    max_life: float = 600.0
    sqlite: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: str | Path) -> RunSpec:
        data = json.loads(Path(path).read_text())
        data["plan"] = Plan(**data["plan"])
        return cls(**data)


class Handle(Protocol):
    def join(self, timeout: float | None = None) -> None: ...


class System(Protocol):
    """What the measuring procedure needs from a scheduler under test."""

    def setup(self, plan: Plan) -> float | None: ...  # load seconds, or None if loaded at start
    def start(self, count: int) -> tuple[list[int], float | None]: ...  # pids, in-process load seconds
    def stop(self) -> None: ...
    def kill_one(self) -> int: ...  # SIGKILL the scheduler doing the work; its pid
    def redis_cpu(self) -> float: ...
    def fired_count(self) -> int: ...
    def read_fires(self) -> list[tuple[float, str, int | None]]: ...  # (ms, key, nominal ms or None)
    def start_edits(self, plan: Plan, spacing: float) -> Handle: ...
    def read_edits(self) -> list[tuple[str, float, int, bool]]: ...


def proc_cpu_seconds(pid: int, reaped: bool = False) -> float:
    """CPU seconds of ``pid``; with ``reaped``, plus those of its children that ended and were reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = fields[11:15] if reaped else fields[11:13]  # utime stime [cutime cstime]
    return sum(int(value) for value in ticks) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a worker's pool or run processes), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and everything below it, children already ended and reaped included.

    A child's time moves into its parent's cutime/cstime when the parent reaps it, so summing
    every live process's own and reaped children's time counts each second once, including the
    short-lived processes some workers fork per job (RQ's work horse).
    """
    return sum(proc_cpu_seconds(each, reaped=True) for each in descendants(pid))


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and everything below it (shared pages counted in each process)."""
    return sum(proc_rss_mb(each) for each in descendants(pid))


def terminate(processes: Iterable[subprocess.Popen[bytes]], timeout: float) -> list[int]:
    """SIGTERM each process, wait up to ``timeout`` s for each, then SIGKILL it and everything below it
    (a pool it started). Returns the pids that had to be killed."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    killed = []
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            killed.append(process.pid)
            for pid in reversed(descendants(process.pid)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait()
    return killed


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def measure(system: System, workload: Workload, lead_s: float = 0.0) -> dict[str, Any]:
    """Run ``workload`` on ``system`` and return the raw figures (fires, CPU, RSS, times)."""
    plan = workload.plan(int(time.time() * 1000), lead_s)
    out: dict[str, Any] = {"interval_ms": plan.interval_ms, "anchors": plan.anchors()}
    started = time.time()
    out["load_s"] = system.setup(plan)
    pids, in_process_load = system.start(workload.schedulers)
    if in_process_load is not None:
        out["load_s"] = in_process_load
    out["ready_s"] = time.time() - started
    cpu = lambda: sum(proc_cpu_seconds(pid) for pid in pids)  # noqa: E731
    try:
        if workload.kind == "idle":
            time.sleep(1.0)
            cpu0, redis0, t0 = cpu(), system.redis_cpu(), time.time()
            time.sleep(workload.seconds)
            out["idle_cpu_s"] = cpu() - cpu0
            out["idle_redis_cpu_s"] = system.redis_cpu() - redis0
            out["idle_seconds"] = time.time() - t0
            out["rss_mb"] = max(proc_rss_mb(pid) for pid in pids)
            out["window"] = [0, 0]
        elif workload.kind == "burst":
            due = plan.first_due_ms / 1000
            out["late_start"] = time.time() > due
            cpu0, redis0 = cpu(), system.redis_cpu()
            sleep_until(due)
            deadline = due + workload.cap
            while time.time() < deadline and system.fired_count() < plan.count:
                time.sleep(0.2)
            time.sleep(0.5)
            out["cpu_s"], out["redis_cpu_s"] = cpu() - cpu0, system.redis_cpu() - redis0
            out["cpu_window"] = [due * 1000 - 1, time.time() * 1000]
            out["rss_mb"] = max(proc_rss_mb(pid) for pid in pids)
            out["window"] = [plan.first_due_ms, plan.first_due_ms + plan.interval_ms]
        else:
            window_start = math.ceil(time.time() + workload.warmup)
            window_end = window_start + int(workload.seconds)
            out["window"] = [window_start * 1000, window_end * 1000]
            sleep_until(window_start)
            cpu0, redis0, t0 = cpu(), system.redis_cpu(), time.time()
            if workload.kind == "failover":
                sleep_until(window_start + workload.kill_after)
                out["kill_ms"] = time.time() * 1000
                killed = system.kill_one()
                pids = [pid for pid in pids if pid != killed]  # CPU is not compared for this kind
            if workload.kind == "edit":
                editor = system.start_edits(plan, 1.0)
                editor.join(timeout=workload.seconds + 60)
                window_end = max(window_end, math.ceil(time.time()) + 3)
                out["window"][1] = window_end * 1000
            sleep_until(window_end)
            time.sleep(plan.interval + 0.5)  # let the window's last occurrences fire
            out["cpu_s"], out["redis_cpu_s"] = cpu() - cpu0, system.redis_cpu() - redis0
            out["cpu_window"] = [t0 * 1000, time.time() * 1000]
            out["rss_mb"] = max(proc_rss_mb(pid) for pid in pids)
            if workload.kind == "failover":
                out["cpu_s"] = None
    finally:
        system.stop()
    out["fires"] = system.read_fires()
    if workload.kind == "edit":
        out["edits"] = system.read_edits()
    return out


# ---- helpers for the peers' child processes ----------------------------------------------


def child_main(operations: dict[str, Callable[[RunSpec, int], None]]) -> None:
    """Entry point of a peer module run as ``python -m peers.NAME OPERATION SPEC [INDEX]``."""
    operation, spec_path = sys.argv[1], sys.argv[2]
    index = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    spec = RunSpec.load(spec_path)
    signal.alarm(max(1, int(spec.max_life)))  # never outlive the run, whatever the harness does
    os.environ["BENCH_FIRES"] = spec.fires
    operations[operation](spec, index)


def stop_on_sigterm() -> None:
    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def mark_ready(spec: RunSpec, load_seconds: float | None = None) -> None:
    """Tell the harness this scheduler process is about to enter its loop."""
    path = Path(spec.workdir) / f"ready-{os.getpid()}.json"
    path.write_text(json.dumps({"pid": os.getpid(), "load_s": load_seconds}))


def write_load(spec: RunSpec, seconds: float) -> None:
    (Path(spec.workdir) / "load.json").write_text(json.dumps({"load_s": seconds}))


def run_edits(spec: RunSpec, apply: Callable[[str, int], None], spacing: float = 1.0) -> None:
    """Move each parked schedule ``e{j}`` to fire from the next whole second but one, ``spacing`` apart.

    Writes (key, when the edit call started, the new first time) per edit, so the harness can
    measure how long after that time the first fire came.
    """
    log = Path(spec.workdir) / "edits.log"
    with log.open("a") as out:
        for index in range(spec.plan.edits):
            started = time.time()
            first_ms = (math.ceil(started) + 1) * 1000
            try:
                apply(f"e{index}", first_ms)
                status = "ok"
            except Exception:  # the row says so; the harness counts it as an edit that failed
                traceback.print_exc()
                status = "failed"
            out.write(f"e{index} {started * 1000:.3f} {first_ms} {status}\n")
            out.flush()
            sleep_until(started + spacing)


def read_edits(workdir: Path) -> list[tuple[str, float, int, bool]]:
    """(key, edit started ms, new first time ms, whether the API call succeeded) per edit."""
    path = workdir / "edits.log"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        key, started, first, status = line.split()
        rows.append((key, float(started), int(first), status == "ok"))
    return rows


class ThreadHandle:
    def __init__(self, target: Callable[[], None]):
        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)
