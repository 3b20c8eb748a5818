"""The child side of a run process: set up Django once, then run the targets sent over a pipe.

A worker's workers.children.ChildProcess spawns this (``child_main``) and sends it one python or
command target at a time; each gets a reply saying how it went, never an exception. The child
has its own process group (a timeout kills whatever the task started too), ignores SIGINT and
SIGTERM (the parent decides when it stops, after its current run) and, on Linux, is killed when
its parent dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import io
import json
import multiprocessing
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobs import targets
from jobs.tasks_api import normalize_json
from workers.outcome import FAILED, SUCCEEDED, excerpt, tail_excerpt

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

MAX_RETURN_CHARS = 1_000_000  # a Task's return value kept in its run record, as JSON


@dataclass(frozen=True)
class RunContext:
    """What a python task may ask about the run it is part of (see :func:`current_run`)."""

    fire_key: str
    attempt: int


_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("jobscheduler_run", default=None)


def current_run() -> RunContext | None:
    """The fire key and attempt of the run a task is executing for (None outside a run).

    The fire key is the same on every attempt: a task can use it as an idempotency key.
    """
    return _current.get()


class BoundedText(io.TextIOBase):
    """A text stream that keeps the first ``limit`` characters written and counts the rest,
    so a task printing without end cannot fill the child's memory."""

    def __init__(self, limit: int):
        self.limit = limit
        self._parts: list[str] = []
        self._kept = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = self.limit - self._kept
        if room > 0:
            self._parts.append(text[:room])
            self._kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def getvalue(self) -> str:
        text = "".join(self._parts)
        return text + (f"\n... ({self.dropped} more characters)" if self.dropped else "")


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when the thread that started it ends."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def child_main(conn: Connection, env: dict[str, str], parent_pid: int) -> None:
    """A child's life: set up Django, then run targets sent over ``conn`` until it closes."""
    os.setpgrp()  # its own process group: a timeout kills whatever the task started too
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # A task may use multiprocessing itself; a spawned child counts as a daemon, which may not.
    multiprocessing.current_process().daemon = False
    # The whole environment, not an update: the worker's own variables (secrets included) stay
    # out of the run (workers/isolation.py). What a task starts inherits this one too.
    os.environ.clear()
    os.environ.update(env)
    try:
        import django

        django.setup()
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ready", os.getpid()))
    from django.db import close_old_connections

    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        reply = run_request(request)
        close_old_connections()
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


def run_request(request: dict[str, Any]) -> dict[str, Any]:
    """Run one python or command target (in the child); never raises."""
    limit = int(request["output_chars"])
    token = _current.set(RunContext(request["fire_key"], int(request["attempt"])))
    try:
        if request["kind"] == "python":
            return _run_python(request["target"], limit, fire_key=request["fire_key"], attempt=int(request["attempt"]))
        return _run_command(request["target"], limit)
    except BaseException as error:  # SystemExit included: the child must answer
        return {"status": FAILED, "output": "", "error": _error_text(error, limit), "error_class": _class_path(error)}
    finally:
        _current.reset(token)


def _run_python(target: dict[str, Any], limit: int, *, fire_key: str, attempt: int) -> dict[str, Any]:
    python = targets.python
    try:
        python.resolve(python.target_path(target))
    except python.UnknownTask as error:
        return {"status": FAILED, "output": "", "error": str(error), "error_class": _class_path(error)}
    printed = BoundedText(limit)
    with contextlib.redirect_stdout(printed):
        value = python.call(target, result_id=fire_key, attempt=attempt)
    text = printed.getvalue()
    if value is not None:
        shown = json.dumps(value, default=repr, ensure_ascii=False)
        text += ("" if not text or text.endswith("\n") else "\n") + shown
    # The Tasks contract: a return value is JSON (as django-tasks' own backends hold it), else
    # the run failed. Kept whole in the run record (return_value), bounded in size.
    try:
        value = normalize_json(value)
        size = len(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError) as error:
        message = f"The return value cannot be stored as JSON: {error}"
        return {"status": FAILED, "output": excerpt(text, limit), "error": message, "error_class": _class_path(error)}
    if size > MAX_RETURN_CHARS:
        message = f"The return value is {size} characters of JSON; at most {MAX_RETURN_CHARS} are kept."
        return {
            "status": FAILED,
            "output": excerpt(text, limit),
            "error": message,
            "error_class": "builtins.ValueError",
        }
    return {"status": SUCCEEDED, "output": excerpt(text, limit), "error": "", "value": value}


def _class_path(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}"


def _run_command(target: dict[str, Any], limit: int) -> dict[str, str]:
    from django.core.management import call_command

    out, err = BoundedText(limit), BoundedText(limit)
    try:
        call_command(target["command"], *target.get("args", []), stdout=out, stderr=err)
    except BaseException as error:
        output = excerpt(_joined(out, err), limit)
        return {
            "status": FAILED,
            "output": output,
            "error": _error_text(error, limit),
            "error_class": _class_path(error),
        }
    return {"status": SUCCEEDED, "output": excerpt(_joined(out, err), limit), "error": ""}


def _joined(out: BoundedText, err: BoundedText) -> str:
    text, errors = out.getvalue(), err.getvalue()
    return f"{text}\n[stderr]\n{errors}" if errors else text


def _error_text(error: BaseException, limit: int) -> str:
    from django.core.management import CommandError

    if isinstance(error, CommandError):
        return excerpt(f"CommandError: {error}", limit)
    return tail_excerpt("".join(traceback.format_exception(error)).rstrip(), limit)
