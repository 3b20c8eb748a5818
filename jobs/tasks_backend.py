"""A Django Tasks backend: ``task.enqueue()`` makes a manual run on our workers, recorded in MongoDB.

``TASKS = {"default": {"BACKEND": "jobs.tasks_backend.RunQueueBackend"}}`` (the project's
settings). Each enqueue is one manual run of the Task's job (one job per Task, named by its
import path, owned by the inactive ``django-tasks`` user, created at the first enqueue with the
backend's OPTIONS and edited in the admin like any job): the entry carries the Task's path and
arguments, and the run records them. So what the admin, the API, retries, takeovers and
``purge_runs`` do for runs, they do for enqueued Tasks.

- **Exactly once per enqueue.** The TaskResult's id is the run's fire key, new per enqueue;
  the unique (fire key, attempt) index records each attempt once however often Redis replays
  its entry, and workers never run a recorded attempt again (workers.handler).
- **run_after** puts the entry in its shard's delayed set, the one retries wait in: any
  worker's ``release_due`` moves it onto the stream in one Lua step (released once), and it
  is kept in Redis across worker and scheduler restarts. The due index is for schedules.
- **Queues.** ``QUEUES`` lists the names Tasks may use; each has its own streams, and
  ``run_worker --queue a,b`` serves only those (default: every queue in ``QUEUES``).
- **Priority** is not supported (``supports_priority = False``): Django then refuses Tasks
  declared with another priority than 0. Entries run in stream order; use a queue and
  dedicated workers for urgent Tasks.
- **Retries** follow the Task's job (``max_attempts``, ``retry_backoff_seconds``,
  ``timeout_seconds``): the Task contract has no retry setting, so the job's are the Task's,
  from OPTIONS ``MAX_ATTEMPTS`` (default 1), ``RETRY_BACKOFF_SECONDS``, ``TIMEOUT_SECONDS``
  until staff change them. ``context.attempt`` (``takes_context``) is the attempt number.
- **Transactions.** Django's ``atomic()`` does nothing on this MongoDB backend, so there is
  nothing to wait for: ``enqueue`` dispatches at once, and ``transaction.on_commit(lambda:
  task.enqueue(...))`` runs the enqueue immediately too. Enqueue after the writes the Task
  needs to see, not before.
- **Trust.** ``enqueue`` is called by code, not a user: no permission applies (creating python
  jobs in the admin or API still needs ``jobs.create_python_jobs``). The Task must live in an
  installed app's ``tasks`` module, as job targets must, so a run process imports nothing else.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, TypeVar

from django.conf import settings
from django.utils import timezone
from typing_extensions import ParamSpec

from jobs import selectors, services
from jobs.models import Run
from jobs.runqueue import DEFAULT_QUEUE
from jobs.targets import python
from jobs.tasks_api import (
    BaseTaskBackend,
    InvalidTaskError,
    Task,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    normalize_json,
    task_enqueued,
)

T = TypeVar("T")
P = ParamSpec("P")

MAX_ARGUMENT_CHARS = 65_536  # a Task's arguments as JSON: they travel in the stream entry


class RunFailed(Exception):
    """An attempt failed without an exception of the Task's own: its process died, its worker
    was lost, or the Task could not be run (the run's error says which)."""


class RunTimedOut(RunFailed, TimeoutError):
    """An attempt ran past its job's timeout; its process was killed."""


_RUN_TO_RESULT = {
    Run.Status.PENDING: TaskResultStatus.READY,
    Run.Status.RUNNING: TaskResultStatus.RUNNING,
    Run.Status.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    Run.Status.FAILED: TaskResultStatus.FAILED,
    Run.Status.TIMED_OUT: TaskResultStatus.FAILED,
    Run.Status.SKIPPED: TaskResultStatus.FAILED,
    Run.Status.MISSED: TaskResultStatus.FAILED,
}


class RunQueueBackend(BaseTaskBackend):
    supports_defer = True
    supports_async_task = True  # run to completion in the run process (asgiref's async_to_sync)
    supports_get_result = True
    supports_priority = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = self.options
        self.owner_name = str(options.get("OWNER", services.TASKS_OWNER))
        self.job_defaults = {
            "max_attempts": int(options.get("MAX_ATTEMPTS", 1)),
            "retry_backoff_seconds": int(options.get("RETRY_BACKOFF_SECONDS", 10)),
            "timeout_seconds": int(options.get("TIMEOUT_SECONDS", 300)),
        }

    def enqueue(self, task: Task[P, T], args: P.args, kwargs: P.kwargs) -> TaskResult[T]:  # type: ignore[valid-type]
        self.validate_task(task)
        path = task.module_path
        try:
            found = python.resolve(path)
        except python.UnknownTask as error:
            raise InvalidTaskError(str(error)) from None
        if found.func is not task.func:
            raise InvalidTaskError(f"{path!r} names another Task than the one enqueued.")
        arguments = {"args": normalize_json(list(args)), "kwargs": normalize_json(dict(kwargs))}
        if len(json.dumps(arguments)) > MAX_ARGUMENT_CHARS:
            raise InvalidTaskError(f"A Task's arguments are at most {MAX_ARGUMENT_CHARS} characters of JSON.")
        job = services.task_job(path, owner=services.task_owner(self.owner_name), defaults=self.job_defaults)
        fire_key = services.run_enqueue(
            job, target={"task": path, **arguments}, queue=task.queue_name, run_after=task.run_after
        )
        result: TaskResult[T] = TaskResult(
            task=task,
            id=fire_key,
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=arguments["args"],
            kwargs=arguments["kwargs"],
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """The Task's result as its run records say: one record per attempt (jobs.models.Run)."""
        runs = selectors.attempts_of(result_id)
        first = runs[0] if runs else None
        if first is None or not isinstance(first.target, dict):
            raise TaskResultDoesNotExist(result_id)
        target = first.target
        try:
            found = python.resolve(target.get("task"))
        except python.UnknownTask as error:
            raise TaskResultDoesNotExist(f"{result_id}: {error}") from None
        if first.queue and first.queue != found.queue_name:  # enqueued with .using(queue_name=...)
            with contextlib.suppress(InvalidTaskError):  # a queue no longer in QUEUES: the Task as declared
                found = found.using(queue_name=first.queue)
        last = runs[-1]
        started = [run for run in runs if run.started_at is not None]
        status = self._status(last)
        result: TaskResult[Any] = TaskResult(
            task=found,
            id=result_id,
            status=status,
            enqueued_at=first.created_at,
            started_at=started[0].started_at if started else None,
            finished_at=last.finished_at if status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED) else None,
            last_attempted_at=started[-1].started_at if started else None,
            args=list(target.get("args") or []),
            kwargs=dict(target.get("kwargs") or {}),
            backend=self.alias,
            errors=[_error(run) for run in runs if run.status in (Run.Status.FAILED, Run.Status.TIMED_OUT)],
            worker_ids=[run.worker for run in started],
        )
        if status == TaskResultStatus.SUCCESSFUL:
            object.__setattr__(result, "_return_value", last.return_value)
        return result

    @staticmethod
    def _status(last: Run) -> TaskResultStatus:
        """A failed attempt with another to come (a retry, or a takeover of a lost one) is READY."""
        status = _RUN_TO_RESULT.get(Run.Status(last.status), TaskResultStatus.FAILED)
        if status == TaskResultStatus.FAILED and last.status in (Run.Status.FAILED, Run.Status.TIMED_OUT):
            lost = Run.LOST in last.error
            if (lost and "Given up" not in last.error) or (not lost and last.attempt < last.job.max_attempts):
                return TaskResultStatus.READY
        return status


def _error(run: Run) -> TaskError:
    default = RunTimedOut if run.status == Run.Status.TIMED_OUT else RunFailed
    path = run.exception_class or f"{default.__module__}.{default.__qualname__}"
    return TaskError(exception_class_path=path, traceback=run.error)


def configured_queues() -> list[str]:
    """The queues of every backend of this kind in ``TASKS``: what a worker serves by default."""
    path = f"{RunQueueBackend.__module__}.{RunQueueBackend.__qualname__}"
    queues: set[str] = set()
    for params in getattr(settings, "TASKS", {}).values():
        if params.get("BACKEND") == path:
            queues.update(params.get("QUEUES") or [DEFAULT_QUEUE])
    return sorted(queues or {DEFAULT_QUEUE})
