"""Run one target of a job and say how it went, with the job's timeout enforced for real.

Python and command targets run in a child process, because a thread cannot be stopped from
outside: a task stuck in ``time.sleep``, in a C extension or in a busy loop would hold its
worker slot for ever, and an alarm signal only interrupts the main thread between bytecodes.
So python and command runs go to long-lived children (a worker's :class:`ChildPool`), spawned
rather than forked (no database or Redis connections, and no locks held by other threads, are
inherited) and with Django set up once, not per run. The parent sends each one target at a time over a pipe
and waits up to the job's timeout; past it, the parent kills the child's process group
(SIGKILL, by the child's PID, which leads the group) and records ``timed_out``; the next run
gets a fresh child. A child that dies by itself (a crash, the OOM killer) makes a failed run.

Http targets run in the calling thread, over the process's kept-alive connections:
:func:`jobs.targets.http.deliver` bounds every step (resolving, connecting, each read, the
whole exchange) by the timeout itself, with no thread of its own. Celery targets too: a run
hands the task to the broker (:func:`jobs.targets.celery.send`, about a second of retries at
most) and its outcome, if awaited, is recorded later by workers.celery_results.

Children (their side: workers/child.py) ignore SIGINT and SIGTERM (a Ctrl-C or a service
manager's stop reaches every process; the parent decides when they stop, after their current
run) and, on Linux, are killed when their parent dies (``PR_SET_PDEATHSIG``), so a worker
killed with SIGKILL leaves no task running unsupervised while another worker takes its run
over. How a run went is an Outcome (workers/outcome.py).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from jobs import targets
from jobs.permissions import may_reach_internal
from workers.child import child_main
from workers.isolation import Redactor, run_environment
from workers.outcome import FAILED, RUNNING, SUCCEEDED, TIMED_OUT, Outcome, excerpt, output_chars

if TYPE_CHECKING:
    from jobs.models import Job

STARTUP_SECONDS = 60  # for a child to import Django and the project; not part of any timeout


class ChildProcess:
    """One long-lived child that runs python and command targets, one at a time."""

    def __init__(self, env: dict[str, str]):
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        environment = {**run_environment(os.environ, getattr(settings, "JOBSCHEDULER_CHILD_ENV", ())), **env}
        # Daemonic: if the parent exits without closing it, multiprocessing ends it at exit.
        self._process = context.Process(
            target=child_main, args=(child_conn, environment, os.getpid()), name="jobscheduler-run", daemon=True
        )
        self._process.start()
        child_conn.close()
        if not self._conn.poll(STARTUP_SECONDS):
            self.kill()
            raise RuntimeError(f"the run process did not start within {STARTUP_SECONDS}s")
        try:
            status, detail = self._conn.recv()
        except EOFError:
            status, detail = "error", f"exit code {self._process.exitcode}"
        if status != "ready":
            self.kill()
            raise RuntimeError(f"the run process could not set up Django: {detail}")

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def alive(self) -> bool:
        return self._process.is_alive()

    def run(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send one request and wait up to ``timeout`` s; None means it did not answer in time.

        Raises EOFError when the child died meanwhile.
        """
        self._conn.send(request)
        if not self._conn.poll(timeout):
            return None
        reply: dict[str, Any] = self._conn.recv()
        return reply

    def exit_description(self) -> str:
        self._process.join(timeout=5)
        code = self._process.exitcode
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"

    def kill(self) -> None:
        """SIGKILL the child and everything in its process group (the task's own subprocesses)."""
        pid = self._process.pid
        if pid is not None and self._process.exitcode is None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:  # the group is not (or no longer) ours: the child alone
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._process.join(timeout=5)
        self._conn.close()

    def close(self, timeout: float = 5) -> None:
        """Let the child finish: it exits when its pipe closes; killed if it does not."""
        self._conn.close()
        self._process.join(timeout)
        if self._process.exitcode is None:
            self.kill()


def child_env(
    *, database: str | None = None, redis_prefix: str | None = None, shards: int | None = None
) -> dict[str, str]:
    """The environment a child needs to see the same servers as its parent (tests pick private ones)."""
    from django.db import connection

    env = {
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE") or str(settings.SETTINGS_MODULE),
        "MONGODB_DB": database or str(connection.settings_dict["NAME"]),
        "JOBSCHEDULER_REDIS_PREFIX": redis_prefix or settings.JOBSCHEDULER_REDIS_PREFIX,
    }
    if shards:
        env["JOBSCHEDULER_SHARDS"] = str(shards)
    return env


class ChildPool:
    """The run processes a worker's slots share: at most ``size``, each started at its first use
    and kept for the next runs; one that timed out or died is replaced at the next use.

    So a worker runs as many webhooks at once as it has slots, and as many python and command
    runs as it has processes (each a Django process of its own, tens of MB). A process dies with
    the thread that started it (``PR_SET_PDEATHSIG``): a worker's slot threads live as long as it.
    """

    def __init__(self, env: dict[str, str], size: int):
        self.env = env
        self.size = size
        self._idle: list[ChildProcess] = []
        self._free = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()

    def checkout(self) -> ChildProcess:
        """A process to run one target in, waiting for one to be free; raises RuntimeError when a
        new one cannot start."""
        self._free.acquire()
        with self._lock:
            child = self._idle.pop() if self._idle else None
        try:
            if child is None or not child.alive():
                child = ChildProcess(self.env)
        except BaseException:
            self._free.release()
            raise
        return child

    def checkin(self, child: ChildProcess, *, keep: bool) -> None:
        if keep:
            with self._lock:
                self._idle.append(child)
        self._free.release()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for child in idle:
            child.close()


class Slot:
    """One concurrency slot of a worker: runs one target at a time.

    Webhooks run in the slot's own thread; python and command targets in a process from the
    pool (its own pool of one process unless the worker shares one between its slots).
    """

    def __init__(
        self,
        env: dict[str, str] | None = None,
        output_limit: int | None = None,
        pool: ChildPool | None = None,
        name: str = "",
    ):
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"  # the worker's: who sent a Celery task
        self.env = env if env is not None else child_env()
        self.output_limit = output_limit or output_chars()
        self._own_pool = pool is None
        self.pool = pool or ChildPool(self.env, 1)
        self._last: ChildProcess | None = None
        self._redact = Redactor.for_environment(os.environ, settings.SECRET_KEY)

    @property
    def child_pid(self) -> int | None:
        """The process the slot's last python or command run used (None: none yet)."""
        return self._last.pid if self._last else None

    def start(self) -> None:
        """Start a process now rather than at the first run that needs one."""
        child = self.pool.checkout()
        self._last = child
        self.pool.checkin(child, keep=True)

    def execute(self, job: Job, *, fire_key: str, attempt: int, target: dict[str, Any] | None = None) -> Outcome:
        """Run ``job``'s target, or ``target`` in its place (a Task enqueued with its own
        arguments: jobs.tasks_backend)."""
        started = time.monotonic()
        if job.target_type == "http" and target is None:
            outcome = self._deliver(job, fire_key=fire_key, attempt=attempt)
        elif job.target_type == "celery" and target is None:
            outcome = self._send_celery(job, fire_key=fire_key, attempt=attempt)
        else:
            outcome = self._in_child(job, fire_key=fire_key, attempt=attempt, target=target)
        return replace(outcome, duration=time.monotonic() - started)

    def _deliver(self, job: Job, *, fire_key: str, attempt: int) -> Outcome:
        from jobs.targets.http import deliver

        # Signed with the current secret and, while a rotation overlaps, the previous one too.
        secrets = job.signing_secrets(timezone.now())
        result = deliver(
            job.target,
            fire_key=fire_key,
            attempt=attempt,
            secret=secrets,
            timeout=job.timeout_seconds,
            internal_networks=may_reach_internal(job),
        )
        shown = f"HTTP {result.status_code}" if result.status_code is not None else ""
        if result.response_excerpt:
            shown = f"{shown}\n{result.response_excerpt}" if shown else result.response_excerpt
        status = SUCCEEDED if result.ok else TIMED_OUT if result.timed_out else FAILED
        return Outcome(status, excerpt(shown, self.output_limit), excerpt(result.error, self.output_limit))

    def _send_celery(self, job: Job, *, fire_key: str, attempt: int) -> Outcome:
        from jobs.targets import celery

        target = job.target if isinstance(job.target, dict) else {}
        try:
            handoff = celery.send(target, fire_key=fire_key, attempt=attempt, sender=self.name)
        except celery.NotSent as error:
            return Outcome(FAILED, error=self._redact(excerpt(str(error), self.output_limit)))
        status = RUNNING if handoff.awaiting else SUCCEEDED
        return Outcome(status, excerpt(handoff.summary, self.output_limit), external_id=handoff.task_id)

    def _in_child(self, job: Job, *, fire_key: str, attempt: int, target: dict[str, Any] | None = None) -> Outcome:
        kind = "python" if target is not None else job.target_type
        if target is None:
            target = job.target if isinstance(job.target, dict) else {}
        # Checked again at run time: the tasks or the setting may have changed since the save.
        problem = targets.clean_target(kind, target).get("target")
        if problem:
            return Outcome(FAILED, error=problem)
        if kind not in ("python", "command"):
            return Outcome(FAILED, error=f"Unknown target type {kind!r}.")
        try:
            child = self.pool.checkout()
        except RuntimeError as error:
            return Outcome(FAILED, error=str(error))
        self._last = child
        request = {
            "kind": kind,
            "target": target,
            "fire_key": fire_key,
            "attempt": attempt,
            "output_chars": self.output_limit,
        }
        keep = False
        try:
            reply = child.run(request, job.timeout_seconds)
        except (EOFError, OSError):
            return Outcome(FAILED, error=f"The run's process died ({child.exit_description()}).")
        else:
            if reply is None:
                child.kill()
                return Outcome(
                    TIMED_OUT, error=f"Timed out after {job.timeout_seconds}s; the run's process was killed."
                )
            keep = True
            return Outcome(
                reply["status"],
                self._redact(reply.get("output", "")),
                self._redact(reply.get("error", "")),
                value=reply.get("value"),
                error_class=reply.get("error_class", ""),
            )
        finally:
            self.pool.checkin(child, keep=keep)

    def close(self) -> None:
        if self._own_pool:
            self.pool.close()
