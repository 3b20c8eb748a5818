"""APScheduler 3: a BackgroundScheduler with the Redis job store, or the in-memory one (in-process reference).

Jobs run in the scheduler's own thread (DebugExecutor) and the job function records the fire,
so the measure is the scheduler's hand-off, not a thread pool.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlparse

from peers import firelog
from peers.base import PeerSystem
from peers.common import RunSpec, child_main, mark_ready, run_edits, stop_on_sigterm, write_load


def moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class APSchedulerRedis(PeerSystem):
    name = "APScheduler 3 (Redis store)"
    module = "aps"
    load_rate = 4000.0
    limits: ClassVar[dict[str, str]] = {
        "failover": "no coordination between schedulers sharing a job store (documented as unsupported)",
        "note": "a run later than misfire_grace_time (1 s by default) is skipped, not run late",
    }

    def prepare(self, workload: Any, max_life: float) -> None:
        super().prepare(workload, max_life)
        assert self.spec is not None
        self.spec.options["store"] = "redis"


class APSchedulerMemory(PeerSystem):
    name = "APScheduler 3 (in-memory, in-process)"
    module = "aps"
    in_process_load = True
    uses_redis = False
    load_rate = 30000.0
    limits: ClassVar[dict[str, str]] = {
        "multi": "jobs live in one process's memory: nothing to share",
        "failover": "jobs live in one process's memory: nothing to fail over to",
        "edit": "jobs can only be changed from inside the scheduler's process",
        "note": "nothing persists: a restart loses every job's state",
    }

    def prepare(self, workload: Any, max_life: float) -> None:
        super().prepare(workload, max_life)
        assert self.spec is not None
        self.spec.options["store"] = "memory"


def scheduler(spec: RunSpec) -> Any:
    from apscheduler.executors.debug import DebugExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    jobstores = {}
    if spec.options["store"] == "redis":
        from apscheduler.jobstores.redis import RedisJobStore

        url = urlparse(spec.redis_url)
        jobstores["default"] = RedisJobStore(host=url.hostname, port=url.port)
    return BackgroundScheduler(jobstores=jobstores, executors={"default": DebugExecutor()}, timezone=UTC)


def add_jobs(spec: RunSpec, aps: Any) -> float:
    plan = spec.plan
    started = time.perf_counter()
    for key, anchor, first in plan.items(int(time.time() * 1000)):
        aps.add_job(
            firelog.fire if spec.options["store"] == "memory" else "peers.firelog:fire",
            "interval",
            seconds=plan.interval,
            start_date=moment(anchor),
            next_run_time=moment(first),
            args=[key],
            id=key,
        )
    return time.perf_counter() - started


def load(spec: RunSpec, index: int) -> None:
    aps = scheduler(spec)
    aps.start(paused=True)  # a paused scheduler writes added jobs to the store at once
    write_load(spec, add_jobs(spec, aps))
    aps.shutdown(wait=False)


def serve(spec: RunSpec, index: int) -> None:
    stop_on_sigterm()
    aps = scheduler(spec)
    aps.start()
    load_seconds = add_jobs(spec, aps) if spec.options["store"] == "memory" else None
    mark_ready(spec, load_seconds)
    try:
        while True:
            time.sleep(1)
    finally:
        aps.shutdown(wait=False)


def edit(spec: RunSpec, index: int) -> None:
    aps = scheduler(spec)
    aps.start(paused=True)

    def apply(key: str, first_ms: int) -> None:
        aps.modify_job(key, next_run_time=moment(first_ms))

    run_edits(spec, apply)
    aps.shutdown(wait=False)


if __name__ == "__main__":
    child_main({"load": load, "serve": serve, "edit": edit})
