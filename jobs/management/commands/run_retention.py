"""run_retention: show the runs' TTL and give it the retention the settings ask for."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs import retention


class Command(BaseCommand):
    help = (
        "Set the runs' TTL index from JOBSCHEDULER_RUN_RETENTION_DAYS and JOBSCHEDULER_RUN_RETENTION_TTL "
        "(migrate does it too); --check only says whether it is in step."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="Change nothing; exit 1 if the index is out of step.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            held = retention.held_expiry()
        except LookupError as error:
            raise CommandError(str(error)) from error
        wanted = retention.wanted_expiry()
        self.stdout.write(f"now: {retention.describe(held)}")
        if held == wanted:
            self.stdout.write(self.style.SUCCESS("in step with the settings"))
            return
        if options["check"]:
            raise CommandError(f"out of step: the settings ask for {retention.describe(wanted)}")
        retention.apply_retention()
        self.stdout.write(self.style.SUCCESS(f"set: {retention.describe(wanted)}"))
