"""The end-to-end benchmark's probes of SecantusDB: an update's filter form, and retryable writes.

django-mongodb-backend sends a filter of several conditions as {"$and": [{...}, {...}]}.
MongoDB's planner uses the _id index for that; SecantusDB 0.7.0b3 scans the collection.
The worker's compare-and-set updates therefore go through pymongo with a flat filter
(jobs.run_records._compare_and_set); probe_filters measures the difference.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def flatten_and(query: dict[str, Any]) -> dict[str, Any]:
    """``{"$and": [{a: 1}, {b: 2}]}`` as ``{a: 1, b: 2}`` (parts with distinct field names)."""
    merged: dict[str, Any] = {}
    for part in query["$and"]:
        merged.update(part)
    return merged


def with_retry_writes(uri: str, on: bool) -> str:
    parts = urlsplit(uri)
    query = "&".join(item for item in parts.query.split("&") if item and not item.startswith("retryWrites="))
    query = "&".join(filter(None, [query, f"retryWrites={'true' if on else 'false'}"]))
    return urlunsplit(parts._replace(query=query))


def probe_retryable_writes(uri: str, held: int = 10_000, sample: int = 500) -> list[tuple[str, float]]:
    """ms per insert: retryable writes off; on, while few are recorded; on, once ``held`` are.

    SecantusDB records each retryable write (pymongo's default) for 30 minutes, at most
    10,000, and prunes the whole record on every write (sorting it once at the cap).
    """
    from pymongo import MongoClient

    rows = []
    for label, on, before in (("retryable writes off", False, 0), ("on, few recorded", True, 0), ("on", True, held)):
        client: MongoClient[dict[str, Any]] = MongoClient(with_retry_writes(uri, on))
        try:
            probe = client["bench"]["e2e_write_probe"]
            for index in range(before):
                probe.insert_one({"i": index})
            started = time.perf_counter()
            for index in range(sample):
                probe.insert_one({"i": index})
            per_write = (time.perf_counter() - started) / sample * 1000
            rows.append((f"{label}, {held:,} recorded" if before else label, per_write))
            probe.drop()
        finally:
            client.close()
    return rows


def probe_filters(sizes: Iterable[int] = (1_000, 5_000, 20_000)) -> list[tuple[int, float, float]]:
    """(documents, ms per update filtered by {$and: [{_id}, {status}]}, ms per the same as {_id, status})."""
    from bson import ObjectId
    from django.db import connection

    probe = connection.get_database()["e2e_filter_probe"]  # type: ignore[attr-defined]
    probe.drop()
    rows = []
    stored = 0
    try:
        for size in sizes:
            filler = [{"_id": ObjectId(), "status": "succeeded", "output": "HTTP 200"} for _ in range(size - stored)]
            for start in range(0, len(filler), 1000):
                probe.insert_many(filler[start : start + 1000])
            stored = size
            timings = []
            for flat in (False, True):
                ids = [ObjectId() for _ in range(10)]
                probe.insert_many([{"_id": oid, "status": "pending"} for oid in ids])
                started = time.perf_counter()
                for oid in ids:
                    query = {"$and": [{"_id": oid}, {"status": "pending"}]}
                    probe.update_many(flatten_and(query) if flat else query, [{"$set": {"status": "running"}}])
                timings.append((time.perf_counter() - started) / len(ids) * 1000)
            rows.append((size, timings[0], timings[1]))
    finally:
        probe.drop()
    return rows


def server_requests() -> dict[str, int]:
    """SecantusDB's lifetime request counts (``serverStatus``): by command bucket, and in all.

    Taken before and after a window, their difference over the runs recorded is the round
    trips each run costs the database, whichever process (worker, scheduler) made them.
    """
    from jobs.models import Run
    from jobscheduler.mongo import collection

    status = collection(Run).database.client.admin.command("serverStatus")
    counts = {bucket: int(value) for bucket, value in status["opcounters"].items()}
    counts["all"] = int(status["network"]["numRequests"])
    return counts
