"""django-q2: Schedule rows (SQLite here) turned into tasks on its Redis broker by scheduler().

Its cluster's sentinel calls ``scheduler()`` from its guard loop once every 30 s (60 guard
cycles of 0.5 s); this process runs the same loop without the worker pool, so the measure is
the scheduler alone. Interval schedules count in minutes (``minutes`` >= 1).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from peers import firelog
from peers.base import PeerSystem
from peers.celery_common import moment
from peers.common import RunSpec, child_main, mark_ready, stop_on_sigterm, write_load
from peers.django_common import copy_migrated_db, setup


class DjangoQ2(PeerSystem):
    name = "django-q2"
    module = "djangoq"
    load_rate = 20000.0
    limits: ClassVar[dict[str, str]] = {
        "seconds": "interval schedules count whole minutes, and the cluster looks at schedules once every 30 s",
        "multi": "needs SELECT ... FOR UPDATE to share schedules between clusters; SQLite here has none",
        "failover": "needs SELECT ... FOR UPDATE to share schedules between clusters; SQLite here has none",
    }

    def prepare_storage(self) -> None:
        assert self.spec is not None
        copy_migrated_db(self.python, self.workroot, self.spec.sqlite)


def load(spec: RunSpec, index: int) -> None:
    setup(spec)
    from django_q.models import Schedule

    plan = spec.plan
    started = time.perf_counter()
    rows = [
        Schedule(
            name=key,
            func="peers.firelog.noop",
            args=repr((key,)),
            schedule_type=Schedule.MINUTES,
            minutes=max(1, plan.interval // 60),
            next_run=moment(first),
            repeats=-1,
        )
        for key, _, first in plan.items(int(time.time() * 1000))
    ]
    Schedule.objects.bulk_create(rows, batch_size=2000)
    write_load(spec, time.perf_counter() - started)


def serve(spec: RunSpec, index: int) -> None:
    setup(spec)
    import django_q.scheduler as module
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    async_task = module.async_task

    def recorded(func: Any, *args: Any, **kwargs: Any) -> Any:
        firelog.record(args[0])
        return async_task(func, *args, **kwargs)

    module.async_task = recorded
    stop_on_sigterm()
    broker = get_broker()
    mark_ready(spec)
    counter, cycle = 0.0, Conf.GUARD_CYCLE
    while True:  # the sentinel's guard loop, less its checks on workers
        counter += cycle
        if counter >= 30 and Conf.SCHEDULER:
            counter = 0
            module.scheduler(broker=broker)
        time.sleep(cycle)


if __name__ == "__main__":
    child_main({"load": load, "serve": serve})
