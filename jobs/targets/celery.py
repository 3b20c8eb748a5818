"""Celery targets: a task of the team's Celery workers, sent by name through their broker.

A target is ``{"task": "proj.tasks.report", "args": [...], "kwargs": {...}}`` with, optionally,
``queue``, ``exchange``, ``routing_key``, ``priority`` (0-255), ``expires`` (seconds after the
send: a worker that gets the task later drops it), ``headers`` (message headers of the job's)
and ``ignore_result`` (record the hand-off only, even with a result backend). The task is not
imported here: it lives in the team's code, on their workers.

**Ids.** The Celery task id is the run's fire key, on every attempt, and the message carries
the headers ``jobscheduler_fire_key`` and ``jobscheduler_attempt``. Our attempts of a celery
run only ever repeat a send that may not have reached the broker (a refused or timed-out
publish, a worker that died mid-publish), so every send of one occurrence is the same task: a
task (or a broker) that drops a second copy by its id drops exactly the duplicates, and the
result backend holds one result per occurrence. A task that ran and failed is retried by
Celery (``autoretry_for``, ``self.retry``), under that same id, not by us.

**Once per attempt.** Before publishing, a worker marks the attempt ``sending`` in Redis, and
``sent`` once the broker has it (RabbitMQ confirms the publish); the mark goes once the run
records the hand-off. A worker killed between the send and the record leaves ``sent``: the
worker that takes the attempt over records the hand-off without sending again. Only a worker
dying mid-publish (``sending``) leaves it unknown whether the broker got the task: then it is
sent again, under the same id.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.module_loading import import_string

from jobscheduler.keyspace import Keyspace, default_keyspace

if TYPE_CHECKING:
    from celery import Celery

FIELDS = frozenset(
    {"task", "args", "kwargs", "queue", "exchange", "routing_key", "priority", "expires", "headers", "ignore_result"}
)
FIRE_KEY_HEADER = "jobscheduler_fire_key"
ATTEMPT_HEADER = "jobscheduler_attempt"
MAX_PAYLOAD_CHARS = 64 * 1024  # args, kwargs and headers together, as JSON
MAX_EXPIRES_SECONDS = 366 * 86_400
MARK_SECONDS = 86_400  # a send mark outlives any takeover; it is deleted once the run records the hand-off

# Celery's own message headers (protocol 2) and ours: a job's headers cannot replace them.
RESERVED_HEADERS = frozenset(
    {
        FIRE_KEY_HEADER,
        ATTEMPT_HEADER,
        "lang",
        "task",
        "id",
        "shadow",
        "eta",
        "expires",
        "group",
        "group_index",
        "retries",
        "timelimit",
        "root_id",
        "parent_id",
        "argsrepr",
        "kwargsrepr",
        "origin",
        "ignore_result",
        "replaced_task_nesting",
        "stamped_headers",
        "stamps",
    }
)
_NAME = re.compile(r"[^\s\x00-\x1f\x7f]{1,255}")  # task, queue, exchange and routing key names


class NotSent(Exception):
    """The task could not be handed to the broker; the message says why."""


def configured() -> bool:
    return bool(settings.JOBSCHEDULER_CELERY_APP or settings.JOBSCHEDULER_CELERY_BROKER_URL)


def clean(target: dict[str, Any]) -> str | None:
    """The problem with a celery target, or None."""
    if not configured():
        return "Celery targets need a broker: set JOBSCHEDULER_CELERY_BROKER_URL (or JOBSCHEDULER_CELERY_APP)."
    return check(target)


def check(target: dict[str, Any]) -> str | None:
    """The problem with a celery target's fields, whatever the settings (the beat import's dry run)."""
    unknown = sorted(set(target) - FIELDS)
    if unknown:
        return f"Unknown target field(s): {', '.join(unknown)}."
    name = target.get("task")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return '"task" must be a Celery task name: 1-255 characters, no spaces.'
    if not isinstance(target.get("args", []), list):
        return '"args" must be a JSON array.'
    if not isinstance(target.get("kwargs", {}), dict):
        return '"kwargs" must be a JSON object.'
    for field in ("queue", "exchange", "routing_key"):
        value = target.get(field)
        if value is not None and (not isinstance(value, str) or not _NAME.fullmatch(value)):
            return f'"{field}" must be a name of 1-255 characters, no spaces.'
    priority = target.get("priority")
    if priority is not None and (type(priority) is not int or not 0 <= priority <= 255):
        return '"priority" must be a whole number from 0 to 255.'
    expires = target.get("expires")
    if expires is not None and (type(expires) not in (int, float) or not 0 < expires <= MAX_EXPIRES_SECONDS):
        return f'"expires" must be a number of seconds after the send, above 0 and at most {MAX_EXPIRES_SECONDS}.'
    if type(target.get("ignore_result", False)) is not bool:
        return '"ignore_result" must be true or false.'
    problem = _headers_problem(target.get("headers", {}))
    if problem:
        return problem
    payload = {"args": target.get("args", []), "kwargs": target.get("kwargs", {}), "headers": target.get("headers")}
    try:
        size = len(json.dumps(payload, ensure_ascii=False))
    except (TypeError, ValueError):
        return "Arguments and headers must be plain JSON."
    if size > MAX_PAYLOAD_CHARS:
        return f"Arguments and headers are {size} characters of JSON; at most {MAX_PAYLOAD_CHARS}."
    return None


def _headers_problem(headers: Any) -> str | None:
    if not isinstance(headers, dict):
        return '"headers" must be a JSON object.'
    for name, value in headers.items():
        if not _NAME.fullmatch(name):
            return f"Header name {name!r} must be 1-255 characters, no spaces."
        if name.lower() in RESERVED_HEADERS:
            return f"Header {name!r} is set by Celery or by the scheduler; a job cannot set it."
        if not isinstance(value, str | int | float | bool):
            return f"Header {name!r} must be a string, number or boolean."
    return None


def task_id(fire_key: str) -> str:
    """The Celery task id of every send of an occurrence: its fire key."""
    return fire_key


# --- the Celery app --------------------------------------------------------------------------

_lock = threading.Lock()
_app: tuple[tuple[str, ...], Celery] | None = None


def celery_app() -> Celery:
    """The Celery app tasks are sent through (and results read from), built once per process
    and again if the settings change (tests)."""
    global _app
    key = (
        settings.JOBSCHEDULER_CELERY_APP,
        settings.JOBSCHEDULER_CELERY_BROKER_URL,
        settings.JOBSCHEDULER_CELERY_RESULT_BACKEND,
        json.dumps(settings.JOBSCHEDULER_CELERY_CONFIG, sort_keys=True),
    )
    with _lock:
        if _app is None or _app[0] != key:
            _app = (key, _build_app())
        return _app[1]


def _build_app() -> Celery:
    if settings.JOBSCHEDULER_CELERY_APP:
        path = settings.JOBSCHEDULER_CELERY_APP.replace(":", ".")
        try:
            app: Celery = import_string(path)
        except ImportError as error:
            raise NotSent(f"JOBSCHEDULER_CELERY_APP: cannot import {path!r} ({error}).") from error
        return app
    if not settings.JOBSCHEDULER_CELERY_BROKER_URL:
        raise NotSent("No Celery broker is configured (JOBSCHEDULER_CELERY_BROKER_URL or JOBSCHEDULER_CELERY_APP).")
    from celery import Celery

    app = Celery(
        "jobscheduler",
        broker=settings.JOBSCHEDULER_CELERY_BROKER_URL,
        backend=settings.JOBSCHEDULER_CELERY_RESULT_BACKEND or None,
        set_as_current=False,
    )
    config: dict[str, Any] = dict(settings.JOBSCHEDULER_CELERY_CONFIG)
    # A publish returns once RabbitMQ has the message (ignored by other transports): the send
    # mark says "sent" only then.
    transport = {"confirm_publish": True, **dict(config.pop("broker_transport_options", None) or {})}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_transport_options=transport,
        broker_connection_timeout=4,
    )
    app.conf.update(config)
    return app


def tracks_results() -> bool:
    """Whether the app has a result backend, so runs wait for their task's outcome."""
    backend = celery_app().conf.result_backend
    return bool(backend) and backend != "disabled"


# --- sending --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handoff:
    """A task handed to the broker: its id, whether its outcome is awaited, what to record."""

    task_id: str
    awaiting: bool
    summary: str


class SendMarks:
    """Per attempt, how far its send got: ``sending`` (publishing), ``sent`` (the broker has it)."""

    def __init__(self, keyspace: Keyspace | None = None):
        self.keyspace = keyspace or default_keyspace()

    def key(self, fire_key: str, attempt: int) -> str:
        return self.keyspace.global_key(f"celery-send:{fire_key}#{attempt}")

    def read(self, fire_key: str, attempt: int) -> tuple[str, str] | None:
        """(state, sender) of the attempt's send, or None if no send was started."""
        return _parsed(self.keyspace.client.get(self.key(fire_key, attempt)))

    def begin(self, fire_key: str, attempt: int, sender: str) -> tuple[str, str] | None:
        """Mark the attempt ``sending`` by ``sender``, unless it is ``sent`` already; returns the
        earlier mark (state, sender), or None. One round trip, unless an earlier send of the
        attempt was left midway (its worker died publishing): then its mark is replaced."""
        key = self.key(fire_key, attempt)
        earlier = _parsed(self.keyspace.client.set(key, f"sending {sender}", ex=MARK_SECONDS, nx=True, get=True))
        if earlier is not None and earlier[0] != "sent":
            self.mark(fire_key, attempt, "sending", sender)
        return earlier

    def mark(self, fire_key: str, attempt: int, state: str, sender: str) -> None:
        self.keyspace.client.set(self.key(fire_key, attempt), f"{state} {sender}", ex=MARK_SECONDS)

    def forget(self, fire_key: str, attempt: int) -> None:
        self.keyspace.client.delete(self.key(fire_key, attempt))

    def forget_many(self, attempts: list[tuple[str, int]]) -> None:
        """Delete the marks of these (fire key, attempt) pairs, in one round trip."""
        if attempts:
            pipe = self.keyspace.client.pipeline(transaction=False)  # keys of many slots (a cluster)
            for fire_key, attempt in attempts:
                pipe.delete(self.key(fire_key, attempt))
            pipe.execute()


def _parsed(value: Any) -> tuple[str, str] | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    state, _, sender = text.partition(" ")
    return state, sender


def send(
    target: dict[str, Any], *, fire_key: str, attempt: int, sender: str, marks: SendMarks | None = None
) -> Handoff:
    """Hand the target's task to the broker, once per attempt (see the module's docstring);
    raises NotSent when it cannot."""
    problem = clean(target)  # checked again at run time, as other targets are
    if problem:
        raise NotSent(problem)
    marks = marks or SendMarks()
    ident = task_id(fire_key)
    app = celery_app()
    awaiting = tracks_results() and not target.get("ignore_result", False)
    where = f" on queue {target['queue']}" if target.get("queue") else ""
    earlier = marks.begin(fire_key, attempt, sender)
    if earlier is not None and earlier[0] == "sent":
        summary = f"Sent to Celery as task {ident}{where} by worker {earlier[1]}, which stopped before recording it"
        return Handoff(ident, awaiting, f"{summary}; not sent again.")
    options: dict[str, Any] = {
        name: target[name] for name in ("queue", "exchange", "routing_key", "priority", "expires") if name in target
    }
    headers = {**target.get("headers", {}), FIRE_KEY_HEADER: fire_key, ATTEMPT_HEADER: attempt}
    try:
        app.send_task(
            target["task"],
            args=target.get("args", []),
            kwargs=target.get("kwargs", {}),
            task_id=ident,
            headers=headers,
            ignore_result=not awaiting,
            retry=True,
            # About a second of retries on a lost connection; a down broker fails the attempt
            # (the job's retries send it again later).
            retry_policy={"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
            **options,
        )
    except Exception as error:
        marks.forget(fire_key, attempt)
        raise NotSent(f"Could not send the task to Celery: {type(error).__name__}: {error}") from error
    marks.mark(fire_key, attempt, "sent", sender)
    return Handoff(ident, awaiting, f"Sent to Celery as task {ident}{where}.")


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskState:
    """What the result backend holds for a task: its state and, when ready, result or error."""

    state: str
    result: Any = None
    traceback: str = ""
    date_done: str = ""  # when the backend stored this state (tells one retry from the next)

    @property
    def ready(self) -> bool:
        from celery import states

        return self.state in states.READY_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCESS"


def task_states(task_ids: list[str]) -> dict[str, TaskState]:
    """The states of many tasks, in one round trip where the backend allows (key-value stores)."""
    from celery.backends.base import BaseKeyValueStoreBackend

    backend = celery_app().backend
    if isinstance(backend, BaseKeyValueStoreBackend):
        values = backend.mget([backend.get_key_for_task(ident) for ident in task_ids])
        metas = [backend.decode_result(value) if value else {"status": "PENDING"} for value in values]
    else:
        metas = [backend.get_task_meta(ident) for ident in task_ids]
    return {
        ident: TaskState(
            meta.get("status", "PENDING"),
            meta.get("result"),
            meta.get("traceback") or "",
            str(meta.get("date_done") or ""),
        )
        for ident, meta in zip(task_ids, metas, strict=True)
    }
