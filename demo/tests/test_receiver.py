"""demo.receiver and demo_receiver: accepts correctly signed Standard Webhooks deliveries, refuses bad or stale ones.

The receiver runs in a thread on a free loopback port (one test runs the command itself);
deliveries are signed here with hashlib and hmac, independently of jobs.targets.http.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.receiver import DEMO_SECRET, PATH, Receiver, serve, verify
from devtools.servers import free_port, port_open

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_760_000_000  # the receiver's clock in these tests (epoch seconds)
KEY = b"a demo key of 32 bytes, or so..."
SECRET = "whsec_" + base64.b64encode(KEY).decode()
BODY = b'{"hello": "from jobscheduler"}'


def signature(key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> str:
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(msg_id: str = "sched-1:1760000000000", timestamp: int = NOW, key: bytes = KEY) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, msg_id, timestamp, BODY),
        "X-Jobscheduler-Attempt": "1",
        "Content-Type": "application/json",
    }


class Running:
    def __init__(self, receiver: Receiver, out: io.StringIO):
        self.receiver = receiver
        self.out = out

    def post(self, headers: dict[str, str], body: bytes = BODY, path: str = PATH) -> tuple[int, dict[str, Any]]:
        connection = http.client.HTTPConnection("127.0.0.1", self.receiver.port, timeout=5)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]


@pytest.fixture
def running() -> Iterator[Running]:
    out = io.StringIO()
    receiver = Receiver(0, secret=SECRET, out=out, clock=lambda: float(NOW))
    thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield Running(receiver, out)
    receiver.shutdown()
    receiver.server_close()
    thread.join(5)


def test_accepts_a_correctly_signed_delivery_and_logs_one_json_line(running: Running) -> None:
    status, answer = running.post(signed_headers())
    assert (status, answer) == (200, {"ok": True, "duplicate": False})
    [line] = running.lines()
    assert line["status"] == 200 and line["verified"] is True and line["reason"] == ""
    assert line["webhook_id"] == "sched-1:1760000000000"
    assert (line["attempt"], line["bytes"], line["received_ms"]) == ("1", len(BODY), NOW * 1000)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"key": b"another key"}, "no v1 signature matches"),
        ({"body": b'{"hello": "from someone else"}'}, "no v1 signature matches"),
        ({"msg_id": "sched-1:1760000001000"}, "no v1 signature matches"),
    ],
)
def test_rejects_a_bad_signature(running: Running, change: dict[str, Any], reason: str) -> None:
    headers = signed_headers(key=change.get("key", KEY))
    if "msg_id" in change:  # signed for one message, sent as another
        headers["webhook-id"] = change["msg_id"]
    status, answer = running.post(headers, body=change.get("body", BODY))
    assert (status, answer) == (401, {"ok": False, "error": reason})
    assert running.lines()[0]["verified"] is False


def test_rejects_a_stale_or_future_timestamp_even_when_correctly_signed(running: Running) -> None:
    assert running.post(signed_headers(timestamp=NOW - 300))[0] == 200  # five minutes: still in time
    status, answer = running.post(signed_headers(timestamp=NOW - 301))
    assert (status, answer["error"]) == (401, "timestamp too old (301 s)")
    status, answer = running.post(signed_headers(timestamp=NOW + 301))
    assert (status, answer["error"]) == (401, "timestamp too far in the future (301 s)")


def test_rejects_requests_that_are_not_standard_webhooks(running: Running) -> None:
    headers = signed_headers()
    del headers["webhook-signature"]
    assert running.post(headers)[0] == 400
    assert running.post({**signed_headers(), "webhook-timestamp": "soon"})[0] == 400
    assert running.post(signed_headers(), path="/elsewhere")[0] == 404


def test_any_matching_v1_signature_is_enough(running: Running) -> None:
    """Several signatures (a secret being rotated); other versions are ignored."""
    good = signed_headers()["webhook-signature"]
    other = signature(b"the old key", "sched-1:1760000000000", NOW, BODY)
    headers = {**signed_headers(), "webhook-signature": f"v2,{good[3:]} {other} v1,not-base64! {good}"}
    assert running.post(headers)[0] == 200
    assert running.post({**headers, "webhook-signature": f"v2,{good[3:]} {other}"})[0] == 401


def test_a_redelivery_is_accepted_and_flagged(running: Running) -> None:
    running.post(signed_headers())
    status, answer = running.post({**signed_headers(), "X-Jobscheduler-Attempt": "2"})
    assert (status, answer) == (200, {"ok": True, "duplicate": True})
    assert [line["duplicate"] for line in running.lines()] == [False, True]


def test_verify_reads_a_plain_secret_as_its_utf8_bytes() -> None:
    """Secrets without the whsec_ prefix are used as they are, as the worker signs with them."""
    headers = signed_headers(key=b"change-me")
    assert verify("change-me", headers, BODY, now=NOW).ok
    assert verify(DEMO_SECRET, headers, BODY, now=NOW).status == 401


def test_the_worker_s_signature_is_accepted(running: Running, settings: Any) -> None:
    """What jobs.targets.http.deliver sends for the demo job passes this independent check."""
    from jobs.targets.http import deliver

    settings.JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    target = {"method": "POST", "url": f"http://127.0.0.1:{running.receiver.port}{PATH}", "body": BODY.decode()}
    result = deliver(target, fire_key="sched-9:1760000000000", attempt=1, secret=SECRET, timeout=5, now=lambda: NOW)
    assert result.ok, result.error
    assert result.status_code == 200
    [line] = running.lines()
    assert (line["webhook_id"], line["verified"], line["attempt"]) == ("sched-9:1760000000000", True, "1")


def test_serve_announces_its_url_and_closes_the_socket_after_shutdown() -> None:
    out = io.StringIO()
    receiver = Receiver(0, secret=SECRET, out=out, clock=lambda: float(NOW))
    port = receiver.port
    thread = threading.Thread(target=serve, args=(receiver,), kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        assert Running(receiver, out).post(signed_headers())[0] == 200
    finally:
        receiver.shutdown()
        thread.join(5)
    assert not thread.is_alive()
    first, delivery = Running(receiver, out).lines()
    assert first == {"msg": "demo receiver listening", "url": f"http://127.0.0.1:{port}{PATH}"}
    assert delivery["verified"] is True
    assert not port_open("127.0.0.1", port)


@pytest.mark.slow
def test_the_command_serves_on_loopback_and_stops_on_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo_receiver", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "jobscheduler.settings"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["url"] == f"http://127.0.0.1:{port}{PATH}"
        assert port_open("127.0.0.1", port)
        now = int(time.time())
        msg_id = "sched-2:1760000000000"
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(now),
            "webhook-signature": signature(base64.b64decode(DEMO_SECRET[6:]), msg_id, now, BODY),
        }
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("POST", PATH, body=BODY, headers=headers)
        assert connection.getresponse().status == 200
        connection.close()
        line = json.loads(process.stdout.readline())
        assert (line["webhook_id"], line["verified"]) == (msg_id, True)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_a_rotation_delivery_verifies_with_either_secret(settings: Any) -> None:
    """The worker signs with the new and the previous secret: a receiver holding either accepts."""
    from jobs.targets.http import deliver

    old_key = b"the previous key, 32 bytes long."
    old = "whsec_" + base64.b64encode(old_key).decode()
    settings.JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    for known in ([SECRET], [old], [old, SECRET]):
        out = io.StringIO()
        receiver = Receiver(0, secret=known, out=out, clock=lambda: float(NOW))
        thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            target = {"url": f"http://127.0.0.1:{receiver.port}{PATH}", "body": BODY.decode()}
            result = deliver(target, fire_key="s:1", attempt=1, secret=[SECRET, old], timeout=5, now=lambda: NOW)
            assert result.ok, (known, result.error)
        finally:
            receiver.shutdown()
            receiver.server_close()
            thread.join(5)


def test_a_receiver_holding_old_and_new_accepts_either_signature() -> None:
    old_key = b"the previous key, 32 bytes long."
    old = "whsec_" + base64.b64encode(old_key).decode()
    assert verify([old, SECRET], signed_headers(key=old_key), BODY, now=NOW).ok
    assert verify([old, SECRET], signed_headers(), BODY, now=NOW).ok
    assert verify([old], signed_headers(), BODY, now=NOW).status == 401
