"""purge_runs: delete finished runs older than the retention period, in batches."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from jobs import services


class Command(BaseCommand):
    help = "Delete finished runs (succeeded, failed, timed out, skipped, missed) older than the retention period."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Keep runs that finished within this many days (default JOBSCHEDULER_RUN_RETENTION_DAYS).",
        )
        parser.add_argument("--batch", type=int, default=1000, help="Runs deleted per round trip.")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"] if options["days"] is not None else settings.JOBSCHEDULER_RUN_RETENTION_DAYS
        if days < 0 or options["batch"] < 1:
            raise CommandError("--days must be 0 or more and --batch at least 1.")
        before = timezone.now() - timedelta(days=days)

        def progress(done: int, total: int) -> None:
            self.stdout.write(f"deleted {done}/{total}")

        count = services.runs_purge(
            before=before, batch=options["batch"], dry_run=options["dry_run"], progress=progress
        )
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(self.style.SUCCESS(f"{verb} {count} finished runs older than {days} days"))
