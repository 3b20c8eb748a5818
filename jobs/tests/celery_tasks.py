"""The Celery tasks a test's Celery worker runs (``celery -A jobs.tests.celery_tasks worker``).

Not a Django module: the worker imports it on its own, configured by the environment the test
gives it (broker, result backend, a Redis key prefix of the test's). Each task notes what it
received in the Redis list ``<prefix>:receipts``, so a test sees every execution, duplicates
included.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery import Celery

PREFIX = os.environ.get("JSTEST_CELERY_PREFIX", "jstest-celery")
app = Celery("jstest", broker=os.environ.get("JSTEST_CELERY_BROKER"), backend=os.environ.get("JSTEST_CELERY_BACKEND"))
app.conf.update(json.loads(os.environ.get("JSTEST_CELERY_CONFIG") or "{}"))
app.conf.update(worker_hijack_root_logger=False, worker_enable_remote_control=False, task_acks_late=False)
_receipts = redis.Redis.from_url(os.environ.get("JSTEST_CELERY_REDIS", "redis://127.0.0.1:6379/0"))


def receipts_key(prefix: str) -> str:
    return f"{prefix}:receipts"


def _note(task: Any, **extra: Any) -> None:
    request = task.request
    headers = request.headers or {}
    receipt = {
        "id": request.id,
        "task": task.name,
        "args": list(request.args or []),
        "kwargs": dict(request.kwargs or {}),
        "retries": request.retries,
        "fire_key": headers.get("jobscheduler_fire_key"),
        "attempt": headers.get("jobscheduler_attempt"),
        "headers": {name: value for name, value in headers.items() if not name.startswith("jobscheduler_")},
        "routing_key": (request.delivery_info or {}).get("routing_key"),
        **extra,
    }
    _receipts.rpush(receipts_key(PREFIX), json.dumps(receipt))


@app.task(bind=True, name="jstest.record")
def record(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    _note(self)
    return {"args": list(args), "kwargs": kwargs}


@app.task(bind=True, name="jstest.fail")
def fail(self: Any) -> None:
    _note(self)
    raise ValueError("no luck today")


@app.task(bind=True, name="jstest.retry_once", max_retries=3)
def retry_once(self: Any) -> str:
    _note(self)
    if self.request.retries == 0:
        raise self.retry(exc=RuntimeError("first try failed"), countdown=1)
    return "second try worked"


@app.task(bind=True, name="jstest.sleep")
def sleep(self: Any, seconds: float) -> str:
    _note(self)
    time.sleep(seconds)
    return f"slept {seconds}s"
