"""Webhook delivery against real local receivers; nothing here leaves loopback.

Every delivery goes through ``LoopbackOnly``, a connector that dials loopback and refuses
anything else, and ``FakeDNS``, so no test can reach the internet or real DNS (``localhost``
aside). Signatures are checked by recomputing the Standard Webhooks HMAC here, not by calling
the module's signing code.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import ipaddress
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs import webhooks
from jobs.webhooks import DeliveryResult, deliver

FIRE_KEY = "sched-42:2026-03-01T09:00:00Z"
NOW = 1_767_225_600.75  # a fixed clock for webhook-timestamp
PUBLIC_IP = "93.184.216.34"  # only ever handed to LoopbackOnly, which refuses to dial it


# --- Test doubles: DNS, dialling, a canary, a receiver ---------------------------------------


class FakeDNS:
    """Answers from a table (one answer per call, the last repeating); unknown names fail."""

    def __init__(self, table: dict[str, list[list[str]]] | None = None, *, block: threading.Event | None = None):
        self.table = table or {}
        self.block = block
        self.calls: list[str] = []

    def __call__(self, name: str, port: int) -> list[str]:
        self.calls.append(name)
        if self.block is not None:
            self.block.wait(10)
        answers = self.table.get(name.lower().removesuffix("."))
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[min(len(self.calls), len(answers)) - 1]


class LoopbackOnly:
    """Records every dial; really connects only to loopback, refuses everything else."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, ip: str, port: int, timeout: float) -> socket.socket:
        self.calls.append((ip, port))
        if not ipaddress.ip_address(ip).is_loopback:
            raise ConnectionRefusedError(111, "LoopbackOnly does not leave this machine")
        return webhooks.dial(ip, port, timeout)


class Canary:
    """A listener that is never answered: any connection at all shows up in ``hits()``.

    It listens on 127.0.0.1 and, when the machine has IPv6, on [::1] with the same port.
    """

    def __init__(self) -> None:
        self.sockets = [socket.create_server(("127.0.0.1", 0))]
        self.port = self.sockets[0].getsockname()[1]
        with contextlib.suppress(OSError):  # no IPv6 here
            self.sockets.append(socket.create_server(("::1", self.port), family=socket.AF_INET6))
        self.accepted = 0

    def hits(self) -> int:
        # A connect completes in the kernel's backlog, so draining it now sees every one.
        while True:
            ready, _, _ = select.select(self.sockets, [], [], 0)
            if not ready:
                return self.accepted
            for listener in ready:
                connection, _ = listener.accept()
                connection.close()
                self.accepted += 1

    def close(self) -> None:
        for listener in self.sockets:
            listener.close()


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None


@dataclass
class Receiver:
    """A real HTTP(S) server on 127.0.0.1 that records requests and answers by path."""

    canary_port: int
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[Received] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    streamed_bytes: int = 0
    port: int = 0
    server: http.server.ThreadingHTTPServer | None = None

    def start(self, tls: ssl.SSLContext | None = None) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver.requests.append(Received(self.command, self.path, list(self.headers.items()), body))
                receiver.route(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)  # type: ignore[assignment,misc]
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def route(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?")[0]
        if path.startswith("/status/"):
            self.answer(handler, int(path.rsplit("/", 1)[1]), b"status body")
        elif path.startswith("/redirect/"):
            location = f"http://127.0.0.1:{self.canary_port}/stolen"
            self.answer(handler, int(path.rsplit("/", 1)[1]), b"moved", {"Location": location})
        elif path == "/slow":
            self.release.wait(10)
            self.answer(handler, 200, b"late")
        elif path == "/drip":
            # Each byte well inside the per-read timeout; only a total deadline stops this.
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            for _ in range(100):  # gives up after ~5s, so a missing deadline fails rather than hangs
                if self.release.wait(0.05):
                    return
                try:
                    handler.wfile.write(b"a")
                    handler.wfile.flush()
                except OSError:
                    return
        elif path == "/endless":
            handler.send_response(200)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Connection", "close")
            handler.end_headers()
            chunk = b"x" * 65536
            while self.streamed_bytes < 512 * 1024 * 1024 and not self.release.is_set():
                try:
                    handler.wfile.write(chunk)
                except OSError:
                    return
                self.streamed_bytes += len(chunk)
        elif path == "/unicode":
            self.answer(handler, 200, ("é" * 5000).encode(), {"Content-Type": "text/plain; charset=utf-8"})
        elif path == "/long":
            self.answer(handler, 200, b"a" * 10_000)
        else:
            self.answer(handler, 200, b"received")

    @staticmethod
    def answer(
        handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture(autouse=True)
def no_allow_list() -> Iterator[None]:
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=[], JOBSCHEDULER_WEBHOOK_EXCERPT_CHARS=2000):
        yield


@pytest.fixture
def allow_loopback() -> Iterator[None]:
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
        yield


@pytest.fixture
def canary() -> Iterator[Canary]:
    listener = Canary()
    yield listener
    listener.close()


@pytest.fixture
def receiver(canary: Canary) -> Iterator[Receiver]:
    server = Receiver(canary_port=canary.port).start()
    yield server
    server.stop()


@pytest.fixture
def dialler() -> LoopbackOnly:
    return LoopbackOnly()


def send(
    url: str,
    *,
    dialler: LoopbackOnly | None = None,
    resolver: Any = None,
    secret: str = "",
    attempt: int = 1,
    timeout: float = 5.0,
    now: float = NOW,
    **target: Any,
) -> DeliveryResult:
    return deliver(
        {"url": url, **target},
        fire_key=FIRE_KEY,
        attempt=attempt,
        secret=secret,
        timeout=timeout,
        now=lambda: now,
        resolver=resolver if resolver is not None else FakeDNS(),
        connect=dialler if dialler is not None else LoopbackOnly(),
    )


def standard_webhooks_signature(key: bytes, received: Received) -> str:
    """The documented algorithm: base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    signed = f"{received.header('webhook-id')}.{received.header('webhook-timestamp')}.".encode() + received.body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


# --- Delivering ---------------------------------------------------------------------------------


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


def test_whsec_secrets_sign_with_the_decoded_key(receiver: Receiver, allow_loopback: None) -> None:
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    assert send(f"http://127.0.0.1:{receiver.port}/", secret=secret, body="{}").ok

    (received,) = receiver.requests
    assert received.header("webhook-signature") == standard_webhooks_signature(key, received)
    assert received.header("webhook-signature") != standard_webhooks_signature(secret.encode(), received)


def test_sign_reproduces_the_published_standard_webhooks_vector() -> None:
    signature = webhooks.sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


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


def test_no_secret_means_no_signature_header(receiver: Receiver, allow_loopback: None) -> None:
    assert send(f"http://127.0.0.1:{receiver.port}/", secret="").ok
    (received,) = receiver.requests
    assert received.header("webhook-signature") is None
    assert received.header("webhook-id") == FIRE_KEY


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


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 503])
def test_non_2xx_is_a_failure_with_its_status(receiver: Receiver, allow_loopback: None, status: int) -> None:
    result = send(f"http://127.0.0.1:{receiver.port}/status/{status}")
    assert not result.ok
    assert result.status_code == status
    assert result.response_excerpt == "status body"
    assert result.error.startswith(f"HTTP {status}")
    assert not result.timed_out


@pytest.mark.parametrize("status", [204, 201, 202])
def test_any_2xx_is_ok(receiver: Receiver, allow_loopback: None, status: int) -> None:
    result = send(f"http://127.0.0.1:{receiver.port}/status/{status}")
    assert (result.ok, result.status_code, result.error) == (True, status, "")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(receiver: Receiver, canary: Canary, allow_loopback: None, status: int) -> None:
    dialler = LoopbackOnly()
    result = send(f"http://127.0.0.1:{receiver.port}/redirect/{status}", dialler=dialler)

    assert not result.ok
    assert result.status_code == status
    assert result.error.startswith(f"redirect ({status}) not followed")
    assert f"127.0.0.1:{canary.port}/stolen" in result.error
    assert len(receiver.requests) == 1
    assert dialler.calls == [("127.0.0.1", receiver.port)]
    assert canary.hits() == 0


# --- Time and size bounds -------------------------------------------------------------------------


def test_a_slow_receiver_times_out(receiver: Receiver, allow_loopback: None) -> None:
    started = time.monotonic()
    result = send(f"http://127.0.0.1:{receiver.port}/slow", timeout=0.5)

    assert (result.ok, result.status_code, result.timed_out) == (False, None, True)
    assert result.error == "timed out after 0.5s"
    assert time.monotonic() - started < 3
    assert 400 <= result.duration_ms < 3000


def test_a_receiver_dripping_bytes_hits_the_total_deadline(receiver: Receiver, allow_loopback: None) -> None:
    # Every read returns within 0.05s, far under the 0.6s per-read timeout.
    started = time.monotonic()
    result = send(f"http://127.0.0.1:{receiver.port}/drip", timeout=0.6)

    assert result.timed_out
    assert result.error == "timed out after 0.6s"
    assert time.monotonic() - started < 3


def test_a_slow_resolver_counts_against_the_timeout(allow_loopback: None) -> None:
    stuck = threading.Event()
    try:
        result = send("http://hooks.example/", resolver=FakeDNS(block=stuck), timeout=0.3)
    finally:
        stuck.set()
    assert result.timed_out
    assert result.error == "timed out after 0.3s"


def test_a_connect_timeout_is_reported_as_one(allow_loopback: None) -> None:
    def black_hole(ip: str, port: int, timeout: float) -> socket.socket:
        raise TimeoutError("timed out")

    result = deliver(
        {"url": "http://127.0.0.1:9/"}, fire_key="k", attempt=1, secret="", timeout=0.2, connect=black_hole
    )
    assert (result.timed_out, result.error) == (True, "timed out after 0.2s")


def test_an_endless_body_is_cut_at_the_excerpt(receiver: Receiver, allow_loopback: None) -> None:
    with override_settings(JOBSCHEDULER_WEBHOOK_EXCERPT_CHARS=100):
        result = send(f"http://127.0.0.1:{receiver.port}/endless", timeout=5)

    assert result.ok
    assert result.response_excerpt == "x" * 100
    assert result.duration_ms < 3000
    receiver.release.set()
    # Only what the kernel buffers before the client hangs up, never the 512 MiB on offer.
    assert receiver.streamed_bytes < 64 * 1024 * 1024


def test_the_excerpt_defaults_to_2000_characters(receiver: Receiver, allow_loopback: None) -> None:
    result = send(f"http://127.0.0.1:{receiver.port}/long")
    assert result.ok
    assert result.response_excerpt == "a" * 2000


def test_the_excerpt_counts_characters_not_bytes(receiver: Receiver, allow_loopback: None) -> None:
    with override_settings(JOBSCHEDULER_WEBHOOK_EXCERPT_CHARS=101):
        result = send(f"http://127.0.0.1:{receiver.port}/unicode")
    assert result.response_excerpt == "é" * 101


# --- Failures that are not the receiver's answer --------------------------------------------------


def test_a_closed_port_is_a_connection_failure(allow_loopback: None) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    result = send(f"http://127.0.0.1:{port}/")
    assert not result.ok
    assert result.status_code is None
    assert result.error.startswith(f"could not connect to 127.0.0.1 port {port}")
    assert not result.timed_out


def test_an_unknown_name_is_a_resolution_failure() -> None:
    dialler = LoopbackOnly()
    result = send("http://nowhere.example/", dialler=dialler)
    assert result.error == "could not resolve nowhere.example: Name or service not known"
    assert dialler.calls == []


def test_a_bad_whsec_secret_is_reported(receiver: Receiver, allow_loopback: None) -> None:
    result = send(f"http://127.0.0.1:{receiver.port}/", secret="whsec_not*base64")
    assert result.error == "refused: the job's whsec_ secret is not valid base64"
    assert receiver.requests == []


def test_a_misconfigured_allow_list_is_reported_not_raised() -> None:
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["10.0.0.0/33"]):
        result = send("http://hooks.example/", resolver=FakeDNS({"hooks.example": [["10.0.0.1"]]}))
    assert result.error.startswith("misconfigured: JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS entry '10.0.0.0/33'")


# --- The allow-list --------------------------------------------------------------------------------


def test_loopback_is_refused_without_the_allow_list(receiver: Receiver) -> None:
    dialler = LoopbackOnly()
    result = send(f"http://127.0.0.1:{receiver.port}/", dialler=dialler)
    assert result.error == "refused: 127.0.0.1 is a loopback address"
    assert dialler.calls == []
    assert receiver.requests == []


@pytest.mark.parametrize("entry", ["127.0.0.0/8", "127.0.0.1/32", " 127.0.0.1 "])
def test_allow_list_networks(receiver: Receiver, entry: str) -> None:
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=[entry]):
        assert send(f"http://127.0.0.1:{receiver.port}/").ok


@pytest.mark.parametrize(
    ("entries", "host", "allowed"),
    [
        (["hooks.internal"], "hooks.internal", True),
        (["HOOKS.internal."], "hooks.internal", True),
        (["hooks.internal"], "HOOKS.INTERNAL.", True),
        ([".internal"], "a.b.internal", True),
        ([".internal"], "internal", True),
        (["hooks.internal"], "other.internal", False),
        (["hooks.internal"], "hooks.internal.evil.example", False),
        ([".internal"], "notinternal", False),
    ],
)
def test_allow_list_host_names(receiver: Receiver, entries: list[str], host: str, allowed: bool) -> None:
    dns = FakeDNS({host.lower().removesuffix("."): [["127.0.0.1"]]})
    dialler = LoopbackOnly()
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=entries):
        result = send(f"http://{host}:{receiver.port}/", resolver=dns, dialler=dialler)

    assert result.ok is allowed
    if allowed:
        # The name went out as Host, the checked address was dialled.
        assert receiver.requests[0].header("Host") == f"{host.lower().removesuffix('.')}:{receiver.port}"
        assert dialler.calls == [("127.0.0.1", receiver.port)]
    else:
        assert result.error.startswith("refused: 127.0.0.1 is a loopback address")
        assert dialler.calls == []
        assert receiver.requests == []


def test_the_allow_list_lets_through_only_what_it_names(canary: Canary, allow_loopback: None) -> None:
    dialler = LoopbackOnly()
    for url in ("http://127.0.0.2/", "http://169.254.169.254/", "http://10.0.0.1/", "http://[::1]/"):
        result = send(url, dialler=dialler)
        assert result.error.startswith("refused: "), url
    assert dialler.calls == []


def test_each_checked_address_is_tried_in_turn(receiver: Receiver) -> None:
    # Nothing listens on [::1]:port (or there is no IPv6): the next checked address is used.
    dns = FakeDNS({"hooks.internal": [["::1", "127.0.0.1"]]})
    dialler = LoopbackOnly()
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1", "::1"]):
        result = send(f"http://hooks.internal:{receiver.port}/", resolver=dns, dialler=dialler)
    assert result.ok
    assert dialler.calls == [("::1", receiver.port), ("127.0.0.1", receiver.port)]


# --- SSRF: every one of these is refused before any socket is opened ------------------------------

_LOCAL = [["127.0.0.1"]]
# (url, DNS table); "{port}" is the canary's. A None table means the system resolver (localhost only).
SSRF_CORPUS: list[tuple[str, dict[str, list[list[str]]] | None]] = [
    # IPv4 loopback in every spelling inet_aton accepts
    ("http://127.0.0.1:{port}/", {}),
    ("http://127.0.0.2:{port}/", {}),
    ("http://127.255.255.254:{port}/", {}),
    ("http://2130706433:{port}/", {}),
    ("http://0177.0.0.1:{port}/", {}),
    ("http://0x7f.0.0.1:{port}/", {}),
    ("http://0x7F.0X0.0x0.0x1:{port}/", {}),
    ("http://0x7f000001:{port}/", {}),
    ("http://017700000001:{port}/", {}),
    ("http://00000000177.0.0.1:{port}/", {}),
    ("http://127.1:{port}/", {}),
    ("http://127.0.1:{port}/", {}),
    ("http://0x7f.1:{port}/", {}),
    ("http://127.000.000.001:{port}/", {}),
    ("http://127.0.0.0x1:{port}/", {}),
    ("http://127.0.0.1.:{port}/", {}),
    ("https://127.0.0.1:{port}/", {}),
    # unspecified ("this host"), which Linux routes to loopback
    ("http://0:{port}/", {}),
    ("http://0.0.0.0:{port}/", {}),
    ("http://0x0:{port}/", {}),
    ("http://[::]:{port}/", {}),
    # IPv6 loopback and IPv4 hidden in IPv6
    ("http://[::1]:{port}/", {}),
    ("http://[0:0:0:0:0:0:0:1]:{port}/", {}),
    ("http://[0000::0001]:{port}/", {}),
    ("http://[::ffff:127.0.0.1]:{port}/", {}),
    ("http://[::ffff:7f00:1]:{port}/", {}),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/", {}),
    ("http://[::FFFF:7F00:0001]:{port}/", {}),
    ("http://[::127.0.0.1]:{port}/", {}),
    ("http://[::ffff:169.254.169.254]/", {}),
    ("http://[::ffff:10.0.0.1]/", {}),
    ("http://[2002:7f00:1::]:{port}/", {}),
    ("http://[2002:a00:1::1]/", {}),
    ("http://[64:ff9b::7f00:1]:{port}/", {}),
    ("http://[64:ff9b::a9fe:a9fe]/", {}),
    ("http://[64:ff9b:1::8.8.8.8]/", {}),
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", {}),
    # IPv6 private, link-local, metadata, multicast, site-local, documentation
    ("http://[fc00::1]/", {}),
    ("http://[fd00::1]/", {}),
    ("http://[fe80::1]/", {}),
    ("http://[fe80::1%25eth0]:{port}/", {}),
    ("http://[fd00:ec2::254]/latest/meta-data/", {}),
    ("http://[ff02::1]/", {}),
    ("http://[ff0e::1]/", {}),
    ("http://[fec0::1]/", {}),
    ("http://[2001:db8::1]/", {}),
    # cloud metadata
    ("http://169.254.169.254/latest/meta-data/iam/", {}),
    ("http://2852039166/", {}),
    ("http://0xa9fea9fe/", {}),
    ("http://0251.0376.0251.0376/", {}),
    ("http://169.254.43518/", {}),
    ("http://100.100.100.200/", {}),
    ("http://metadata.google.internal/computeMetadata/v1/", {"metadata.google.internal": [["169.254.169.254"]]}),
    ("http://metadata/computeMetadata/v1/", {"metadata": [["169.254.169.254"]]}),
    # private, link-local, shared, special-purpose IPv4
    ("http://169.254.0.1/", {}),
    ("http://100.64.0.1/", {}),
    ("http://100.127.255.254/", {}),
    ("http://10.0.0.1/", {}),
    ("http://10.255.255.255/", {}),
    ("http://012.0.0.1/", {}),
    ("http://167772161/", {}),
    ("http://172.16.0.1/", {}),
    ("http://172.20.10.5/", {}),
    ("http://172.31.255.254/", {}),
    ("http://192.168.0.1/", {}),
    ("http://192.168.1.1:8080/", {}),
    ("http://0xc0.0xa8.1.1/", {}),
    ("http://0xc0a80101/", {}),
    ("http://224.0.0.1/", {}),
    ("http://239.255.255.250:1900/", {}),
    ("http://255.255.255.255/", {}),
    ("http://240.0.0.1/", {}),
    ("http://198.18.0.1/", {}),
    ("http://192.0.2.1/", {}),
    ("http://192.0.0.8/", {}),
    # names that resolve somewhere they should not
    ("http://localhost:{port}/", None),
    ("http://LOCALHOST:{port}/", None),
    ("http://attacker.example:{port}/", {"attacker.example": _LOCAL}),
    ("http://ATTACKER.Example:{port}/", {"attacker.example": _LOCAL}),
    ("http://attacker.example.:{port}/", {"attacker.example": _LOCAL}),
    ("http://v6.attacker.example:{port}/", {"v6.attacker.example": [["::1"]]}),
    ("http://mapped.attacker.example:{port}/", {"mapped.attacker.example": [["::ffff:127.0.0.1"]]}),
    ("http://zoned.attacker.example/", {"zoned.attacker.example": [["fe80::1%1"]]}),
    # one good answer does not launder a bad one
    ("http://mixed.attacker.example:{port}/", {"mixed.attacker.example": [[PUBLIC_IP, "127.0.0.1"]]}),
    ("http://mixed6.attacker.example/", {"mixed6.attacker.example": [["2606:4700::1111", "fd00::1"]]}),
    # userinfo and other parser games
    ("http://example.com@127.0.0.1:{port}/", {}),
    ("http://user:pass@127.0.0.1:{port}/", {}),
    ("http://@127.0.0.1:{port}/", {}),
    ("http://127.0.0.1:{port}\\@example.com/", {}),
    ("http://127.0.0.1:{port}#@example.com/", {}),
    ("http://127.0.0.1:{port}?@example.com/", {}),
    # Unicode hosts that IDNA (as getaddrinfo applies it) folds into loopback
    # (escaped so the look-alikes stay visible in review)
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{port}/", {}),  # full-width digits
    ("http://127\u30020\u30020\u30021:{port}/", {}),  # ideographic full stops
    ("http://\u2460\u2461\u2466.0.0.1:{port}/", {}),  # circled digits
    ("http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3:{port}/", {"localhost": _LOCAL}),  # circled
    ("http://\u0430ttacker.example:{port}/", {"xn--ttacker-1fg.example": _LOCAL}),  # Cyrillic a
    # not http(s)
    ("ftp://127.0.0.1:{port}/", {}),
    ("file:///etc/passwd", {}),
    ("gopher://127.0.0.1:{port}/_", {}),
    ("dict://127.0.0.1:{port}/", {}),
    ("//127.0.0.1:{port}/", {}),
    ("http:///{port}", {}),
]


@pytest.mark.parametrize(("url", "dns"), SSRF_CORPUS, ids=[url for url, _ in SSRF_CORPUS])
def test_ssrf_corpus_is_refused_before_connecting(
    canary: Canary, url: str, dns: dict[str, list[list[str]]] | None
) -> None:
    dialler = LoopbackOnly()
    resolver = FakeDNS(dns) if dns is not None else webhooks.resolve
    result = send(url.format(port=canary.port), resolver=resolver, dialler=dialler, timeout=2)

    assert not result.ok
    assert result.status_code is None
    assert result.error.startswith("refused: "), result.error
    assert dialler.calls == []
    assert canary.hits() == 0
    if isinstance(resolver, FakeDNS) and not dns:
        assert resolver.calls == []  # literals never reach DNS


def test_the_corpus_is_large_enough() -> None:
    assert len(SSRF_CORPUS) >= 50


def test_dns_rebinding_dials_the_address_that_was_checked(canary: Canary) -> None:
    # First answer public, every later one loopback: a second lookup would be the attack.
    dns = FakeDNS({"rebind.example": [[PUBLIC_IP], ["127.0.0.1"]]})
    dialler = LoopbackOnly()  # refuses the public address instead of reaching it
    result = send(f"http://rebind.example:{canary.port}/", resolver=dns, dialler=dialler, timeout=2)

    assert dns.calls == ["rebind.example"]
    assert dialler.calls == [(PUBLIC_IP, canary.port)]
    assert result.error.startswith(f"could not connect to rebind.example port {canary.port}")
    assert canary.hits() == 0


def test_a_public_name_is_dialled_by_its_checked_address(canary: Canary) -> None:
    dns = FakeDNS({"hooks.example": [["2606:4700::1111", PUBLIC_IP]]})
    dialler = LoopbackOnly()
    result = send("https://hooks.example/in", resolver=dns, dialler=dialler)
    assert dialler.calls == [("2606:4700::1111", 443), (PUBLIC_IP, 443)]
    assert result.error.startswith("could not connect")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("::1", "::1 is a loopback address"),
        ("10.1.2.3", "10.1.2.3 is a private address"),
        ("fd12::1", "fd12::1 is a private address"),
        ("169.254.169.254", "169.254.169.254 is a cloud metadata address"),
        ("fd00:ec2::254", "fd00:ec2::254 is a cloud metadata address"),
        ("169.254.1.1", "169.254.1.1 is a link-local address"),
        ("100.64.1.1", "100.64.1.1 is a shared (carrier-grade NAT) address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),  # noqa: S104
        ("224.0.0.251", "224.0.0.251 is a multicast address"),
        ("198.19.0.1", "198.19.0.1 is a benchmarking address"),
        ("::ffff:192.168.1.1", "::ffff:c0a8:101 is an IPv4-mapped address of 192.168.1.1, which is a private address"),
        ("2002:c0a8:101::", "2002:c0a8:101:: is a 6to4 address embedding 192.168.1.1, which is a private address"),
        ("64:ff9b::a00:1", "64:ff9b::a00:1 is a NAT64 address embedding 10.0.0.1, which is a private address"),
        ("::a00:1", "::a00:1 is a deprecated IPv4-compatible address of 10.0.0.1"),
    ],
)
def test_refusal_reasons(address: str, reason: str) -> None:
    assert webhooks.refusal(address) == reason


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", PUBLIC_IP, "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_addresses_pass(address: str) -> None:
    assert webhooks.refusal(address) is None


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=24))
def test_ipv4_literals_read_as_the_os_reads_them(host: str) -> None:
    try:
        # AI_NUMERICHOST: the C library's own parse, never a DNS query.
        expected: str | None = str(socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)[0][4][0])
    except (OSError, UnicodeError):
        expected = None
    parsed = webhooks.parse_ipv4_literal(host)
    assert (str(parsed) if parsed else None) == expected


_URL_PIECES = st.sampled_from(
    [
        *("127", "0", "1", "0x7f", "0177", "10", "169", "254", "0x", "8", "255", "2130706433"),
        *(".", ":", "[", "]", "::", "ffff", "fe80", "fc00", "64:ff9b", "@", "#", "%", "\\", "/"),
        *("localhost", "example.com", "\u24db", "\u3002", "\uff11"),
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    scheme=st.sampled_from(["http://", "https://", "HTTP://", "ftp://", ""]),
    host=st.lists(_URL_PIECES, max_size=8).map("".join),
)
def test_without_an_allow_list_no_url_gets_a_non_public_dial(canary: Canary, scheme: str, host: str) -> None:
    dialler = LoopbackOnly()
    dns = FakeDNS({"localhost": [["127.0.0.1", "::1"]], "example.com": [[PUBLIC_IP]]})
    result = send(f"{scheme}{host}/", resolver=dns, dialler=dialler, timeout=1)  # never raises

    assert not result.ok
    assert all(webhooks.refusal(ip) is None for ip, _ in dialler.calls), dialler.calls
    assert canary.hits() == 0


# --- https: the checked IP is dialled, the name is verified -----------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=hooks.test"),
            *("-addext", "subjectAltName=DNS:hooks.test"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_receiver(canary: Canary, certificate: tuple[Path, Path]) -> Iterator[Receiver]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = Receiver(canary_port=canary.port).start(tls=context)
    yield server
    server.stop()


def test_https_verifies_the_host_name_on_the_checked_address(
    tls_receiver: Receiver, certificate: tuple[Path, Path], allow_loopback: None
) -> None:
    dns = FakeDNS({"hooks.test": _LOCAL})
    dialler = LoopbackOnly()
    with override_settings(JOBSCHEDULER_WEBHOOK_CA_FILE=str(certificate[0])):
        result = send(
            f"https://hooks.test:{tls_receiver.port}/in", secret="k", body="{}", resolver=dns, dialler=dialler
        )

    assert result.ok, result.error
    assert dialler.calls == [("127.0.0.1", tls_receiver.port)]
    assert tls_receiver.sni == ["hooks.test"]
    (received,) = tls_receiver.requests
    assert received.header("Host") == f"hooks.test:{tls_receiver.port}"
    assert received.header("webhook-signature") == standard_webhooks_signature(b"k", received)


def test_https_refuses_a_certificate_for_another_name(
    tls_receiver: Receiver, certificate: tuple[Path, Path], allow_loopback: None
) -> None:
    dns = FakeDNS({"other.test": _LOCAL})
    with override_settings(JOBSCHEDULER_WEBHOOK_CA_FILE=str(certificate[0])):
        result = send(f"https://other.test:{tls_receiver.port}/in", resolver=dns)

    assert not result.ok
    assert result.error.startswith("TLS certificate of other.test not accepted"), result.error
    assert tls_receiver.requests == []


def test_https_refuses_an_untrusted_certificate(tls_receiver: Receiver, allow_loopback: None) -> None:
    result = send(f"https://hooks.test:{tls_receiver.port}/in", resolver=FakeDNS({"hooks.test": _LOCAL}))
    assert result.error.startswith("TLS certificate of hooks.test not accepted"), result.error
    assert tls_receiver.requests == []
