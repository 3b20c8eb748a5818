"""Repair the Redis mirror from MongoDB: at start when it is missing, periodically, and on demand."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from itertools import islice

from bson import ObjectId

from jobs.selectors import disabled_job_ids, finished_nominal_times, last_nominal_times
from jobs.services import runs_requeue_pending
from jobscheduler.epoch import to_epoch_ms
from schedules import metrics, services
from schedules.due_index import DueIndex
from schedules.models import Schedule
from schedules.timeline import next_occurrence, occurrences

logger = logging.getLogger(__name__)

# How far back a schedule Redis lost looks for occurrences dispatched but never recorded, in
# seconds and in occurrences: well past the time a dead worker's entries wait to be taken over.
REPLAY_SECONDS = 300
REPLAY_MAX = 1000


def reconcile(
    index: DueIndex,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 1000,
    stop: threading.Event | None = None,
) -> dict[str, int]:
    """Repair the Redis mirror from MongoDB: add what is missing or stale, drop what is gone.

    A schedule missing from Redis (Redis lost data) restarts after the later of its last
    recorded fire and its last recorded run, so the misfire policy, not a replay, covers
    the gap; or, if one of its occurrences before that within ``REPLAY_SECONDS`` has no
    finished run (dispatched, but its stream entry went with Redis's data before a worker
    finished it), at that occurrence: replayed from there, what is recorded already is not
    run again (workers look first, and continue a pending or running record as a takeover
    does), and what is not runs.
    """
    lost = not index.is_reconciled()  # Redis lost its data (or has never held the mirror)
    index.runqueue.ensure_groups()
    report = {"checked": 0, "added": 0, "updated": 0, "removed": 0}
    total = Schedule.objects.count()
    seen: set[str] = set()
    for chunk in _chunks(Schedule.objects.order_by("pk").iterator(chunk_size=batch), batch):
        if stop is not None and stop.is_set():
            report["stopped"] = 1
            return report
        ids = [str(schedule.pk) for schedule in chunk]
        seen.update(ids)
        generations = index.generations(ids)
        missing = [schedule for schedule, gen in zip(chunk, generations, strict=True) if gen is None]
        last_runs = last_nominal_times([schedule.pk for schedule in missing]) if missing else {}
        since = now - timedelta(seconds=REPLAY_SECONDS)
        recorded = finished_nominal_times([schedule.pk for schedule in missing], since) if missing else {}
        disabled = disabled_job_ids({schedule.job_id for schedule in missing}) if missing else set()
        repaired = []
        broken: dict[str, str] = {}
        refuse = functools.partial(_refuse, broken)
        for schedule, gen in zip(chunk, generations, strict=True):
            if gen is None:
                if schedule.job_id not in disabled:
                    try:
                        _resume_after_last_fire(
                            schedule, last_runs.get(str(schedule.pk)), now, recorded.get(str(schedule.pk), set())
                        )
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


def _resume_after_last_fire(schedule: Schedule, last_run: datetime | None, now: datetime, recorded: set[int]) -> None:
    """Point a schedule Redis lost at the occurrence after its last known fire, or at an
    earlier one without a finished run (``recorded``: the nominal times, in epoch ms, of its
    finished runs in the last REPLAY_SECONDS)."""
    known = [moment for moment in (schedule.last_run_at, last_run) if moment is not None]
    paused = schedule.paused and (schedule.paused_until is None or schedule.paused_until > now)
    if known and not paused:
        last = max(known)
        resume = next_occurrence(schedule, last)
        # Not before its last edit, pause or resume (occurrences before that may never have been
        # due), nor with a run limit (replays would count twice against it).
        since = max(now - timedelta(seconds=REPLAY_SECONDS), schedule.updated_at or now)
        if schedule.max_runs is None and since < last:
            for occurrence in islice(occurrences(schedule, since), REPLAY_MAX):
                if occurrence.at > last:
                    break
                if to_epoch_ms(occurrence.at) not in recorded:
                    resume = occurrence
                    break
        schedule.next_run_at = resume.at if resume else None


def _chunks(items: Iterator[Schedule], size: int) -> Iterator[list[Schedule]]:
    chunk: list[Schedule] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
