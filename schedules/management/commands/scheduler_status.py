"""scheduler_status: the live schedulers and the state of the due index, for operators."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from schedules.kinds import from_epoch_ms
from schedules.store import RedisStore, get_store


class Command(BaseCommand):
    help = "List live run_scheduler processes (heartbeats) and the due index."

    def handle(self, *args: Any, **options: Any) -> None:
        store = get_store()
        assert isinstance(store, RedisStore)
        beats = store.heartbeats()
        self.stdout.write(f"{len(beats)} scheduler(s) alive")
        for name, info in sorted(beats.items()):
            age = time.time() - info["beat"]
            self.stdout.write(f"  {name}  pid={info['pid']}  fired={info['fired']}  last beat {age:.1f}s ago")
        workers = store.beats("workers")
        self.stdout.write(f"{len(workers)} worker(s) alive")
        for name, info in sorted(workers.items()):
            age = time.time() - info["beat"]
            details = "  ".join(f"{key}={value}" for key, value in sorted(info.items()) if key != "beat")
            self.stdout.write(f"  {name}  {details}  last beat {age:.1f}s ago")
        sizes = store.index_sizes()
        earliest = store.earliest_due_ms()
        self.stdout.write(
            f"due index: {sizes['due']} schedule(s) waiting, {sizes['work']} needing Python, "
            f"{sizes['stream']} dispatched entr(y/ies) in streams"
        )
        if earliest is not None:
            self.stdout.write(f"earliest due: {from_epoch_ms(earliest).isoformat()}")
        self.stdout.write(f"mirror reconciled: {'yes' if store.is_reconciled() else 'NO (run sync_schedules)'}")
