"""Schedules declared in code, kept in step with MongoDB: created, updated, restored after drift, paused when gone.

``sync_declared_schedules`` runs at every scheduler start (``run_scheduler``) and in
``manage.py sync_schedules``. Each declaration (schedules.declarations) owns one python job
and one schedule, both marked with its name (``code_key``, a unique index where set: two
processes syncing at once cannot make two), owned by ``JOBSCHEDULER_CODE_OWNER``. Every write
goes through the services, so declarations are validated as API input is, and mirrored.

A schedule whose declaration disappeared is paused with ``ORPHANED`` as its reason, not
deleted: its job's run history stays, and a declaration that comes back (a rolled-back
deploy, a process started from older code) resumes it under the same ids. ``prune``
deletes the orphans.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.utils import timezone

from jobs import services as job_services
from jobs.models import Job
from jobscheduler.coordination import Coordination
from schedules import services
from schedules.declarations import Declaration, declared
from schedules.models import Schedule

logger = logging.getLogger(__name__)

LOCK = "declared-schedules"
LOCK_MS = 120_000  # far longer than a sync of a few hundred declarations; freed when it ends
DEFAULT_CODE_OWNER = "jobscheduler-code"
ORPHANED = (
    "No longer declared in code: declare it again to resume it, or delete it with "
    "manage.py sync_schedules --prune-orphans."
)


@dataclass(frozen=True)
class Difference:
    """How one declaration and what MongoDB holds for it differ.

    ``action``: ``create`` (a part is missing), ``update`` (the code changed since it was last
    applied, or it was orphaned and is declared again), ``restore`` (the code did not change but
    the stored fields did: drift), ``orphan`` (stored, no longer declared), or ``none``.
    """

    key: str
    action: str
    fields: tuple[str, ...] = ()

    def describe(self) -> str:
        changed = f" ({', '.join(self.fields)})" if self.fields else ""
        return {
            "create": f"{self.key}: declared in code, not in MongoDB yet",
            "update": f"{self.key}: its declaration changed{changed}",
            "restore": f"{self.key}: differs from its declaration in code{changed}; sync_schedules restores it",
            "orphan": f"{self.key}: no longer declared in code; sync_schedules pauses it",
        }.get(self.action, f"{self.key}: in step")


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # drift undone: warned about
    orphaned: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)  # key: the fields updated or restored
    skipped: str = ""  # why nothing was done (another process held the lock)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.restored or self.orphaned or self.pruned)

    def lines(self) -> list[str]:
        """What changed, one line each (the command prints them; the scheduler logs them)."""
        out = [f"created {key}" for key in self.created]
        out += [f"updated {key}{self._fields(key)}" for key in self.updated]
        out += [
            f"WARNING: {key} differed from its declaration in code{self._fields(key)}: restored"
            for key in self.restored
        ]
        out += [f"paused {key}: no longer declared in code" for key in self.orphaned]
        out += [f"deleted {key}: no longer declared in code" for key in self.pruned]
        out += [f"ERROR: {key}: {message}" for key, message in self.errors.items()]
        if self.skipped:
            out.append(f"skipped: {self.skipped}")
        return out

    def _fields(self, key: str) -> str:
        return f" ({', '.join(self.fields[key])})" if self.fields.get(key) else ""


def difference(declaration: Declaration, job: Job | None, schedule: Schedule | None) -> Difference:
    """Compare one declaration with its stored job and schedule (either may be missing)."""
    if job is None or schedule is None:
        return Difference(declaration.key, "create")
    changed = tuple(
        [name for name, value in declaration.job_fields().items() if getattr(job, name) != value]
        + [name for name, value in declaration.schedule_fields().items() if getattr(schedule, name) != value]
    )
    if schedule.code_digest != declaration.digest():
        return Difference(declaration.key, "update", changed)
    if changed:
        return Difference(declaration.key, "restore", changed)
    if _orphaned(schedule):
        return Difference(declaration.key, "update", ("paused",))
    return Difference(declaration.key, "none")


def differences(declarations: dict[str, Declaration] | None = None) -> list[Difference]:
    """Every declaration compared with MongoDB, and the stored ones no longer declared (reads only:
    ``manage.py check --database default`` reports these)."""
    declarations = declared() if declarations is None else declarations
    jobs = {str(job.code_key): job for job in Job.objects.filter(code_key__isnull=False)}
    schedules = {str(item.code_key): item for item in Schedule.objects.filter(code_key__isnull=False)}
    found = [difference(item, jobs.get(key), schedules.get(key)) for key, item in sorted(declarations.items())]
    for key in sorted(set(jobs) - set(declarations)):
        schedule = schedules.get(key)
        if schedule is not None and not _orphaned(schedule):
            found.append(Difference(key, "orphan"))
    return found


def sync_declared_schedules(
    *,
    now: Callable[[], datetime] = timezone.now,
    prune: bool = False,
    wait_seconds: float = 30.0,
    coordination: Coordination | None = None,
    declarations: dict[str, Declaration] | None = None,
) -> SyncReport:
    """Bring MongoDB (and the mirror) in step with the schedules declared in code; returns what changed.

    One process at a time (a Redis lock; others wait up to ``wait_seconds``, then skip): the
    unique ``code_key`` indexes already make a duplicate impossible, the lock keeps two syncs
    from interleaving their updates. Raises ImproperlyConfigured if a declaration is invalid.
    """
    declarations = declared() if declarations is None else declarations
    if not declarations and not Job.objects.filter(code_key__isnull=False).exists():
        return SyncReport()  # nothing declared, nothing stored: no lock, no code owner
    coordination = coordination or Coordination()
    holder = uuid.uuid4().hex
    deadline = time.monotonic() + wait_seconds
    while not coordination.try_lock(LOCK, holder, LOCK_MS):
        if time.monotonic() >= deadline:
            return SyncReport(skipped="another process is syncing the schedules declared in code")
        time.sleep(0.05)
    try:
        return sync_unlocked(declarations, now=now, prune=prune)
    finally:
        coordination.unlock(LOCK, holder)


def sync_unlocked(
    declarations: dict[str, Declaration], *, now: Callable[[], datetime] = timezone.now, prune: bool = False
) -> SyncReport:
    """The sync without the lock (tests race two of these: the unique indexes must hold)."""
    report = SyncReport()
    owner: User | None = None
    for key, declaration in sorted(declarations.items()):
        try:
            owner = owner or code_owner()
            _apply(declaration, owner, now, report)
        except (ValidationError, PermissionDenied) as error:
            report.errors[key] = "; ".join(_messages(error))
            logger.error("could not save a schedule declared in code", extra={"key": key, "error": report.errors[key]})
    _orphan(set(declarations), now, prune, report)
    if report.changed or report.errors:
        logger.info("synced the schedules declared in code", extra={"changes": report.lines()})
    for key in report.restored:
        logger.warning(
            "a schedule declared in code had drifted from its declaration; restored",
            extra={"key": key, "fields": list(report.fields[key])},
        )
    return report


def code_owner() -> User:
    """The user that owns jobs declared in code (``JOBSCHEDULER_CODE_OWNER``).

    Made if missing as a superuser that cannot sign in: the code is the operators', so it is
    held to what operators are (every target type, no per-owner limits), but the account has
    no password, is not staff, and no person acts as it. It stays active because Django grants
    no permission to an inactive user. An existing user of that name is used as it is.
    """
    username = getattr(settings, "JOBSCHEDULER_CODE_OWNER", "") or DEFAULT_CODE_OWNER
    existing = User.objects.filter(username=username).first()
    if existing is not None:
        return existing
    owner = User(username=username, is_superuser=True, is_staff=False, is_active=True)
    owner.set_unusable_password()
    try:
        owner.save(force_insert=True)
    except IntegrityError:  # another process made it first
        return User.objects.get(username=username)
    return owner


def _apply(declaration: Declaration, owner: User, now: Callable[[], datetime], report: SyncReport) -> None:
    key = declaration.key
    job = Job.objects.filter(code_key=key).first()
    schedule = Schedule.objects.filter(code_key=key).first()
    found = difference(declaration, job, schedule)
    if found.action == "none":
        report.unchanged.append(key)
        return
    job_fields, schedule_fields, digest = declaration.job_fields(), declaration.schedule_fields(), declaration.digest()
    if job is None:
        job = _create_once(
            lambda: job_services.job_create(owner=owner, code_key=key, **job_fields),
            lambda: Job.objects.filter(code_key=key).first(),
        )
    elif any(getattr(job, name) != value for name, value in job_fields.items()):
        job_services.job_update(job, now=now, override_code=True, **job_fields)
    if schedule is None:
        _create_once(
            lambda: services.schedule_create(job=job, now=now, code_key=key, code_digest=digest, **schedule_fields),
            lambda: Schedule.objects.filter(code_key=key).first(),
        )
        report.created.append(key)
        return
    schedule.job = job
    if _orphaned(schedule):  # declared again: resume it (a pause of a user's stays)
        schedule_fields = {**schedule_fields, "paused": False, "paused_until": None}
    services.schedule_update(schedule, now=now, override_code=True, code_digest=digest, **schedule_fields)
    (report.restored if found.action == "restore" else report.updated).append(key)
    report.fields[key] = found.fields


def _create_once(create: Callable[[], Any], lookup: Callable[[], Any]) -> Any:
    """Create, unless another process did meanwhile: then take its copy (the unique index, or the
    unique check before it, refused ours)."""
    try:
        return create()
    except (IntegrityError, ValidationError):
        existing = lookup()
        if existing is None:
            raise
        return existing


def _orphan(declared_keys: set[str], now: Callable[[], datetime], prune: bool, report: SyncReport) -> None:
    for job in Job.objects.filter(code_key__isnull=False).exclude(code_key__in=declared_keys):
        key = str(job.code_key)
        if prune:
            job_services.job_delete(job, override_code=True)
            report.pruned.append(key)
            continue
        for schedule in Schedule.objects.filter(job=job):
            if not _orphaned(schedule):
                schedule.job = job
                services.schedule_pause(schedule, reason=ORPHANED, now=now)
                report.orphaned.append(key)


def _orphaned(schedule: Schedule) -> bool:
    return schedule.paused and schedule.pause_reason == ORPHANED


def _messages(error: ValidationError | PermissionDenied) -> Iterable[str]:
    if isinstance(error, ValidationError):
        if hasattr(error, "error_dict"):
            return [f"{name}: {' '.join(messages)}" for name, messages in error.message_dict.items()]
        return error.messages
    return [str(error)]
