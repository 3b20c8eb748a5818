"""Command targets: a management command named in ``JOBSCHEDULER_ALLOWED_COMMANDS``, with string arguments."""

from __future__ import annotations

from typing import Any

from django.conf import settings

FIELDS = frozenset({"command", "args"})


def allowed_commands() -> list[str]:
    return list(getattr(settings, "JOBSCHEDULER_ALLOWED_COMMANDS", []))


def clean(target: dict[str, Any]) -> str | None:
    name = target.get("command")
    if not isinstance(name, str) or name not in allowed_commands():
        return f"Command {name!r} is not in JOBSCHEDULER_ALLOWED_COMMANDS."
    args = target.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        return "args must be a list of strings."
    return None
