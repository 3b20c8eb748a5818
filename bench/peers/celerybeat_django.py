"""django-celery-beat: beat's DatabaseScheduler over PeriodicTask rows (SQLite here)."""

from __future__ import annotations

import json
import time
from typing import ClassVar

from peers.base import PeerSystem
from peers.celery_common import Recording, make_app, moment, run_beat
from peers.common import RunSpec, child_main, run_edits, write_load
from peers.django_common import copy_migrated_db, setup


class DjangoCeleryBeat(PeerSystem):
    name = "django-celery-beat"
    module = "celerybeat_django"
    load_rate = 10000.0
    redis_holds_schedules = False
    limits: ClassVar[dict[str, str]] = {
        "failover": "no lock or standby: every beat fires every task (documented: run one beat only)",
        "note": "an interval runs again `interval` after its previous actual run, so times drift off any grid; "
        "each tick asks the database whether anything changed, and any change reloads every enabled task",
    }

    def prepare_storage(self) -> None:
        assert self.spec is not None
        copy_migrated_db(self.python, self.workroot, self.spec.sqlite)


def load(spec: RunSpec, index: int) -> None:
    setup(spec)
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    plan = spec.plan
    started = time.perf_counter()
    every = IntervalSchedule.objects.create(every=plan.interval, period=IntervalSchedule.SECONDS)
    tasks = [
        PeriodicTask(
            name=key,
            task="bench.fire",
            interval=every,
            args=json.dumps([key]),
            last_run_at=moment(first - plan.interval_ms),
        )
        for key, _, first in plan.items(int(time.time() * 1000))
    ]
    PeriodicTask.objects.bulk_create(tasks, batch_size=2000)
    PeriodicTasks.update_changed()  # what the docs ask after a bulk change
    write_load(spec, time.perf_counter() - started)


def serve(spec: RunSpec, index: int) -> None:
    setup(spec)
    from django_celery_beat.schedulers import DatabaseScheduler

    class Scheduler(Recording, DatabaseScheduler):
        pass

    run_beat(spec, make_app(spec), Scheduler)


def edit(spec: RunSpec, index: int) -> None:
    setup(spec)
    from django_celery_beat.models import PeriodicTask

    def apply(key: str, first_ms: int) -> None:
        task = PeriodicTask.objects.get(name=key)
        task.last_run_at = moment(first_ms - spec.plan.interval_ms)
        task.save()

    run_edits(spec, apply)


if __name__ == "__main__":
    child_main({"load": load, "serve": serve, "edit": edit})
