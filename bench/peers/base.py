"""The harness's side of a peer: a private Redis, the peer's child processes, and their fire logs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from peers import firelog
from peers.common import Plan, RunSpec, Workload, read_edits, terminate

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from devtools.servers import Servers  # noqa: E402


class ProcessHandle:
    def __init__(self, process: subprocess.Popen[bytes]):
        self.process = process

    def join(self, timeout: float | None = None) -> None:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class PeerSystem:
    """One peer under test: runs ``python -m peers.<module> load|serve|edit`` children."""

    name: ClassVar[str] = ""
    module: ClassVar[str] = ""
    in_process_load: ClassVar[bool] = False  # schedules are defined inside the scheduler process
    uses_redis: ClassVar[bool] = True
    # Whether its schedules live in that Redis; if not (beat's file and database schedulers only hold
    # an idle broker connection there, the publish being hooked), Redis CPU is not reported.
    redis_holds_schedules: ClassVar[bool] = True
    load_rate: ClassVar[float] = 2000.0  # schedules/s, a rough guess to place a burst far enough ahead
    # What it cannot do, by workload kind (or "spread"/"aligned"/"seconds"): the reason shown in the report.
    limits: ClassVar[dict[str, str]] = {}

    def __init__(self, workroot: Path, python: str = sys.executable):
        self.workroot = workroot
        self.python = python
        self.children: list[subprocess.Popen[bytes]] = []
        self.servers: Servers | None = None
        self.run_number = 0
        self.spec: RunSpec | None = None
        self.redis_client: Any = None

    # ---- capability -----------------------------------------------------------------------

    def cannot(self, workload: Workload) -> str | None:
        if workload.kind in self.limits:
            return self.limits[workload.kind]
        if workload.interval < 60 and "seconds" in self.limits:
            return self.limits["seconds"]
        if workload.kind != "idle" and not workload.aligned and "spread" in self.limits:
            return self.limits["spread"]
        return None

    def sweep_aligned(self) -> bool:
        return "spread" in self.limits

    # ---- one run --------------------------------------------------------------------------

    def prepare(self, workload: Workload, max_life: float) -> None:
        self.run_number += 1
        workdir = self.workroot / f"{type(self).__name__}-{self.run_number}"
        fires = workdir / "fires"
        fires.mkdir(parents=True)
        redis_url = ""
        if self.uses_redis:
            self.servers = Servers()
            redis_url = self.servers.start_redis(workdir)
            import redis

            self.redis_client = redis.Redis.from_url(redis_url)
        self.spec = RunSpec(
            workdir=str(workdir),
            fires=str(fires),
            redis_url=redis_url,
            plan=Plan(0),
            schedulers=workload.schedulers,
            max_life=max_life,
            sqlite=str(workdir / "db.sqlite3"),
        )
        self.prepare_storage()

    def prepare_storage(self) -> None:
        """Peers with a database copy a migrated one into the run's folder here."""

    @property
    def workdir(self) -> Path:
        assert self.spec is not None
        return Path(self.spec.workdir)

    def spawn(self, operation: str, index: int = 0) -> subprocess.Popen[bytes]:
        assert self.spec is not None
        spec_path = self.workdir / "spec.json"
        log = (self.workdir / f"{operation}-{index}.log").open("ab")
        process = subprocess.Popen(
            [self.python, "-m", f"peers.{self.module}", operation, str(spec_path), str(index)],
            cwd=BENCH,
            env={**os.environ, "BENCH_FIRES": self.spec.fires, "PYTHONPATH": str(BENCH)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.children.append(process)
        return process

    def setup(self, plan: Plan) -> float | None:
        assert self.spec is not None
        self.spec.plan = plan
        self.spec.save(self.workdir / "spec.json")
        if self.in_process_load:
            return None
        process = self.spawn("load")
        try:
            process.wait(timeout=self.spec.max_life)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.returncode != 0:
            raise RuntimeError(f"{self.name}: loading failed; see {self.workdir}/load-0.log")
        return float(json.loads((self.workdir / "load.json").read_text())["load_s"])

    def start(self, count: int) -> tuple[list[int], float | None]:
        processes = []
        for index in range(count):
            processes.append(self.spawn("serve", index))
            if count > 1:
                time.sleep(0.3)  # a stable order, so the first is the one holding any lock
        deadline = time.monotonic() + 300
        loads: list[float] = []
        for process in processes:
            ready = self.workdir / f"ready-{process.pid}.json"
            while not ready.exists():
                if process.poll() is not None:
                    raise RuntimeError(f"{self.name}: scheduler exited with {process.returncode}; see {self.workdir}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: scheduler not ready in 300 s")
                time.sleep(0.05)
            load = json.loads(ready.read_text())["load_s"]
            if load is not None:
                loads.append(load)
        self.schedulers = processes
        return [process.pid for process in processes], (max(loads) if loads else None)

    def stop(self) -> None:
        terminate(self.children, timeout=15)
        self.children = []

    def close(self) -> None:
        self.stop()
        if self.servers is not None:
            self.servers.stop()
            self.servers = None

    def kill_one(self) -> int:
        """SIGKILL the scheduler that fired last (the lock holder, where there is a lock)."""
        latest: dict[int, float] = {}
        for moment, _, pid in firelog.read(Path(self.spec.fires) if self.spec else Path()):
            latest[pid] = max(latest.get(pid, 0.0), moment)
        alive = [p for p in self.schedulers if p.poll() is None]
        victim = max(alive, key=lambda p: latest.get(p.pid, 0.0))
        victim.kill()
        victim.wait()
        return victim.pid

    def redis_cpu(self) -> float:
        if self.redis_client is None or not self.redis_holds_schedules:
            return math.nan  # nothing of its schedules in Redis: nothing to compare
        info = self.redis_client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def fired_count(self) -> int:
        assert self.spec is not None
        return sum(path.read_bytes().count(b"\n") for path in Path(self.spec.fires).glob("fires-*.log"))

    def read_fires(self) -> list[tuple[float, str, int | None]]:
        assert self.spec is not None
        return [(moment, key, None) for moment, key, _ in firelog.read(Path(self.spec.fires))]

    def start_edits(self, plan: Plan, spacing: float) -> ProcessHandle:
        return ProcessHandle(self.spawn("edit"))

    def read_edits(self) -> list[tuple[str, float, int, bool]]:
        return read_edits(self.workdir)
