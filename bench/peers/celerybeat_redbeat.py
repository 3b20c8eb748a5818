"""celery-redbeat: beat's schedule in Redis, one active beat at a time under a Redis lock."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import ClassVar

from peers.base import PeerSystem
from peers.celery_common import Recording, make_app, moment, run_beat
from peers.common import RunSpec, child_main, run_edits, write_load


class RedBeat(PeerSystem):
    name = "celery-redbeat"
    module = "celerybeat_redbeat"
    load_rate = 5000.0
    limits: ClassVar[dict[str, str]] = {
        "note": "an interval runs again `interval` after its previous actual run, so times drift off any grid; "
        "one beat fires at a time (a Redis lock); a standby takes over only when the lock expires, 5 x "
        "beat_max_loop_interval (25 s with the 5 s used here; 25 minutes with celery's default 300 s)",
    }


def load(spec: RunSpec, index: int) -> None:
    from celery.schedules import schedule
    from redbeat import RedBeatSchedulerEntry

    app = make_app(spec)
    plan = spec.plan
    every = schedule(timedelta(seconds=plan.interval), app=app)
    started = time.perf_counter()
    for key, _, first in plan.items(int(time.time() * 1000)):
        entry = RedBeatSchedulerEntry(key, "bench.fire", every, args=[key], app=app)
        entry.last_run_at = moment(first - plan.interval_ms)
        entry.save()
    write_load(spec, time.perf_counter() - started)


def serve(spec: RunSpec, index: int) -> None:
    from redbeat import RedBeatScheduler

    class Scheduler(Recording, RedBeatScheduler):
        pass

    run_beat(spec, make_app(spec), Scheduler)


def edit(spec: RunSpec, index: int) -> None:
    from redbeat import RedBeatSchedulerEntry
    from redbeat.schedulers import ensure_conf

    app = make_app(spec)
    ensure_conf(app)

    def apply(key: str, first_ms: int) -> None:
        entry = RedBeatSchedulerEntry.from_key(RedBeatSchedulerEntry.generate_key(app, key), app=app)
        entry.reschedule(last_run_at=moment(first_ms - spec.plan.interval_ms))

    run_edits(spec, apply)


if __name__ == "__main__":
    child_main({"load": load, "serve": serve, "edit": edit})
