"""celery beat (its default file scheduler) sending N entries every second to a real broker.

Run by bench/celery_switch.py: ``python bench/celery_switch_beat.py BROKER QUEUE N BASE_MS FILE``.
Entry i is ``bench.receive`` with the argument ``s<i>``, every second; its ``last_run_at`` puts
its first run at BASE_MS + i * 1000/N ms (spread over the second), as the peers' benchmark does.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from celery import Celery
from celery.beat import PersistentScheduler, Service


def main() -> None:
    broker, queue, count, base_ms, filename = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    app = Celery("bench-beat", broker=broker, set_as_current=True)
    app.conf.update(timezone="UTC", enable_utc=True, beat_max_loop_interval=5, broker_connection_retry_on_startup=True)
    step_ms = 1000 / count
    app.conf.beat_schedule = {
        f"s{i}": {
            "task": "bench.receive",
            "schedule": timedelta(seconds=1),
            "args": (f"s{i}",),
            "options": {"queue": queue},
            "last_run_at": datetime.fromtimestamp((base_ms + i * step_ms - 1000) / 1000, UTC),
        }
        for i in range(count)
    }
    Service(app, scheduler_cls=PersistentScheduler, schedule_filename=filename).start()


if __name__ == "__main__":
    main()
