"""One look at the whole service for the dashboard, with the warnings it calls for.

Each part is read on its own: a server that does not answer costs the parts that need it
(and a warning saying so), never the page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pymongo
import redis
from django.db import DatabaseError
from pymongo.errors import PyMongoError

from dashboard import selectors
from dashboard.selectors import DueIndexState, Failure, PausedSchedule, Process, RunCounts, Upcoming
from jobs.selectors import AnyUser
from jobscheduler.activity import Activity, LagSummary
from jobscheduler.coordination import Coordination
from jobscheduler.epoch import to_epoch_ms
from schedules.due_index import get_due_index

logger = logging.getLogger(__name__)

REDIS_ERRORS = (redis.RedisError, OSError)
MONGODB_ERRORS = (PyMongoError, DatabaseError)
# What the page's MongoDB reads may take together: a MongoDB that is away costs a page this
# much (then a warning), not the driver's server selection timeout per read.
MONGODB_BUDGET_SECONDS = 5.0


@dataclass(frozen=True)
class Notice:
    """A warning at the top of the dashboard: ``level`` is "error" (something does not work)
    or "warning" (something needs a look)."""

    level: str
    text: str
    hint: str = ""


@dataclass
class Overview:
    generated_at: datetime
    redis_ok: bool = True
    mongodb_ok: bool = True
    schedulers: list[Process] | None = None
    workers: list[Process] | None = None
    due: DueIndexState | None = None
    lag: LagSummary | None = None
    runs: RunCounts | None = None
    failures: list[Failure] | None = None
    paused: list[PausedSchedule] | None = None
    paused_total: int = 0
    upcoming: list[Upcoming] | None = None
    notices: list[Notice] = field(default_factory=list)


def build_overview(user: AnyUser, *, now: datetime | None = None, wall_clock: float | None = None) -> Overview:
    """Everything the dashboard shows, as ``user`` may see it (jobs of others are left out of
    the lists; the service-wide figures are the same for everyone, as at /metrics)."""
    with pymongo.timeout(MONGODB_BUDGET_SECONDS):
        return _build(user, now or datetime.now(UTC), wall_clock)


def _build(user: AnyUser, now: datetime, wall_clock: float | None) -> Overview:
    wall = selectors.clock() if wall_clock is None else wall_clock
    now_ms = to_epoch_ms(now)
    overview = Overview(generated_at=now)
    index = get_due_index()
    activity = Activity(index.keyspace)

    visible: set[str] | None = None
    try:
        visible = selectors.visible_job_ids(user)
    except MONGODB_ERRORS as error:
        _mongodb_down(overview, error)
        visible = set()  # nothing of anyone's until MongoDB says what is theirs

    def redis_part(read: Any) -> Any:
        if not overview.redis_ok:
            return None
        try:
            return read()
        except REDIS_ERRORS as error:
            overview.redis_ok = False
            logger.warning("dashboard: Redis does not answer", extra={"error": repr(error)})
            return None
        except MONGODB_ERRORS as error:  # job names, behind a Redis read
            _mongodb_down(overview, error)
            return None

    processes = redis_part(lambda: selectors.processes(Coordination(index.keyspace), wall))
    if processes is not None:
        overview.schedulers, overview.workers = processes
    overview.due = redis_part(lambda: selectors.due_index_state(index, now_ms))
    overview.lag = redis_part(lambda: selectors.lag_summary(activity, now_ms))
    overview.runs = redis_part(lambda: selectors.run_counts(activity, now_ms))
    if overview.mongodb_ok:
        overview.failures = redis_part(lambda: selectors.latest_failures(activity, visible))
        overview.upcoming = redis_part(lambda: selectors.upcoming(index, visible, now))
        try:
            overview.paused, overview.paused_total = selectors.paused_by_service(visible)
        except MONGODB_ERRORS as error:
            _mongodb_down(overview, error)
    overview.notices = notices(overview)
    return overview


def _mongodb_down(overview: Overview, error: Exception) -> None:
    if overview.mongodb_ok:
        logger.warning("dashboard: MongoDB does not answer", extra={"error": repr(error)})
    overview.mongodb_ok = False


def notices(overview: Overview) -> list[Notice]:
    """What needs saying before any figure: servers down, no scheduler or worker, no mirror."""
    found = []
    if not overview.redis_ok:
        found.append(
            Notice(
                "error",
                "Redis does not answer: nothing is dispatched, and the processes, the due index and the "
                "counters cannot be shown.",
                "Schedulers and workers wait for it and carry on when it is back.",
            )
        )
    if not overview.mongodb_ok:
        found.append(
            Notice(
                "error",
                "MongoDB does not answer: outcomes cannot be recorded, and the failures, paused schedules "
                "and what runs next cannot be shown.",
                "What is mirrored in Redis goes on firing; workers hold their runs and record them when it is back.",
            )
        )
    if overview.schedulers == []:
        found.append(
            Notice(
                "error",
                "No scheduler is alive: nothing fires.",
                "Start one (or more) with manage.py run_scheduler.",
            )
        )
    if overview.workers == []:
        waiting = overview.due.in_streams if overview.due else 0
        found.append(
            Notice(
                "error",
                f"No worker is alive: dispatched runs wait on the streams ({waiting:,} there now).",
                "Start one (or more) with manage.py run_worker.",
            )
        )
    if overview.due is not None and not overview.due.mirror_intact:
        rebuilding = bool(overview.schedulers)
        found.append(
            Notice(
                "warning" if rebuilding else "error",
                "The schedules' mirror in Redis is missing (Redis lost its data, or it was never built): "
                "schedules not mirrored do not fire.",
                "A running scheduler is rebuilding it from MongoDB."
                if rebuilding
                else "A scheduler rebuilds it when it starts; manage.py sync_schedules rebuilds it now.",
            )
        )
    if overview.paused_total:
        count = overview.paused_total
        found.append(
            Notice(
                "warning",
                f"{count:,} schedule{'s were' if count != 1 else ' was'} paused by the service "
                "(failing runs, or a schedule it could not compute).",
                "See “Paused by the service” below; resume each once fixed.",
            )
        )
    return found
