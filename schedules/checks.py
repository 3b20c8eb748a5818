"""System checks of the schedules declared in code: invalid or duplicate ones (always), drift (with --database)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DatabaseError
from pymongo.errors import PyMongoError

from schedules import declarations, sync_declared


@register()
def check_declarations(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every command checks this at start: a scheduler never runs code whose declarations are wrong."""
    return [
        Error(problem, hint="See schedules/declarations.py for the forms a declaration takes.", id="schedules.E001")
        for problem in declarations.problems()
    ]


@register(Tags.database)
def check_declared_drift(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``manage.py check --database default``: declared schedules that MongoDB does not hold as declared."""
    if not databases or declarations.problems():
        return []
    try:
        found = sync_declared.differences()
    except (DatabaseError, PyMongoError):
        return []  # no database yet (a first migrate): nothing to compare with
    return [
        Warning(
            difference.describe(),
            hint="manage.py sync_schedules brings MongoDB in step with the code (every scheduler start does too).",
            id="schedules.W001",
        )
        for difference in found
        if difference.action != "none"
    ]
