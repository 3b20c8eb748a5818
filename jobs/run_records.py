"""Run records as workers and the engine write them: drafts, batched inserts, compare-and-set.

Inserts are keyed by (fire key, attempt), many at a time, and status changes are
compare-and-set, so a replayed stream entry records once and two workers can never both start
(or both finish) the same attempt. Each write that gives runs their final status also counts
them for the dashboard (jobs.outcomes), with the runs it applied to.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from django.db import IntegrityError
from django.utils import timezone
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from jobs import selectors
from jobs.models import Run
from jobs.outcomes import count_ended
from jobscheduler import mongo

DUPLICATE_KEY = 11000  # MongoDB's error code for a unique index refusing a write


def runs_record(runs: list[Run]) -> int:
    """Insert finished run records (the engine's missed runs) in one batch; ones already
    recorded (same fire key and attempt: a replayed decision) are skipped. Returns how many
    were inserted."""
    if not runs:
        return 0
    try:
        Run.objects.bulk_create(runs)
    except IntegrityError:
        created = []
        for run in runs:
            run.pk = None
            try:
                run.save(force_insert=True)
                created.append(run)
            except IntegrityError:
                pass
        count_ended(created)
        return len(created)
    count_ended(runs)
    return len(runs)


def run_begin(run: Run) -> tuple[Run, bool]:
    """Record a drafted attempt (``run_draft``) as pending; returns (run, created). An attempt
    already recorded (a replayed entry, a held or taken-over run, a manual run) is returned as
    it stands."""
    try:
        run.save(force_insert=True)
    except IntegrityError:
        existing = selectors.run_of_attempt(run.fire_key, run.attempt)
        if existing is None:  # refused by the index, then deleted: as good as gone; record ours
            run.save(force_insert=True)
            return run, True
        return existing, False
    return run, True


def run_started(run: Run, *, worker: str, now: datetime, dispatched_at: datetime | None = None) -> bool:
    """Mark a pending attempt running, if it still is pending; False if someone else started it."""
    values: dict[str, Any] = {"status": Run.Status.RUNNING, "worker": worker, "started_at": now}
    if run.dispatched_at is None and dispatched_at is not None:
        values["dispatched_at"] = dispatched_at
    return _compare_and_set(run, {"status": Run.Status.PENDING}, values)


def run_finish(
    run: Run,
    *,
    status: str,
    now: datetime,
    output: str = "",
    error: str = "",
    expect_status: str = Run.Status.RUNNING,
    expect_worker: str | None = None,
    return_value: Any = None,
    exception_class: str = "",
    external_id: str = "",
) -> bool:
    """Record how an attempt ended, if it is still as expected (status, and worker if given).

    Status ``running`` records a hand-off instead: the attempt goes on elsewhere, as the Celery
    task ``external_id``, and is not finished. False means another worker changed it first (a
    takeover): the outcome is not written.
    """
    expected: dict[str, Any] = {"status": expect_status}
    if expect_worker is not None:
        expected["worker"] = expect_worker
    finished_at = None if status == Run.Status.RUNNING else now
    values = {"status": status, "finished_at": finished_at, "output": output, "error": error}
    values.update(return_value=return_value, exception_class=exception_class, external_id=external_id)
    return _compare_and_set(run, expected, values)


def run_resume(run: Run, *, expect_worker: str) -> bool:
    """Put a running attempt whose worker died back to pending, to be started again by another
    (a celery run: its send is marked, so going on never sends the task twice). False if the
    record changed meanwhile."""
    expected = {"status": Run.Status.RUNNING, "worker": expect_worker}
    return _compare_and_set(run, expected, {"status": Run.Status.PENDING, "worker": "", "started_at": None})


def run_draft(
    *,
    job_id: Any,
    schedule_id: Any,
    fire_key: str,
    attempt: int,
    trigger: str,
    nominal_time: datetime | None,
    dispatched_at: datetime,
    worker: str,
    target: dict[str, Any] | None = None,
    queue: str = "",
) -> Run:
    """An attempt as it will be recorded, not saved yet: a worker records it in a batch when it
    ends (``runs_insert_many``), or as running first if it lasts (see workers.recorder)."""
    return Run(
        pk=ObjectId(),
        job_id=ObjectId(job_id),
        schedule_id=ObjectId(schedule_id) if schedule_id else None,
        fire_key=fire_key,
        attempt=attempt,
        trigger=trigger,
        status=Run.Status.PENDING,
        nominal_time=nominal_time,
        dispatched_at=dispatched_at,
        worker=worker,
        target=target,
        queue=queue,
    )


def run_save_pending(run: Run) -> bool:
    """Record a drafted attempt as pending (it waits, held back by its overlap policy); False if
    the attempt is recorded already."""
    try:
        run.save(force_insert=True)
    except IntegrityError:
        return False
    return True


def runs_insert_many(runs: Sequence[Run]) -> list[bool]:
    """Insert drafted attempts as they stand, in one unordered write; returns, per run, whether it
    was inserted (False: its (fire key, attempt) is recorded already, and that record stands)."""
    if not runs:
        return []
    documents = []
    created = timezone.now()
    for run in runs:
        run.created_at = run.created_at or created
        documents.append({_column(field): getattr(run, field.attname) for field in Run._meta.concrete_fields})
    try:
        mongo.collection(Run).insert_many(documents, ordered=False)
    except BulkWriteError as error:
        refused = {failure["index"] for failure in error.details["writeErrors"] if failure["code"] == DUPLICATE_KEY}
        if len(refused) != len(error.details["writeErrors"]):
            raise
        inserted = [index not in refused for index in range(len(runs))]
    else:
        inserted = [True] * len(runs)
    for run, done in zip(runs, inserted, strict=True):
        if done:
            run._state.adding = False
            run._state.db = "default"
    count_ended([run for run, done in zip(runs, inserted, strict=True) if done])
    return inserted


def runs_compare_and_set_many(changes: Sequence[tuple[Run, dict[str, Any], dict[str, Any]]]) -> list[bool]:
    """``run_finish``'s compare-and-set for many stored runs in one write: each (run, expected
    fields, new values) applies only if the run still has the expected fields. Returns, per
    change, whether it applied."""
    if not changes:
        return []
    operations = [
        UpdateOne({"_id": run.pk, **_plain(expected)}, {"$set": _plain(values)}) for run, expected, values in changes
    ]
    result = mongo.collection(Run).bulk_write(operations, ordered=False)
    if result.matched_count == len(changes):
        applied = [True] * len(changes)
    else:  # which ones: read back what the others hold now (rare: a takeover happened)
        held = {
            row["_id"]: row for row in mongo.collection(Run).find({"_id": {"$in": [run.pk for run, _, _ in changes]}})
        }
        applied = [
            all(
                held.get(run.pk, {}).get(name) == value
                for name, value in _plain(values).items()
                if name != "finished_at"
            )
            and held.get(run.pk, {}).get("worker") == run.worker
            for run, _, values in changes
        ]
    for (run, _, values), done in zip(changes, applied, strict=True):
        if done:
            for name, value in values.items():
                setattr(run, name, value)
    count_ended([run for (run, _, values), done in zip(changes, applied, strict=True) if done and "status" in values])
    return applied


def run_by_attempt_compare_and_set(run: Run, expected: dict[str, Any], values: dict[str, Any]) -> Run | None:
    """Apply ``values`` to the stored record of the same (fire key, attempt) as the drafted ``run``
    if it has the ``expected`` fields; returns the record as it is now, or None if it did not apply."""
    found = mongo.collection(Run).find_one_and_update(
        {"fire_key": run.fire_key, "attempt": run.attempt, **_plain(expected)},
        {"$set": _plain(values)},
        projection={"_id": 1},
    )
    if found is None:
        return None
    run.pk = found["_id"]
    run._state.adding = False
    run._state.db = "default"
    for name, value in values.items():
        setattr(run, name, value)
    if "status" in values:
        count_ended([run])
    return run


def _column(field: Any) -> str:
    return "_id" if field.primary_key else field.column


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Values as pymongo stores them (choices enums as their strings)."""
    return {name: str(value) if isinstance(value, str) else value for name, value in values.items()}


def run_note(run: Run, note: str) -> None:
    """Add a line to a finished run's error (why the engine did something after it)."""
    run.error = f"{run.error}\n{note}" if run.error else note
    run.save(update_fields=["error"])


def _compare_and_set(run: Run, expected: dict[str, Any], values: dict[str, Any]) -> bool:
    # One flat filter, through pymongo: the ORM sends {$and: [{_id}, {status}]}, which
    # SecantusDB (tests, local runs) answers by scanning every run: 10 ms per update with
    # 1,000 runs stored, 190 ms at 20,000 (docs/e2e-benchmark.md). MongoDB plans both alike.
    changed = (
        mongo.collection(Run).update_one({"_id": run.pk, **_plain(expected)}, {"$set": _plain(values)}).matched_count
    )
    if changed:
        for name, value in values.items():
            setattr(run, name, value)
        if "status" in values:
            count_ended([run])
    return bool(changed)
