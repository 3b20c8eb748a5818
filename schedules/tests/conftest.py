"""Fixtures of the schedules tests: schedules declared in code, and the python targets they make."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from django.utils.module_loading import import_string

from jobs import targets
from jobs.tasks_api import Task
from schedules import declarations

DECLARED_TASKS = "schedules.tests.declared_tasks"


def clean_task_target(target: dict[str, Any]) -> str | None:
    """A python target as the Django Tasks branch makes them: {"task": a Task's path, "args", "kwargs"}."""
    path = target.get("task")
    try:
        found = import_string(path) if isinstance(path, str) else None
    except ImportError:
        found = None
    if not isinstance(found, Task):
        return f"{path!r} is not a Django Task."
    if not isinstance(target.get("args", []), list) or not isinstance(target.get("kwargs", {}), dict):
        return "args must be a list and kwargs an object."
    return None


@pytest.fixture
def task_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python targets naming any Django Task. The real check (jobs.targets.python) accepts only
    Tasks in an installed app's ``tasks`` module; the declarations under test live in a test
    module (schedules.tests.declared_tasks), so this check stands in for it here."""
    monkeypatch.setitem(targets._TYPES, "python", (frozenset({"task", "args", "kwargs"}), clean_task_target))


@pytest.fixture
def declared(task_targets: None, db: Any) -> Iterator[ModuleType]:
    """The test tasks module imported afresh, its @periodic declarations in a registry of their own."""
    with declarations.isolated():
        sys.modules.pop(DECLARED_TASKS, None)
        module = importlib.import_module(DECLARED_TASKS)
        yield module
    sys.modules.pop(DECLARED_TASKS, None)
