"""For the tests that hold hot queries to an index: capture what pymongo sends, explain each filter.

A ``Capture`` listener records the commands sent to the watched collections while it is on;
``assert_indexed`` explains every filter in them (finds, aggregates' first ``$match``, updates,
deletes, find-and-modifies, counts) as a find on the server the suite uses, and asks for a plan
read from an index. SecantusDB 0.7.0b3 plans any filter on two fields or more as a collection
scan, whatever the indexes (jobscheduler/tests/test_server_contract.py); MongoDB plans those by
an index on one of the fields. There such a filter must name, as an equality, ``$in`` or range,
the first field of a plain (not partial) index, which is what MongoDB would read it by.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pymongo.monitoring
from django.db import connection
from pymongo.database import Database

COMMANDS = ("find", "aggregate", "insert", "update", "delete", "findAndModify", "count", "distinct")
INDEXED_STAGES = ("IXSCAN", "IDHACK", "EXPRESS", "COUNT_SCAN", "DISTINCT_SCAN")
# Conditions an index on the field can answer (MongoDB reads a range of its keys).
SELECTIVE = {"$eq", "$in", "$gt", "$gte", "$lt", "$lte"}


class Capture(pymongo.monitoring.CommandListener):
    """The commands sent to the watched collections while ``on`` is set."""

    def __init__(self) -> None:
        self.on = threading.Event()
        self.watched: set[str] = set()
        self.commands: list[dict[str, Any]] = []

    def started(self, event: pymongo.monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if self.on.is_set() and name in COMMANDS and event.command.get(name) in self.watched:
            self.commands.append(dict(event.command))

    def succeeded(self, event: pymongo.monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: pymongo.monitoring.CommandFailedEvent) -> None:
        pass


# A listener applies to the clients made after it is registered: this module is imported by
# the test modules using it, which pytest collects before any test makes Django's client.
CAPTURE = Capture()
pymongo.monitoring.register(CAPTURE)


@contextmanager
def capturing(*collections: str) -> Iterator[list[dict[str, Any]]]:
    """Record what is sent to ``collections`` inside the block."""
    CAPTURE.watched = set(collections)
    CAPTURE.commands = []
    CAPTURE.on.set()
    try:
        yield CAPTURE.commands
    finally:
        CAPTURE.on.clear()


def database() -> Database[dict[str, Any]]:
    return connection.database  # type: ignore[attr-defined]


def queries(commands: Iterable[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(collection, filter, sort) of each read in ``commands``; updates and deletes by their
    filters (inserts have none)."""
    found: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for command in commands:
        name = next(iter(command))
        table = command[name]
        if name == "insert":
            continue  # no filter: what an insert costs is its indexes' upkeep
        if name == "count" and not command.get("query"):
            continue  # estimated_document_count: MongoDB answers from the collection's metadata
        if name == "find":
            found.append((table, command.get("filter", {}), command.get("sort", {})))
        elif name == "aggregate":
            pipeline = command.get("pipeline", [])
            match = pipeline[0].get("$match", {}) if pipeline else {}
            sort: dict[str, Any] = next((stage["$sort"] for stage in pipeline[1:2] if "$sort" in stage), {})
            found.append((table, match, sort))
        elif name == "update":
            found += [(table, update["q"], {}) for update in command.get("updates", [])]
        elif name == "delete":
            found += [(table, delete["q"], {}) for delete in command.get("deletes", [])]
        elif name == "findAndModify":
            found.append((table, command.get("query", {}), command.get("sort", {})))
        else:  # count, distinct
            found.append((table, command.get("query", {}), {}))
    return found


def plan_stages(table: str, query: dict[str, Any], sort: dict[str, Any] | None = None) -> list[str]:
    """The stages of the plan the server picks for a find of ``query`` (outermost first)."""
    find: dict[str, Any] = {"find": table, "filter": query}
    if sort:
        find["sort"] = sort
    plan = database().command("explain", find)["queryPlanner"]["winningPlan"]
    stages = []
    while plan:
        stages.append(plan["stage"])
        plan = plan.get("inputStage") or (plan.get("inputStages") or [None])[0]
    return stages


def running_on_secantus() -> bool:
    return "secantusVersion" in database().command("buildInfo")


def conditions(query: dict[str, Any]) -> list[tuple[str, Any]]:
    """The top-level conditions of ``query`` as (field, value) pairs, an ``$and`` flattened."""
    flat: list[tuple[str, Any]] = []
    for field, value in query.items():
        if field == "$and":
            for part in value:
                flat += conditions(part)
        else:
            flat.append((field, value))
    return flat


def selective_fields(query: dict[str, Any]) -> set[str]:
    """The fields ``query`` narrows by an equality, ``$in`` or a range."""
    fields = set()
    for field, value in conditions(query):
        if field.startswith("$"):
            continue
        operators = {key for key in value if key.startswith("$")} if isinstance(value, dict) else set()
        if operators <= SELECTIVE:  # an equality, or only ranges and $in
            fields.add(field)
    return fields


def leading_fields(table: str) -> set[str]:
    """The first field of each plain index of the collection (partial ones answer only queries
    that repeat their filter)."""
    return {
        next(iter(index["key"])) for index in database()[table].list_indexes() if "partialFilterExpression" not in index
    }


def assert_indexed(commands: list[dict[str, Any]], *, strict: bool = False, sorted_by_index: bool = False) -> None:
    """Every query in ``commands`` is read from an index (module docstring); ``strict``: by the
    plan of the server the suite uses, SecantusDB's too (for pages kept to one condition);
    ``sorted_by_index``: and read in its order, with no blocking sort, on MongoDB only
    (SecantusDB 0.7.0b3 sorts whatever a filter matched, whatever the indexes)."""
    found = queries(commands)
    assert found, "no query was captured"
    secantus = running_on_secantus()
    unindexed = []
    for table, query, sort in found:
        stages = plan_stages(table, query, sort)
        blocking = sorted_by_index and not secantus and "SORT" in stages
        if any(stage in stages for stage in INDEXED_STAGES) and "COLLSCAN" not in stages and not blocking:
            continue
        two_or_more = not strict and secantus and len(conditions(query)) > 1
        if not (two_or_more and selective_fields(query) & leading_fields(table)):
            unindexed.append({"collection": table, "filter": query, "sort": sort, "plan": stages})
    assert not unindexed, json.dumps(unindexed, default=str, indent=1)
