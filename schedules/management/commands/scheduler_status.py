"""scheduler_status: the live schedulers and the state of the due index, for operators."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from jobscheduler.coordination import SCHEDULERS, WORKERS, Coordination
from jobscheduler.epoch import from_epoch_ms
from schedules.due_index import get_due_index


class Command(BaseCommand):
    help = "List live run_scheduler processes (heartbeats) and the due index."

    def handle(self, *args: Any, **options: Any) -> None:
        index = get_due_index()
        coordination = Coordination(index.keyspace)
        beats = coordination.beats(SCHEDULERS)
        self.stdout.write(f"{len(beats)} scheduler(s) alive")
        for name, info in sorted(beats.items()):
            age = time.time() - info["beat"]
            where = f"host={info.get('host', '?')}  pid={info['pid']}  version={info.get('version', '?')}"
            self.stdout.write(f"  {name}  {where}  fired={info['fired']}  last beat {age:.1f}s ago")
        workers = coordination.beats(WORKERS)
        self.stdout.write(f"{len(workers)} worker(s) alive")
        for name, info in sorted(workers.items()):
            age = time.time() - info["beat"]
            details = "  ".join(f"{key}={value}" for key, value in sorted(info.items()) if key != "beat")
            self.stdout.write(f"  {name}  {details}  last beat {age:.1f}s ago")
        sizes = index.sizes()
        in_streams = index.runqueue.lengths()
        earliest = index.earliest_due_ms()
        self.stdout.write(
            f"due index: {sizes['due']} schedule(s) waiting, {sizes['work']} needing Python, "
            f"{in_streams} dispatched entr(y/ies) in streams"
        )
        if earliest is not None:
            self.stdout.write(f"earliest due: {from_epoch_ms(earliest).isoformat()}")
        self.stdout.write(f"mirror reconciled: {'yes' if index.is_reconciled() else 'NO (run sync_schedules)'}")
