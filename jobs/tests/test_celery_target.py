"""Celery targets: checked when saved, sent through real brokers (RabbitMQ and Redis) to a real
Celery worker, their outcomes recorded from a real result backend, once per attempt through
crashes (a worker dying at each step is the handler's own, as in workers/tests/test_worker.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import override_settings

from jobs.models import Job, Run
from jobs.runqueue import RunQueue
from jobs.services import job_create
from jobs.targets import celery, clean_target
from jobs.targets.celery import SendMarks
from jobs.tests.celery_support import (
    Broker,
    CeleryWorker,
    celery_worker_on,
    make_broker,
    rabbitmq_vhost,  # noqa: F401 (a fixture)
    wait_until,
)
from schedules import services as schedule_services
from workers.celery_results import record_outcomes
from workers.children import Slot
from workers.handler import Handled, handle
from workers.worker import Worker, WorkerOptions

CONFIGURED = override_settings(JOBSCHEDULER_CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//")


# --- what a target may hold ---------------------------------------------------------------------


@CONFIGURED
def test_a_full_target_is_accepted():
    target = {
        "task": "proj.tasks.report",
        "args": [1, "two"],
        "kwargs": {"day": "monday"},
        "queue": "reports",
        "exchange": "reports",
        "routing_key": "reports.daily",
        "priority": 9,
        "expires": 30.5,
        "headers": {"team": "data", "tries": 2, "urgent": True},
        "ignore_result": False,
    }
    assert clean_target("celery", target) == {}


@CONFIGURED
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({}, '"task" must be a Celery task name'),
        ({"task": "has space"}, '"task" must be a Celery task name'),
        ({"task": "t", "args": {"a": 1}}, '"args" must be a JSON array'),
        ({"task": "t", "kwargs": [1]}, '"kwargs" must be a JSON object'),
        ({"task": "t", "queue": ""}, '"queue" must be a name'),
        ({"task": "t", "routing_key": 5}, '"routing_key" must be a name'),
        ({"task": "t", "priority": 256}, '"priority" must be a whole number from 0 to 255'),
        ({"task": "t", "priority": True}, '"priority" must be a whole number'),
        ({"task": "t", "expires": 0}, '"expires" must be a number of seconds'),
        ({"task": "t", "ignore_result": "yes"}, '"ignore_result" must be true or false'),
        ({"task": "t", "headers": {"id": "mine"}}, "Header 'id' is set by Celery or by the scheduler"),
        ({"task": "t", "headers": {"jobscheduler_attempt": 9}}, "is set by Celery or by the scheduler"),
        ({"task": "t", "headers": {"x": [1]}}, "must be a string, number or boolean"),
        ({"task": "t", "args": ["x" * 70_000]}, "at most 65536"),
        ({"task": "t", "url": "http://example.com"}, "Unknown target field(s): url."),
    ],
)
def test_bad_targets_are_refused_saying_why(target, message):
    assert message in clean_target("celery", target)["target"]


@override_settings(JOBSCHEDULER_CELERY_BROKER_URL="", JOBSCHEDULER_CELERY_APP="")
def test_celery_targets_are_refused_without_a_broker():
    assert "JOBSCHEDULER_CELERY_BROKER_URL" in clean_target("celery", {"task": "t"})["target"]


@CONFIGURED
def test_creating_a_celery_job_needs_its_permission(plain_user, user):
    with pytest.raises(PermissionDenied, match="create_celery_jobs"):
        job_create(owner=plain_user, name="c", target_type="celery", target={"task": "proj.tasks.report"})
    job = job_create(owner=user, name="c", target_type="celery", target={"task": "proj.tasks.report"})
    assert job.target_type == Job.TargetType.CELERY
    with pytest.raises(ValidationError):
        job_create(owner=user, name="d", target_type="celery", target={"task": "proj.tasks.report", "priority": -1})


def test_a_send_is_marked_sending_in_one_step_and_a_sent_mark_is_never_replaced(keyspace):
    marks = SendMarks(keyspace)
    assert marks.begin("s:1", 1, "w1") is None
    assert marks.read("s:1", 1) == ("sending", "w1")
    assert 0 < keyspace.client.ttl(marks.key("s:1", 1)) <= celery.MARK_SECONDS
    assert marks.begin("s:1", 1, "w2") == ("sending", "w1")  # w1 died publishing: w2 sends again
    assert marks.read("s:1", 1) == ("sending", "w2")
    marks.mark("s:1", 1, "sent", "w2")
    assert marks.begin("s:1", 1, "w3") == ("sent", "w2")
    assert marks.read("s:1", 1) == ("sent", "w2")  # the broker has it: w3 does not send it again
    marks.forget_many([("s:1", 1), ("s:2", 1)])
    assert marks.read("s:1", 1) is None


# --- through real brokers to a real Celery worker -----------------------------------------------


@pytest.fixture(scope="module", params=["rabbitmq", "redis"])
def broker(request: Any, rabbitmq_vhost: str) -> Broker:  # noqa: F811
    return make_broker(request.param, rabbitmq_vhost)


@pytest.fixture(scope="module")
def celery_worker(broker: Broker, rabbitmq_vhost: str) -> Iterator[CeleryWorker]:  # noqa: F811
    with celery_worker_on(broker, rabbitmq_vhost) as worker:
        yield worker


@pytest.fixture
def receipts_before(celery_worker: CeleryWorker) -> int:
    return len(celery_worker.receipts())


def new_receipts(celery_worker: CeleryWorker, before: int, count: int) -> list[dict[str, Any]]:
    return celery_worker.wait_for_receipts(before + count)[before:]


def celery_job(user: Any, celery_worker: CeleryWorker, task: str = "jstest.record", **target: Any) -> Job:
    return job_create(
        owner=user,
        name=f"celery-{uuid.uuid4().hex[:6]}",
        target_type="celery",
        target={"task": task, "queue": celery_worker.queue, **target},
    )


def dispatch(runqueue: RunQueue, job: Job, nominal_ms: int) -> str:
    """Put an occurrence of a new hourly schedule of ``job`` on its stream, as the scheduler does."""
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=3600)
    sid = str(schedule.pk)
    fields = {"fk": f"{sid}:{nominal_ms}", "s": sid, "j": str(job.pk), "n": str(nominal_ms), "t": "schedule"}
    runqueue.client.xadd(runqueue.stream_key(runqueue.keyspace.shard_of(sid)), fields)  # type: ignore[arg-type]
    return f"{sid}:{nominal_ms}"


def make_worker(runqueue: RunQueue, name: str, **options: Any) -> Worker:
    runqueue.ensure_groups()
    options.setdefault("takeover_seconds", 30)
    options.setdefault("lookup_cache_seconds", 0)
    return Worker(runqueue, name=name, options=WorkerOptions(concurrency=1, **options), random_unit=lambda: 0.5)


def read_one(worker: Worker) -> Any:
    (entry,) = worker.read(1)
    return entry


def runs(fire_key: str) -> list[Run]:
    return list(Run.objects.filter(fire_key=fire_key).order_by("attempt"))


def settled(worker: Worker, fire_key: str, timeout: float = 20) -> Run:
    """Let the worker's results watcher look until the run has its outcome."""

    def finished() -> Run | None:
        record_outcomes(worker)
        (run,) = runs(fire_key)
        return run if run.status in Run.FINISHED else None

    return wait_until(finished, timeout, f"the outcome of {fire_key}")


def no_more_sends(celery_worker: CeleryWorker, before: int, expected: int) -> None:
    """Prove no other copy is queued: a sentinel sent now comes after any copy sent before it
    (one queue, one worker taking one task at a time, in order)."""
    sentinel = f"sentinel-{uuid.uuid4().hex[:6]}"
    celery.celery_app().send_task("jstest.record", task_id=sentinel, queue=celery_worker.queue, ignore_result=True)
    found = wait_until(
        lambda: (got := celery_worker.receipts()[before:]) and got[-1]["id"] == sentinel and got, 20, "the sentinel"
    )
    assert len(found) == expected + 1, found


def test_a_run_sends_the_task_once_with_the_fire_key_as_its_id(user, runqueue, celery_worker, receipts_before):
    with celery_worker.settings(results=False):
        job = celery_job(
            user,
            celery_worker,
            args=[1, "two"],
            kwargs={"day": "monday"},
            headers={"team": "data"},
            priority=5,
            expires=60,
        )
        key = dispatch(runqueue, job, 1000)
        worker = make_worker(runqueue, "w1")
        assert handle(worker, read_one(worker), Slot({}, name="w1")) == Handled.SUCCEEDED
        (receipt,) = new_receipts(celery_worker, receipts_before, 1)
        assert receipt["id"] == key
        assert receipt["fire_key"] == key and receipt["attempt"] == 1
        assert receipt["args"] == [1, "two"] and receipt["kwargs"] == {"day": "monday"}
        assert receipt["headers"]["team"] == "data"
        assert receipt["routing_key"] == celery_worker.queue
        (run,) = runs(key)
        assert (run.status, run.external_id, run.worker) == ("succeeded", key, "w1")
        assert f"Sent to Celery as task {key} on queue {celery_worker.queue}." in run.output
        assert SendMarks().read(key, 1) is None  # recorded: the mark is gone


def test_with_a_result_backend_the_outcome_is_recorded_when_the_task_finishes(user, runqueue, celery_worker):
    with celery_worker.settings(results=True):
        worker = make_worker(runqueue, "w1")
        slot = Slot({}, name="w1")
        good = dispatch(runqueue, celery_job(user, celery_worker, args=[7]), 1000)
        assert handle(worker, read_one(worker), slot) == Handled.HANDED_OFF
        (run,) = runs(good)
        assert (run.status, run.external_id, run.finished_at) == ("running", good, None)
        assert worker.awaited.count() == 1
        run = settled(worker, good)
        assert run.status == "succeeded"
        assert run.return_value == {"args": [7], "kwargs": {}}
        assert 'Result: {"args": [7], "kwargs": {}}' in run.output
        assert worker.awaited.count() == 0

        bad = dispatch(runqueue, celery_job(user, celery_worker, "jstest.fail"), 2000)
        assert handle(worker, read_one(worker), slot) == Handled.HANDED_OFF
        run = settled(worker, bad)
        assert run.status == "failed"
        assert run.error.startswith("ValueError: no luck today")
        assert 'raise ValueError("no luck today")' in run.error  # the traceback's end
        assert run.exception_class == "builtins.ValueError"


def test_a_task_celery_retries_is_noted_and_recorded_once_it_ends(user, runqueue, celery_worker, receipts_before):
    with celery_worker.settings(results=True):
        worker = make_worker(runqueue, "w1")
        key = dispatch(runqueue, celery_job(user, celery_worker, "jstest.retry_once"), 1000)
        assert handle(worker, read_one(worker), Slot({}, name="w1")) == Handled.HANDED_OFF
        run = settled(worker, key)
        assert run.status == "succeeded"
        assert "Retried by Celery" in run.output and "first try failed" in run.output
        assert [receipt["id"] for receipt in new_receipts(celery_worker, receipts_before, 2)] == [key, key]
        assert len(runs(key)) == 1


def test_a_task_without_an_outcome_in_the_jobs_timeout_is_recorded_timed_out(user, runqueue, celery_worker):
    with celery_worker.settings(results=True):
        now = [time.time()]
        worker = make_worker(runqueue, "w1")
        worker.clock = lambda: now[0]
        # A queue nobody serves: the task stays PENDING.
        job = celery_job(user, celery_worker, queue=f"nobody-{uuid.uuid4().hex[:6]}")
        job.timeout_seconds = 5
        job.save()
        key = dispatch(runqueue, job, 1000)
        assert handle(worker, read_one(worker), Slot({}, name="w1")) == Handled.HANDED_OFF
        record_outcomes(worker)
        assert runs(key)[0].status == "running"
        now[0] += 6
        record_outcomes(worker)
        (run,) = runs(key)
        assert run.status == "timed_out"
        assert "No outcome from Celery within 5s (the task was PENDING)" in run.error


class Crash(BaseException):
    """Stands for the worker process dying at this point (nothing after it runs)."""


def crash(*args: Any, **kwargs: Any) -> Any:
    raise Crash


@pytest.mark.parametrize("results", [False, True])
def test_a_worker_dying_between_sending_and_recording_leaves_the_task_sent_once(
    user, runqueue, celery_worker, receipts_before, monkeypatch, results
):
    with celery_worker.settings(results=results):
        key = dispatch(runqueue, celery_job(user, celery_worker), 1000)
        dying = make_worker(RunQueue(runqueue.keyspace), "dying")
        monkeypatch.setattr(dying.recorder, "finish", crash)
        with pytest.raises(Crash):
            handle(dying, read_one(dying), Slot({}, name="dying"))
        assert runs(key) == []
        assert SendMarks().read(key, 1) == ("sent", "dying")
        taker = make_worker(runqueue, "taker", takeover_seconds=0)
        (taken,) = taker.take_over(5)
        assert handle(taker, taken, Slot({}, name="taker")) == (Handled.HANDED_OFF if results else Handled.SUCCEEDED)
        (run,) = runs(key)
        assert run.worker == "taker" and run.external_id == key
        assert "by worker dying, which stopped before recording it; not sent again." in run.output
        if results:
            assert settled(taker, key).status == "succeeded"
        no_more_sends(celery_worker, receipts_before, expected=1)
        assert celery_worker.receipts()[receipts_before]["id"] == key
        assert len(runs(key)) == 1


def test_a_worker_dying_after_recording_the_hand_off_leaves_the_task_awaited_not_sent_again(
    user, runqueue, celery_worker, receipts_before, monkeypatch
):
    with celery_worker.settings(results=True):
        key = dispatch(runqueue, celery_job(user, celery_worker), 1000)
        dying = make_worker(RunQueue(runqueue.keyspace), "dying")
        monkeypatch.setattr(dying.awaited, "add", crash)  # dies right after the record
        with pytest.raises(Crash):
            handle(dying, read_one(dying), Slot({}, name="dying"))
        assert [(r.status, r.worker) for r in runs(key)] == [("running", "dying")]
        taker = make_worker(runqueue, "taker", takeover_seconds=0)
        (taken,) = taker.take_over(5)
        assert handle(taker, taken, Slot({}, name="taker")) == Handled.HANDED_OFF
        assert settled(taker, key).status == "succeeded"
        no_more_sends(celery_worker, receipts_before, expected=1)
        assert [r.attempt for r in runs(key)] == [1]


def test_a_worker_dying_with_its_run_recorded_running_mid_send_resumes_the_same_attempt(
    user, runqueue, celery_worker, receipts_before, monkeypatch
):
    """Recorded as running (a slow send) before the worker died: the taker goes on with
    attempt 1, and as its mark says sent, does not send it again."""
    with celery_worker.settings(results=False):
        key = dispatch(runqueue, celery_job(user, celery_worker), 1000)
        dying = make_worker(RunQueue(runqueue.keyspace), "dying")
        dying.recorder.handoff_insert_after = 0  # inserted as running at once

        def flush_then_crash(run: Run, **kwargs: Any) -> bool:
            dying.recorder.flush()  # the running record is written...
            raise Crash  # ...then the worker dies before the outcome

        monkeypatch.setattr(dying.recorder, "finish", flush_then_crash)
        with pytest.raises(Crash):
            handle(dying, read_one(dying), Slot({}, name="dying"))
        assert [(r.status, r.worker) for r in runs(key)] == [("running", "dying")]
        taker = make_worker(runqueue, "taker", takeover_seconds=0)
        (taken,) = taker.take_over(5)
        assert handle(taker, taken, Slot({}, name="taker")) == Handled.SUCCEEDED
        assert [(r.attempt, r.status, r.worker) for r in runs(key)] == [(1, "succeeded", "taker")]
        no_more_sends(celery_worker, receipts_before, expected=1)


def test_a_broker_that_does_not_answer_fails_the_attempt_and_the_job_retries_it(user, runqueue):
    with override_settings(
        JOBSCHEDULER_CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:9//", JOBSCHEDULER_CELERY_CONFIG={}
    ):
        job = job_create(
            owner=user, name="down", target_type="celery", target={"task": "jstest.record"}, max_attempts=2
        )
        key = dispatch(runqueue, job, 1000)
        worker = make_worker(runqueue, "w1")
        assert handle(worker, read_one(worker), Slot({}, name="w1")) == Handled.RETRY
        (run,) = runs(key)
        assert run.status == "failed"
        assert "Could not send the task to Celery" in run.error
        assert SendMarks().read(key, 1) is None


def test_the_projects_own_celery_app_can_be_named_instead_of_a_broker(
    user, runqueue, celery_worker, receipts_before, monkeypatch
):
    import sys

    from celery import Celery

    team_app = Celery("team", broker=celery_worker.broker.url, set_as_current=False)
    team_app.conf.update(celery_worker.broker.config)
    monkeypatch.setattr(sys.modules[__name__], "team_app", team_app, raising=False)
    with override_settings(
        JOBSCHEDULER_CELERY_APP=f"{__name__}:team_app",
        JOBSCHEDULER_CELERY_BROKER_URL="",
        JOBSCHEDULER_CELERY_RESULT_BACKEND="",
    ):
        assert celery.celery_app() is team_app
        key = dispatch(runqueue, celery_job(user, celery_worker), 1000)
        worker = make_worker(runqueue, "w1")
        assert handle(worker, read_one(worker), Slot({}, name="w1")) == Handled.SUCCEEDED
        (receipt,) = new_receipts(celery_worker, receipts_before, 1)
        assert receipt["id"] == key
