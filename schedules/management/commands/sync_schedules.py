"""sync_schedules: rebuild the Redis mirror from MongoDB and report what was repaired."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from schedules import engine
from schedules.due_index import get_due_index


class Command(BaseCommand):
    help = "Repair the Redis mirror from MongoDB (after Redis lost data, or to check for drift)."

    def handle(self, *args: Any, **options: Any) -> None:
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
