"""The reads behind the operations dashboard: processes, the due index, counters, failures, what runs next.

Each stays cheap with a million runs stored: Redis reads (heartbeats, the due index and its
mirror, the counters of jobscheduler.activity) and MongoDB reads of a few documents by index
(jobs by id, schedules the service paused by their ``pause_reason``). No run is counted or
sorted in MongoDB: SecantusDB decodes every candidate document of a query, so even an
index-backed sort of the runs costs seconds there (docs/dashboard-benchmark.md).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from jobs.models import Job, Run
from jobs.runqueue import RunQueue
from jobs.selectors import AnyUser, job_ids_visible_to
from jobs.tasks_backend import configured_queues
from jobscheduler import mongo
from jobscheduler.activity import Activity, LagSummary
from jobscheduler.coordination import SCHEDULERS, WORKERS, Coordination
from jobscheduler.epoch import from_epoch_ms, to_epoch_ms
from schedules import kinds, timeline
from schedules.due_index import DueIndex
from schedules.mirror import NONE, MirroredSchedule
from schedules.models import Schedule

FAILED = (Run.Status.FAILED, Run.Status.TIMED_OUT)
ENDED = (Run.Status.SUCCEEDED, *FAILED)  # what a failure rate is a rate of
# Statuses in the order the chart stacks them (bottom first); others follow.
STATUS_ORDER = tuple(status.value for status in Run.FINISHED)


@dataclass(frozen=True)
class Process:
    """A live scheduler or worker, from its heartbeat."""

    kind: str  # SCHEDULERS or WORKERS
    name: str
    host: str
    pid: int | None
    version: str
    beat_age_seconds: float
    started: datetime | None
    in_flight: int | None  # workers: runs executing now
    capacity: int | None  # workers: runs at once
    done: int | None  # workers: attempts finished; schedulers: occurrences fired
    queues: tuple[str, ...] = ()


def processes(coordination: Coordination, now: float) -> tuple[list[Process], list[Process]]:
    """The live schedulers and workers (expired heartbeats are dropped), by name."""

    def read(kind: str) -> list[Process]:
        found = []
        for name, info in sorted(coordination.beats(kind).items()):
            started = info.get("started")
            found.append(
                Process(
                    kind=kind,
                    name=name,
                    host=str(info.get("host") or name.rpartition(":")[0] or "?"),
                    pid=info.get("pid"),
                    version=str(info.get("version") or "?"),
                    beat_age_seconds=max(0.0, now - float(info.get("beat", now))),
                    started=datetime.fromtimestamp(started, UTC) if isinstance(started, int | float) else None,
                    in_flight=info.get("busy") if kind == WORKERS else None,
                    capacity=info.get("concurrency") if kind == WORKERS else None,
                    done=info.get("done") if kind == WORKERS else info.get("fired"),
                    queues=tuple(info.get("queues") or ()),
                )
            )
        return found

    return read(SCHEDULERS), read(WORKERS)


@dataclass(frozen=True)
class DueIndexState:
    scheduled: int  # schedules waiting in the due index for their next time
    needing_python: int  # schedules waiting for Python (a cron time to compute, a misfire)
    due_now: int  # of the scheduled, those whose time has come (a scheduler takes them at once)
    next_due_at: datetime | None
    in_streams: int  # dispatched occurrences on the run queue's streams (waiting or held by a worker)
    mirror_intact: bool  # False: Redis lost the schedules' mirror and no reconcile rebuilt it yet


def due_index_state(index: DueIndex, now_ms: int) -> DueIndexState:
    """The due index in two pipelines: sizes, what is due, the earliest time, the streams."""
    pipe = index.client.pipeline(transaction=False)
    for shard in range(index.shards):
        pipe.zcard(index.due_key(shard))
        pipe.zcard(index.work_key(shard))
        pipe.zcount(index.due_key(shard), "-inf", now_ms)
        pipe.zrange(index.due_key(shard), 0, 0, withscores=True)
    replies = pipe.execute()
    earliest = [int(first[0][1]) for first in replies[3::4] if first]
    return DueIndexState(
        scheduled=sum(replies[0::4]),
        needing_python=sum(replies[1::4]),
        due_now=sum(replies[2::4]),
        next_due_at=from_epoch_ms(min(earliest)) if earliest else None,
        in_streams=RunQueue(index.keyspace, queues=configured_queues()).lengths(),
        mirror_intact=index.is_reconciled(),
    )


@dataclass(frozen=True)
class RunCounts:
    """Attempts that ended, per minute over the last 24 hours, from the Redis counters."""

    first_minute: datetime
    per_minute: list[dict[str, int]]  # oldest first, by status
    last_hour: dict[str, int]
    last_day: dict[str, int]

    @property
    def statuses(self) -> list[str]:
        """The statuses seen in the last day, in stacking order."""
        seen = set(self.last_day)
        return [status for status in STATUS_ORDER if status in seen] + sorted(seen - set(STATUS_ORDER))

    @staticmethod
    def failure_rate(totals: dict[str, int]) -> float | None:
        """Failed and timed out attempts among those that ran to an end; None: none did."""
        ran = sum(totals.get(status, 0) for status in ENDED)
        return sum(totals.get(status, 0) for status in FAILED) / ran if ran else None

    @property
    def failure_rate_hour(self) -> float | None:
        return self.failure_rate(self.last_hour)

    @property
    def failure_rate_day(self) -> float | None:
        return self.failure_rate(self.last_day)


def _totals(minutes: Iterable[dict[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for minute in minutes:
        for status, count in minute.items():
            totals[status] = totals.get(status, 0) + count
    return totals


def run_counts(activity: Activity, now_ms: int, minutes: int = 24 * 60) -> RunCounts:
    first, series = activity.runs_per_minute(now_ms, minutes)
    return RunCounts(
        first_minute=from_epoch_ms(first * 60_000),
        per_minute=series,
        last_hour=_totals(series[-60:]),
        last_day=_totals(series),
    )


def lag_summary(activity: Activity, now_ms: int) -> LagSummary:
    """Dispatch lag over the last hour, from the schedulers' histogram."""
    return activity.lags(now_ms, 60)


def _object_ids(ids: Iterable[str]) -> list[ObjectId]:
    found = []
    for ident in ids:
        try:
            found.append(ObjectId(ident))
        except (InvalidId, TypeError):
            continue
    return found


def job_names(job_ids: Iterable[str]) -> dict[str, str]:
    """Names of these jobs by id (as text), in one look-up by primary key; absent: deleted."""
    ids = _object_ids(set(job_ids))
    if not ids:
        return {}
    rows = mongo.collection(Job).find({"_id": {"$in": ids}}, {"name": 1})
    return {str(row["_id"]): row.get("name", "") for row in rows}


def visible_job_ids(user: AnyUser) -> set[str] | None:
    """The ids (as text) of the jobs ``user`` may see; None: every job (a superuser)."""
    if getattr(user, "is_superuser", False):
        return None
    return {str(job_id) for job_id in job_ids_visible_to(user)}


@dataclass(frozen=True)
class Failure:
    run_id: str
    job_id: str
    job_name: str  # empty: the job is gone
    schedule_id: str
    fire_key: str
    attempt: int
    status: str
    ended_at: datetime
    error: str

    @property
    def summary(self) -> str:
        """One line of the error: a traceback's last (the exception), else the first."""
        lines = [line.strip() for line in self.error.strip().splitlines() if line.strip()]
        if not lines:
            return ""
        return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def latest_failures(activity: Activity, visible: set[str] | None, limit: int = 10) -> list[Failure]:
    """The latest failed attempts of the jobs the user may see, newest first (a Redis list)."""
    listed = [row for row in activity.latest_failures() if visible is None or row.get("job_id") in visible][:limit]
    names = job_names(row.get("job_id", "") for row in listed)
    return [
        Failure(
            run_id=row.get("run_id", ""),
            job_id=row.get("job_id", ""),
            job_name=names.get(row.get("job_id", ""), ""),
            schedule_id=row.get("schedule_id", ""),
            fire_key=row.get("fire_key", ""),
            attempt=int(row.get("attempt", 1)),
            status=row.get("status", ""),
            ended_at=from_epoch_ms(int(row.get("ended_at", 0))),
            error=row.get("error", ""),
        )
        for row in listed
    ]


@dataclass(frozen=True)
class PausedSchedule:
    schedule_id: str
    job_id: str
    job_name: str  # empty: the job is gone
    description: str
    reason: str
    paused_at: datetime | None


def paused_by_service(visible: set[str] | None, limit: int = 20) -> tuple[list[PausedSchedule], int]:
    """Schedules the service paused (failing runs, a schedule it could not compute, a declaration
    gone from the code), newest first, and how many there are in all. Read by the index on
    ``pause_reason`` (schedules 0004): only schedules with a reason are looked at."""
    paused = [
        schedule
        for schedule in Schedule.objects.filter(pause_reason__gt="").order_by()
        if schedule.paused and (visible is None or str(schedule.job_id) in visible)
    ]
    paused.sort(key=lambda schedule: schedule.updated_at, reverse=True)
    names = job_names(str(schedule.job_id) for schedule in paused[:limit])
    return [
        PausedSchedule(
            schedule_id=str(schedule.pk),
            job_id=str(schedule.job_id),
            job_name=names.get(str(schedule.job_id), ""),
            description=_describe(schedule),
            reason=schedule.pause_reason,
            paused_at=schedule.updated_at,
        )
        for schedule in paused[:limit]
    ], len(paused)


def _describe(schedule: Any) -> str:
    try:
        return kinds.get_kind(schedule.kind).describe(schedule)
    except (ValueError, AssertionError):
        return f"Invalid {schedule.kind} schedule"


@dataclass(frozen=True)
class Upcoming:
    """One schedule's occurrences within the horizon, for the timeline."""

    schedule_id: str
    job_id: str
    job_name: str  # empty: the job is gone
    description: str
    times: list[datetime]  # nominal times, in order
    more: bool  # more occurrences fall within the horizon than ``times`` holds
    due_at: datetime  # when it next fires (its first time, jitter applied)

    @property
    def count_text(self) -> str:
        return f"{len(self.times)}+" if self.more else str(len(self.times))


@dataclass
class _Candidates:
    ids: list[str] = field(default_factory=list)
    scores: dict[str, int] = field(default_factory=dict)


def _next_due(index: DueIndex, until_ms: int, wanted: int) -> _Candidates:
    """The ``wanted`` schedules that fire first (by due time, up to ``until_ms``), over every shard."""
    pipe = index.client.pipeline(transaction=False)
    for shard in range(index.shards):
        pipe.zrange(index.due_key(shard), "-inf", until_ms, byscore=True, offset=0, num=wanted, withscores=True)
    merged = heapq.merge(*pipe.execute(), key=lambda pair: pair[1])
    found = _Candidates()
    for member, score in merged:
        schedule_id = member.decode()
        found.ids.append(schedule_id)
        found.scores[schedule_id] = int(score)
        if len(found.ids) >= wanted:
            break
    return found


def upcoming(
    index: DueIndex,
    visible: set[str] | None,
    now: datetime,
    *,
    hours: int = 24,
    rows: int = 12,
    per_row: int = 120,
) -> list[Upcoming]:
    """What runs next: the ``rows`` schedules that fire first, each with its occurrences in the
    next ``hours`` (at most ``per_row``), computed from the mirror by the schedule's own
    timeline (the maths the engine fires by)."""
    horizon = now + timedelta(hours=hours)
    # A user who sees only some jobs looks further down the index for theirs.
    candidates = _next_due(index, to_epoch_ms(horizon), rows if visible is None else rows * 8)
    states = index.states(candidates.ids)
    chosen: list[tuple[str, MirroredSchedule, int]] = []
    for schedule_id, state in zip(candidates.ids, states, strict=True):
        try:
            mirrored = MirroredSchedule.from_state(schedule_id, state)
        except ValueError:  # unreadable: the scheduler pauses it with the reason
            continue
        if visible is not None and mirrored.job_id not in visible:
            continue
        chosen.append((schedule_id, mirrored, int(state.get("next", NONE))))
        if len(chosen) >= rows:
            break
    names = job_names(mirrored.job_id for _, mirrored, _ in chosen)
    found = []
    for schedule_id, mirrored, next_ms in chosen:
        times: list[datetime] = []
        more = False
        if next_ms >= 0:
            first = from_epoch_ms(next_ms)
            times.append(first)
            for occurrence in timeline.occurrences(mirrored, first, mirrored.run_count + 1):
                if occurrence.at > horizon:
                    break
                if len(times) >= per_row:
                    more = True
                    break
                times.append(occurrence.at)
        found.append(
            Upcoming(
                schedule_id=schedule_id,
                job_id=mirrored.job_id,
                job_name=names.get(mirrored.job_id, ""),
                description=_describe(mirrored),
                times=times,
                more=more,
                due_at=from_epoch_ms(candidates.scores[schedule_id]),
            )
        )
    return found


def clock() -> float:
    """Wall-clock seconds (heartbeats are stamped with time.time())."""
    return time.time()
