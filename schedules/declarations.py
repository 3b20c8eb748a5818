"""Schedules declared in code: ``@periodic`` on a Django Task and ``JOBSCHEDULER_TASK_SCHEDULES``, read as one.

In an app's ``tasks.py`` (imported at startup; see jobs.apps)::

    from jobs.tasks_api import task
    from schedules.declarations import periodic

    @periodic(cron="0 2 * * *", timezone="Europe/London", name="nightly-report", kwargs={"kind": "daily"})
    @task
    def send_report(kind): ...

or in settings, as celery beat's ``beat_schedule``::

    JOBSCHEDULER_TASK_SCHEDULES = {
        "nightly-report": {"task": "reports.tasks.send_report", "cron": "0 2 * * *", "timezone": "Europe/London"},
    }

Each declaration becomes one python job running the task and one schedule of it, owned by
``JOBSCHEDULER_CODE_OWNER`` and keyed by the declaration's name; ``schedules.sync_declared``
keeps them in step. Names are unique across both forms: ``schedules.checks`` reports a
duplicate, or a declaration that could not be saved, at startup.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models
from django.utils.module_loading import import_string

from jobs.models import Job
from jobs.tasks_api import Task
from schedules.models import Schedule
from schedules.services import CODE_EDITABLE_FIELDS, EDITABLE_FIELDS

SETTING = "JOBSCHEDULER_TASK_SCHEDULES"
KEY_CHARS = 200
WHEN = ("every", "cron", "at")
JOB_OPTIONS = (
    "description",
    "timeout_seconds",
    "max_attempts",
    "retry_backoff_seconds",
    "pause_schedules_after_failures",
)
# The schedule fields a declaration may set beside its kind and timing (every, cron, at):
# what a user could set, but the timing and the pause (which stays the user's).
SCHEDULE_OPTIONS = tuple(
    name for name in EDITABLE_FIELDS if name not in ("kind", "interval_seconds", "expression", "paused", "paused_until")
)
OPTIONS = frozenset(JOB_OPTIONS + SCHEDULE_OPTIONS)
# A declared schedule's fields, compared with what is stored: all a user could set but pausing.
DECLARED_SCHEDULE_FIELDS = tuple(name for name in EDITABLE_FIELDS if name not in CODE_EDITABLE_FIELDS)

TaskT = TypeVar("TaskT")


@dataclass(frozen=True)
class Declaration:
    """One declared schedule: which task runs, when, and with what, as written in code."""

    key: str
    task: str  # the Task's dotted import path: what the job's target names
    origin: str  # where it was declared, for messages
    spec: Mapping[str, Any] = field(default_factory=dict)  # every/cron/at, args, kwargs, options

    def job_fields(self) -> dict[str, Any]:
        """The job's fields as the code declares them (job_create's and job_update's keywords)."""
        fields = {name: _default(Job, name) for name in JOB_OPTIONS}
        fields.update({name: self.spec[name] for name in JOB_OPTIONS if name in self.spec})
        fields["description"] = fields["description"] or f"Runs the task {self.task} on a schedule declared in code."
        return {
            **fields,
            "name": self.key,
            "target_type": Job.TargetType.PYTHON.value,
            "target": {
                "task": self.task,
                "args": _as_stored(list(self.spec.get("args", ()))),
                "kwargs": _as_stored(dict(self.spec.get("kwargs") or {})),
            },
        }

    def schedule_fields(self) -> dict[str, Any]:
        """The schedule's fields as the code declares them (schedule_create's keywords).

        A fixed schedule declared without an anchor keeps the grid it got when it was created
        (its anchor is not compared); times are cut to milliseconds, as MongoDB keeps them.
        """
        fields = {name: _default(Schedule, name) for name in DECLARED_SCHEDULE_FIELDS}
        spec = self.spec
        if spec.get("every") is not None:
            every = spec["every"]
            seconds = every.total_seconds() if isinstance(every, timedelta) else every
            fields.update(kind="fixed", interval_seconds=int(seconds) if float(seconds).is_integer() else seconds)
        elif spec.get("cron") is not None:
            fields.update(kind="cron", expression=spec["cron"])
        elif spec.get("at") is not None:
            fields.update(kind="at", anchor=spec["at"])
        fields.update({name: spec[name] for name in SCHEDULE_OPTIONS if name in spec})
        if fields["kind"] == "fixed" and "anchor" not in spec:
            del fields["anchor"]
        return {name: _to_milliseconds(value) for name, value in fields.items()}

    def digest(self) -> str:
        """A fingerprint of what the declaration says (stored as Schedule.code_digest when applied)."""
        declared = {"job": self.job_fields(), "schedule": self.schedule_fields()}
        return hashlib.sha256(json.dumps(declared, sort_keys=True, default=str).encode()).hexdigest()[:32]


# Declarations made with @periodic, by (key, where the decorator was written): importing a
# module again (a reload) replaces its own declarations; the same key written twice is a duplicate.
_decorated: dict[tuple[str, str], Declaration] = {}


def periodic(
    *,
    every: int | timedelta | None = None,
    cron: str | None = None,
    at: datetime | None = None,
    name: str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    **options: Any,
) -> Callable[[TaskT], TaskT]:
    """Declare a schedule of the Django Task below it: ``every`` seconds (or a timedelta), a
    ``cron`` expression (read in ``timezone``), or once ``at`` an aware datetime.

    ``name`` is the declaration's stable key (default: the task's import path); change it and
    the old schedule is orphaned, a new one created. ``args`` and ``kwargs`` are passed to the
    task. Other keywords: the job's ``description``, ``timeout_seconds``, ``max_attempts``,
    ``retry_backoff_seconds``, ``pause_schedules_after_failures``, and the schedule's
    ``timezone``, ``dst_gap``, ``dst_repeat``, ``anchor``, ``start_at``, ``end_at``, ``max_runs``, ``jitter_seconds``,
    ``misfire_policy``, ``misfire_grace_seconds``, ``catchup_window_seconds``,
    ``catchup_max_runs``, ``overlap_policy``.
    """
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise TypeError(f"@periodic got unknown option(s): {', '.join(unknown)}.")
    caller = sys._getframe(1)
    origin = f"{caller.f_code.co_filename}:{caller.f_lineno}"
    spec = {"every": every, "cron": cron, "at": at, "args": args, "kwargs": kwargs, **options}

    def declare(task: TaskT) -> TaskT:
        if not isinstance(task, Task):
            raise TypeError(
                f"@periodic schedules a Django Task: put it above @task (got {type(task).__name__} {task!r})."
            )
        key = name or task.module_path
        _decorated[(key, origin)] = Declaration(key=key, task=task.module_path, origin=origin, spec=spec)
        return task

    return declare


def all_declarations() -> list[Declaration]:
    """Every declaration, duplicates included: the decorator's, then the setting's."""
    found = list(_decorated.values())
    setting = getattr(settings, SETTING, None) or {}
    if isinstance(setting, Mapping):
        for key, entry in setting.items():
            entry = entry if isinstance(entry, Mapping) else {}
            spec = {name: value for name, value in entry.items() if name != "task"}
            task = str(entry.get("task") or "")
            found.append(Declaration(key=key, task=task, origin=f"settings.{SETTING}[{key!r}]", spec=spec))
    return found


def problems() -> list[str]:
    """What is wrong with the declarations: duplicate names, and what could not be saved."""
    setting = getattr(settings, SETTING, None)
    found: list[str] = []
    if setting is not None and not isinstance(setting, Mapping):
        found.append(f"settings.{SETTING} must be a dict of declarations by name.")
    declarations = all_declarations()
    origins: dict[str, list[str]] = {}
    for declaration in declarations:
        origins.setdefault(declaration.key, []).append(declaration.origin)
        found.extend(f"{declaration.origin}: {problem}" for problem in problems_of(declaration))
    found.extend(
        f"The schedule name {key!r} is declared {len(where)} times ({'; '.join(where)}); names must be unique."
        for key, where in origins.items()
        if len(where) > 1
    )
    return found


def declared() -> dict[str, Declaration]:
    """The declarations by key; ImproperlyConfigured if any is a duplicate or invalid (the
    system checks say so at startup: nothing is synced from a code base that is wrong)."""
    wrong = problems()
    if wrong:
        raise ImproperlyConfigured("Schedules declared in code: " + " ".join(wrong))
    return {declaration.key: declaration for declaration in all_declarations()}


def problems_of(declaration: Declaration) -> list[str]:
    """Why a declaration cannot be saved: its own shape, its task, and the models' field checks."""
    spec = declaration.spec
    if not isinstance(declaration.key, str) or not 0 < len(declaration.key) <= KEY_CHARS:
        return [f"A declaration's name must be a string of 1 to {KEY_CHARS} characters (got {declaration.key!r})."]
    found = []
    unknown = sorted(set(spec) - OPTIONS - set(WHEN) - {"args", "kwargs"})
    if unknown:
        found.append(f"Unknown option(s): {', '.join(unknown)}.")
    found.extend(_task_problems(declaration.task))
    when = [name for name in WHEN if spec.get(name) is not None]
    if len(when) != 1:
        found.append("Declare exactly one of every (seconds), cron (an expression) or at (an aware datetime).")
        return found
    every = spec.get("every")
    if every is not None and not _whole_seconds(every):
        found.append(f"every must be a whole number of seconds or a timedelta of whole seconds (got {every!r}).")
        return found
    for name in ("at", "anchor", "start_at", "end_at"):
        value = spec.get(name)
        if value is not None and not (isinstance(value, datetime) and value.tzinfo is not None):
            found.append(f"{name} must be an aware datetime (got {value!r}).")
    if not isinstance(spec.get("args", ()), list | tuple) or not isinstance(spec.get("kwargs") or {}, Mapping):
        found.append("args must be a list and kwargs a dict.")
    if found:
        return found
    try:
        declaration.job_fields()
    except (TypeError, ValueError) as error:
        return [f"args and kwargs must be JSON: {error}."]
    found.extend(_field_problems(declaration))
    return found


def _task_problems(path: Any) -> list[str]:
    if not isinstance(path, str) or not path:
        return ["Name the task: its dotted import path in 'task'."]
    try:
        task = import_string(path)
    except ImportError as error:
        return [f"The task {path!r} cannot be imported: {error}."]
    if not isinstance(task, Task):
        return [f"{path!r} is not a Django Task (decorate the function with @task from jobs.tasks_api)."]
    return []


def _field_problems(declaration: Declaration) -> list[str]:
    """The schedule and the job checked as their models check them (owner and target aside: the
    sync judges those when it saves)."""
    found = []
    schedule_fields = declaration.schedule_fields()
    schedule = Schedule(**schedule_fields)
    if schedule.anchor is None and schedule.kind == "fixed":
        schedule.anchor = schedule.start_at or datetime.now().astimezone()
    try:
        schedule.clean_fields(exclude={"job"})
        schedule.clean()
    except ValidationError as error:
        found.extend(_messages(error))
    job_fields = declaration.job_fields()
    try:
        Job(**{name: value for name, value in job_fields.items() if name != "target"}).clean_fields(
            exclude={"owner", "target"}
        )
    except ValidationError as error:
        found.extend(_messages(error))
    return found


def _default(model: type[models.Model], name: str) -> Any:
    found = model._meta.get_field(name)
    assert isinstance(found, models.Field)
    return found.get_default()


def _messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [f"{name}: {' '.join(messages)}" for name, messages in error.message_dict.items()]
    return list(error.messages)


def _whole_seconds(every: Any) -> bool:
    if isinstance(every, timedelta):
        return every.total_seconds() > 0 and every.total_seconds().is_integer()
    return isinstance(every, int) and not isinstance(every, bool) and every > 0


def _as_stored(value: Any) -> Any:
    """As MongoDB gives it back (tuples become lists): a declaration compares equal to its copy."""
    return json.loads(json.dumps(value))


def _to_milliseconds(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


@contextmanager
def isolated() -> Iterator[None]:
    """For tests: @periodic declarations made inside land in an empty registry, dropped on exit."""
    saved = dict(_decorated)
    _decorated.clear()
    try:
        yield
    finally:
        _decorated.clear()
        _decorated.update(saved)
