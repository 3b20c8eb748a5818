"""rq-scheduler: jobs in a Redis sorted set, polled by one scheduler at a time under a lock.

It runs in its own venv (bench/.venvs/rq-scheduler): its 'crontab' dependency clashes with
django-celery-beat's python-crontab. Its times are whole seconds (scores are integer Unix
times), and it polls every ``interval`` seconds: 1 s here.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from peers import firelog
from peers.base import PeerSystem
from peers.common import RunSpec, child_main, mark_ready, run_edits, write_load

POLL_SECONDS = 1.0


class RQScheduler(PeerSystem):
    name = "rq-scheduler"
    module = "rqsched"
    venv = "rq-scheduler"
    load_rate = 5000.0
    limits: ClassVar[dict[str, str]] = {
        "spread": "times are whole seconds (integer sorted-set scores): aligned only",
        "note": "it polls every `interval` seconds (1 s here, 60 s by default) and reschedules a repeating job "
        "at the current whole second + interval; one scheduler works at a time (a lock taken per pass)",
    }


def utc_naive(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def connect(spec: RunSpec) -> Any:
    from redis import Redis

    return Redis.from_url(spec.redis_url)


def load(spec: RunSpec, index: int) -> None:
    from rq_scheduler import Scheduler

    scheduler = Scheduler(queue_name="bench", connection=connect(spec))
    plan = spec.plan
    started = time.perf_counter()
    for key, _, first in plan.items(int(time.time() * 1000)):
        scheduler.schedule(utc_naive(first), firelog.noop, args=[key], interval=plan.interval, id=key)
    write_load(spec, time.perf_counter() - started)


def serve(spec: RunSpec, index: int) -> None:
    from rq_scheduler import Scheduler

    class Recording(Scheduler):  # type: ignore[misc]
        def enqueue_job(self, job: Any) -> Any:
            firelog.record(job.args[0])
            return super().enqueue_job(job)

    scheduler = Recording(queue_name="bench", connection=connect(spec), interval=POLL_SECONDS)
    mark_ready(spec)
    scheduler.run()  # installs its own SIGTERM handler


def edit(spec: RunSpec, index: int) -> None:
    from rq_scheduler import Scheduler

    connection = connect(spec)
    scheduler = Scheduler(queue_name="bench", connection=connection)

    def apply(key: str, first_ms: int) -> None:
        scheduler.change_execution_time(scheduler.job_class.fetch(key, connection=connection), utc_naive(first_ms))

    run_edits(spec, apply)


if __name__ == "__main__":
    child_main({"load": load, "serve": serve, "edit": edit})
