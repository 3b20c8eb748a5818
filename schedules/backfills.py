"""Backfills: request, cancel and run them (the one write path for Backfill records).

A backfill dispatches every occurrence of a schedule in a past range that has no run record
(by fire key), as a catch-up run with the backfill's own overlap policy, at most
``rate_per_second``. Running one is a plain function (``backfill_run``) of a claimed record, a
run queue, a clock and a sleep: a worker's backfill thread (workers/backfills.py) and the
``backfill`` command call it. Progress is written to the record after each batch, and the
cancel flag read there too.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from jobs.models import Run
from jobs.runqueue import Entry, RunQueue
from jobscheduler import mongo
from jobscheduler.epoch import to_epoch_ms
from schedules.models import Backfill, Schedule
from schedules.timeline import fire_key, occurrences_between

logger = logging.getLogger(__name__)

BATCH = 50  # occurrences looked up and dispatched between two progress writes
LEASE = timedelta(seconds=30)
ACTIVE = (Backfill.Status.PENDING, Backfill.Status.RUNNING, Backfill.Status.DONE)


def request_key(schedule: Schedule, start: datetime, end: datetime, overlap_policy: str) -> str:
    text = f"{schedule.pk}|{to_epoch_ms(start)}|{to_epoch_ms(end)}|{overlap_policy}"
    return hashlib.sha256(text.encode()).hexdigest()


def backfill_request(
    schedule: Schedule,
    *,
    start: datetime,
    end: datetime,
    overlap_policy: str = Schedule.Overlap.ALLOW,
    rate_per_second: float | None = None,
    user: Any = None,
    now: Callable[[], datetime] = timezone.now,
) -> tuple[Backfill, bool]:
    """A backfill of ``schedule`` over [start, end]; returns it and whether it is new.

    The same request again (schedule, range and policy) returns the backfill it made unless
    that one was cancelled or failed: it dispatches nothing new. Runs are left to a worker.
    """
    moment = now()
    errors = {}
    if end <= start:
        errors["end"] = "Must be after start."
    if end > moment:
        errors["end"] = "A backfill covers the past: end must not be later than now."
    maximum_rate = float(settings.JOBSCHEDULER_BACKFILL_MAX_RATE)
    rate = maximum_rate if rate_per_second is None else float(rate_per_second)
    if not 0 < rate <= maximum_rate:
        errors["rate_per_second"] = f"Must be above 0 and at most {maximum_rate:g} (JOBSCHEDULER_BACKFILL_MAX_RATE)."
    if overlap_policy not in Schedule.Overlap.values:
        errors["overlap_policy"] = f"Choose one of {', '.join(Schedule.Overlap.values)}."
    if errors:
        raise ValidationError(errors)
    key = request_key(schedule, start, end, overlap_policy)
    same = Backfill.objects.filter(schedule=schedule, request_key=key, status__in=ACTIVE).first()
    if same is not None:
        return same, False
    limit = int(settings.JOBSCHEDULER_BACKFILL_MAX_OCCURRENCES)
    total = sum(1 for _ in islice(occurrences_between(schedule, start, end), limit + 1))
    if total > limit:
        raise ValidationError(
            {"start": f"The range holds more than {limit} occurrences (JOBSCHEDULER_BACKFILL_MAX_OCCURRENCES)."}
        )
    backfill = Backfill(
        schedule=schedule,
        requested_by=user if getattr(user, "pk", None) else None,
        start_at=start,
        end_at=end,
        overlap_policy=overlap_policy,
        rate_per_second=rate,
        request_key=key,
        total=total,
    )
    backfill.save()
    return backfill, True


def backfill_cancel(backfill: Backfill) -> Backfill:
    """Stop a backfill: one not started ends at once; a running one after its current batch."""
    if backfill.status == Backfill.Status.PENDING:
        Backfill.objects.filter(pk=backfill.pk, status=Backfill.Status.PENDING).update(
            status=Backfill.Status.CANCELLED, cancel_requested=True, finished_at=timezone.now()
        )
    elif backfill.status == Backfill.Status.RUNNING:
        Backfill.objects.filter(pk=backfill.pk).update(cancel_requested=True)
    backfill.refresh_from_db()
    if backfill.status == Backfill.Status.PENDING:  # it started meanwhile: it stops at its next batch
        Backfill.objects.filter(pk=backfill.pk).update(cancel_requested=True)
        backfill.refresh_from_db()
    return backfill


def backfill_claim(owner: str, now: datetime, backfill_id: Any = None) -> Backfill | None:
    """Take a pending backfill, or a running one whose runner's lease ran out (it died): one
    atomic find-and-update, so two runners never hold the same one."""
    query: dict[str, Any] = {
        "$or": [{"status": Backfill.Status.PENDING}, {"status": Backfill.Status.RUNNING, "lease_until": {"$lt": now}}],
        "cancel_requested": False,
    }
    if backfill_id is not None:
        query["_id"] = backfill_id
    found = mongo.collection(Backfill).find_one_and_update(
        query,
        {"$set": {"status": Backfill.Status.RUNNING, "lease_owner": owner, "lease_until": now + LEASE}},
        sort=[("created_at", 1)],
    )
    if found is None:
        return None
    backfill = Backfill.objects.select_related("schedule", "schedule__job").get(pk=found["_id"])
    if backfill.started_at is None:
        Backfill.objects.filter(pk=backfill.pk).update(started_at=now)
        backfill.started_at = now
    return backfill


def backfill_run(
    backfill: Backfill,
    *,
    runqueue: RunQueue,
    owner: str,
    clock: Callable[[], datetime] = timezone.now,
    sleep: Callable[[float], Any],
    progress: Callable[[Backfill], None] | None = None,
) -> Backfill:
    """Dispatch a claimed backfill's occurrences from its cursor on, paced to its rate.

    ``sleep(seconds)`` waits between dispatches and returns True when the runner must stop
    (a worker shutting down: the lease then lapses and another runner resumes). After each
    batch the counts and cursor are written and the cancel flag read.
    """
    schedule = backfill.schedule
    started = clock()
    sent = 0
    after = backfill.cursor or (backfill.start_at - timedelta(microseconds=1))
    pending = occurrences_between(schedule, after + timedelta(microseconds=1), backfill.end_at)
    for batch in _batches(pending):
        keys = [fire_key(schedule.pk, moment) for moment in batch]
        recorded = set(Run.objects.filter(fire_key__in=keys).values_list("fire_key", flat=True))
        dispatched = skipped = 0
        last: datetime | None = None
        for moment, key in zip(batch, keys, strict=True):
            if key in recorded:
                skipped += 1
                last = moment
                continue
            wait = sent / backfill.rate_per_second - (clock() - started).total_seconds()
            if wait > 0 and sleep(wait):  # stopping: what is done so far is kept, the rest resumed later
                return _write_progress(
                    backfill, cursor=last, dispatched=dispatched, recorded=skipped, owner=owner, moment=clock()
                )
            runqueue.add(
                Entry(
                    shard=runqueue.keyspace.shard_of(str(schedule.pk)),
                    entry_id="",
                    fire_key=key,
                    schedule_id=str(schedule.pk),
                    job_id=str(schedule.job_id),
                    nominal_ms=to_epoch_ms(moment),
                    trigger=Run.Trigger.CATCH_UP,
                    overlap=backfill.overlap_policy,
                )
            )
            dispatched += 1
            sent += 1
            last = moment
        backfill = _write_progress(
            backfill, cursor=last, dispatched=dispatched, recorded=skipped, owner=owner, moment=clock()
        )
        if progress is not None:
            progress(backfill)
        if backfill.cancel_requested:
            return _finish(backfill, Backfill.Status.CANCELLED, clock())
        if backfill.lease_owner != owner:
            logger.warning("backfill taken over by another runner", extra={"backfill": str(backfill.pk)})
            return backfill
    return _finish(backfill, Backfill.Status.DONE, clock())


def _batches(moments: Iterator[datetime]) -> Iterator[list[datetime]]:
    while batch := list(islice(moments, BATCH)):
        yield batch


def _write_progress(
    backfill: Backfill, *, cursor: datetime | None, dispatched: int, recorded: int, owner: str, moment: datetime
) -> Backfill:
    """Add this batch's counts, move the cursor and the lease (only while the lease is ours)."""
    values: dict[str, Any] = {"lease_until": moment + LEASE}
    if cursor is not None:
        values["cursor"] = cursor
    mongo.collection(Backfill).update_one(
        {"_id": backfill.pk, "lease_owner": owner},
        {"$set": values, "$inc": {"dispatched": dispatched, "already_recorded": recorded}},
    )
    backfill.refresh_from_db()
    return backfill


def _finish(backfill: Backfill, status: str, moment: datetime) -> Backfill:
    Backfill.objects.filter(pk=backfill.pk).update(status=status, finished_at=moment, lease_until=None)
    backfill.refresh_from_db()
    logger.info(
        "backfill finished",
        extra={"backfill": str(backfill.pk), "status": status, "dispatched": backfill.dispatched},
    )
    return backfill


def backfill_fail(backfill: Backfill, error: Exception) -> None:
    Backfill.objects.filter(pk=backfill.pk).update(
        status=Backfill.Status.FAILED, error=f"{type(error).__name__}: {error}"[:500], finished_at=timezone.now()
    )
