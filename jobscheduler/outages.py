"""Riding out a MongoDB or Redis outage: which errors mean a server is away, and how long to wait.

Schedulers and workers keep going through an outage of either server, however long: what
failed is tried again after a capped exponential backoff (``JOBSCHEDULER_OUTAGE_BACKOFF_CAP_SECONDS``),
and the outage is logged once when it starts and once when it ends, not at every attempt.
An error that says nothing about a server being away is not retried here: it is a bug or
bad data, and the caller decides (a scheduler whose housekeeping fails that way exits
non-zero, so a supervisor restarts it).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import pymongo.errors
import redis
from django.conf import settings

logger = logging.getLogger(__name__)

MONGODB = "mongodb"
REDIS = "redis"
# What a Redis Cluster answers while a master fails over or a slot moves: it passes.
_CLUSTER_IN_MOTION = (
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.AskError,
)


def unavailable(error: BaseException | None) -> str | None:
    """Which server (MONGODB or REDIS) ``error`` says is away, or None for any other error.

    The ORM wraps pymongo's errors in Django's DatabaseError (``raise ... from``): the causes
    are followed. MongoDB: no server to select, a lost or timed-out connection, a primary
    stepping down or shutting down. Redis: a refused, lost or timed-out connection, or a
    server still loading its data; on a Redis Cluster also a master failing over (CLUSTERDOWN,
    a replica not yet promoted answering READONLY, a slot not covered) and a slot being
    moved (TRYAGAIN) once redis-py's own retries are spent.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, pymongo.errors.ConnectionFailure):
            return MONGODB
        if isinstance(error, pymongo.errors.PyMongoError) and error.timeout:
            return MONGODB
        if isinstance(error, (redis.ConnectionError, redis.TimeoutError, *_CLUSTER_IN_MOTION)):
            return REDIS
        error = error.__cause__
    return None


class Backoff:
    """Capped exponential waits between attempts at something a server outage stopped.

    ``failed`` notes a failed attempt and returns how long to wait before the next: ``first``
    seconds, doubling up to ``cap`` (+-20 %, so processes that failed together do not all come
    back together). ``succeeded`` ends the outage. The first failure and the recovery are
    logged; the attempts in between are not. Threads doing the same work (a worker's slots)
    share one, so an outage is logged once for all of them.
    """

    def __init__(
        self,
        what: str,
        *,
        first: float = 0.25,
        cap: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        random_unit: Callable[[], float] = random.random,
    ):
        self.what = what
        self.first = first
        self.cap = settings.JOBSCHEDULER_OUTAGE_BACKOFF_CAP_SECONDS if cap is None else cap
        self.clock = clock
        self.random_unit = random_unit
        self.failures = 0
        self.server: str | None = None
        self.since = 0.0
        self.retry_at = 0.0
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        """Whether the last attempt failed (an outage is under way, as far as this one knows)."""
        return self.failures > 0

    def ready(self) -> bool:
        """Whether the wait after the last failure is over (always, outside an outage)."""
        return self.clock() >= self.retry_at

    def failed(self, error: BaseException) -> float:
        """Note a failed attempt; return the seconds to wait before the next one."""
        server = unavailable(error) or "a server"
        with self._lock:
            return self._failed(server, error)

    def _failed(self, server: str, error: BaseException) -> float:
        if self.failures == 0 or server != self.server:
            if self.failures == 0:
                self.since = self.clock()
            logger.warning(
                "%s: %s unavailable; retrying with backoff until it is back",
                self.what,
                server,
                extra={"server": server, "error": _describe(error)},
            )
        self.server = server
        self.failures += 1
        delay = min(self.cap, self.first * 2.0 ** min(self.failures - 1, 32)) * (0.8 + 0.4 * self.random_unit())
        self.retry_at = self.clock() + delay
        return delay

    def succeeded(self) -> None:
        """An attempt worked: the outage, if there was one, is over."""
        if not self.failures:
            return
        with self._lock:
            self._succeeded()

    def _succeeded(self) -> None:
        if self.failures:
            logger.warning(
                "%s: %s is back",
                self.what,
                self.server,
                extra={
                    "server": self.server,
                    "outage_seconds": round(self.clock() - self.since, 1),
                    "attempts": self.failures,
                },
            )
        self.failures = 0
        self.server = None
        self.retry_at = 0.0


def _describe(error: BaseException) -> str:
    """The error that says what happened: the ORM's DatabaseError wraps pymongo's, which says it."""
    while error.__cause__ is not None and not str(error):
        error = error.__cause__
    return f"{type(error).__name__}: {error}"[:300]
