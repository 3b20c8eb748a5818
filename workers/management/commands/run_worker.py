"""run_worker: execute dispatched runs until stopped; SIGTERM finishes the runs in progress first."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.runqueue import RunQueue
from jobs.tasks_backend import configured_queues
from workers import loop
from workers.worker import Worker, WorkerOptions


class Command(BaseCommand):
    help = "Execute dispatched runs. Any number may run at once; a run held by a dead worker is taken over."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency", type=int, default=None, help="Runs at once (default JOBSCHEDULER_WORKER_CONCURRENCY)."
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=None,
            help="Run processes for python and command targets (default JOBSCHEDULER_WORKER_PROCESSES).",
        )
        parser.add_argument("--name", default=None, help="Consumer and heartbeat name (default host:pid); unique.")
        parser.add_argument("--metrics-port", type=int, default=0, help="Serve Prometheus metrics on this port.")
        parser.add_argument(
            "--queue",
            default=None,
            help="Comma-separated queues to serve (default: every queue in TASKS QUEUES). Scheduled and "
            "run-now runs are on the 'default' queue.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["concurrency"] is not None and not 1 <= options["concurrency"] <= 256:
            raise CommandError("--concurrency must be between 1 and 256.")
        if options["processes"] is not None and not 1 <= options["processes"] <= 64:
            raise CommandError("--processes must be between 1 and 64.")
        queues = [name.strip() for name in (options["queue"] or "").split(",") if name.strip()] or configured_queues()
        try:
            runqueue = RunQueue(queues=queues)
        except ValueError as error:
            raise CommandError(f"--queue: {error}") from error
        stop = threading.Event()
        worker = Worker(
            runqueue,
            name=options["name"],
            options=WorkerOptions.from_settings(concurrency=options["concurrency"], processes=options["processes"]),
        )

        def request_stop(signum: int, frame: Any) -> None:
            if stop.is_set():  # asked twice: stop now; what runs is taken over by other workers
                os._exit(128 + signum)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        if options["metrics_port"]:
            from prometheus_client import start_http_server

            start_http_server(options["metrics_port"], addr="127.0.0.1")
        loop.run(worker, stop)
