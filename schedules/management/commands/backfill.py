"""backfill: dispatch a schedule's past occurrences that have no run record, with a progress bar.

It makes the backfill (as POST /api/schedules/{id}/backfill/ does) and runs it here, or
follows it while a worker runs it; --watch follows one made elsewhere, --cancel stops one.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from jobs.runqueue import RunQueue
from jobscheduler.api import parse_time
from schedules import backfills, selectors
from schedules.models import Backfill, Schedule

BAR_WIDTH = 30
FINISHED = (Backfill.Status.DONE, Backfill.Status.CANCELLED, Backfill.Status.FAILED)


def progress_line(backfill: Backfill) -> str:
    """[##########....................] 40/120 (33%) dispatched 35, recorded already 5 - running"""
    total = backfill.total or 0
    done = min(backfill.handled, total)
    filled = BAR_WIDTH * done // total if total else BAR_WIDTH
    share = f"{100 * done // total}%" if total else "100%"
    return (
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} ({share}) "
        f"dispatched {backfill.dispatched}, recorded already {backfill.already_recorded} - {backfill.status}"
    )


class Command(BaseCommand):
    help = (
        "Dispatch a schedule's occurrences between --start and --end that have no run record yet, at a bounded "
        "rate, showing progress; the same backfill again dispatches nothing new."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("schedule", nargs="?", help="The schedule's id.")
        parser.add_argument("--start", help="The first instant, ISO 8601 with offset.")
        parser.add_argument("--end", help="The last instant (included), ISO 8601 with offset.")
        parser.add_argument(
            "--overlap", default="allow", choices=Schedule.Overlap.values, help="For the backfilled runs."
        )
        parser.add_argument("--rate", type=float, help="At most this many a second (default: the maximum).")
        parser.add_argument("--watch", metavar="BACKFILL", help="Follow a backfill's progress until it ends.")
        parser.add_argument("--cancel", metavar="BACKFILL", help="Cancel a backfill.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["cancel"]:
            backfill = self._backfill(options["cancel"])
            self.stdout.write(progress_line(backfills.backfill_cancel(backfill)))
            return
        if options["watch"]:
            self._follow(self._backfill(options["watch"]))
            return
        if not (options["schedule"] and options["start"] and options["end"]):
            raise CommandError("Give a schedule id with --start and --end (or --watch / --cancel a backfill).")
        schedule = selectors.schedule_by_id(options["schedule"])
        if schedule is None:
            raise CommandError(f"No schedule has the id {options['schedule']!r}.")
        try:
            backfill, created = backfills.backfill_request(
                schedule,
                start=parse_time(options["start"]),
                end=parse_time(options["end"]),
                overlap_policy=options["overlap"],
                rate_per_second=options["rate"],
            )
        except (ValueError, ValidationError) as error:
            raise CommandError(" ".join(getattr(error, "messages", [str(error)]))) from error
        self.stdout.write(f"backfill {backfill.pk} ({'new' if created else 'the same request made before'})")
        owner = f"backfill-command@{socket.gethostname()}:{os.getpid()}"
        claimed = backfills.backfill_claim(owner, timezone.now(), backfill_id=backfill.pk)
        if claimed is None:  # running elsewhere (a worker), or finished
            self._follow(backfill)
            return
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        finished = backfills.backfill_run(
            claimed, runqueue=RunQueue(), owner=owner, sleep=stop.wait, progress=self._draw
        )
        self._draw(finished, final=True)
        if stop.is_set() and finished.status == Backfill.Status.RUNNING:
            self.stdout.write("stopped: a worker takes it up again from where it was once the lease lapses (30 s)")

    def _backfill(self, backfill_id: str) -> Backfill:
        found = selectors.backfill_by_id(backfill_id)
        if found is None:
            raise CommandError(f"No backfill has the id {backfill_id!r}.")
        return found

    def _follow(self, backfill: Backfill) -> None:
        while backfill.status not in FINISHED:
            self._draw(backfill)
            time.sleep(1)
            backfill.refresh_from_db()
        self._draw(backfill, final=True)

    def _draw(self, backfill: Backfill, final: bool = False) -> None:
        line = progress_line(backfill)
        if self.stdout.isatty() and not final:
            self.stdout.write("\r" + line, ending="")
            self.stdout.flush()
        else:
            self.stdout.write(("\r" if self.stdout.isatty() else "") + line)
