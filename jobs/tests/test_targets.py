"""Validating targets: clean_target per type, and http validation agreeing with what delivery sends."""

from __future__ import annotations

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


def test_python_targets_name_a_registered_function() -> None:
    assert clean_target("python", {"function": "demo.echo", "kwargs": {"a": 1}}) == {}
    message = clean_target("python", {"function": "os.system"})["target"]
    assert message.startswith("Function 'os.system' is not registered with @task; registered: ")
    assert "demo.hello" in message
    assert clean_target("python", {"function": "demo.echo", "kwargs": [1]}) == {
        "target": "kwargs must be a JSON object."
    }


def test_command_targets_name_an_allowed_command_with_string_arguments() -> None:
    with override_settings(JOBSCHEDULER_ALLOWED_COMMANDS=["clearsessions"]):
        assert clean_target("command", {"command": "clearsessions", "args": ["-v", "0"]}) == {}
        assert clean_target("command", {"command": "clearsessions", "args": [0]}) == {
            "target": "args must be a list of strings."
        }
        assert clean_target("command", {"command": "flush"}) == {
            "target": "Command 'flush' is not in JOBSCHEDULER_ALLOWED_COMMANDS."
        }


@pytest.mark.parametrize(
    ("target_type", "target"),
    [
        ("python", {"function": "demo.hello", "args": []}),
        ("http", {"url": URL, "timeout": 5}),
    ],
)
def test_unknown_fields_are_named(target_type: str, target: dict[str, Any]) -> None:
    expected = "Unknown target field(s): args." if target_type == "python" else "Unknown target field(s): timeout."
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
        ("http://169.254.169.254/", "The URL's host is off limits: 169.254.169.254 is a cloud metadata address."),
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
        assert clean_target("python", {"function": name})["target"].startswith(f"Function {name!r} is not registered")
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
