"""Put N no-op tasks on a peer's queue through its public API: ``python -m peers.enqueue PEER N``.

Run as a process of its own that exits before the workers start, so nothing of the producer
(Celery's result subscriptions, say) stays connected while they are measured. Prints the seconds
the enqueueing took.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

TASK = "peers.noop.hello"


def celery(count: int) -> None:
    from peers.exec_celery import hello

    for index in range(count):
        hello.delay(str(index))


def rq(count: int) -> None:
    from redis import Redis
    from rq import Queue

    queue = Queue(connection=Redis.from_url(os.environ["BENCH_REDIS_URL"]))
    for index in range(count):
        queue.enqueue(TASK, str(index))


def django_q2(count: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peers.django_settings")
    import django

    django.setup()
    from django_q.tasks import async_task

    for index in range(count):
        async_task(TASK, str(index))


PEERS: dict[str, Callable[[int], None]] = {"celery": celery, "rq": rq, "django-q2": django_q2}

if __name__ == "__main__":
    started = time.perf_counter()
    PEERS[sys.argv[1]](int(sys.argv[2]))
    print(f"{time.perf_counter() - started:.3f}")
