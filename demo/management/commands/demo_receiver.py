"""demo_receiver: serve the demo's webhook receiver (demo.receiver) on 127.0.0.1 until SIGTERM or Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.receiver import DEFAULT_PORT, DEMO_SECRET, HOST, PATH, Receiver, serve


class Command(BaseCommand):
    help = "Receive webhooks on 127.0.0.1 and check their Standard Webhooks signatures (the demo's receiver)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--port",
            type=int,
            default=int(os.environ.get("DEMO_RECEIVER_PORT") or DEFAULT_PORT),
            help=f"Port on 127.0.0.1 (default $DEMO_RECEIVER_PORT, else {DEFAULT_PORT}; 0 picks a free one).",
        )
        parser.add_argument(
            "--secret",
            action="append",
            help="Signing secret (default: the demo job's, see seed_demo); repeat it to accept old and new ones.",
        )
        parser.add_argument("--path", default=PATH, help=f"Path deliveries go to (default {PATH}).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            secrets = options["secret"] or [DEMO_SECRET]
            receiver = Receiver(options["port"], secret=secrets, out=sys.stdout, path=options["path"])
        except ValueError as exc:
            raise CommandError(f"--secret: {exc}") from exc
        except OSError as exc:
            raise CommandError(f"cannot listen on {HOST}:{options['port']}: {exc.strerror or exc}") from exc

        def request_stop(signum: int, frame: Any) -> None:
            # shutdown() waits for serve_forever to return: not from the thread running it.
            threading.Thread(target=receiver.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        serve(receiver)
