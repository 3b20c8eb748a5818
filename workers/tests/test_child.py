"""The child side of a run process, called in this process: replies to python requests, bounded output."""

from __future__ import annotations

from typing import Any

from workers import child
from workers.child import BoundedText, run_request


def test_bounded_text_keeps_the_start_and_counts_the_rest():
    text = BoundedText(10)
    for _ in range(100):
        text.write("abc")
    assert text.getvalue() == "abcabcabca\n... (290 more characters)"


# --- python requests -----------------------------------------------------------------------------


def request(kind: str, target: dict[str, Any], limit: int = 1000) -> dict[str, Any]:
    return {"kind": kind, "target": target, "fire_key": "s:1000", "attempt": 2, "output_chars": limit}


def test_python_task_sees_its_run_and_its_return_value_is_kept():
    reply = run_request(request("python", {"task": "demo.tasks.attempt"}))
    assert reply["status"] == "succeeded"
    # takes_context: the attempt number, and the run's fire key as the TaskResult's id.
    assert reply["value"] == {"attempt": 2, "result_id": "s:1000"}
    assert reply["output"] == '{"attempt": 2, "result_id": "s:1000"}'
    assert child.current_run() is None


def test_async_tasks_run_to_completion_and_legacy_names_still_run():
    reply = run_request(request("python", {"task": "demo.tasks.greet_later", "args": ["ada"]}))
    assert (reply["status"], reply["value"]) == ("succeeded", "hello later, ada")
    reply = run_request(request("python", {"function": "demo.hello", "kwargs": {"name": "old"}}))
    assert (reply["status"], reply["value"]) == ("succeeded", "hello, old")


def test_a_return_value_json_cannot_hold_fails_the_run_as_the_tasks_contract_says():
    reply = run_request(request("python", {"task": "demo.tasks.unserializable"}))
    assert reply["status"] == "failed" and reply["error_class"] == "builtins.TypeError"
    assert "cannot be stored as JSON" in reply["error"]


def test_python_task_exception_is_a_failure_with_the_traceback_tail():
    reply = run_request(request("python", {"task": "demo.tasks.fail", "kwargs": {"message": "boom"}}, limit=300))
    assert reply["status"] == "failed"
    assert len(reply["error"]) <= 300
    assert reply["error"].endswith("RuntimeError: boom")
    assert reply["error_class"] == "builtins.RuntimeError"


def test_bad_kwargs_and_unknown_functions_fail_cleanly():
    reply = run_request(request("python", {"task": "demo.tasks.hello", "kwargs": {"nope": 1}}))
    assert reply["status"] == "failed" and "unexpected keyword argument 'nope'" in reply["error"]
    assert run_request(request("python", {"function": "missing"}))["status"] == "failed"


def test_large_return_values_are_cut_to_the_limit():
    reply = run_request(request("python", {"task": "demo.tasks.echo", "kwargs": {"blob": "x" * 10_000}}, limit=200))
    assert reply["status"] == "succeeded"
    assert len(reply["output"]) == 200 and "more characters" in reply["output"]
