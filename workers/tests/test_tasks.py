"""Django Tasks on our workers (jobs.tasks_backend): the Tasks contract, driven step by step.

Enqueued through the public API (``task.enqueue``), read and run by a real worker's steps with a
real run process, results read back with ``get_result`` / ``refresh``. The same through real
``run_worker`` processes is in test_tasks_processes.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.utils import timezone

from demo import tasks as demo_tasks
from jobs.models import Job, Run
from jobs.runqueue import RunQueue
from jobs.services import TASKS_OWNER, job_update
from jobs.tasks_api import (
    InvalidTaskError,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task,
    task_backends,
)
from jobs.tasks_backend import RunFailed, RunQueueBackend, configured_queues
from workers import children
from workers.children import Slot
from workers.handler import Handled, handle
from workers.worker import Worker, WorkerOptions

BACKEND = "jobs.tasks_backend.RunQueueBackend"


@task
def defined_outside_a_tasks_module() -> None:
    """A Task the backend refuses to run: it is not in an installed app's tasks module."""


@pytest.fixture(scope="module")
def slot(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Slot]:
    with django_db_blocker.unblock():
        shared = Slot(children.child_env(), output_limit=2000)
    yield shared
    shared.close()


@pytest.fixture
def worker(runqueue: RunQueue) -> Worker:
    runqueue.ensure_groups()
    options = WorkerOptions(concurrency=1, lookup_cache_seconds=0)
    return Worker(runqueue, name="w1", options=options, random_unit=lambda: 0.5)


def run_next(worker: Worker, slot: Slot) -> Handled:
    entries = worker.read(1)
    assert len(entries) == 1, "one entry on the streams"
    return handle(worker, entries[0], slot)


def test_capabilities_say_exactly_what_is_supported() -> None:
    backend = task_backends["default"]
    assert isinstance(backend, RunQueueBackend)
    assert (backend.supports_defer, backend.supports_async_task, backend.supports_get_result) == (True, True, True)
    assert backend.supports_priority is False
    with pytest.raises(InvalidTaskError, match="priority"):
        task(priority=5)(demo_tasks.hello.func)


@pytest.mark.django_db
def test_enqueue_is_a_manual_run_of_the_tasks_job_recorded_pending(runqueue: RunQueue) -> None:
    result = demo_tasks.hello.enqueue(name="ada")
    assert result.status == TaskResultStatus.READY and result.kwargs == {"name": "ada"}
    (run,) = Run.objects.filter(fire_key=result.id)
    assert (run.status, run.trigger, run.attempt) == ("pending", "manual", 1)
    assert run.target == {"task": "demo.tasks.hello", "args": [], "kwargs": {"name": "ada"}}
    job = Job.objects.get(pk=run.job_id)
    assert (job.name, job.target, job.target_type) == ("demo.tasks.hello", {"task": "demo.tasks.hello"}, "python")
    assert job.description == "The demo job: says hello, so a newcomer sees a run succeed."
    owner = User.objects.get(pk=job.owner_id)
    assert owner.username == TASKS_OWNER and not owner.is_active and not owner.has_usable_password()
    # One job per Task, whatever the number of enqueues; each enqueue its own run.
    second = demo_tasks.hello.enqueue()
    assert second.id != result.id and Run.objects.get(fire_key=second.id).job_id == job.pk
    assert Job.objects.filter(name="demo.tasks.hello").count() == 1
    assert runqueue.lengths() == 2
    assert demo_tasks.hello.get_result(result.id).status == TaskResultStatus.READY


@pytest.mark.django_db
def test_a_worker_runs_it_and_the_result_has_the_return_value(worker: Worker, slot: Slot) -> None:
    result = demo_tasks.echo.enqueue(1, "two", flag=True)
    assert run_next(worker, slot) == Handled.SUCCEEDED
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.is_finished
    assert result.return_value == {"args": [1, "two"], "kwargs": {"flag": True}}
    assert result.worker_ids == ["w1"] and result.attempts == 1 and result.errors == []
    assert result.started_at is not None and result.finished_at is not None
    assert result.started_at == result.last_attempted_at
    # The run in the API's terms, too: the output shows the value, the record keeps it whole.
    run = Run.objects.get(fire_key=result.id)
    assert run.status == "succeeded" and run.return_value == {"args": [1, "two"], "kwargs": {"flag": True}}


@pytest.mark.django_db
def test_errors_carry_the_exception_class_and_traceback(worker: Worker, slot: Slot) -> None:
    result = demo_tasks.fail.enqueue(message="boom")
    assert run_next(worker, slot) == Handled.FAILED
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    (error,) = result.errors
    assert error.exception_class is RuntimeError
    assert error.traceback.rstrip().endswith("RuntimeError: boom")
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018


@pytest.mark.django_db
def test_a_return_value_json_cannot_hold_fails_the_task(worker: Worker, slot: Slot) -> None:
    result = demo_tasks.unserializable.enqueue()
    assert run_next(worker, slot) == Handled.FAILED
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.errors[0].exception_class is TypeError


@pytest.mark.django_db
def test_retries_follow_the_tasks_job_and_the_context_has_the_attempt(worker: Worker, slot: Slot) -> None:
    first = demo_tasks.attempt.enqueue(fail_before=2)
    # The Task's job holds its retry settings (created with the backend's OPTIONS; staff edit them).
    job = Job.objects.get(name="demo.tasks.attempt")
    job_update(job, max_attempts=3, retry_backoff_seconds=0)
    assert run_next(worker, slot) == Handled.RETRY
    first.refresh()
    assert first.status == TaskResultStatus.READY  # failed once, another attempt to come
    assert [error.exception_class for error in first.errors] == [ValueError]
    worker.release_due()
    assert run_next(worker, slot) == Handled.SUCCEEDED
    first.refresh()
    assert first.status == TaskResultStatus.SUCCESSFUL
    assert first.return_value == {"attempt": 2, "result_id": first.id}
    assert first.attempts == 2 and first.worker_ids == ["w1", "w1"]
    assert list(Run.objects.filter(fire_key=first.id).order_by("attempt").values_list("attempt", "status")) == [
        (1, "failed"),
        (2, "succeeded"),
    ]


@pytest.mark.django_db
def test_a_failure_without_an_exception_of_the_tasks_own_is_named(worker: Worker, slot: Slot) -> None:
    result = demo_tasks.sleep.enqueue(seconds=30)
    job_update(Job.objects.get(name="demo.tasks.sleep"), timeout_seconds=1)
    assert run_next(worker, slot) == Handled.TIMED_OUT
    result.refresh()
    (error,) = result.errors
    assert issubclass(error.exception_class, RunFailed) and issubclass(error.exception_class, TimeoutError)
    assert "Timed out after 1s" in error.traceback


@pytest.mark.django_db
def test_async_tasks_are_awaited_in_the_run_process(worker: Worker, slot: Slot) -> None:
    result = demo_tasks.greet_later.enqueue("ada", delay=0.05)
    assert run_next(worker, slot) == Handled.SUCCEEDED
    result.refresh()
    assert result.return_value == "hello later, ada"


@pytest.mark.django_db(transaction=True)
def test_aenqueue_and_aget_result_work_from_async_code(worker: Worker, slot: Slot) -> None:
    async def enqueue() -> str:
        return (await demo_tasks.hello.aenqueue(name="async")).id

    result_id = asyncio.run(enqueue())
    assert run_next(worker, slot) == Handled.SUCCEEDED

    async def read() -> Any:
        return (await demo_tasks.hello.aget_result(result_id)).return_value

    assert asyncio.run(read()) == "hello, async"


@pytest.mark.django_db
def test_run_after_waits_in_the_delayed_set_until_due(worker: Worker, slot: Slot, runqueue: RunQueue) -> None:
    later = timezone.now() + timedelta(hours=1)
    result = demo_tasks.hello.using(run_after=later).enqueue(name="later")
    assert runqueue.lengths() == 0 and worker.read(1) == []
    run = Run.objects.get(fire_key=result.id)
    assert (run.status, run.nominal_time) == ("pending", later.replace(microsecond=later.microsecond // 1000 * 1000))
    assert demo_tasks.hello.get_result(result.id).status == TaskResultStatus.READY
    assert runqueue.release_delayed(int(later.timestamp() * 1000) - 1000) == 0
    assert runqueue.release_delayed(int(later.timestamp() * 1000)) == 1
    assert run_next(worker, slot) == Handled.SUCCEEDED
    assert demo_tasks.hello.get_result(result.id).return_value == "hello, later"
    # Released once: another look finds nothing more.
    assert runqueue.release_delayed(int(later.timestamp() * 1000) + 60_000) == 0


TWO_QUEUES = {"default": {"BACKEND": BACKEND, "QUEUES": ["default", "emails"]}}


@pytest.mark.django_db
def test_queues_have_streams_of_their_own_and_workers_serve_the_ones_named(slot: Slot, keyspace: Any) -> None:
    with override_settings(TASKS=TWO_QUEUES):
        assert configured_queues() == ["default", "emails"]
        email = demo_tasks.hello.using(queue_name="emails").enqueue(name="mail")
        plain = demo_tasks.hello.enqueue(name="plain")
        with pytest.raises(InvalidTaskError, match="Queue 'nowhere'"):
            demo_tasks.hello.using(queue_name="nowhere").enqueue()
    default_only = Worker(RunQueue(keyspace), name="d", options=WorkerOptions(concurrency=1))
    emails_only = Worker(RunQueue(keyspace, queues=["emails"]), name="e", options=WorkerOptions(concurrency=1))
    for each in (default_only, emails_only):
        each.runqueue.ensure_groups()
    assert [entry.fire_key for entry in emails_only.read(10)] == [email.id]
    assert [entry.fire_key for entry in default_only.read(10)] == [plain.id]
    both = RunQueue(keyspace, queues=["emails", "default"])
    assert both.queues == ("default", "emails")  # the default queue's lanes first: lane = shard
    assert both.lanes == 2 * keyspace.shards


@pytest.mark.django_db
def test_task_runs_redis_lost_come_back_on_their_queue_and_at_their_time(slot: Slot, runqueue: RunQueue) -> None:
    from schedules import engine
    from schedules.due_index import get_due_index

    later = timezone.now() + timedelta(hours=1)
    later_ms = int(later.timestamp() * 1000)
    with override_settings(TASKS=TWO_QUEUES):
        email = demo_tasks.hello.using(queue_name="emails").enqueue(name="mail")
        deferred = demo_tasks.hello.using(queue_name="emails", run_after=later).enqueue(name="later")
        plain = demo_tasks.hello.enqueue(name="plain")
    assert Run.objects.get(fire_key=email.id).queue == "emails"
    for key in runqueue.client.scan_iter(match=f"*{runqueue.keyspace.prefix}*"):
        runqueue.client.delete(key)  # Redis lost every key of this test (a restart without persistence)

    assert engine.reconcile(get_due_index(), timezone.now())["requeued"] == 3
    default_only = Worker(RunQueue(runqueue.keyspace), name="d", options=WorkerOptions(concurrency=1))
    emails_only = Worker(RunQueue(runqueue.keyspace, queues=["emails"]), name="e", options=WorkerOptions(concurrency=1))
    for each in (default_only, emails_only):
        each.runqueue.ensure_groups()
    assert [entry.fire_key for entry in default_only.read(10)] == [plain.id]
    entries = emails_only.read(10)
    assert [entry.fire_key for entry in entries] == [email.id]  # on its own queue, not the default one
    assert handle(emails_only, entries[0], slot) == Handled.SUCCEEDED
    with override_settings(TASKS=TWO_QUEUES):
        result = demo_tasks.hello.get_result(email.id)
    assert (result.return_value, result.worker_ids, result.task.queue_name) == ("hello, mail", ["e"], "emails")
    assert demo_tasks.hello.get_result(email.id).task.queue_name == "default"  # "emails" no longer configured
    # The deferred one waits in its queue's delayed set for its run_after, as it did before.
    assert emails_only.runqueue.release_delayed(later_ms - 1000) == 0
    assert emails_only.runqueue.release_delayed(later_ms) == 1
    assert [entry.fire_key for entry in emails_only.read(10)] == [deferred.id]


@pytest.mark.django_db
def test_only_tasks_in_tasks_modules_and_json_arguments_are_accepted() -> None:
    with pytest.raises(InvalidTaskError, match="not in an installed app's tasks module"):
        defined_outside_a_tasks_module.enqueue()
    with pytest.raises(TypeError):
        demo_tasks.echo.enqueue(when=timezone.now())
    with pytest.raises(InvalidTaskError, match="at most"):
        demo_tasks.echo.enqueue(blob="x" * 70_000)
    with pytest.raises(TaskResultDoesNotExist):
        demo_tasks.hello.get_result("manual:nothing:here")
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_backend_options_are_the_new_jobs_settings() -> None:
    options = {"MAX_ATTEMPTS": 4, "RETRY_BACKOFF_SECONDS": 2, "TIMEOUT_SECONDS": 9, "OWNER": "task-runner"}
    with override_settings(TASKS={"default": {"BACKEND": BACKEND, "OPTIONS": options}}):
        assert isinstance(task_backends["default"], RunQueueBackend)
        demo_tasks.hello.enqueue()
    job = Job.objects.get(name="demo.tasks.hello")
    assert (job.max_attempts, job.retry_backoff_seconds, job.timeout_seconds) == (4, 2, 9)
    assert User.objects.get(pk=job.owner_id).username == "task-runner"


@pytest.mark.django_db(transaction=True)
def test_on_commit_has_no_transaction_to_wait_for() -> None:
    from django.db import transaction

    enqueued: list[str] = []
    with transaction.atomic():
        transaction.on_commit(lambda: enqueued.append(demo_tasks.hello.enqueue().id))
        inside = list(enqueued)
    # atomic() does nothing on this backend: the callback ran at once, inside the block.
    assert len(enqueued) == 1 and inside == enqueued


@pytest.mark.django_db(transaction=True)
def test_on_commit_waits_for_django_mongodb_backends_own_atomic() -> None:
    from django.db import transaction
    from django_mongodb_backend import transaction as mongo_transaction

    enqueued: list[str] = []
    with mongo_transaction.atomic():
        transaction.on_commit(lambda: enqueued.append(demo_tasks.hello.enqueue().id))
        assert enqueued == []  # held until the MongoDB transaction commits
    assert len(enqueued) == 1
    with pytest.raises(RuntimeError), mongo_transaction.atomic():
        transaction.on_commit(lambda: enqueued.append(demo_tasks.hello.enqueue().id))
        raise RuntimeError("rolled back")
    assert len(enqueued) == 1  # dropped with the rollback
    assert list(Run.objects.values_list("fire_key", flat=True)) == enqueued
