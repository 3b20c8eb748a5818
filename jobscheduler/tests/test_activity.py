"""The dashboard's counters in Redis (jobscheduler.activity), against the real Redis."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

import jobscheduler
from jobscheduler import activity
from jobscheduler.activity import LAG_BUCKETS_MS, Activity, EndedRun, LagTally, lag_bucket
from jobscheduler.epoch import to_epoch_ms
from jobscheduler.keyspace import Keyspace

T0 = datetime(2027, 3, 1, 12, 0, 30, tzinfo=UTC)  # half a minute into 12:00
NOW_MS = to_epoch_ms(T0)


def ended(status: str, at: datetime | None, *, failed: bool = False, error: str = "", job: str = "j1") -> EndedRun:
    return EndedRun(status=status, ended_at=at, failed=failed, run_id="r", job_id=job, error=error)


def test_runs_are_counted_in_the_minute_they_ended_by_status(keyspace: Keyspace) -> None:
    counters = Activity(keyspace)
    counters.count_runs(
        [
            ended("succeeded", T0),
            ended("succeeded", T0 + timedelta(seconds=10)),
            ended("failed", T0 - timedelta(minutes=2), failed=True),
            ended("missed", None),  # no end time: counted now
        ],
        NOW_MS + 60_000,
    )
    first, series = counters.runs_per_minute(NOW_MS + 60_000, minutes=5)
    assert first == NOW_MS // 60_000 - 3
    assert series == [{}, {"failed": 1}, {}, {"succeeded": 2}, {"missed": 1}]


def test_a_day_of_minutes_spans_hours_and_keys_expire_after_the_day(keyspace: Keyspace) -> None:
    counters = Activity(keyspace)
    yesterday = T0 - timedelta(hours=23, minutes=59)
    counters.count_runs([ended("succeeded", yesterday), ended("succeeded", T0)], NOW_MS)
    _, series = counters.runs_per_minute(NOW_MS)
    assert len(series) == 24 * 60
    assert series[0] == {"succeeded": 1} and series[-1] == {"succeeded": 1}
    assert sum(sum(minute.values()) for minute in series) == 2
    # Older than the window: kept in Redis a little longer, but not counted.
    counters.count_runs([ended("succeeded", T0 - timedelta(hours=24, minutes=1))], NOW_MS)
    _, series = counters.runs_per_minute(NOW_MS)
    assert sum(sum(minute.values()) for minute in series) == 2
    hour = NOW_MS // 3_600_000
    expires_at = keyspace.client.pexpiretime(counters.runs_key(hour))
    assert expires_at == (hour + 1) * 3_600_000 + activity.RUNS_KEPT_MS


def test_failures_are_listed_newest_first_with_the_end_of_their_error(keyspace: Keyspace) -> None:
    counters = Activity(keyspace)
    long_error = "Traceback (most recent call last):\n" + "x" * 5000 + "\nValueError: boom"
    counters.count_runs([ended("failed", T0, failed=True, error="first")], NOW_MS)
    counters.count_runs(
        [ended("succeeded", T0), ended("timed_out", T0, failed=True, error=long_error, job="j2")], NOW_MS
    )
    latest = counters.latest_failures()
    assert [(row["status"], row["job_id"]) for row in latest] == [("timed_out", "j2"), ("failed", "j1")]
    assert latest[0]["error"].endswith("ValueError: boom") and len(latest[0]["error"]) == activity.ERROR_CHARS
    assert latest[0]["ended_at"] == NOW_MS


def test_the_failure_list_is_capped(keyspace: Keyspace) -> None:
    counters = Activity(keyspace)
    runs = [ended("failed", T0, failed=True, error=str(number)) for number in range(activity.FAILURES_KEPT + 5)]
    counters.count_runs(runs, NOW_MS)
    latest = counters.latest_failures()
    assert len(latest) == activity.FAILURES_KEPT
    assert latest[0]["error"] == str(activity.FAILURES_KEPT + 4)  # the last pushed is the newest


def test_lag_buckets_and_percentiles(keyspace: Keyspace) -> None:
    assert lag_bucket(0) == 0 and lag_bucket(1) == 0 and lag_bucket(2) == 1 and lag_bucket(4) == 3
    assert lag_bucket(10**9) == len(LAG_BUCKETS_MS)  # later than every bound: the last bucket
    tally = LagTally()
    tally.observe([1] * 60 + [4] * 39 + [900], NOW_MS)  # p50 in the 1 ms bucket, p99 in the 5 ms one
    tally.observe([2], NOW_MS - 2 * 3_600_000)  # two hours ago: outside the last hour
    Activity(keyspace).add_lags(tally.take())
    assert tally.take() == {}
    summary = Activity(keyspace).lags(NOW_MS)
    assert (summary.count, summary.p50_ms, summary.p99_ms) == (100, 1, 5)
    assert summary.per_minute[-1] == 100 and sum(summary.per_minute) == 100


def test_a_lag_later_than_every_bound_reports_the_last_bound(keyspace: Keyspace) -> None:
    tally = LagTally()
    tally.observe([120_000] * 3, NOW_MS)
    Activity(keyspace).add_lags(tally.take())
    summary = Activity(keyspace).lags(NOW_MS)
    assert summary.p50_ms == summary.p99_ms == LAG_BUCKETS_MS[-1]
    assert Activity(keyspace).lags(NOW_MS + 3 * 3_600_000).count == 0


def test_a_tally_redis_did_not_take_is_kept_for_the_next_beat(keyspace: Keyspace) -> None:
    dead = Keyspace(redis.Redis(port=1, socket_connect_timeout=0.2), keyspace.prefix, keyspace.shards)
    activity.LAGS.take()
    activity.LAGS.observe([3, 3], NOW_MS)
    with pytest.raises(redis.RedisError):
        activity.flush_lags(dead)
    activity.flush_lags(keyspace)
    assert Activity(keyspace).lags(NOW_MS).count == 2


def test_counting_with_redis_away_is_swallowed(keyspace: Keyspace) -> None:
    dead = Keyspace(redis.Redis(port=1, socket_connect_timeout=0.2), keyspace.prefix, keyspace.shards)
    activity.count_runs([ended("succeeded", T0)], NOW_MS, dead)  # no error: recording goes on
    activity.count_runs([ended("succeeded", T0)], NOW_MS, keyspace)
    assert Activity(keyspace).runs_per_minute(NOW_MS, 1)[1] == [{"succeeded": 1}]


def test_the_version_heartbeats_carry_is_the_projects() -> None:
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert jobscheduler.__version__ == pyproject["project"]["version"]
