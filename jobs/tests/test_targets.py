"""Validating targets: clean_target per type, and http validation agreeing with what delivery sends."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.targets import clean_target
from jobs.targets.http.addresses import Refused, allow_list, vetted
from jobs.targets.http.request import MAX_BODY_CHARS, InvalidTarget, build

URL = "https://hooks.example.com/run"


def test_a_target_must_be_an_object() -> None:
    assert clean_target("http", ["https://hooks.example.com/"]) == {"target": "Must be a JSON object."}


def test_an_unknown_target_type_is_named() -> None:
    assert clean_target("shell", {}) == {"target_type": "Unknown target type 'shell'."}


def test_python_targets_name_a_django_task_by_its_path() -> None:
    assert clean_target("python", {"task": "demo.tasks.echo", "args": [1], "kwargs": {"a": 1}}) == {}
    assert clean_target("python", {"task": "demo.tasks.echo", "kwargs": [1]}) == {
        "target": "kwargs must be a JSON object."
    }
    assert clean_target("python", {"task": "demo.tasks.echo", "args": {}}) == {"target": "args must be a JSON array."}


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("os.system", "is not in an installed app's tasks module"),
        ("jobscheduler.settings.SECRET_KEY", "is not in an installed app's tasks module"),
        ("demo.seed.seed_demo", "is not in an installed app's tasks module"),
        ("demo.tasks.missing", "cannot be imported"),
        ("demo.tasks.os", "is not a Django Task"),  # a module attribute, not a Task
        ("demo.tasks.TaskContext", "is not a Django Task"),
        ("demo.tasks", "is not in an installed app's tasks module"),
        ("demo.tasks.hello()", "is not an import path"),
        (["demo.tasks.hello"], "is not an import path"),
    ],
)
def test_only_tasks_in_installed_apps_tasks_modules_can_be_named(path: Any, reason: str) -> None:
    message = clean_target("python", {"task": path})["target"]
    assert reason in message
    assert "Discovered tasks: " in message or "discovered: " in message
    assert "demo.tasks.hello" in message


def test_a_path_outside_tasks_modules_is_refused_before_anything_is_imported() -> None:
    import sys

    assert "this" not in sys.modules  # the Zen of Python: printed by importing it
    assert "not in an installed app's tasks module" in clean_target("python", {"task": "this.s"})["target"]
    assert "this" not in sys.modules


def test_discovered_tasks_are_every_task_of_the_tasks_modules_with_docstrings() -> None:
    from jobs.targets.python import discovered_tasks, summary

    found = discovered_tasks()
    assert {"demo.tasks.hello", "demo.tasks.attempt", "demo.tasks.greet_later"} <= set(found)
    assert all(path.split(".")[1] == "tasks" for path in found)
    assert summary(found["demo.tasks.hello"]) == "The demo job: says hello, so a newcomer sees a run succeed."


def test_the_deprecated_function_form_still_names_tasks() -> None:
    # The old registry's names: "app.name" stands for app.tasks.name; a path stands for itself.
    assert clean_target("python", {"function": "demo.hello", "kwargs": {"name": "x"}}) == {}
    assert clean_target("python", {"function": "demo.tasks.hello"}) == {}
    message = clean_target("python", {"function": "os.system"})["target"]
    assert message.startswith("Function 'os.system' is not a known task; tasks: ")
    both = clean_target("python", {"function": "demo.hello", "task": "demo.tasks.hello"})["target"]
    assert "not both" in both


def test_the_deprecated_decorator_makes_a_django_task_and_remembers_its_name() -> None:
    from jobs.targets import python
    from jobs.tasks_api import Task

    def legacy_function() -> str:
        return "old"

    legacy_function.__module__, legacy_function.__qualname__ = "demo.tasks", "legacy_function"
    with pytest.warns(DeprecationWarning, match="deprecated"):
        made = python.task("legacy.name")(legacy_function)
    assert isinstance(made, Task) and made.call() == "old"
    assert python._legacy_names["legacy.name"] == "demo.tasks.legacy_function"


def test_command_targets_name_an_allowed_command_with_string_arguments() -> None:
    with override_settings(JOBSCHEDULER_ALLOWED_COMMANDS={"clearsessions": [["-v", "0"]]}):
        assert clean_target("command", {"command": "clearsessions", "args": ["-v", "0"]}) == {}
        assert clean_target("command", {"command": "clearsessions", "args": [0]}) == {
            "target": "args must be a list of strings."
        }
        assert clean_target("command", {"command": "sendtestemail"}) == {
            "target": "Command 'sendtestemail' is not in JOBSCHEDULER_ALLOWED_COMMANDS."
        }


def test_a_command_named_without_a_rule_takes_no_arguments() -> None:
    # The short form (names only, as the environment variable gives them) allows no arguments:
    # allowing purge_runs must not allow "purge_runs --days 0" (every owner's history gone).
    with override_settings(JOBSCHEDULER_ALLOWED_COMMANDS="clearsessions, purge_runs"):
        assert clean_target("command", {"command": "purge_runs"}) == {}
        assert clean_target("command", {"command": "purge_runs", "args": ["--days", "0"]}) == {
            "target": "Command 'purge_runs': This command takes no arguments here."
        }


def test_fixed_argument_lists_allow_exactly_those() -> None:
    with override_settings(JOBSCHEDULER_ALLOWED_COMMANDS={"purge_runs": [["--days", "30"], ["--days", "90"]]}):
        assert clean_target("command", {"command": "purge_runs", "args": ["--days", "90"]}) == {}
        assert clean_target("command", {"command": "purge_runs", "args": ["--days", "0"]}) == {
            "target": "Command 'purge_runs': These arguments are not allowed; allowed: --days 30; --days 90."
        }


OPTIONS = {
    "purge_runs": {
        "--days": {"type": "int", "min": 7, "max": 365, "required": True},
        "--dry-run": {"type": "flag"},
    },
    "send_report": {
        "--period": {"type": "choice", "choices": ["daily", "weekly"]},
        "--to": {"type": "str", "pattern": "[a-z]+@example\\.com"},
    },
}


@pytest.mark.parametrize(
    ("command", "args", "problem"),
    [
        ("purge_runs", ["--days", "30"], None),
        ("purge_runs", ["--days=30", "--dry-run"], None),
        ("purge_runs", ["--dry-run", "--days", "365"], None),
        ("purge_runs", ["--days", "0"], "--days must be at least 7."),
        ("purge_runs", ["--days", "1000"], "--days must be at most 365."),
        ("purge_runs", ["--days", "1e3"], "--days must be a whole number."),
        ("purge_runs", ["--days"], "--days needs a value."),
        ("purge_runs", ["--dry-run"], "Missing required option(s): --days."),
        ("purge_runs", ["--days", "30", "--days", "40"], "--days is given twice."),
        ("purge_runs", ["--dry-run=yes", "--days", "30"], "--dry-run takes no value."),
        (
            "purge_runs",
            ["--days", "30", "--database", "other"],
            "Argument '--database' is not allowed; allowed options: --days, --dry-run.",
        ),
        ("purge_runs", ["30"], "Argument '30' is not allowed; allowed options: --days, --dry-run."),
        ("send_report", ["--period", "daily", "--to", "ops@example.com"], None),
        ("send_report", ["--period", "hourly"], "--period must be one of: daily, weekly."),
        ("send_report", ["--to", "ops@evil.com"], "--to must match '[a-z]+@example\\\\.com'."),
    ],
)
def test_option_rules_check_each_argument(command: str, args: list[str], problem: str | None) -> None:
    with override_settings(JOBSCHEDULER_ALLOWED_COMMANDS=OPTIONS):
        expected = {"target": f"Command {command!r}: {problem}"} if problem else {}
        assert clean_target("command", {"command": command, "args": args}) == expected


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"dumpdata": []}, "names dumpdata, which no job may run"),
        ("shell,clearsessions", "names shell, which no job may run"),
        ({"purge_runs": "anything"}, "give [] (no arguments), a list of argument lists, or an object of options"),
        ({"purge_runs": {"--days": {"type": "float"}}}, "option --days: give {'type'"),
        ({"purge_runs": {"--to": {"type": "str"}}}, "a str option needs a pattern"),
        ({"purge_runs": {"days": {"type": "int"}}}, "option names look like --name"),
    ],
)
def test_unsafe_or_malformed_command_settings_are_refused(setting: Any, message: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from jobs.targets.command import parse_allowed

    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        parse_allowed(setting)
    with override_settings(JOBSCHEDULER_ALLOWED_COMMANDS=setting):
        assert "Command targets are misconfigured" in clean_target("command", {"command": "clearsessions"})["target"]


@pytest.mark.parametrize(
    ("target_type", "target"),
    [
        ("python", {"task": "demo.tasks.hello", "timeout": 5}),
        ("http", {"url": URL, "timeout": 5}),
    ],
)
def test_unknown_fields_are_named(target_type: str, target: dict[str, Any]) -> None:
    expected = "Unknown target field(s): timeout."
    assert clean_target(target_type, target) == {"target": expected}


def test_a_deliverable_http_target_is_clean() -> None:
    target = {"url": URL, "method": "PUT", "headers": {"Authorization": "Bearer abc", "X-Note": "café"}, "body": "{}"}
    assert clean_target("http", target) == {}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({}, "The target has no url."),
        ({"url": "ftp://example.com/"}, "Only http and https URLs are delivered, not 'ftp'."),
        ({"url": "https://u:p@example.com/"}, "The URL must not carry credentials; use headers."),
        ({"url": URL, "method": "post"}, "method must be one of GET, POST, PUT, PATCH, DELETE."),
        ({"url": URL, "headers": {"X-Number": 1}}, "headers must be an object of strings."),
        (
            {"url": URL, "body": "x" * (MAX_BODY_CHARS + 1)},
            f"body must be a string of at most {MAX_BODY_CHARS} characters.",
        ),
    ],
)
def test_http_target_problems(target: dict[str, Any], message: str) -> None:
    assert clean_target("http", target) == {"target": message}


# --- What delivery would refuse is refused when the job is validated ---------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Evil": "a\r\nX-Injected: 1"}, "Invalid value for header 'X-Evil'."),
        ({"X-Evil": "a\nb"}, "Invalid value for header 'X-Evil'."),
        ({"X-Evil": "a\rb"}, "Invalid value for header 'X-Evil'."),
        ({"X-Evil": "a\0b"}, "Invalid value for header 'X-Evil'."),
        ({"X-Unicode": "snowman \u2603"}, "Header 'X-Unicode' has characters outside Latin-1."),
        ({"Bad Name": "x"}, "Invalid header name 'Bad Name'."),
        ({"X-Evil:": "x"}, "Invalid header name 'X-Evil:'."),
        ({"X-Evil\r\nX-Injected": "x"}, "Invalid header name 'X-Evil\\r\\nX-Injected'."),
        ({"X-\u2603": "x"}, "Invalid header name 'X-\u2603'."),
        ({"": "x"}, "Invalid header name ''."),
    ],
)
def test_headers_delivery_would_refuse_are_refused(headers: dict[str, str], message: str) -> None:
    assert clean_target("http", {"url": URL, "headers": headers}) == {"target": message}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1", "Invalid URL (Invalid IPv6 URL)."),
        ("http://[::1]:99999/", "Invalid URL (Port out of range 0-65535)."),
        ("http://hooks.example.com:port/", "Invalid URL (Port could not be cast to integer value as 'port')."),
        ("http://[fe80::1%25eth0]/", "IPv6 zone identifiers are not allowed."),
        ("http://[not:an:address]/", "Invalid URL ('not:an:address' does not appear to be an IPv4 or IPv6 address)."),
        ("http://exa mple.com/", "Invalid host name 'exa mple.com'."),
        ("http://a..b/", "Invalid host name 'a..b'."),
        ("http://@hooks.example.com/", "The URL must not carry credentials; use headers."),
        ("https:///path", "The URL has no host."),
        ("", "The target has no url."),
    ],
)
def test_urls_delivery_would_refuse_are_refused_not_raised(url: str, message: str) -> None:
    assert clean_target("http", {"url": url}) == {"target": message}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8765/demo-webhook", "The URL's host is off limits: 127.0.0.1 is a loopback address."),
        ("http://[::1]/", "The URL's host is off limits: ::1 is a loopback address."),
        (
            "http://169.254.169.254/",
            "The URL's host is off limits: 169.254.169.254 is a cloud metadata address, never reachable.",
        ),
        ("http://0x7f.1/", "The URL's host is off limits: 127.0.0.1 is a loopback address (from 0x7f.1)."),
    ],
)
def test_literal_addresses_are_judged_by_the_address_policy(no_allow_list: None, url: str, message: str) -> None:
    # Known when the job is saved, so refused then rather than at every delivery.
    assert clean_target("http", {"url": url}) == {"target": message}


def test_allow_listed_literal_addresses_and_names_are_clean() -> None:
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1", "10.0.0.0/8"]):
        for url in ("http://127.0.0.1:8765/demo-webhook", "http://0x7f.1/", "http://10.9.8.7/", "http://localhost/"):
            assert clean_target("http", {"url": url}) == {}, url


def test_names_in_place_of_strings_are_refused_not_raised() -> None:
    # Looked up in the registry or the allow-list, a list or object would be unhashable.
    for name in (["demo.hello"], {"name": "demo.hello"}, 1, None):
        assert clean_target("python", {"function": name})["target"].startswith(f"Function {name!r} is not a known task")
        assert "is not an import path" in clean_target("python", {"task": name})["target"]
        assert clean_target("command", {"command": name}) == {
            "target": f"Command {name!r} is not in JOBSCHEDULER_ALLOWED_COMMANDS."
        }


def test_reserved_headers_are_dropped_as_delivery_drops_them() -> None:
    assert clean_target("http", {"url": URL, "headers": {"Host": "a\r\nb", "webhook-id": "\u2603"}}) == {}


_URL_PIECES = st.sampled_from([*"htps:/[]@%.#?\\ 0179afx", "::1", "ffff", "example.com", "\u3002", "\uff11", "\u2603"])
_URL_TEXT = st.lists(_URL_PIECES, max_size=12).map("".join)
_HEADER_TEXT = st.text(st.characters(max_codepoint=0x2FFF), max_size=12)


@settings(max_examples=400, deadline=None)
@given(
    url=st.one_of(_URL_TEXT.map(lambda rest: "http://" + rest), _URL_TEXT),
    headers=st.dictionaries(_HEADER_TEXT, _HEADER_TEXT, max_size=3),
)
def test_what_validation_accepts_delivery_can_build(url: str, headers: dict[str, str]) -> None:
    target = {"url": url, "headers": headers}
    problems = clean_target("http", target)  # never raises
    if not problems:
        build(target, fire_key="k", attempt=1, secret="", timestamp=0)  # nor does this
    elif problems["target"].startswith("The URL's host is off limits: "):
        # Built, then refused by the address policy before anything is dialled.
        destination = build(target, fire_key="k", attempt=1, secret="", timestamp=0).destination
        assert destination.literal is not None
        with pytest.raises(Refused):
            vetted(destination.host, [destination.literal], named=False, allow=allow_list())
    else:
        with pytest.raises(InvalidTarget):
            build(target, fire_key="k", attempt=1, secret="", timestamp=0)


def test_the_system_check_refuses_a_command_no_job_may_run() -> None:
    from django.core import checks

    with override_settings(JOBSCHEDULER_ALLOWED_COMMANDS='{"dumpdata": []'):
        errors = [message for message in checks.run_checks() if message.id == "jobs.E001"]
        assert errors and "not valid JSON" in errors[0].msg
    with override_settings(JOBSCHEDULER_ALLOWED_COMMANDS="dumpdata"):
        errors = [message for message in checks.run_checks() if message.id == "jobs.E001"]
        assert errors and "names dumpdata, which no job may run" in errors[0].msg
    with override_settings(JOBSCHEDULER_ALLOWED_COMMANDS='{"purge_runs": {"--days": {"type": "int", "min": 7}}}'):
        assert not [message for message in checks.run_checks() if message.id == "jobs.E001"]


def test_the_system_check_refuses_a_bad_webhook_allow_list() -> None:
    from django.core import checks

    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["ci.internal", "not a host!"]):
        errors = [message for message in checks.run_checks() if message.id == "jobs.E002"]
        assert errors and "'not a host!'" in errors[0].msg
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["ci.internal", "10.0.0.0/8"]):
        assert not [message for message in checks.run_checks() if message.id == "jobs.E002"]


def test_a_bad_allow_list_is_a_clear_refusal_not_an_error() -> None:
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["not a host!"]):
        message = clean_target("http", {"url": "http://10.1.2.3/hook"})["target"]
    assert message.startswith("Webhooks are misconfigured: JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS entry 'not a host!'")
