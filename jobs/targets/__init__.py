"""What a run does: one module per target type, and ``clean_target`` choosing among them.

Python targets name a Django Task by its import path (only Tasks in installed apps' ``tasks``
modules).
Management commands must be allow-listed in ``JOBSCHEDULER_ALLOWED_COMMANDS``. Webhooks
(``http``) are checked by the parser that builds their requests. Celery targets name a task of
the team's own Celery workers, which need a configured broker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobs.targets import celery, command, http, python
from jobs.targets.command import allowed_commands
from jobs.targets.python import discovered_tasks, task

__all__ = ["allowed_commands", "clean_target", "discovered_tasks", "task"]

# Each target type: the fields it may have and its check. Adding a type means adding its
# module and one entry here; nothing else in validation switches on the type.
_TYPES: dict[str, tuple[frozenset[str], Callable[[dict[str, Any]], str | None]]] = {
    "python": (python.FIELDS, python.clean),
    "command": (command.FIELDS, command.clean),
    "http": (http.FIELDS, http.clean),
    "celery": (celery.FIELDS, celery.clean),
}


def clean_target(target_type: str, target: Any) -> dict[str, str]:
    """Return a message per problem with a target (under the key ``target``)."""
    if not isinstance(target, dict):
        return {"target": "Must be a JSON object."}
    kind = _TYPES.get(target_type)
    if kind is None:
        return {"target_type": f"Unknown target type {target_type!r}."}
    fields, clean = kind
    message = clean(target) or _unknown_fields(target, fields)
    return {"target": message} if message else {}


def _unknown_fields(target: dict[str, Any], known: frozenset[str]) -> str | None:
    unknown = sorted(set(target) - known)
    return f"Unknown target field(s): {', '.join(unknown)}." if unknown else None
