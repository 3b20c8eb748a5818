"""celery beat with its default file scheduler (PersistentScheduler, a shelve file).

The schedule is defined in code (``beat_schedule``); each entry's ``last_run_at`` puts its
first run on the plan's grid. Beat computes each next run as the actual run time plus the
interval, so it keeps no grid; the report measures that against the ideal one.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from peers.base import PeerSystem
from peers.celery_common import Recording, make_app, moment, run_beat
from peers.common import RunSpec, child_main


class CeleryBeatFile(PeerSystem):
    name = "celery beat (file)"
    module = "celerybeat_file"
    in_process_load = True
    load_rate = 20000.0
    redis_holds_schedules = False
    limits: ClassVar[dict[str, str]] = {
        "multi": "one beat per schedule: a second beat fires everything again (documented: run one beat only)",
        "failover": "one beat per schedule, no standby or lock",
        "edit": "the schedule lives in code and in the beat's shelve file; a change needs a restart",
        "note": "an interval runs again `interval` after its previous actual run, so times drift off any grid; "
        "each tick compares the whole schedule with its previous copy (Scheduler.schedules_equal), a cost in N "
        "per fire",
    }


def serve(spec: RunSpec, index: int) -> None:
    from celery.beat import PersistentScheduler

    class Scheduler(Recording, PersistentScheduler):
        pass

    plan = spec.plan
    started = time.perf_counter()
    app = make_app(spec)
    every = timedelta(seconds=plan.interval)
    entries: dict[str, Any] = {}
    for key, _, first in plan.items(int(time.time() * 1000)):
        entries[key] = {
            "task": "bench.fire",
            "schedule": every,
            "args": (key,),
            "last_run_at": moment(first - plan.interval_ms),
        }
    app.conf.beat_schedule = entries
    filename = str(Path(spec.workdir) / f"celerybeat-schedule-{index}")
    run_beat(spec, app, Scheduler, filename, define_seconds=time.perf_counter() - started)


if __name__ == "__main__":
    child_main({"serve": serve})
