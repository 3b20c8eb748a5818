"""Python targets: a Django Task named by its import path, with JSON ``args`` and ``kwargs``.

A target is ``{"task": "reports.tasks.send_daily_report", "args": [...], "kwargs": {...}}``.
Only Tasks can be named (Django's ``@task`` from jobs.tasks_api), and only ones living in an
installed app's ``tasks`` module or a submodule of it (``reports.tasks``, ``reports.tasks.daily``):
a path elsewhere is refused before anything is imported, so a job can never make a worker
import an arbitrary module (``os``, a settings module, a module with import-time effects). The
same check runs when a job is saved and again before each run.

The project's former registry, ``@task("name")``, is a deprecated alias of the standard
decorator that remembers ``name -> path``; targets of the old form ``{"function": name,
"kwargs": {...}}`` still run through it, and migration 0007 rewrote the stored ones.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.utils.module_loading import autodiscover_modules, import_string

from jobs.tasks_api import Task, TaskContext, TaskResult, TaskResultStatus

FIELDS = frozenset({"task", "args", "kwargs", "function"})  # "function": the deprecated form

_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")

# Names given to the deprecated @task("name") -> the import path of the Task it made.
_legacy_names: dict[str, str] = {}


class UnknownTask(ValueError):
    """A path that does not name a Django Task this project may run."""


def task(name: str | Callable[..., Any] | None = None) -> Any:
    """Deprecated: use the standard ``@task`` from jobs.tasks_api (``django_tasks``).

    ``@task`` or ``@task("name")`` makes the function a Django Task (so the decorated name is a
    Task, called with ``.call()`` or queued with ``.enqueue()``) and remembers ``name`` for
    targets of the old ``{"function": name}`` form.
    """
    warnings.warn(
        "jobs.targets.task is deprecated: decorate with task from jobs.tasks_api (Django's Tasks) "
        'and name the task by its import path in targets ({"task": "app.tasks.name"}).',
        DeprecationWarning,
        stacklevel=2,
    )
    from jobs.tasks_api import task as standard_task

    def register(function: Callable[..., Any], task_name: str | None = None) -> Any:
        path = f"{function.__module__}.{function.__qualname__}"
        _legacy_names[task_name or path] = path
        return standard_task(function)

    if callable(name):
        return register(name)
    return lambda function: register(function, name)


def in_tasks_module(path: str) -> bool:
    """Whether ``path`` lies in an installed app's ``tasks`` module or below it (checked before
    any import)."""
    module = path.rpartition(".")[0]
    for app in apps.get_app_configs():
        root = f"{app.name}.tasks"
        if module == root or module.startswith(root + "."):
            return True
    return False


def resolve(path: Any) -> Task[Any, Any]:
    """The Task at ``path``; raises UnknownTask (with the reason) for anything else."""
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise UnknownTask(f"Task {path!r} is not an import path such as demo.tasks.hello.")
    if not in_tasks_module(path):
        raise UnknownTask(f"Task {path!r} is not in an installed app's tasks module (app.tasks or below).")
    try:
        found = import_string(path)
    except ImportError:
        raise UnknownTask(f"Task {path!r} cannot be imported.") from None
    if not isinstance(found, Task):
        raise UnknownTask(f"{path!r} is not a Django Task (decorate it with @task from jobs.tasks_api).")
    return found


def legacy_path(name: Any) -> str | None:
    """The import path an old-style ``function`` name stands for, or None.

    In order: a name given to the deprecated ``@task("name")``; the name itself as a path; and
    ``app.name`` read as ``app.tasks.name`` (the convention the old registry's names followed,
    as the demo's ``demo.hello``). Only a path that resolves to a Task is returned.
    """
    if not isinstance(name, str):
        return None
    candidates = [_legacy_names.get(name), name]
    app, _, function = name.rpartition(".")
    if app:
        candidates.append(f"{app}.tasks.{function}")
    for path in candidates:
        if path is None:
            continue
        try:
            resolve(path)
        except UnknownTask:
            continue
        return path
    return None


def discovered_tasks() -> dict[str, Task[Any, Any]]:
    """Every Task in installed apps' ``tasks`` modules (and their imported submodules), by path."""
    autodiscover_modules("tasks")
    found: dict[str, Task[Any, Any]] = {}
    roots = [f"{app.name}.tasks" for app in apps.get_app_configs()]
    for module_name, module in list(sys.modules.items()):
        if module is None or not any(module_name == root or module_name.startswith(root + ".") for root in roots):
            continue
        for attribute, value in vars(module).items():
            if isinstance(value, Task) and not attribute.startswith("_"):
                found[f"{module_name}.{attribute}"] = value
    return dict(sorted(found.items()))


def summary(found: Task[Any, Any]) -> str:
    """The first line of a Task's docstring (the admin's chooser shows it)."""
    doc = (found.func.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def target_path(target: dict[str, Any]) -> str | None:
    """The path a target names: ``task``, or the path of a deprecated ``function`` name."""
    if "task" in target:
        path = target["task"]
        return path if isinstance(path, str) else None
    return legacy_path(target.get("function"))


def _known() -> str:
    return ", ".join(discovered_tasks()) or "none"


def clean(target: dict[str, Any]) -> str | None:
    if "task" in target and "function" in target:
        return 'Give "task" (the Task\'s import path), not both it and the deprecated "function".'
    if "task" not in target and "function" not in target:
        return f'"task" must name a Django Task by its import path; discovered: {_known()}.'
    if "function" in target:
        path = legacy_path(target["function"])
        if path is None:
            return f"Function {target['function']!r} is not a known task; tasks: {_known()}."
    else:
        path = target["task"]
    try:
        resolve(path)
    except UnknownTask as error:
        return f"{error} Discovered tasks: {_known()}."
    if not isinstance(target.get("args", []), list):
        return "args must be a JSON array."
    if not isinstance(target.get("kwargs", {}), dict):
        return "kwargs must be a JSON object."
    return None


def call(target: dict[str, Any], *, result_id: str, attempt: int, backend: str | None = None) -> Any:
    """Run the target's Task (in a run process) and return what it returned.

    An ``async def`` Task runs to completion through asgiref (``Task.call``). A Task declared
    ``takes_context`` gets a TaskContext whose result has the run's fire key as its id and
    ``attempts`` equal to this attempt's number (the worker ids in it are placeholders: the run
    records say which worker ran which attempt).
    """
    path = target_path(target)
    found = resolve(path)
    args = list(target.get("args") or [])
    kwargs = dict(target.get("kwargs") or {})
    if not found.takes_context:
        return found.call(*args, **kwargs)
    result: TaskResult[Any] = TaskResult(
        task=found,
        id=result_id,
        status=TaskResultStatus.RUNNING,
        enqueued_at=None,
        started_at=None,
        finished_at=None,
        last_attempted_at=None,
        args=args,
        kwargs=kwargs,
        backend=backend or found.backend,
        errors=[],
        worker_ids=[""] * attempt,
    )
    return found.call(TaskContext(task_result=result), *args, **kwargs)
