"""What the service did lately, counted in Redis for the dashboard: runs by minute and status, dispatch lag, failures.

Counters rather than queries: with a million runs stored, counting them in MongoDB takes
seconds (SecantusDB decodes every candidate document; docs/dashboard-benchmark.md), while
these cost one pipeline where outcomes are recorded (jobs.run_records, a batch at a time) and
one a second in each scheduler (its heartbeat). They are best effort: a Redis that is away
or lost its data leaves a gap in the charts, never a run unrecorded.

Keys (outside the shards), each holding one hour and expiring a day and more after it:

- ``<p>:activity:runs:<hour>``  hash ``<minute of the hour>:<status>`` -> attempts that ended then
- ``<p>:activity:lag:<hour>``   hash ``<minute of the hour>:<bucket>`` -> occurrences dispatched
  that late (bucket: an index into LAG_BUCKETS_MS)
- ``<p>:activity:failures``     list, newest first, of the latest failed attempts (JSON)
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import redis

from jobscheduler.epoch import to_epoch_ms
from jobscheduler.keyspace import Keyspace, default_keyspace

logger = logging.getLogger(__name__)

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
RUNS_KEPT_MS = 26 * HOUR_MS  # 24 hours charted, and the hour under way, and some slack
LAGS_KEPT_MS = 3 * HOUR_MS  # the last hour is reported
FAILURES_KEPT = 100
ERROR_CHARS = 2000
# Upper bounds of the lag histogram's buckets, in ms; the last one takes everything later.
LAG_BUCKETS_MS: tuple[int, ...] = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700)
LAG_BUCKETS_MS += (1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 30_000, 60_000)


@dataclass(frozen=True)
class EndedRun:
    """An attempt whose outcome was just recorded, as the counters see it."""

    status: str
    ended_at: datetime | None
    failed: bool  # failed or timed out: listed among the latest failures
    run_id: str = ""
    job_id: str = ""
    schedule_id: str = ""
    fire_key: str = ""
    attempt: int = 1
    error: str = ""


@dataclass(frozen=True)
class LagSummary:
    """Dispatch lag over a window: how many occurrences, and the bucket bounds of p50 and p99."""

    count: int
    p50_ms: int | None
    p99_ms: int | None
    per_minute: list[int]  # occurrences dispatched each minute, oldest first


class Activity:
    """The counters of one keyspace: written by recorders and schedulers, read by the dashboard."""

    def __init__(self, keyspace: Keyspace | None = None):
        self.keyspace = keyspace or default_keyspace()
        self.client = self.keyspace.client

    def runs_key(self, hour: int) -> str:
        return self.keyspace.global_key(f"activity:runs:{hour}")

    def lag_key(self, hour: int) -> str:
        return self.keyspace.global_key(f"activity:lag:{hour}")

    @property
    def failures_key(self) -> str:
        return self.keyspace.global_key("activity:failures")

    # --- writes ---------------------------------------------------------------------------
    def count_runs(self, ended: Sequence[EndedRun], now_ms: int) -> None:
        """Count attempts that ended (at their ``ended_at``, else now), and list the failed ones."""
        if not ended:
            return
        counts: Counter[tuple[int, str]] = Counter()
        for run in ended:
            at = to_epoch_ms(run.ended_at) if run.ended_at is not None else now_ms
            counts[(at // MINUTE_MS, run.status)] += 1
        pipe = self.client.pipeline(transaction=False)
        hours = set()
        for (minute, status), count in counts.items():
            hour = minute * MINUTE_MS // HOUR_MS
            hours.add(hour)
            pipe.hincrby(self.runs_key(hour), f"{minute % 60}:{status}", count)
        for hour in hours:
            pipe.pexpireat(self.runs_key(hour), (hour + 1) * HOUR_MS + RUNS_KEPT_MS)
        failures = [_failure_json(run, now_ms) for run in ended if run.failed]
        if failures:
            pipe.lpush(self.failures_key, *failures)
            pipe.ltrim(self.failures_key, 0, FAILURES_KEPT - 1)
        pipe.execute()

    def add_lags(self, tally: dict[tuple[int, int], int]) -> None:
        """Add a scheduler's tally: (minute, bucket) -> occurrences dispatched."""
        if not tally:
            return
        pipe = self.client.pipeline(transaction=False)
        hours = set()
        for (minute, bucket), count in tally.items():
            hour = minute * MINUTE_MS // HOUR_MS
            hours.add(hour)
            pipe.hincrby(self.lag_key(hour), f"{minute % 60}:{bucket}", count)
        for hour in hours:
            pipe.pexpireat(self.lag_key(hour), (hour + 1) * HOUR_MS + LAGS_KEPT_MS)
        pipe.execute()

    # --- reads ----------------------------------------------------------------------------
    def _minutes(self, key_of: Any, now_ms: int, minutes: int) -> tuple[int, list[dict[str, int]]]:
        """Each of the last ``minutes`` minutes (the current one last): its counters by field
        suffix. Returns the first minute's number (epoch ms // 60000) and the list."""
        last = now_ms // MINUTE_MS
        first = last - minutes + 1
        hours = range(first * MINUTE_MS // HOUR_MS, last * MINUTE_MS // HOUR_MS + 1)
        pipe = self.client.pipeline(transaction=False)
        for hour in hours:
            pipe.hgetall(key_of(hour))
        series: list[dict[str, int]] = [{} for _ in range(minutes)]
        for hour, fields in zip(hours, pipe.execute(), strict=True):
            for raw, count in fields.items():
                minute_of_hour, _, name = raw.decode().partition(":")
                minute = hour * 60 + int(minute_of_hour)
                if first <= minute <= last:
                    series[minute - first][name] = int(count)
        return first, series

    def runs_per_minute(self, now_ms: int, minutes: int = 24 * 60) -> tuple[int, list[dict[str, int]]]:
        """Attempts that ended in each of the last ``minutes`` minutes, by status (oldest first),
        and the first minute (epoch ms // 60000)."""
        return self._minutes(self.runs_key, now_ms, minutes)

    def lags(self, now_ms: int, minutes: int = 60) -> LagSummary:
        """Dispatch lag of the occurrences dispatched in the last ``minutes`` minutes."""
        _, series = self._minutes(self.lag_key, now_ms, minutes)
        buckets: Counter[int] = Counter()
        for minute in series:
            for bucket, count in minute.items():
                buckets[int(bucket)] += count
        total = sum(buckets.values())
        return LagSummary(
            count=total,
            p50_ms=_percentile(buckets, total, 0.50),
            p99_ms=_percentile(buckets, total, 0.99),
            per_minute=[sum(minute.values()) for minute in series],
        )

    def latest_failures(self, limit: int = FAILURES_KEPT) -> list[dict[str, Any]]:
        """The latest failed attempts, newest first, as ``count_runs`` listed them."""
        return [json.loads(raw) for raw in self.client.lrange(self.failures_key, 0, limit - 1)]


def _failure_json(run: EndedRun, now_ms: int) -> str:
    # A traceback ends with the exception: keep the end of a long error.
    fields = {**asdict(run), "error": run.error[-ERROR_CHARS:]}
    fields["ended_at"] = to_epoch_ms(run.ended_at) if run.ended_at is not None else now_ms
    return json.dumps(fields)


def _percentile(buckets: Counter[int], total: int, fraction: float) -> int | None:
    """The upper bound (ms) of the bucket holding the given fraction of ``total``; None: no data.
    The last bucket has no bound: it reports the largest one, meaning "at least"."""
    if not total:
        return None
    wanted = fraction * total
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= wanted:
            return LAG_BUCKETS_MS[min(bucket, len(LAG_BUCKETS_MS) - 1)]
    return LAG_BUCKETS_MS[-1]


def lag_bucket(lag_ms: int) -> int:
    """The histogram bucket of one lag: the first whose bound is at least ``lag_ms``."""
    return bisect.bisect_left(LAG_BUCKETS_MS, lag_ms)


class LagTally:
    """A scheduler's dispatch lags since its last heartbeat, by minute and bucket (in memory).

    The dispatch loop adds to it (cheap: no Redis round trip per wake); the heartbeat takes it
    and adds it to Redis once a second (``Activity.add_lags``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tally: Counter[tuple[int, int]] = Counter()

    def observe(self, lags_ms: Iterable[int], now_ms: int) -> None:
        minute = now_ms // MINUTE_MS
        with self._lock:
            for lag in lags_ms:
                self._tally[(minute, lag_bucket(lag))] += 1

    def take(self) -> dict[tuple[int, int], int]:
        with self._lock:
            taken, self._tally = self._tally, Counter()
        return dict(taken)

    def put_back(self, tally: dict[tuple[int, int], int]) -> None:
        """Return a tally Redis did not take (it was away): the next heartbeat adds it."""
        with self._lock:
            self._tally.update(tally)


# The process's tally: schedules.engine.steps adds, the scheduler's heartbeat flushes.
LAGS = LagTally()

_failing = threading.Event()  # set while counting fails: log an outage once, not per batch


def count_runs(ended: Sequence[EndedRun], now_ms: int, keyspace: Keyspace | None = None) -> None:
    """``Activity.count_runs`` on the default keyspace; a Redis error is logged once and swallowed."""
    if not ended:
        return
    try:
        Activity(keyspace).count_runs(ended, now_ms)
    except redis.RedisError as error:
        if not _failing.is_set():
            _failing.set()
            logger.warning("run counters for the dashboard not updated", extra={"error": repr(error)})
        return
    _failing.clear()


def flush_lags(keyspace: Keyspace | None = None) -> None:
    """Add this process's lag tally to Redis (the scheduler's heartbeat); kept for later if Redis is away."""
    tally = LAGS.take()
    if not tally:
        return
    try:
        Activity(keyspace).add_lags(tally)
    except redis.RedisError:
        LAGS.put_back(tally)
        raise
