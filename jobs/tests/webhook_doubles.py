"""Test doubles for webhook delivery: DNS, dialling, a canary and a receiver, all on loopback.

Every delivery in the ``test_http_*`` modules goes through ``LoopbackOnly``, a connector that
dials loopback and refuses anything else, and ``FakeDNS``, so no test can reach the internet
or real DNS (``localhost`` aside). Signatures are checked by recomputing the Standard Webhooks
HMAC here, not by calling the signing code under test.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import ipaddress
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.targets.http import DeliveryResult, deliver
from jobs.targets.http.connections import Pools
from jobs.targets.http.transport import dial

FIRE_KEY = "sched-42:2026-03-01T09:00:00Z"
NOW = 1_767_225_600.75  # a fixed clock for webhook-timestamp
PUBLIC_IP = "93.184.216.34"  # only ever handed to LoopbackOnly, which refuses to dial it
LOCAL = [["127.0.0.1"]]


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
        return dial(ip, port, timeout)


class _SendFails(socket.socket):
    """A real TCP socket whose next ``sendall`` can be made to fail, as on a connection the peer reset."""

    fail_next_send = False

    def sendall(self, data: Any, flags: int = 0) -> None:
        if self.fail_next_send:
            self.fail_next_send = False
            raise BrokenPipeError(32, "Broken pipe")
        super().sendall(data, flags)


class BreakableLoopback(LoopbackOnly):
    """``LoopbackOnly`` whose sockets can be told to fail their next send (``break_sends``)."""

    def __init__(self) -> None:
        super().__init__()
        self.sockets: list[_SendFails] = []

    def __call__(self, ip: str, port: int, timeout: float) -> socket.socket:
        self.calls.append((ip, port))
        if not ipaddress.ip_address(ip).is_loopback:
            raise ConnectionRefusedError(111, "LoopbackOnly does not leave this machine")
        sock = _SendFails(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect((ip, port))
        self.sockets.append(sock)
        return sock

    def break_sends(self) -> None:
        for sock in self.sockets:
            sock.fail_next_send = True


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
    """A real HTTP(S) server on loopback that records requests and connections and answers by path.

    It answers ``Connection: close`` unless ``keep_alive``; then a connection carries request
    after request until the client closes it (or a path below closes it).
    """

    canary_port: int
    keep_alive: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[Received] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    connections: list[tuple[str, int]] = field(default_factory=list)  # each client address accepted
    closed: int = 0  # connections that have ended, whoever closed them
    streamed_bytes: int = 0
    server: socketserver.TCPServer | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_closed(self, count: int, timeout: float = 5.0) -> bool:
        """Whether ``count`` connections have ended within ``timeout`` seconds."""
        with self.changed:
            return self.changed.wait_for(lambda: self.closed >= count, timeout)

    def start(self, tls: ssl.SSLContext | None = None) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with receiver.changed:
                    receiver.connections.append(self.client_address)

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver.requests.append(Received(self.command, self.path, list(self.headers.items()), body))
                receiver.route(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def shutdown_request(self, request: Any) -> None:
                try:
                    super().shutdown_request(request)
                finally:
                    with receiver.changed:
                        receiver.closed += 1
                        receiver.changed.notify_all()

        self.server = Server((self.host, self.port), Handler)
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
        if path == "/vanish":
            # Reads the request, then hangs up without a word: the request was delivered.
            handler.close_connection = True
        elif path == "/idle-close":
            # Answers as if keeping the connection, then closes it (as a server's idle timeout does).
            self.answer(handler, 200, b"received")
            handler.close_connection = True
        elif path.startswith("/status/"):
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
        elif path == "/huge":
            self.answer(handler, 200, b"h" * 1_000_000)
        else:
            self.answer(handler, 200, b"received")

    def answer(
        self,
        handler: http.server.BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        if not self.keep_alive:
            handler.send_header("Connection", "close")
        handler.end_headers()
        with contextlib.suppress(OSError):  # a client that hung up after the excerpt
            handler.wfile.write(body)


def send(
    url: str,
    *,
    dialler: LoopbackOnly | None = None,
    resolver: Any = None,
    secret: str | Sequence[str] = "",
    attempt: int = 1,
    timeout: float = 5.0,
    now: float = NOW,
    pools: Pools | None = None,
    internal_networks: bool = True,
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
        pools=pools,
        internal_networks=internal_networks,
    )


def standard_webhooks_signature(key: bytes, received: Received) -> str:
    """The documented algorithm: base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    signed = f"{received.header('webhook-id')}.{received.header('webhook-timestamp')}.".encode() + received.body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
