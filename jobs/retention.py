"""Runs' retention by a TTL index: MongoDB deletes finished runs once they are older than the setting.

The index on ``finished_at`` (``run_finished_at``, declared in jobs/migrations/0013) is plain
in the migration; its ``expireAfterSeconds`` follows ``JOBSCHEDULER_RUN_RETENTION_DAYS`` (when
``JOBSCHEDULER_RUN_RETENTION_TTL`` is on) and is set here, after every ``migrate`` and by
``manage.py run_retention``, so a changed setting is applied without a new migration. Only
finished runs have a ``finished_at`` (pending and running ones hold none), and a TTL index
leaves documents without a date alone: it deletes what ``purge_runs`` deletes, without anyone
running it. A server's TTL monitor wakes every 60 s, so a run goes up to a minute or so late.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from jobs.models import Run
from jobscheduler import mongo

INDEX = "run_finished_at"
FIELD = "finished_at"
DAY_SECONDS = 86_400


def wanted_expiry() -> int | None:
    """The TTL the settings ask of the index, in seconds; None: no TTL (runs kept until purged)."""
    days = settings.JOBSCHEDULER_RUN_RETENTION_DAYS
    if not settings.JOBSCHEDULER_RUN_RETENTION_TTL or days <= 0:
        return None
    return int(days * DAY_SECONDS)


def held_expiry(collection: Collection[dict[str, Any]] | None = None) -> int | None:
    """The TTL the index has now, in seconds; None: a plain index. LookupError: no such index
    (the migrations have not been applied)."""
    collection = collection if collection is not None else mongo.collection(Run)
    info = collection.index_information().get(INDEX)
    if info is None:
        raise LookupError(f"the runs collection has no index {INDEX!r}: run manage.py migrate")
    expiry = info.get("expireAfterSeconds")
    return None if expiry is None else int(expiry)


def apply_retention(collection: Collection[dict[str, Any]] | None = None) -> tuple[int | None, int | None]:
    """Give the index the TTL the settings ask for; returns (before, after) in seconds.

    Setting or changing a TTL is a ``collMod`` (instant; a plain index takes one from MongoDB
    5.1 on, before that it is rebuilt with it); MongoDB cannot take the option off an index, so
    turning the TTL off rebuilds the index plain. Rebuilt under the name the migration declared.
    """
    collection = collection if collection is not None else mongo.collection(Run)
    before = held_expiry(collection)
    after = wanted_expiry()
    if before == after:
        return before, after
    if after is not None:
        try:
            collection.database.command("collMod", collection.name, index={"name": INDEX, "expireAfterSeconds": after})
            return before, after
        except OperationFailure:
            if before is not None:
                raise
            # MongoDB before 5.1 cannot make a plain index a TTL one: rebuilt below with it.
    collection.drop_index(INDEX)
    options: dict[str, Any] = {} if after is None else {"expireAfterSeconds": after}
    collection.create_index([(FIELD, 1)], name=INDEX, **options)
    return before, after


def describe(seconds: int | None) -> str:
    if seconds is None:
        return "no TTL (finished runs kept until purge_runs deletes them)"
    days = seconds / DAY_SECONDS
    return f"finished runs expire {days:g} days after they finished (expireAfterSeconds={seconds})"


def apply_after_migrate(**kwargs: Any) -> None:
    """post_migrate receiver (jobs.apps): every ``migrate`` brings the TTL in line with the settings."""
    if kwargs.get("plan") is not None and any(backwards for _, backwards in kwargs["plan"]):
        return  # migrating backwards: the index may be gone
    # The database migrated (a test database too), on its own connection.
    runs = connections[kwargs.get("using", DEFAULT_DB_ALIAS)].get_collection(Run._meta.db_table)  # type: ignore[attr-defined]
    try:
        before, after = apply_retention(runs)
    except LookupError:
        return
    if before != after and kwargs.get("verbosity", 1) >= 1 and kwargs.get("stdout") is not None:
        kwargs["stdout"].write(f"Runs retention: {describe(after)}\n")
