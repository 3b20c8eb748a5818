"""For tests: the commands code sends to MongoDB, captured, and how the server plans them."""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any

import pymongo.monitoring
from django.db import connection


class CommandCapture(pymongo.monitoring.CommandListener):
    """The commands sent to ``collections`` while ``on`` is set (only those named ``names``, if given).

    Registered with pymongo, it hears the clients made after that: close Django's connection
    first, so that the next query opens one that reports here.
    """

    def __init__(self, collections: Collection[str], names: Collection[str] = ()) -> None:
        self.collections = collections
        self.names = names
        self.on = threading.Event()
        self.commands: list[dict[str, Any]] = []

    def started(self, event: pymongo.monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)  # a collection's name, or (explain) a command
        named = not self.names or event.command_name in self.names
        if self.on.is_set() and named and isinstance(target, str) and target in self.collections:
            self.commands.append(dict(event.command))

    def succeeded(self, event: pymongo.monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: pymongo.monitoring.CommandFailedEvent) -> None:
        pass


def explain(command: dict[str, Any]) -> dict[str, Any]:
    """The server's explain of a find or aggregate as pymongo sent it (what shapes the plan kept)."""
    query: dict[str, Any]
    if "find" in command:
        query = {key: command[key] for key in ("find", "filter", "sort", "limit", "projection") if key in command}
    else:
        query = {"aggregate": command["aggregate"], "pipeline": command["pipeline"], "cursor": {}}
    explained: dict[str, Any] = connection.database.command("explain", query)  # type: ignore[attr-defined]
    return explained


def winning_stages(explained: dict[str, Any]) -> list[str]:
    """The stages of an explained query's winning plan, outermost first (FETCH, IXSCAN, ...)."""
    plan = explained["queryPlanner"]["winningPlan"]
    stages = []
    while plan:
        stages.append(plan["stage"])
        plan = plan.get("inputStage")
    return stages
