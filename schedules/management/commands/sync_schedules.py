"""sync_schedules: apply the schedules declared in code, rebuild the Redis mirror from MongoDB, report both."""

from __future__ import annotations

import time
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from schedules import engine
from schedules.due_index import get_due_index
from schedules.sync_declared import sync_declared_schedules


class Command(BaseCommand):
    help = (
        "Bring the schedules declared in code into MongoDB (created, updated, drift undone, paused when gone), "
        "then repair the Redis mirror from MongoDB (after Redis lost data, or to check for drift)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--prune-orphans",
            action="store_true",
            help="Delete (with their run history) the jobs of schedules no longer declared in code, instead of "
            "leaving them paused.",
        )
        parser.add_argument(
            "--skip-declared", action="store_true", help="Leave the schedules declared in code alone; only the mirror."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["skip_declared"]:
            self._sync_declared(prune=options["prune_orphans"])
        started = time.monotonic()
        last_shown = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last_shown
            if time.monotonic() - last_shown >= 1 or done == total:
                last_shown = time.monotonic()
                self.stdout.write(f"checked {done}/{total} schedules")

        report = engine.reconcile(get_due_index(), timezone.now(), progress=progress)
        self.stdout.write(
            self.style.SUCCESS(
                f"done in {time.monotonic() - started:.1f}s: checked {report['checked']}, added {report['added']}, "
                f"updated {report['updated']}, removed {report['removed']}"
            )
        )

    def _sync_declared(self, *, prune: bool) -> None:
        try:
            report = sync_declared_schedules(prune=prune)
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        for line in report.lines():
            style = self.style.WARNING if line.startswith(("WARNING", "skipped")) else self.style.NOTICE
            self.stdout.write(self.style.ERROR(line) if line.startswith("ERROR") else style(line))
        unchanged = len(report.unchanged)
        self.stdout.write(f"declared in code: {unchanged} in step" + ("" if report.changed else ", nothing to change"))
        if report.errors:
            raise CommandError(f"{len(report.errors)} schedule(s) declared in code could not be saved (see above).")
