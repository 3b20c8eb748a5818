"""Django Tasks through real run_worker processes: the Tasks contract end to end.

``enqueue`` here, in the test's process (as a web app would); two workers serve one queue each
(``--queue``); results are read back with ``get_result`` / ``refresh`` from the run records.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from demo import tasks as demo_tasks
from jobs.tasks_api import TaskResult, TaskResultStatus
from jobscheduler.coordination import Coordination
from workers.tests.test_processes import start, wait_for_workers, wait_until  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

TASKS = {
    "default": {
        "BACKEND": "jobs.tasks_backend.RunQueueBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {"MAX_ATTEMPTS": 2, "RETRY_BACKOFF_SECONDS": 0, "TIMEOUT_SECONDS": 30},
    }
}


@pytest.fixture
def process_env(process_env: dict[str, str]) -> dict[str, str]:
    return {**process_env, "JOBSCHEDULER_WORKER_TAKEOVER_SECONDS": "1.5"}


def finished(result: TaskResult[Any]) -> TaskResult[Any] | None:
    result.refresh()
    return result if result.is_finished else None


def test_enqueued_tasks_run_on_the_workers_serving_their_queue(
    user: Any,
    start: Callable[..., Any],  # noqa: F811 (the fixture imported above)
    coordination: Coordination,
) -> None:
    start("run_worker", "--name", "wd", "--queue", "default", "--concurrency", "2", "--processes", "2")
    start("run_worker", "--name", "we", "--queue", "emails", "--concurrency", "1", "--processes", "1")
    wait_for_workers(coordination, "wd", "we")
    with override_settings(TASKS=TASKS):
        run_after = timezone.now() + timedelta(seconds=1.5)
        results: dict[str, TaskResult[Any]] = {
            "hello": demo_tasks.hello.enqueue(name="worker"),
            "email": demo_tasks.echo.using(queue_name="emails").enqueue("to@example.com", subject="hi"),
            "async": demo_tasks.greet_later.enqueue("ada"),
            "fail": demo_tasks.fail.enqueue(message="no luck"),
            "retried": demo_tasks.attempt.enqueue(fail_before=2),
            "later": demo_tasks.hello.using(run_after=run_after).enqueue(name="later"),
        }
        enqueued_at = time.monotonic()
        for name, result in results.items():
            wait_until(functools.partial(finished, result), 60, f"the {name} task to finish")

    hello, email = results["hello"], results["email"]
    assert (hello.status, hello.return_value, hello.worker_ids) == (
        TaskResultStatus.SUCCESSFUL,
        "hello, worker",
        ["wd"],
    )
    assert email.worker_ids == ["we"]
    assert email.return_value == {"args": ["to@example.com"], "kwargs": {"subject": "hi"}}
    assert results["async"].return_value == "hello later, ada"

    failed = results["fail"]
    assert failed.status == TaskResultStatus.FAILED and failed.attempts == 2  # MAX_ATTEMPTS: 2
    assert [error.exception_class for error in failed.errors] == [RuntimeError, RuntimeError]
    assert failed.errors[0].traceback.rstrip().endswith("RuntimeError: no luck")

    retried = results["retried"]
    assert retried.status == TaskResultStatus.SUCCESSFUL and retried.attempts == 2
    assert retried.return_value == {"attempt": 2, "result_id": retried.id}
    assert [error.exception_class for error in retried.errors] == [ValueError]

    later = results["later"]
    assert later.return_value == "hello, later"
    assert later.started_at is not None and later.started_at >= run_after.replace(microsecond=0)
    print(f"all six finished {time.monotonic() - enqueued_at:.1f}s after enqueueing")
