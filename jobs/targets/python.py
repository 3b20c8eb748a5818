"""Python targets: the ``@task`` registry, and a target must name a function registered in it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FIELDS = frozenset({"function", "kwargs"})

_registry: dict[str, Callable[..., Any]] = {}


def task(name: str | Callable[..., Any] | None = None) -> Any:
    """Register a function as a python target: ``@task`` or ``@task("name")``."""

    def register(function: Callable[..., Any], task_name: str | None = None) -> Callable[..., Any]:
        key = task_name or f"{function.__module__}.{function.__qualname__}"
        _registry[key] = function
        return function

    if callable(name):
        return register(name)
    return lambda function: register(function, name)


def registered_tasks() -> dict[str, Callable[..., Any]]:
    return dict(_registry)


def clean(target: dict[str, Any]) -> str | None:
    name = target.get("function")
    # Checked for a string first: a list or object cannot be looked up (unhashable).
    if not isinstance(name, str) or name not in _registry:
        known = ", ".join(sorted(_registry)) or "none"
        return f"Function {name!r} is not registered with @task; registered: {known}."
    if not isinstance(target.get("kwargs", {}), dict):
        return "kwargs must be a JSON object."
    return None
