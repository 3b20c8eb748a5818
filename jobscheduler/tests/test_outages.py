"""Which errors mean a server is away, and the backoff that rides an outage out, logged once."""

from __future__ import annotations

import logging
import socket

import pymongo
import pymongo.errors
import pytest
import redis
from django.db import DatabaseError

from jobscheduler.outages import MONGODB, REDIS, Backoff, unavailable


def refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_errors_of_servers_that_are_away_are_told_from_others():
    port = refused_port()
    with pytest.raises(redis.RedisError) as redis_error:
        redis.Redis(port=port, socket_connect_timeout=1).ping()
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(port=port, serverSelectionTimeoutMS=200)
    with pytest.raises(pymongo.errors.PyMongoError) as mongodb_error:
        client.admin.command("ping")
    client.close()
    assert unavailable(redis_error.value) == REDIS
    assert unavailable(mongodb_error.value) == MONGODB
    # The ORM wraps pymongo's errors: the cause tells.
    try:
        raise DatabaseError() from mongodb_error.value
    except DatabaseError as wrapped:
        assert unavailable(wrapped) == MONGODB
    assert unavailable(pymongo.errors.AutoReconnect("connection closed")) == MONGODB
    assert unavailable(redis.exceptions.BusyLoadingError("LOADING")) == REDIS
    # Not outages: bad data, bugs, a refused write.
    assert unavailable(pymongo.errors.OperationFailure("bad query", code=2)) is None
    assert unavailable(redis.ResponseError("WRONGTYPE")) is None
    assert unavailable(ValueError("no")) is None
    assert unavailable(DatabaseError("no cause")) is None


def test_backoff_doubles_to_its_cap_and_logs_an_outage_once(caplog):
    now = [100.0]
    backoff = Backoff("housekeeping", first=0.25, cap=2.0, clock=lambda: now[0], random_unit=lambda: 0.5)
    error = redis.ConnectionError("refused")
    with caplog.at_level(logging.WARNING, logger="jobscheduler.outages"):
        delays = [backoff.failed(error) for _ in range(6)]
        assert backoff.down and not backoff.ready()
        now[0] += 2.0
        assert backoff.ready()
        now[0] += 10.0
        backoff.succeeded()
        backoff.succeeded()  # nothing more to say
    assert delays == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert [record.getMessage() for record in caplog.records] == [
        "housekeeping: redis unavailable; retrying with backoff until it is back",
        "housekeeping: redis is back",
    ]
    back = caplog.records[-1]
    assert (back.outage_seconds, back.attempts) == (12.0, 6)  # type: ignore[attr-defined]
    assert not backoff.down and backoff.ready()


def test_backoff_spreads_its_waits_and_says_when_the_failing_server_changes(caplog):
    draws = iter([0.0, 0.999])
    backoff = Backoff("reading", first=1.0, cap=10.0, random_unit=lambda: next(draws))
    with caplog.at_level(logging.WARNING, logger="jobscheduler.outages"):
        low = backoff.failed(redis.ConnectionError("refused"))
        high = backoff.failed(pymongo.errors.AutoReconnect("gone"))
    assert low == pytest.approx(0.8)
    assert high == pytest.approx(2.0 * 1.1996)
    assert [record.server for record in caplog.records] == ["redis", "mongodb"]  # type: ignore[attr-defined]


def test_the_cap_comes_from_settings(settings):
    settings.JOBSCHEDULER_OUTAGE_BACKOFF_CAP_SECONDS = 3.0
    assert Backoff("x").cap == 3.0
