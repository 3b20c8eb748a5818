"""Running one target: python and command targets in a real child process, http to a real receiver.

The child's side in this process: test_child.py; the excerpts: test_outcome.py.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jobs.models import Job
from jobs.services import job_create
from workers import children
from workers.children import Slot


@pytest.fixture(scope="module")
def slot(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Slot]:
    """One slot for the module: its child process is spawned once (about half a second)."""
    with django_db_blocker.unblock():
        shared = Slot(children.child_env(), output_limit=500)
    yield shared
    shared.close()


def make_job(user: Any, target_type: str = "python", **fields: Any) -> Job:
    fields.setdefault("target", {"task": "demo.tasks.hello"})
    return job_create(owner=user, name=f"job-{time.monotonic_ns()}", target_type=target_type, **fields)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead too
        return stat.read().split(") ", 1)[1][0] != "Z"


# --- in a real child process ---------------------------------------------------------------------


def test_python_target_runs_in_the_slots_child(user, slot):
    outcome = slot.execute(make_job(user), fire_key="s:1", attempt=1)
    assert (outcome.status, outcome.output, outcome.error) == ("succeeded", '"hello, world"', "")
    assert slot.child_pid is not None and slot.child_pid != os.getpid()


def test_timeout_kills_a_task_stuck_in_a_c_call_and_the_next_run_gets_a_new_child(user, slot):
    slot.start()
    stuck_pid = slot.child_pid
    assert stuck_pid is not None
    job = make_job(user, target={"task": "demo.tasks.sleep", "kwargs": {"seconds": 60}}, timeout_seconds=1)
    started = time.monotonic()
    outcome = slot.execute(job, fire_key="s:2", attempt=1)
    elapsed = time.monotonic() - started
    assert outcome.status == "timed_out"
    assert "Timed out after 1s" in outcome.error
    assert 1 <= elapsed < 5
    assert not pid_alive(stuck_pid)
    assert slot.execute(make_job(user), fire_key="s:3", attempt=1).status == "succeeded"
    assert slot.child_pid != stuck_pid


def test_slots_share_their_workers_run_processes(user, db):
    pool = children.ChildPool(children.child_env(), 1)
    first, second = Slot(pool=pool, output_limit=500), Slot(pool=pool, output_limit=500)
    try:
        # Started by this thread: a child dies with the thread that started it (PR_SET_PDEATHSIG),
        # and a worker's slot threads live as long as the worker.
        first.start()
        done: list[str] = []
        slow = make_job(user, target={"task": "demo.tasks.sleep", "kwargs": {"seconds": 1}}, timeout_seconds=10)
        waiting = threading.Thread(target=lambda: done.append(first.execute(slow, fire_key="s:6", attempt=1).status))
        waiting.start()
        time.sleep(0.2)  # the first slot holds the only process: the second waits for it
        quick = second.execute(make_job(user), fire_key="s:7", attempt=1)
        assert quick.status == "succeeded", quick.error
        waiting.join(10)
        assert done == ["succeeded"]
        assert first.child_pid == second.child_pid is not None
    finally:
        pool.close()


def test_a_child_that_dies_mid_run_is_a_failed_run(user, slot):
    slot.start()
    victim = slot.child_pid
    assert victim is not None
    threading.Timer(0.5, os.kill, args=(victim, signal.SIGKILL)).start()
    job = make_job(user, target={"task": "demo.tasks.sleep", "kwargs": {"seconds": 30}}, timeout_seconds=30)
    outcome = slot.execute(job, fire_key="s:4", attempt=1)
    assert outcome.status == "failed"
    assert "died (killed by SIGKILL)" in outcome.error
    assert slot.execute(make_job(user), fire_key="s:5", attempt=1).status == "succeeded"


PURGE_RUNS = {"purge_runs": {"--days": {"type": "int"}, "--dry-run": {"type": "flag"}}}


def test_command_target_output_is_captured(user, slot, settings):
    settings.JOBSCHEDULER_ALLOWED_COMMANDS = PURGE_RUNS
    job = make_job(user, "command", target={"command": "purge_runs", "args": ["--dry-run", "--days", "7"]})
    outcome = slot.execute(job, fire_key="s:6", attempt=1)
    assert outcome.status == "succeeded", outcome.error
    assert "would delete 0 finished runs older than 7 days" in outcome.output


def test_command_errors_fail_with_the_commands_message(user, slot, settings):
    settings.JOBSCHEDULER_ALLOWED_COMMANDS = PURGE_RUNS
    job = make_job(user, "command", target={"command": "purge_runs", "args": ["--days", "-1"]})
    outcome = slot.execute(job, fire_key="s:7", attempt=1)
    assert outcome.status == "failed"
    assert outcome.error.startswith("CommandError: --days must be 0 or more")


def test_commands_taken_off_the_allow_list_do_not_run(user, slot, settings):
    settings.JOBSCHEDULER_ALLOWED_COMMANDS = ["purge_runs"]
    job = make_job(user, "command", target={"command": "purge_runs", "args": []})
    settings.JOBSCHEDULER_ALLOWED_COMMANDS = []
    outcome = slot.execute(job, fire_key="s:8", attempt=1)
    assert outcome.status == "failed" and "JOBSCHEDULER_ALLOWED_COMMANDS" in outcome.error


def test_arguments_outside_a_narrowed_rule_do_not_run(user, slot, settings):
    settings.JOBSCHEDULER_ALLOWED_COMMANDS = PURGE_RUNS
    job = make_job(user, "command", target={"command": "purge_runs", "args": ["--days", "0"]})
    settings.JOBSCHEDULER_ALLOWED_COMMANDS = {"purge_runs": {"--days": {"type": "int", "min": 7}}}
    outcome = slot.execute(job, fire_key="s:9", attempt=1)
    assert outcome.status == "failed" and outcome.error == "Command 'purge_runs': --days must be at least 7."
    assert Job.objects.filter(pk=job.pk).exists()  # nothing was purged: the command never ran


# --- what a run process may know ----------------------------------------------------------------------


def test_a_run_process_sees_only_allow_listed_variables(user, settings, monkeypatch):
    monkeypatch.setenv("CLOUD_ACCESS_KEY_ID", "AKIA-not-for-tasks")
    monkeypatch.setenv("SOME_SERVICE_SETTING", "not listed")
    monkeypatch.setenv("REPORTS_BUCKET", "listed-by-the-operator")
    monkeypatch.setenv("JOBSCHEDULER_METRICS_TOKEN", "token-of-the-metrics")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "the-real-secret-key-of-the-site")
    settings.JOBSCHEDULER_CHILD_ENV = ["REPORTS_BUCKET"]
    names = [
        "CLOUD_ACCESS_KEY_ID",
        "SOME_SERVICE_SETTING",
        "REPORTS_BUCKET",
        "JOBSCHEDULER_METRICS_TOKEN",
        "JOBSCHEDULER_REDIS_PREFIX",
        "DJANGO_SECRET_KEY",
    ]
    fresh = Slot(children.child_env(), output_limit=2000)
    try:
        job = make_job(user, target={"task": "demo.tasks.environment", "kwargs": {"names": names}})
        outcome = fresh.execute(job, fire_key="s:10", attempt=1)
    finally:
        fresh.close()
    assert outcome.status == "succeeded", outcome.error
    seen = json.loads(outcome.output)
    assert seen["CLOUD_ACCESS_KEY_ID"] is None
    assert seen["SOME_SERVICE_SETTING"] is None
    assert seen["JOBSCHEDULER_METRICS_TOKEN"] is None
    assert seen["REPORTS_BUCKET"] == "listed-by-the-operator"
    assert seen["JOBSCHEDULER_REDIS_PREFIX"]  # the project's own settings reach it
    # Django gets a key of its own: never the site's.
    assert seen["DJANGO_SECRET_KEY"] and seen["DJANGO_SECRET_KEY"] != "the-real-secret-key-of-the-site"


def test_secrets_printed_by_a_task_are_masked(user, monkeypatch):
    monkeypatch.setenv("PAYMENTS_API_TOKEN", "tok_live_4242424242")
    monkeypatch.setenv("ANALYTICS_DSN", "postgres://reporter:hunter2-hunter2@db.internal/stats")
    fresh = Slot(children.child_env(), output_limit=2000)
    try:
        leak = "token tok_live_4242424242 and password hunter2-hunter2"
        job = make_job(user, target={"task": "demo.tasks.echo", "kwargs": {"said": leak}})
        outcome = fresh.execute(job, fire_key="s:11", attempt=1)
        failing = make_job(user, target={"task": "demo.tasks.fail", "kwargs": {"message": leak}})
        failed = fresh.execute(failing, fire_key="s:12", attempt=1)
    finally:
        fresh.close()
    assert outcome.status == "succeeded"
    assert "tok_live" not in outcome.output and "hunter2" not in outcome.output
    assert outcome.output.count("[redacted]") == 2
    assert failed.status == "failed"
    assert "tok_live" not in failed.error and "hunter2" not in failed.error and "[redacted]" in failed.error


# --- http ----------------------------------------------------------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    answers: list[tuple[int, float]] = []
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(dict(self.headers.items()))
        status, delay = self.answers.pop(0) if self.answers else (200, 0.0)
        time.sleep(delay)
        body = b"received"
        with contextlib.suppress(ConnectionError):  # the client may have given up (a timeout test)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(settings: Any) -> Iterator[str]:
    settings.JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    Receiver.answers, Receiver.seen = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_http_target_outcomes(user, receiver):
    slot = Slot(env={}, output_limit=100)  # http never needs the child
    job = make_job(user, "http", target={"url": receiver, "body": "{}"}, secret="s3cret", timeout_seconds=1)
    Receiver.answers = [(200, 0.0), (500, 0.0), (200, 3.0)]
    ok = slot.execute(job, fire_key="s:9", attempt=1)
    assert (ok.status, ok.output, ok.error) == ("succeeded", "HTTP 200\nreceived", "")
    failed = slot.execute(job, fire_key="s:9", attempt=2)
    assert (failed.status, failed.output) == ("failed", "HTTP 500\nreceived")
    assert failed.error.startswith("HTTP 500")
    late = slot.execute(job, fire_key="s:9", attempt=3)
    assert late.status == "timed_out" and "timed out" in late.error
    assert [seen["webhook-id"] for seen in Receiver.seen] == ["s:9"] * 3
    assert [seen["X-Jobscheduler-Attempt"] for seen in Receiver.seen] == ["1", "2", "3"]
    assert slot.child_pid is None
