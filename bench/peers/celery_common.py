"""What the three Celery beat schedulers share: the app, the publish hook, and running beat."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from peers import firelog
from peers.common import RunSpec, mark_ready, stop_on_sigterm


def moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def make_app(spec: RunSpec) -> Any:
    from celery import Celery

    app = Celery("bench", broker=spec.redis_url, set_as_current=True)
    app.conf.update(
        timezone="UTC",
        enable_utc=True,
        # django-celery-beat's own default, and what RedBeat's lock timeout (5x) is derived from;
        # the file scheduler's default would be 300 s.
        beat_max_loop_interval=5,
        broker_connection_retry_on_startup=True,
        redbeat_redis_url=spec.redis_url,
    )
    return app


class Recording:
    """Mixed into a beat Scheduler: the publish becomes a line in the fire log.

    Beat calls ``send_task`` for a task it does not know, after it has reserved the entry (its
    next time and run count already moved on), exactly where it would publish to the broker.
    """

    def send_task(self, name: str, args: Any = (), kwargs: Any = None, **options: Any) -> None:
        firelog.record(args[0])


def run_beat(
    spec: RunSpec, app: Any, scheduler_cls: type, schedule_filename: str = "", define_seconds: float | None = None
) -> None:
    """Build beat's scheduler, say ready, and tick until SIGTERM.

    With ``define_seconds`` (schedules defined in code), the load time reported is that plus
    the time beat takes to build its schedule from them.
    """
    from celery.beat import Service

    stop_on_sigterm()
    service = Service(app, scheduler_cls=scheduler_cls, schedule_filename=schedule_filename or None)
    started = time.perf_counter()
    service.scheduler  # noqa: B018 - builds the scheduler and its schedule
    built = time.perf_counter() - started
    mark_ready(spec, None if define_seconds is None else define_seconds + built)
    service.start()
