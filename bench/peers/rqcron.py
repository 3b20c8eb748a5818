"""RQ's own CronScheduler (rq >= 2.5): jobs registered in code, enqueued into an RQ queue in Redis."""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

from peers import firelog
from peers.base import PeerSystem
from peers.common import RunSpec, child_main, mark_ready, sleep_until


class RQCron(PeerSystem):
    name = "RQ CronScheduler"
    module = "rqcron"
    in_process_load = True
    load_rate = 15000.0
    limits: ClassVar[dict[str, str]] = {
        "spread": "interval jobs all start when the scheduler starts (no start time): aligned only",
        "multi": "registrations live in each process: a second scheduler fires everything again",
        "failover": "registrations live in each process: no standby",
        "edit": "jobs are registered in code or a config file; a change needs a restart",
        "note": "an interval runs again `interval` after the loop pass that enqueued it, so times drift",
    }


def serve(spec: RunSpec, index: int) -> None:
    from redis import Redis
    from rq.cron import CronJob, CronScheduler

    enqueue = CronJob.enqueue

    def recorded(self: Any, connection: Any) -> Any:
        firelog.record(self.args[0])
        return enqueue(self, connection)

    CronJob.enqueue = recorded  # type: ignore[method-assign]
    plan = spec.plan
    cron = CronScheduler(connection=Redis.from_url(spec.redis_url), logging_level="WARNING")
    started = time.perf_counter()
    far = plan.first_due_ms > time.time() * 1000 + 3_600_000
    for key, _, _ in plan.items(int(time.time() * 1000)):
        if far:  # idle: a cron time about a year ahead stands for "far in the future"
            cron.register(firelog.noop, queue_name="bench", args=(key,), cron="0 0 1 1 *")
        else:
            cron.register(firelog.noop, queue_name="bench", args=(key,), interval=plan.interval)
    load_seconds = time.perf_counter() - started
    mark_ready(spec, load_seconds)
    # Interval jobs first run when the scheduler starts: start it on the plan's grid, at the
    # first due time or the next whole second.
    sleep_until(max(plan.first_due_ms / 1000, math.ceil(time.time())))
    cron.start()  # installs its own SIGTERM handler


if __name__ == "__main__":
    child_main({"serve": serve})
