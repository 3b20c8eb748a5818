"""The Celery worker's tasks module of bench/celery_switch.py: one task that notes its receipt.

``celery -A celery_receiver worker`` (bench/ on the path). Each execution appends
``<receipt µs> <task id> <key>`` to a file per process (BENCH_RECEIPTS): beat's messages carry
the entry's key as their argument, ours none (the task id is the fire key, which holds the
occurrence's nominal time).
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

app = Celery("bench-receiver", broker=os.environ.get("BENCH_BROKER"))
app.conf.update(
    worker_hijack_root_logger=False,
    worker_enable_remote_control=False,
    task_ignore_result=True,
    worker_prefetch_multiplier=256,
)
_fd: int | None = None


@app.task(bind=True, name="bench.receive", ignore_result=True)
def receive(self: Any, key: str = "") -> None:
    global _fd
    if _fd is None:
        path = f"{os.environ['BENCH_RECEIPTS']}/receipts-{os.getpid()}.log"
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_fd, b"%d %s %s\n" % (time.time_ns() // 1000, self.request.id.encode(), (key or "-").encode()))
