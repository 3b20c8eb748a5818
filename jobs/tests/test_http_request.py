"""What goes out: the URL, method, headers and body of a delivery, and headers refused before dialling."""

from __future__ import annotations

import pytest

from jobs.targets.http import DeliveryResult
from jobs.tests.webhook_doubles import (
    FIRE_KEY,
    NOW,
    LoopbackOnly,
    Receiver,
    send,
    standard_webhooks_signature,
)

pytestmark = pytest.mark.usefixtures("no_allow_list")


def test_delivers_with_every_header_and_a_verifiable_signature(receiver: Receiver, allow_loopback: None) -> None:
    body = '{"event": "tick", "n": 1}'
    result = send(
        f"http://127.0.0.1:{receiver.port}/hooks/in?source=scheduler&x=1",
        secret="plain-shared-secret",
        attempt=3,
        body=body,
        headers={"X-Custom": "yes", "Authorization": "Bearer abc"},
    )

    assert result == DeliveryResult(
        ok=True, status_code=200, response_excerpt="received", error="", duration_ms=result.duration_ms
    )
    assert result.duration_ms >= 0
    (received,) = receiver.requests
    assert received.method == "POST"
    assert received.path == "/hooks/in?source=scheduler&x=1"
    assert received.body == body.encode()
    assert received.header("Host") == f"127.0.0.1:{receiver.port}"
    assert received.header("webhook-id") == FIRE_KEY
    assert received.header("webhook-timestamp") == str(int(NOW))
    assert received.header("Idempotency-Key") == FIRE_KEY
    assert received.header("X-Jobscheduler-Attempt") == "3"
    assert received.header("Content-Type") == "application/json"
    assert received.header("X-Custom") == "yes"
    assert received.header("Authorization") == "Bearer abc"
    assert received.header("webhook-signature") == standard_webhooks_signature(b"plain-shared-secret", received)


def test_every_attempt_carries_the_same_webhook_id(receiver: Receiver, allow_loopback: None) -> None:
    url = f"http://127.0.0.1:{receiver.port}/"
    for attempt, now in ((1, NOW), (2, NOW + 30), (3, NOW + 90)):
        assert send(url, secret="s3cret", attempt=attempt, now=now, body='{"a": 1}').ok

    first, second, third = receiver.requests
    assert {r.header("webhook-id") for r in receiver.requests} == {FIRE_KEY}
    assert {r.header("Idempotency-Key") for r in receiver.requests} == {FIRE_KEY}
    assert [r.header("X-Jobscheduler-Attempt") for r in receiver.requests] == ["1", "2", "3"]
    assert [r.header("webhook-timestamp") for r in receiver.requests] == [
        str(int(NOW)),
        str(int(NOW + 30)),
        str(int(NOW + 90)),
    ]
    for received in receiver.requests:
        assert received.header("webhook-signature") == standard_webhooks_signature(b"s3cret", received)
    assert first.header("webhook-signature") != second.header("webhook-signature") != third.header("webhook-signature")


def test_job_headers_cannot_override_ours(receiver: Receiver, allow_loopback: None) -> None:
    forged = {
        "Webhook-Id": "forged",
        "WEBHOOK-TIMESTAMP": "1",
        "webhook-signature": "v1,forged",
        "idempotency-key": "forged",
        "X-JobScheduler-Attempt": "99",
        "Host": "internal.example",
        "Content-Length": "1",
        "Transfer-Encoding": "chunked",
        "Content-Type": "text/plain",
    }
    assert send(f"http://127.0.0.1:{receiver.port}/", secret="k", body="hi", headers=forged).ok

    (received,) = receiver.requests
    assert received.header("webhook-id") == FIRE_KEY
    assert received.header("webhook-timestamp") == str(int(NOW))
    assert received.header("webhook-signature") == standard_webhooks_signature(b"k", received)
    assert received.header("Idempotency-Key") == FIRE_KEY
    assert received.header("X-Jobscheduler-Attempt") == "1"
    assert received.header("Host") == f"127.0.0.1:{receiver.port}"
    assert received.header("Transfer-Encoding") is None
    assert received.header("Content-Length") == "2"
    assert received.header("Content-Type") == "text/plain"  # not reserved: the job's choice wins
    assert received.body == b"hi"


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_other_methods(receiver: Receiver, allow_loopback: None, method: str) -> None:
    assert send(f"http://127.0.0.1:{receiver.port}/m", method=method).ok
    (received,) = receiver.requests
    assert received.method == method
    assert received.body == b""


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nX-Injected: 1"},
        {"X-Evil": "a\nb"},
        {"Bad Name": "x"},
        {"X-Evil:": "x"},
        {"X-Unicode": "snowman ☃"},
    ],
)
def test_unsafe_headers_are_refused_before_sending(
    receiver: Receiver, allow_loopback: None, headers: dict[str, str]
) -> None:
    dialler = LoopbackOnly()
    result = send(f"http://127.0.0.1:{receiver.port}/", headers=headers, dialler=dialler)
    assert not result.ok
    assert result.error.startswith("refused: ")
    assert dialler.calls == []
    assert receiver.requests == []
