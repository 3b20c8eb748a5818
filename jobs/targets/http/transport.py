"""Deliver an ``http`` target: one signed webhook request to a vetted address, never a redirect.

The worker calls :func:`deliver`; it never raises. Three decisions carry the safety:

- The host is resolved once, every answer is vetted by the address policy (``addresses``),
  and the socket is opened to exactly a vetted address. The name is never looked up again,
  so DNS rebinding has nothing to race. The original host still goes out in ``Host`` and,
  for https, in SNI and the certificate check.
- Literal IPv4 hosts are read the way the C library reads them (``inet_aton``), so a
  spelling cannot slip past the check (``addresses.parse_ipv4_literal``).
- A 3xx is a failed delivery, not a hop to somewhere unchecked.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import http.client
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from jobs.targets.http.addresses import IPAddress, Refused, allow_list, vetted
from jobs.targets.http.request import Destination, InvalidTarget, build

logger = logging.getLogger(__name__)

# (host, port) -> addresses as strings, like the sockaddr hosts of socket.getaddrinfo.
Resolver: TypeAlias = Callable[[str, int], Iterable[str]]
# (ip, port, timeout) -> a connected TCP socket to exactly that address.
Connector: TypeAlias = Callable[[str, int, float], socket.socket]

DEFAULT_EXCERPT_CHARS = 2000


@dataclass(frozen=True)
class DeliveryResult:
    """What one delivery attempt came to; ``error`` is '' exactly when ``ok``."""

    ok: bool  # the receiver answered 2xx
    status_code: int | None  # None when no response arrived
    response_excerpt: str  # the start of the response body, bounded
    error: str
    duration_ms: int
    timed_out: bool = False  # the attempt ran out of time (resolving, connecting or reading)


class _Failure(Exception):
    def __init__(self, message: str, *, timed_out: bool = False, status_code: int | None = None) -> None:
        super().__init__(message)
        self.timed_out = timed_out
        self.status_code = status_code


# --- Resolving, dialling, exchanging -------------------------------------------------------


def resolve(host: str, port: int) -> list[str]:
    """The default resolver: the system's, as a list of address strings."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def dial(ip: str, port: int, timeout: float) -> socket.socket:
    """The default connector: a TCP connection to exactly ``ip`` (a numeric address; no lookup)."""
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect((ip, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _timed_out(timeout: float, status_code: int | None = None) -> _Failure:
    return _Failure(f"timed out after {float(timeout)}s", timed_out=True, status_code=status_code)


def _lookup(resolver: Resolver, dest: Destination, *, timeout: float, deadline: float) -> list[IPAddress]:
    """Resolve once, within the deadline (getaddrinfo has no timeout of its own, hence the thread)."""
    if dest.literal is not None:
        return [dest.literal]
    answer: list[str] = []
    problems: list[Exception] = []

    def run() -> None:
        try:
            answer.extend(resolver(dest.lookup_name, dest.port))
        except Exception as exc:
            problems.append(exc)

    thread = threading.Thread(target=run, name="webhook-resolve", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        raise _timed_out(timeout)
    if problems:
        problem = problems[0]
        detail = problem.strerror if isinstance(problem, OSError) and problem.strerror else str(problem)
        raise _Failure(f"could not resolve {dest.host}: {detail}")
    addresses: list[IPAddress] = []
    for item in answer:
        try:
            ip = ipaddress.ip_address(str(item))
        except ValueError as exc:
            raise _Failure(f"could not resolve {dest.host}: the resolver returned {item!r}") from exc
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            ip = ipaddress.IPv6Address(ip.packed)  # a zone cannot make a refused address acceptable
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise _Failure(f"could not resolve {dest.host}: no addresses")
    return addresses


def _connect(
    connect: Connector, dest: Destination, addresses: list[IPAddress], *, timeout: float, deadline: float
) -> tuple[socket.socket, IPAddress]:
    failures: list[str] = []
    for ip in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timed_out(timeout)
        try:
            return connect(str(ip), dest.port, min(timeout, remaining)), ip
        except TimeoutError:
            failures.append(f"{ip}: timed out")
        except OSError as exc:
            failures.append(f"{ip}: {exc.strerror or exc}")
    if failures and all(failure.endswith("timed out") for failure in failures):
        raise _timed_out(timeout)
    raise _Failure(f"could not connect to {dest.host} port {dest.port} ({'; '.join(failures)})")


@contextlib.contextmanager
def _deadline(sock: socket.socket, deadline: float) -> Iterator[threading.Event]:
    """Shut the connection down at the deadline, whatever http.client is blocked in.

    Socket timeouts bound each read, but a receiver dripping a byte at a time would stretch
    the request far past ``timeout`` without this. A duplicate descriptor survives the TLS
    wrap, and shutting it down wakes any blocked read on the same connection.
    """
    expired = threading.Event()
    lock = threading.Lock()
    guard = sock.dup()

    def expire() -> None:
        with lock:
            if guard.fileno() == -1:
                return
            expired.set()
            with contextlib.suppress(OSError):
                guard.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
    timer.daemon = True
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()
        with lock:
            guard.close()


@functools.lru_cache(maxsize=4)
def _tls_context(ca_file: str) -> ssl.SSLContext:
    # Hostname checking and certificate verification stay on (the defaults).
    return ssl.create_default_context(cafile=ca_file or None)


@dataclass(frozen=True)
class _Response:
    status: int
    reason: str
    location: str
    excerpt: str


def _translate(exc: Exception, dest: Destination, ip: IPAddress) -> _Failure:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _Failure(f"TLS certificate of {dest.host} not accepted: {exc.verify_message or exc}")
    if isinstance(exc, ssl.SSLError):
        return _Failure(f"TLS error with {dest.host}: {exc.reason or exc}")
    if isinstance(exc, http.client.HTTPException):
        return _Failure(f"bad HTTP response from {dest.host}: {exc or type(exc).__name__}")
    if isinstance(exc, OSError):
        return _Failure(f"connection to {dest.host} ({ip}) failed: {exc.strerror or exc}")
    return _Failure(f"request to {dest.host} failed: {type(exc).__name__}: {exc}")


def _exchange(
    sock: socket.socket,
    ip: IPAddress,
    dest: Destination,
    *,
    method: str,
    headers: dict[str, str],
    body: bytes,
    timeout: float,
    deadline: float,
    excerpt_chars: int,
) -> _Response:
    with _deadline(sock, deadline) as expired:
        connection = http.client.HTTPConnection(dest.host, dest.port, timeout=timeout)
        try:
            try:
                if dest.scheme == "https":
                    sock.settimeout(min(timeout, max(0.001, deadline - time.monotonic())))
                    sock = _tls_context(getattr(settings, "JOBSCHEDULER_WEBHOOK_CA_FILE", "")).wrap_socket(
                        sock, server_hostname=dest.host
                    )
                    sock.settimeout(timeout)
                connection.sock = sock  # already connected: http.client will not dial
                connection.request(method, dest.request_target, body=body or None, headers=headers)
                response = connection.getresponse()
            except Exception as exc:
                if expired.is_set() or isinstance(exc, TimeoutError):
                    raise _timed_out(timeout) from exc
                raise _translate(exc, dest, ip) from exc
            try:
                excerpt = _read_excerpt(response, excerpt_chars)
            except Exception as exc:
                if expired.is_set() or isinstance(exc, TimeoutError):
                    raise _timed_out(timeout, response.status) from exc
                failure = _translate(exc, dest, ip)
                failure.status_code = response.status
                raise failure from exc
            finally:
                response.close()
        finally:
            connection.close()
            sock.close()
        if expired.is_set():  # a body cut short by the deadline is not a complete answer
            raise _timed_out(timeout, response.status)
    return _Response(response.status, response.reason, response.getheader("Location", ""), excerpt)


def _read_excerpt(response: http.client.HTTPResponse, chars: int) -> str:
    """Decode at most ``chars`` characters from at most 4 bytes each; the rest is never read."""
    if chars <= 0:
        return ""
    data = response.read(chars * 4)
    try:
        decoder = codecs.getincrementaldecoder(response.headers.get_content_charset() or "utf-8")(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(data, final=False)[:chars]


def _send(
    job_target: dict[str, Any],
    *,
    fire_key: str,
    attempt: int,
    secret: str | Sequence[str],
    timeout: float,
    deadline: float,
    now: Callable[[], float],
    resolver: Resolver,
    connect: Connector,
) -> _Response:
    if not isinstance(job_target, dict):
        raise _Failure("refused: the target must be an object")
    if not timeout > 0:
        raise _Failure("refused: the timeout must be positive")
    try:
        request = build(job_target, fire_key=fire_key, attempt=attempt, secret=secret, timestamp=int(now()))
    except InvalidTarget as exc:
        raise _Failure(f"refused: {exc}") from exc
    try:
        allow = allow_list()
    except ImproperlyConfigured as exc:
        raise _Failure(f"misconfigured: {exc}") from exc
    dest = request.destination
    resolved = _lookup(resolver, dest, timeout=timeout, deadline=deadline)
    try:
        ips = vetted(dest.host, resolved, named=dest.literal is None, allow=allow)
    except Refused as exc:
        raise _Failure(f"refused: {exc}") from exc
    sock, ip = _connect(connect, dest, ips, timeout=timeout, deadline=deadline)
    excerpt_chars = int(getattr(settings, "JOBSCHEDULER_WEBHOOK_EXCERPT_CHARS", DEFAULT_EXCERPT_CHARS))
    try:
        return _exchange(
            sock,
            ip,
            dest,
            method=request.method,
            headers=request.headers,
            body=request.body,
            timeout=timeout,
            deadline=deadline,
            excerpt_chars=excerpt_chars,
        )
    finally:
        sock.close()  # already closed (or detached by TLS) unless _exchange failed early


def deliver(
    job_target: dict[str, Any],
    *,
    fire_key: str,
    attempt: int,
    secret: str | Sequence[str],
    timeout: float,
    now: Callable[[], float] = time.time,
    resolver: Resolver | None = None,
    connect: Connector | None = None,
) -> DeliveryResult:
    """Send one attempt of an ``http`` target and say how it went. Never raises.

    ``timeout`` bounds each connect and read and the whole attempt, resolution included.
    ``now`` gives ``webhook-timestamp``; ``resolver`` and ``connect`` replace the system's
    name lookup and TCP dialling (tests inject them; the checks run between the two).
    """
    started = time.monotonic()
    status_code: int | None = None
    excerpt = error = ""
    timed_out = False
    try:
        response = _send(
            job_target,
            fire_key=fire_key,
            attempt=attempt,
            secret=secret,
            timeout=timeout,
            deadline=started + timeout,
            now=now,
            resolver=resolver or resolve,
            connect=connect or dial,
        )
    except _Failure as failure:
        error, timed_out, status_code = str(failure), failure.timed_out, failure.status_code
    except Exception as exc:  # the worker must always get a result to record
        logger.exception("webhook delivery failed unexpectedly", extra={"fire_key": fire_key})
        error = f"unexpected error: {type(exc).__name__}: {exc}"
    else:
        status_code, excerpt = response.status, response.excerpt
        if 300 <= response.status < 400:
            location = f" (Location: {response.location[:200]})" if response.location else ""
            error = f"redirect ({response.status}) not followed{location}"
        elif not 200 <= response.status < 300:
            error = f"HTTP {response.status} {response.reason}".rstrip()
    duration_ms = round((time.monotonic() - started) * 1000)
    if error:
        logger.info(
            "webhook delivery failed",
            extra={"fire_key": fire_key, "attempt": attempt, "status_code": status_code, "error": error},
        )
    return DeliveryResult(
        ok=not error,
        status_code=status_code,
        response_excerpt=excerpt,
        error=error,
        duration_ms=duration_ms,
        timed_out=timed_out,
    )
