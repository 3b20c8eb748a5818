"""Repair the Redis mirror from MongoDB: at start when it is missing, periodically, and on demand."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from bson import ObjectId

from jobs.selectors import disabled_job_ids, last_nominal_times
from jobs.services import runs_requeue_pending
from schedules import metrics, services
from schedules.due_index import DueIndex
from schedules.models import Schedule
from schedules.timeline import next_occurrence

logger = logging.getLogger(__name__)


def reconcile(
    index: DueIndex,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 1000,
) -> dict[str, int]:
    """Repair the Redis mirror from MongoDB: add what is missing or stale, drop what is gone.

    A schedule missing from Redis (Redis lost data) restarts after the later of its last
    recorded fire and its last recorded run, so the misfire policy, not a replay, covers
    the gap.
    """
    lost = not index.is_reconciled()  # Redis lost its data (or has never held the mirror)
    index.runqueue.ensure_groups()
    report = {"checked": 0, "added": 0, "updated": 0, "removed": 0}
    total = Schedule.objects.count()
    seen: set[str] = set()
    for chunk in _chunks(Schedule.objects.order_by("pk").iterator(chunk_size=batch), batch):
        ids = [str(schedule.pk) for schedule in chunk]
        seen.update(ids)
        generations = index.generations(ids)
        missing = [schedule for schedule, gen in zip(chunk, generations, strict=True) if gen is None]
        last_runs = last_nominal_times([schedule.pk for schedule in missing]) if missing else {}
        disabled = disabled_job_ids({schedule.job_id for schedule in missing}) if missing else set()
        repaired = []
        broken: dict[str, str] = {}
        refuse = functools.partial(_refuse, broken)
        for schedule, gen in zip(chunk, generations, strict=True):
            if gen is None:
                if schedule.job_id not in disabled:
                    try:
                        _resume_after_last_fire(schedule, last_runs.get(str(schedule.pk)), now)
                    except Exception as error:  # this schedule only: it is paused, the others go on
                        refuse(schedule, error)
                        continue
                report["added"] += 1
            elif gen < schedule.generation:
                report["updated"] += 1
            else:
                continue
            repaired.append(schedule)
        index.upsert_many(repaired, on_error=refuse)
        if broken:
            services.schedules_quarantine(broken, index)
            report["paused"] = report.get("paused", 0) + len(broken)
        report["checked"] += len(chunk)
        if progress:
            progress(report["checked"], total)
    strays = index.all_mirrored_ids() - seen
    # Created while this ran? Those exist in MongoDB by now: only the rest are strays.
    strays -= {
        str(pk)
        for pk in Schedule.objects.filter(pk__in=[ObjectId(i) for i in strays if ObjectId.is_valid(i)]).values_list(
            "pk", flat=True
        )
    }
    for schedule_id in strays:
        index.remove(schedule_id)
        report["removed"] += 1
    if lost:
        # The streams went with the mirror: pending runs (manual runs waiting for a worker,
        # runs buffer_one held back) would stay pending for ever.
        requeued = runs_requeue_pending(index.runqueue)
        if requeued:
            report["requeued"] = requeued
            logger.warning("Redis lost pending runs; put them back on the streams", extra={"requeued": requeued})
    index.mark_reconciled()
    repairs = report["added"] + report["updated"] + report["removed"]
    if repairs:
        metrics.RECONCILE_REPAIRS.inc(repairs)
        logger.info("reconciled the Redis mirror", extra=report)
    return report


def _refuse(broken: dict[str, str], schedule: Schedule, error: Exception) -> None:
    """Note a schedule that cannot be mirrored (its stored fields are wrong); it is paused after."""
    logger.error("could not mirror a schedule", extra={"schedule": str(schedule.pk)}, exc_info=error)
    broken[str(schedule.pk)] = f"The scheduler could not compute this schedule: {type(error).__name__}: {error}"


def _resume_after_last_fire(schedule: Schedule, last_run: datetime | None, now: datetime) -> None:
    """Point a schedule Redis lost at the occurrence after its last known fire."""
    known = [moment for moment in (schedule.last_run_at, last_run) if moment is not None]
    paused = schedule.paused and (schedule.paused_until is None or schedule.paused_until > now)
    if known and not paused:
        occurrence = next_occurrence(schedule, max(known))
        schedule.next_run_at = occurrence.at if occurrence else None


def _chunks(items: Iterator[Schedule], size: int) -> Iterator[list[Schedule]]:
    chunk: list[Schedule] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
