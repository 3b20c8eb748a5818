"""The demo's webhook receiver on 127.0.0.1: checks Standard Webhooks signatures of deliveries.

``bin/run`` starts it (``manage.py demo_receiver``, port 8765 unless told otherwise) and the
demo webhook job delivers to it, so a newcomer sees a signed webhook go out and come back
recorded. It answers 200 to a correctly signed delivery, 401 to a bad or stale signature, 400
to a request that is not a Standard Webhooks message, and prints one JSON line per delivery.

Verification follows the Standard Webhooks specification (https://www.standardwebhooks.com/)
on its own, not through ``jobs.targets.http``, whose signing it is there to check: the key is a
``whsec_`` secret's base64 payload (any other secret: its UTF-8 bytes, as the worker signs
it); the expected signature is base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")),
compared in constant time with each ``v1,`` entry of the space-separated ``webhook-signature``;
during a rotation the sender puts one entry per secret there, and the receiver may hold
several secrets itself: any entry matching any secret accepts the delivery. A timestamp more
than five minutes from now, either way, is refused so that a captured delivery cannot be
replayed later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

HOST = "127.0.0.1"  # loopback only: this is a development aid, not a service
DEFAULT_PORT = 8765
PATH = "/demo-webhook"
# The demo job's secret (seed_demo); public on purpose: only loopback reaches the receiver.
DEMO_SECRET = "whsec_am9ic2NoZWR1bGVyIGRlbW8gd2ViaG9vayBzZWNyZXQ="  # noqa: S105
TOLERANCE_SECONDS = 5 * 60
MAX_BODY_BYTES = 1024 * 1024
SEEN_IDS = 10_000  # message ids remembered to flag redeliveries


class Headers(Protocol):
    """Request headers looked up case-insensitively (http.server's and http.client's are)."""

    def get(self, name: str, /) -> str | None: ...


@dataclass(frozen=True)
class Verdict:
    status: int  # the HTTP status to answer
    reason: str  # '' when the delivery is accepted

    @property
    def ok(self) -> bool:
        return self.status == 200


def signing_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error as exc:
            raise ValueError("the whsec_ secret is not valid base64") from exc
        if not key:
            raise ValueError("the whsec_ secret is empty")
        return key
    return secret.encode()


def verify(secret: str | Sequence[str], headers: Headers, body: bytes, *, now: float) -> Verdict:
    """Judge one delivery received at ``now`` (epoch seconds): accept it or say why not.

    ``secret`` may be several (old and new while one is rotated): any of them will do.
    """
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        return Verdict(400, "missing webhook-id, webhook-timestamp or webhook-signature")
    if not timestamp.isascii() or not timestamp.isdigit():
        return Verdict(400, "webhook-timestamp is not an integer")
    age = now - int(timestamp)
    if age > TOLERANCE_SECONDS:
        return Verdict(401, f"timestamp too old ({age:.0f} s)")
    if age < -TOLERANCE_SECONDS:
        return Verdict(401, f"timestamp too far in the future ({-age:.0f} s)")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    keys = [secret] if isinstance(secret, str) else list(secret)
    expected = [hmac.new(signing_key(key), signed, hashlib.sha256).digest() for key in keys]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except binascii.Error:
            continue
        if any(hmac.compare_digest(given, digest) for digest in expected):
            return Verdict(200, "")
    return Verdict(401, "no v1 signature matches")


class Receiver(http.server.ThreadingHTTPServer):
    """The HTTP server: verifies each request and writes one JSON line about it to ``out``."""

    daemon_threads = True

    def __init__(
        self,
        port: int,
        *,
        secret: str | Sequence[str],
        out: TextIO,
        clock: Callable[[], float] = time.time,
        path: str = PATH,
    ):
        self.secrets = [secret] if isinstance(secret, str) else list(secret)
        if not self.secrets:
            raise ValueError("no secret to verify with")
        for key in self.secrets:
            signing_key(key)  # a malformed secret fails at start, not at the first delivery
        self.out = out
        self.clock = clock
        self.path = path
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def accepted_before(self, msg_id: str) -> bool:
        """Remember an accepted id; True if it was accepted already (a redelivery)."""
        with self._lock:
            if msg_id in self._seen:
                return True
            self._seen[msg_id] = None
            if len(self._seen) > SEEN_IDS:
                self._seen.popitem(last=False)
            return False

    def record(self, line: dict[str, Any]) -> None:
        with self._lock:
            self.out.write(json.dumps(line) + "\n")
            self.out.flush()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"
    # The answer goes out in two writes (headers, then body). With Nagle's algorithm on, the
    # second waits for the sender's ACK of the first, which Linux delays up to 40 ms on a
    # kept-alive connection: every delivery took 44 ms here. Production servers (gunicorn,
    # nginx) set TCP_NODELAY too.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        received = self.server.clock()
        verdict, body = self._judge(received)
        duplicate = verdict.ok and self.server.accepted_before(self.headers.get("webhook-id", ""))
        # Logged before answering: once the sender has its answer, the line is there.
        self.server.record(
            {
                "ts": datetime.fromtimestamp(received, UTC).isoformat(timespec="milliseconds"),
                "received_ms": int(received * 1000),
                "status": verdict.status,
                "verified": verdict.ok,
                "reason": verdict.reason,
                "method": self.command,
                "path": self.path,
                "webhook_id": self.headers.get("webhook-id", ""),
                "webhook_timestamp": self.headers.get("webhook-timestamp", ""),
                "attempt": self.headers.get("x-jobscheduler-attempt", ""),
                "bytes": len(body),
                "duplicate": duplicate,
            }
        )
        answer = {"ok": True, "duplicate": duplicate} if verdict.ok else {"ok": False, "error": verdict.reason}
        self._answer(verdict.status, answer)

    do_PUT = do_PATCH = do_DELETE = do_GET = do_POST

    def _judge(self, received: float) -> tuple[Verdict, bytes]:
        if self.path.split("?", 1)[0] != self.server.path:
            self.close_connection = True
            return Verdict(404, f"nothing here; deliveries go to {self.server.path}"), b""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True  # the body is left unread
            return Verdict(413 if length > 0 else 400, "bad or too large Content-Length"), b""
        body = self.rfile.read(length)
        return verify(self.server.secrets, self.headers, body, now=received), body

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one JSON line per delivery instead (Receiver.record)


def serve(receiver: Receiver, *, poll_interval: float = 0.2) -> None:
    """Announce where ``receiver`` listens, answer deliveries until its ``shutdown()``, then close it."""
    receiver.record({"msg": "demo receiver listening", "url": f"http://{HOST}:{receiver.port}{receiver.path}"})
    try:
        receiver.serve_forever(poll_interval=poll_interval)
    finally:
        receiver.server_close()
