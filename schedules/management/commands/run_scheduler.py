"""run_scheduler: fire due occurrences until stopped (or once, for cron and systemd timers)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from schedules import engine
from schedules.due_index import get_due_index
from schedules.sync_declared import sync_declared_schedules

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Dispatch due occurrences. Any number may run at once; each occurrence fires once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Process what is due now, then exit.")
        parser.add_argument("--metrics-port", type=int, default=0, help="Serve Prometheus metrics on this port.")
        parser.add_argument("--name", default=None, help="Name in heartbeats (default host:pid).")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()

        def request_stop(signum: int, frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        if options["metrics_port"]:
            from prometheus_client import start_http_server

            start_http_server(options["metrics_port"], addr="127.0.0.1")
        sync_declared_at_start()
        try:
            engine.run_loop(get_due_index(), stop, once=options["once"], name=options["name"])
        except engine.SchedulerFailed as error:
            # Not 0: a supervisor (systemd Restart=on-failure, Docker restart policies) starts it again.
            raise CommandError(str(error), returncode=1) from error
        if not options["once"]:
            exit_now()


def exit_now() -> None:
    """End the process at once after a stop: the loop has done its part of the exit (the last
    copy of fired state, within its budget; the heartbeat withdrawn). Left to the interpreter,
    pymongo's exit hook waits on its monitor threads, which look at a stop every half second,
    and tearing down the heap of a Django process takes as long again on a busy machine: a
    stop would take seconds, and supervisors kill what takes too long."""
    for connection in connections.all(initialized_only=True):
        close_pool = getattr(connection, "close_pool", None)
        if close_pool is not None:
            with contextlib.suppress(Exception):
                close_pool()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def sync_declared_at_start() -> None:
    """Apply the schedules declared in this code base: a deploy starts schedulers with its code.

    Here rather than in a post_migrate receiver: a scheduler has Redis (the services mirror
    every write) and the code that will fire the schedules, and tests' database flushes (which
    send post_migrate) stay quiet. Whatever goes wrong is logged: everything else still fires.
    """
    try:
        sync_declared_schedules(wait_seconds=60)
    except Exception:
        logger.exception("could not sync the schedules declared in code")
