"""The one write path for schedules: validate, save to MongoDB, then update the Redis mirror.

The admin, the API and the management commands all call these functions; nothing else
saves a Schedule.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from itertools import islice, pairwise
from typing import Any

from bson import ObjectId
from django.core.exceptions import ValidationError
from django.utils import timezone
from pymongo import UpdateOne
from pymongo.errors import PyMongoError

from jobs import limits
from jobs.models import SAVED_BY_SERVICE, Job
from jobscheduler import mongo
from jobscheduler.declared import declared_message, refuse_code_delete, refuse_code_edits
from schedules import metrics, selectors
from schedules.calendar_services import check_schedule_calendars
from schedules.due_index import DueIndex, get_due_index
from schedules.kinds import KINDS
from schedules.models import PAUSE_REASON_CHARS, Schedule
from schedules.timeline import next_occurrence, occurrences

logger = logging.getLogger(__name__)

# Fields a user may set; the engine owns next_run_at, last_run_at, run_count, generation.
EDITABLE_FIELDS = (
    "kind",
    "interval_seconds",
    "anchor",
    "expression",
    "timezone",
    "dst_gap",
    "dst_repeat",
    "solar_event",
    "latitude",
    "longitude",
    "solar_offset_seconds",
    "start_at",
    "end_at",
    "max_runs",
    "jitter_seconds",
    "misfire_policy",
    "misfire_grace_seconds",
    "catchup_window_seconds",
    "catchup_max_runs",
    "overlap_policy",
    "exclusion_calendars",
    "paused",
    "paused_until",
)
# What users may still change on a schedule declared in code (Schedule.code_key): pausing and
# resuming it. Everything else is the declaration's.
CODE_EDITABLE_FIELDS = ("paused", "paused_until")


def _apply(schedule: Schedule, fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({name: "Unknown or read-only field." for name in unknown})
    for name, value in fields.items():
        setattr(schedule, name, value)


def _prepare(schedule: Schedule, now: datetime, given: Iterable[str] | None = None) -> None:
    """Default the anchor, validate, and set the next run time and a new generation.

    With ``given`` (the fields a caller set on a new schedule), only those fields are
    cleaned one by one (the rest hold their defaults, valid by construction); the
    schedule-wide checks always run. Bulk loads rely on it: a full clean of every field
    costs a quarter of a millisecond per schedule.
    """
    kind = KINDS.get(schedule.kind)  # an unknown kind is full_clean's to report
    if kind is not None and schedule.anchor is None:
        schedule.anchor = kind.default_anchor(schedule, now)
    exclude = {"job"} if schedule.job_id else set()
    if given is not None:
        exclude |= {f.name for f in Schedule._meta.concrete_fields} - set(given) - {"kind", "anchor"}
    schedule.full_clean(exclude=exclude)
    if schedule.exclusion_calendars:
        schedule.exclusion_calendars = check_schedule_calendars(schedule.exclusion_calendars, schedule.job.owner_id)
    _check_min_interval(schedule, now)
    schedule.next_run_at = _next_run_at(schedule, now)
    schedule.generation += 1


# Cron fires at most once a minute; sampling its next occurrences is only needed above that.
CRON_FINEST_SECONDS = 60
INTERVAL_SAMPLE = 50


def _check_min_interval(schedule: Schedule, now: datetime) -> None:
    """Refuse a schedule of a limited owner that fires more often than JOBSCHEDULER_MIN_INTERVAL_SECONDS."""
    shortest = limits.min_interval_seconds(schedule.job.owner)
    if shortest <= 1:
        return
    gap: float
    if schedule.kind == "fixed":
        gap = schedule.interval_seconds or shortest
    elif schedule.kind == "cron" and shortest > CRON_FINEST_SECONDS:
        # The shortest gap among the next occurrences (a cron expression's gaps repeat).
        times = [occurrence.at for occurrence in islice(occurrences(schedule, now), INTERVAL_SAMPLE)]
        gap = min(((later - earlier).total_seconds() for earlier, later in pairwise(times)), default=shortest)
    else:
        return
    if gap < shortest:
        raise ValidationError(
            {
                "kind": f"Fires every {gap:g}s; the shortest interval allowed is {shortest}s "
                "(JOBSCHEDULER_MIN_INTERVAL_SECONDS)."
            }
        )


def _save(schedule: Schedule, now: datetime) -> Schedule:
    _prepare(schedule, now)
    if not schedule.paused:
        schedule.pause_reason = ""
    setattr(schedule, SAVED_BY_SERVICE, True)
    schedule.save()
    get_due_index().upsert(schedule)
    return schedule


def _next_run_at(schedule: Schedule, now: datetime) -> datetime | None:
    """The next time to fire; a pause skips what falls inside it (it is not a misfire).

    A disabled job's schedules have none: nothing of it is dispatched until it is enabled
    again, and then it goes on from that moment, like a resumed schedule.
    """
    if not schedule.job.enabled:
        return None
    after = now
    if schedule.paused:
        if schedule.paused_until is None:
            return None
        after = max(now, schedule.paused_until - timedelta(microseconds=1))
    occurrence = next_occurrence(schedule, after)
    return occurrence.at if occurrence else None


def schedule_create(
    *,
    job: Job,
    now: Callable[[], datetime] = timezone.now,
    code_key: str | None = None,
    code_digest: str = "",
    **fields: Any,
) -> Schedule:
    """Validate, save and mirror a new schedule of ``job``.

    ``code_key`` and ``code_digest`` mark a schedule declared in code (the code sync's); a job
    declared in code gets no other schedule.
    """
    _refuse_schedules_of_declared_job(job, code_key)
    schedule = Schedule(job=job, code_key=code_key or None, code_digest=code_digest)
    _apply(schedule, fields)
    limits.check_schedule_count(job.owner, selectors.schedule_count_of_owner)
    return _save(schedule, now())


def schedule_draft(*, job: Job, now: Callable[[], datetime] = timezone.now, **fields: Any) -> Schedule:
    """A schedule validated exactly as schedule_create would, but not saved: for previews."""
    schedule = Schedule(job=job)
    _apply(schedule, fields)
    _prepare(schedule, now())
    return schedule


def schedule_bulk_create(
    *, job: Job, specs: Iterable[dict[str, Any]], now: Callable[[], datetime] = timezone.now, batch: int = 2000
) -> int:
    """Create many schedules of one job: each validated, then saved and mirrored in batches.

    Nothing is saved unless every spec is valid; errors name the spec's index. The saving
    overlaps: while MongoDB inserts two batches (on connections of their own), the next is
    prepared and the one inserted before is mirrored, so a load takes about as long as
    MongoDB's inserts alone.
    """
    _refuse_schedules_of_declared_job(job, None)
    moment = now()
    schedules = []
    for index, fields in enumerate(specs):
        schedule = Schedule(job=job)
        try:
            _apply(schedule, fields)
            _prepare(schedule, moment, given=fields)
        except ValidationError as error:
            raise ValidationError(
                {f"{index}.{name}": messages for name, messages in error.message_dict.items()}
            ) from None
        schedules.append(schedule)
    limits.check_schedule_count(job.owner, selectors.schedule_count_of_owner, adding=len(schedules))
    collection = mongo.collection(Schedule)
    due_index = get_due_index()
    inserting: deque[tuple[Future[Any], list[Schedule]]] = deque()

    def mirror_inserted(keep: int) -> None:
        while len(inserting) > keep:
            insert, inserted = inserting.popleft()
            insert.result()
            due_index.upsert_many(inserted)

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="bulk-insert") as pool:
        try:
            for start in range(0, len(schedules), batch):
                chunk = schedules[start : start + batch]
                if start:
                    # A large load takes seconds: each batch's next times are taken when it is saved,
                    # so running schedulers do not find its first occurrences already past.
                    moment = now()
                    for schedule in chunk:
                        schedule.next_run_at = _next_run_at(schedule, moment)
                inserting.append((pool.submit(collection.insert_many, _new_documents(chunk), ordered=False), chunk))
                mirror_inserted(keep=1)
            mirror_inserted(keep=0)
        except Exception:
            # What MongoDB took is mirrored before the error goes on: no schedule is saved unmirrored.
            for insert, inserted in inserting:
                if insert.exception() is None:
                    due_index.upsert_many(inserted)
            raise
    return len(schedules)


def _new_documents(schedules: list[Schedule]) -> list[dict[str, Any]]:
    """New schedules as MongoDB documents, their primary keys assigned here.

    What ``bulk_create`` would insert, without its cost: the ORM converts every field of every
    object through the field's methods, a tenth of a millisecond a schedule, as long as the
    insert itself. Values go as they are (choices as plain strings), as for runs
    (jobs.run_records.runs_insert_many); the ORM reads them back the same.
    """
    created = timezone.now()
    fields = [(str(field.column), field.attname) for field in Schedule._meta.concrete_fields if not field.primary_key]
    documents = []
    for schedule in schedules:
        schedule.pk = ObjectId()
        schedule.created_at = schedule.updated_at = created
        schedule._state.adding = False
        schedule._state.db = "default"
        document: dict[str, Any] = {"_id": schedule.pk}
        for column, attname in fields:
            value = getattr(schedule, attname)
            document[column] = str(value) if isinstance(value, str) else value
        documents.append(document)
    return documents


def _refuse_schedules_of_declared_job(job: Job, code_key: str | None) -> None:
    if job.code_key and code_key is None:
        raise ValidationError({"job": declared_message(job.code_key, "job") + " Its schedule is declared there too."})


def schedule_update(
    schedule: Schedule,
    *,
    now: Callable[[], datetime] = timezone.now,
    override_code: bool = False,
    code_digest: str | None = None,
    **fields: Any,
) -> Schedule:
    """Validate, save and mirror changes to a schedule (a new generation).

    A schedule declared in code is only paused and resumed here, unless the code sync
    (``override_code``) applies its declaration, with the declaration's ``code_digest``.
    """
    if schedule.code_key and not override_code:
        known = [name for name in fields if name in EDITABLE_FIELDS]
        held = (Schedule.objects.filter(pk=schedule.pk).values(*known).first() or {}) if known else {}
        refuse_code_edits(schedule.code_key, fields, stored=held, allowed=CODE_EDITABLE_FIELDS, what="schedule")
    _apply(schedule, fields)
    if code_digest is not None:
        schedule.code_digest = code_digest
    return _save(schedule, now())


def schedule_pause(
    schedule: Schedule,
    *,
    until: datetime | None = None,
    reason: str = "",
    now: Callable[[], datetime] = timezone.now,
) -> Schedule:
    """Pause a schedule (until a time, or until resumed); ``reason`` says why when the system did it."""
    moment = now()
    if until is not None and until <= moment:
        raise ValidationError({"until": "Must be in the future."})
    schedule.pause_reason = reason[:PAUSE_REASON_CHARS]
    return schedule_update(schedule, paused=True, paused_until=until, now=lambda: moment)


def schedule_resume(schedule: Schedule, *, now: Callable[[], datetime] = timezone.now) -> Schedule:
    return schedule_update(schedule, paused=False, paused_until=None, now=now)


def follow_job(job: Job, *, now: Callable[[], datetime] = timezone.now, batch: int = 1000) -> int:
    """After ``job`` was enabled or disabled: stop or restart its schedules; returns how many.

    Each schedule gets its next time again (none while the job is disabled) and a new
    generation, written and mirrored in batches. A schedule edited meanwhile (its generation
    moved) is left as that edit saved it: the edit already saw the job as it is now.
    """
    moment = now()
    changed = 0
    chunk: list[Schedule] = []
    for schedule in Schedule.objects.filter(job=job).order_by("pk").iterator(chunk_size=batch):
        schedule.job = job
        chunk.append(schedule)
        if len(chunk) >= batch:
            changed += _follow(chunk, moment)
            chunk = []
    if chunk:
        changed += _follow(chunk, moment)
    return changed


def _follow(chunk: list[Schedule], moment: datetime) -> int:
    writes = []
    for schedule in chunk:
        before = schedule.generation
        schedule.next_run_at = _next_run_at(schedule, moment)
        schedule.generation += 1
        writes.append(
            UpdateOne(
                {"_id": schedule.pk, "generation": before},
                {
                    "$set": {
                        "next_run_at": schedule.next_run_at,
                        "generation": schedule.generation,
                        "updated_at": moment,
                    }
                },
            )
        )
    collection = mongo.collection(Schedule)
    if collection.bulk_write(writes, ordered=False).modified_count != len(writes):
        held = collection.find({"_id": {"$in": [schedule.pk for schedule in chunk]}}, {"generation": 1})
        generations = {row["_id"]: row["generation"] for row in held}
        chunk = [schedule for schedule in chunk if generations.get(schedule.pk) == schedule.generation]
    get_due_index().upsert_many(chunk)
    return len(chunk)


# --- edits made around the services (schedules/receivers.py calls these) -------------------


def prepare_unvalidated(schedule: Schedule, now: datetime) -> None:
    """Before a save made outside the services (a shell, a script): what _prepare does but
    validation, so the mirror that follows is current. A next time that cannot be computed
    is left as it is; the engine pauses such a schedule with the reason."""
    kind = KINDS.get(schedule.kind)
    if kind is not None and schedule.anchor is None:
        schedule.anchor = kind.default_anchor(schedule, now)
    schedule.generation += 1
    try:
        schedule.next_run_at = _next_run_at(schedule, now)
    except Exception:
        logger.warning("could not compute the next time of a schedule saved outside the services", exc_info=True)


def mirror_unvalidated(schedules: list[Schedule]) -> None:
    """Mirror schedules saved outside the services; one that cannot be mirrored is paused."""
    broken: dict[str, str] = {}

    def refuse(schedule: Schedule, error: Exception) -> None:
        broken[str(schedule.pk)] = f"The scheduler could not compute this schedule: {type(error).__name__}: {error}"

    get_due_index().upsert_many(schedules, on_error=refuse)
    if broken:
        schedules_quarantine(broken)


def schedules_resync(ids: Iterable[Any], *, now: Callable[[], datetime] = timezone.now, batch: int = 1000) -> int:
    """After a QuerySet.update() of schedules: their next times and generations again, mirrored."""
    moment = now()
    done = 0
    pending = list(ids)
    for start in range(0, len(pending), batch):
        chunk = list(Schedule.objects.filter(pk__in=pending[start : start + batch]).select_related("job"))
        computable = []
        broken: dict[str, str] = {}
        for schedule in chunk:
            try:
                _next_run_at(schedule, moment)
            except Exception as error:
                broken[str(schedule.pk)] = (
                    f"The scheduler could not compute this schedule: {type(error).__name__}: {error}"
                )
            else:
                computable.append(schedule)
        if broken:
            schedules_quarantine(broken)
        if computable:
            done += _follow(computable, moment)
    return done


def schedules_quarantine(problems: dict[str, str], index: DueIndex | None = None) -> None:
    """Stop schedules the engine could not compute: out of the mirror, and paused in MongoDB with
    the reason, where the API and the admin show it; a user resumes one once it is fixed.

    Written around validation and generations on purpose: the stored fields may be what is
    wrong. If MongoDB cannot take the write, the next reconcile mirrors the schedule again, it
    fails again, and lands here again: it never fires in between, and nothing else stops.
    """
    index = index or get_due_index()
    for schedule_id, reason in problems.items():
        index.remove(schedule_id)
        metrics.QUARANTINED.inc()
        logger.error(
            "schedule paused: the scheduler could not compute it", extra={"schedule": schedule_id, "reason": reason}
        )
    writes = [
        UpdateOne(
            {"_id": ObjectId(schedule_id)},
            {
                "$set": {
                    "paused": True,
                    "paused_until": None,
                    "next_run_at": None,
                    "pause_reason": reason[:PAUSE_REASON_CHARS],
                }
            },
        )
        for schedule_id, reason in problems.items()
        if ObjectId.is_valid(schedule_id)
    ]
    if writes:
        try:
            mongo.collection(Schedule).bulk_write(writes, ordered=False)
        except PyMongoError:
            logger.exception("could not record the pause of schedules the scheduler could not compute")


def schedule_delete(schedule: Schedule, *, override_code: bool = False) -> None:
    """Delete a schedule and unmirror it; one declared in code goes only through the code sync
    (``override_code``), or with its job."""
    if schedule.code_key and not override_code:
        refuse_code_delete(schedule.code_key, "schedule")
    schedule_id = str(schedule.pk)
    setattr(schedule, SAVED_BY_SERVICE, True)
    schedule.delete()
    get_due_index().remove(schedule_id)


def schedules_copy_fired_state(states: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Write the mirror's run counts and next/last times (schedules.mirror.fired_state) of
    the given schedules to MongoDB in one bulk write; returns how many were written.

    The scheduler's housekeeping calls this: these fields belong to the engine, so no
    generation changes and nothing is mirrored back.
    """
    operations = [UpdateOne({"_id": ObjectId(schedule_id)}, {"$set": values}) for schedule_id, values in states]
    if operations:
        mongo.collection(Schedule).bulk_write(operations, ordered=False)
    return len(operations)
