"""A worker's backfill thread: it takes a pending backfill (or one whose runner died) and runs it.

Every worker has one; a backfill is held by one runner at a time (schedules.backfills claims
it atomically under a lease), so more workers only mean a dead runner's backfill is taken up
sooner. The pacing waits on the worker's stop event: a stopping worker leaves its backfill
to be resumed from its cursor once the lease lapses.
"""

from __future__ import annotations

import logging
import threading

from django.db import connection
from django.utils import timezone

from jobscheduler.outages import Backoff, unavailable
from schedules import backfills
from workers.worker import Worker

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0


def run_one(worker: Worker, stop: threading.Event) -> bool:
    """Claim and run one backfill; False when none waits."""
    backfill = backfills.backfill_claim(worker.name, timezone.now())
    if backfill is None:
        return False
    try:
        backfills.backfill_run(backfill, runqueue=worker.runqueue, owner=worker.name, sleep=stop.wait)
    except Exception as error:
        if unavailable(error) is not None:
            raise  # MongoDB or Redis away: the lease lapses and the backfill is taken up again
        logger.exception("backfill failed", extra={"backfill": str(backfill.pk)})
        backfills.backfill_fail(backfill, error)
    return True


def watch(worker: Worker, stop: threading.Event) -> None:
    """Run backfills as they are requested until ``stop`` is set, riding out server outages."""
    outage = Backoff(f"worker {worker.name}: running backfills")
    try:
        while not stop.wait(POLL_SECONDS):
            try:
                while not stop.is_set() and run_one(worker, stop):
                    pass
                outage.succeeded()
            except Exception as error:
                if unavailable(error) is None:
                    logger.exception("the backfill thread failed; trying again")
                else:
                    stop.wait(outage.failed(error))
    finally:
        connection.close()
