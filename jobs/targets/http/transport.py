"""Deliver an ``http`` target: one signed webhook request to a vetted address, never a redirect.

The worker calls :func:`deliver`; it never raises. Three decisions carry the safety:

- Every delivery resolves the host once, every answer is vetted by the address policy
  (``addresses``), and the request goes over a connection to exactly a vetted address: a
  kept-alive one from that address's pool, or one dialled to it (``connections``). The name
  is never looked up again, so DNS rebinding has nothing to race, and a warm connection to
  an address the name no longer resolves to is not used. The original host still goes out
  in ``Host`` and, for https, in SNI and the certificate check.
- Literal IPv4 hosts are read the way the C library reads them (``inet_aton``), so a
  spelling cannot slip past the check (``addresses.parse_ipv4_literal``).
- A 3xx is a failed delivery, not a hop to somewhere unchecked.

A request goes out at most once per delivery: only a kept-alive connection that fails while
the request is being sent (so it did not get out whole) is replaced and the request sent
again. ``timeout`` bounds the whole delivery through one shared watchdog (``deadlines``).
"""

from __future__ import annotations

import codecs
import email.message
import functools
import http.client
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import urllib3
import urllib3.exceptions
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from jobs.targets.http.addresses import AllowList, IPAddress, Refused, allow_list, vetted
from jobs.targets.http.connections import Connection, Connector, Pool, PoolKey, Pools
from jobs.targets.http.deadlines import Lookups, Watch, Watchdog
from jobs.targets.http.request import Destination, InvalidTarget, build

logger = logging.getLogger(__name__)

# (host, port) -> addresses as strings, like the sockaddr hosts of socket.getaddrinfo.
Resolver: TypeAlias = Callable[[str, int], Iterable[str]]

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
    """Resolve once, within the deadline (getaddrinfo has no timeout of its own: see ``deadlines``)."""
    if dest.literal is not None:
        return [dest.literal]
    lookup = _LOOKUPS.submit(lambda: list(resolver(dest.lookup_name, dest.port)))
    try:
        answer = lookup.result(max(0.0, deadline - time.monotonic()))
    except TimeoutError as exc:
        lookup.cancel()  # if it has not started; a started one ends on its own
        raise _timed_out(timeout) from exc
    except Exception as problem:
        detail = problem.strerror if isinstance(problem, OSError) and problem.strerror else str(problem)
        raise _Failure(f"could not resolve {dest.host}: {detail}") from problem
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


@functools.lru_cache(maxsize=4)
def _tls_context(ca_file: str) -> ssl.SSLContext:
    # Hostname checking and certificate verification stay on (the defaults).
    return ssl.create_default_context(cafile=ca_file or None)


def shared_pools() -> Pools:
    """The process's connection pools, made at the first delivery."""
    global _POOLS
    with _POOLS_LOCK:
        if _POOLS is None:
            _POOLS = Pools(per_pool=int(getattr(settings, "JOBSCHEDULER_WORKER_CONCURRENCY", 16)))
        return _POOLS


_POOLS: Pools | None = None
_POOLS_LOCK = threading.Lock()
_WATCHDOG = Watchdog()
_LOOKUPS = Lookups()


@dataclass(frozen=True)
class _Response:
    status: int
    reason: str
    location: str
    excerpt: str


@dataclass
class _InUse:
    """The connection a delivery is using, and what it needs to give it back."""

    pools: Pools
    pool: Pool
    conn: Connection
    ip: IPAddress
    reused: bool  # it carried an earlier delivery


def _translate(exc: BaseException, dest: Destination, ip: IPAddress) -> _Failure:
    while isinstance(exc, urllib3.exceptions.HTTPError) and isinstance(exc.__cause__, Exception):
        exc = exc.__cause__  # urllib3 wraps what the socket, TLS or http.client raised
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _Failure(f"TLS certificate of {dest.host} not accepted: {exc.verify_message or exc}")
    if isinstance(exc, ssl.SSLError):
        return _Failure(f"TLS error with {dest.host}: {exc.reason or exc}")
    if isinstance(exc, http.client.HTTPException):
        return _Failure(f"bad HTTP response from {dest.host}: {exc or type(exc).__name__}")
    if isinstance(exc, OSError):
        return _Failure(f"connection to {dest.host} ({ip}) failed: {exc.strerror or exc}")
    return _Failure(f"request to {dest.host} failed: {type(exc).__name__}: {exc}")


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError | urllib3.exceptions.TimeoutError)


def _open(conn: Connection, dest: Destination, ip: IPAddress, *, timeout: float, deadline: float) -> None:
    """Dial (and for https, handshake); a failure to dial raises OSError, anything after it _Failure."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _timed_out(timeout)
    conn.timeout = min(timeout, remaining)  # the dial and each handshake read; the watch the total
    try:
        conn.connect()
    except Exception as exc:
        conn.close()
        if not conn.dialled and isinstance(exc, OSError):
            raise
        if _is_timeout(exc) or (conn.watch is not None and conn.watch.expired):
            raise _timed_out(timeout) from exc
        raise _translate(exc, dest, ip) from exc


def _connection(
    pools: Pools,
    connect: Connector,
    dest: Destination,
    addresses: list[IPAddress],
    watch: Watch,
    *,
    timeout: float,
    deadline: float,
) -> _InUse:
    """A connection to the first vetted address that takes one: a kept-alive one, or a new one."""
    ca_file = str(getattr(settings, "JOBSCHEDULER_WEBHOOK_CA_FILE", "")) if dest.scheme == "https" else ""
    failures: list[str] = []
    for ip in addresses:
        key = PoolKey(dest.scheme, str(ip), dest.port, dest.host, ca_file, connect)
        pool = pools.pool(key, tls_context=_tls_context(ca_file) if dest.scheme == "https" else None)
        conn = pools.take(pool)
        conn.watch = watch
        if conn.sock is not None:
            watch.guard(conn.sock)
            return _InUse(pools, pool, conn, ip, reused=True)
        try:
            _open(conn, dest, ip, timeout=timeout, deadline=deadline)
        except TimeoutError:
            failures.append(f"{ip}: timed out")
        except OSError as exc:
            failures.append(f"{ip}: {exc.strerror or exc}")
        except BaseException:
            pools.give_back(pool, conn, reusable=False)
            raise
        else:
            return _InUse(pools, pool, conn, ip, reused=False)
        pools.give_back(pool, conn, reusable=False)
    if failures and all(failure.endswith("timed out") for failure in failures):
        raise _timed_out(timeout)
    raise _Failure(f"could not connect to {dest.host} port {dest.port} ({'; '.join(failures)})")


def _exchange(
    used: _InUse,
    watch: Watch,
    dest: Destination,
    *,
    method: str,
    headers: dict[str, str],
    body: bytes,
    timeout: float,
    deadline: float,
    excerpt_chars: int,
) -> tuple[_Response, bool]:
    """Send the request and read the answer's start; also says whether the connection is reusable."""
    conn = used.conn
    conn.timeout = min(timeout, max(0.001, deadline - time.monotonic()))  # each read; the watch the total
    try:
        try:
            conn.request(method, dest.request_target, body=body or None, headers=headers, preload_content=False)
        except OSError as exc:
            if not used.reused or watch.expired or _is_timeout(exc):
                raise
            # The receiver had closed this kept-alive connection: sending failed, so the request
            # did not get out whole and no receiver acts on it. Once more, on a new connection.
            # (A failure after the request went out is never retried: a webhook goes out once.)
            used.reused = False
            conn.close()
            _open(conn, dest, used.ip, timeout=timeout, deadline=deadline)
            conn.request(method, dest.request_target, body=body or None, headers=headers, preload_content=False)
        response = conn.getresponse()
    except _Failure:
        raise
    except Exception as exc:
        if watch.expired or _is_timeout(exc):
            raise _timed_out(timeout) from exc
        raise _translate(exc, dest, used.ip) from exc
    reusable = False
    try:
        try:
            excerpt = _read_excerpt(response, excerpt_chars)
        except Exception as exc:
            if watch.expired or _is_timeout(exc):
                raise _timed_out(timeout, response.status) from exc
            failure = _translate(exc, dest, used.ip)
            failure.status_code = response.status
            raise failure from exc
        if watch.expired:  # a body cut short by the deadline is not a complete answer
            raise _timed_out(timeout, response.status)
        answer = _Response(response.status, response.reason or "", response.headers.get("Location", ""), excerpt)
        reusable = _finish(conn, response, deadline)
    finally:
        if not reusable:
            response.close()  # the socket closes with the connection, not when this is collected
    return answer, reusable


def _read_excerpt(response: urllib3.HTTPResponse, chars: int) -> str:
    """Decode at most ``chars`` characters from at most 4 bytes each; the rest is never read."""
    if chars <= 0:
        return ""
    data = response.read(chars * 4, decode_content=False)
    message = email.message.Message()
    message["Content-Type"] = response.headers.get("Content-Type", "")
    try:
        decoder = codecs.getincrementaldecoder(message.get_content_charset() or "utf-8")(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(data, final=False)[:chars]


DRAIN_BYTES = 64 * 1024
DRAIN_SECONDS = 0.2


def _finish(conn: Connection, response: urllib3.HTTPResponse, deadline: float) -> bool:
    """Whether ``conn`` can carry another request: its answer read to the end, reading a little more if need be.

    A connection with unread answer left on it would hand that to the next delivery as its
    answer; what is not drained quickly is closed instead.
    """
    if conn.sock is None:  # the receiver said Connection: close (http.client has closed it)
        return False
    if response.isclosed():
        return True
    remaining = response.length_remaining
    budget = min(DRAIN_SECONDS, deadline - time.monotonic() - DRAIN_SECONDS)  # well inside the deadline
    if (remaining is not None and remaining > DRAIN_BYTES) or budget <= 0:
        return False
    try:
        conn.sock.settimeout(budget)
        response.read(DRAIN_BYTES + 1, decode_content=False)
    except Exception:
        return False
    return response.isclosed()


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
    pools: Pools,
    internal_networks: bool = True,
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
    if not internal_networks and dest.literal is None:
        # A public name whose owner may not reach internal destinations must not get there by
        # resolving into an allow-listed network (its DNS is the owner's to point anywhere).
        allow = AllowList(allow.names, allow.suffixes, ())
    # Every delivery resolves and vets, warm pools or not: DNS and the policy may have changed.
    resolved = _lookup(resolver, dest, timeout=timeout, deadline=deadline)
    try:
        ips = vetted(dest.host, resolved, named=dest.literal is None, allow=allow)
    except Refused as exc:
        raise _Failure(f"refused: {exc}") from exc
    excerpt_chars = int(getattr(settings, "JOBSCHEDULER_WEBHOOK_EXCERPT_CHARS", DEFAULT_EXCERPT_CHARS))
    used: _InUse | None = None
    reusable = False
    with _WATCHDOG.watch(deadline) as watch:
        try:
            used = _connection(pools, connect, dest, ips, watch, timeout=timeout, deadline=deadline)
            answer, reusable = _exchange(
                used,
                watch,
                dest,
                method=request.method,
                headers=request.headers,
                body=request.body,
                timeout=timeout,
                deadline=deadline,
                excerpt_chars=excerpt_chars,
            )
        finally:
            watch.end()  # from here on the watchdog leaves the socket alone
            if used is not None:
                # A socket the watchdog shut down is never kept.
                used.pools.give_back(used.pool, used.conn, reusable=reusable and not watch.expired)
    return answer


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
    pools: Pools | None = None,
    internal_networks: bool = True,
) -> DeliveryResult:
    """Send one attempt of an ``http`` target and say how it went. Never raises.

    ``timeout`` bounds each connect and read and the whole attempt, resolution included.
    ``now`` gives ``webhook-timestamp``; ``resolver`` and ``connect`` replace the system's
    name lookup and TCP dialling (tests inject them; the checks run between the two).
    ``internal_networks`` False: a host name may resolve only to public addresses or through
    an allow-listed name, not into an allow-listed network (the job's owner lacks
    ``jobs.create_internal_webhooks``; jobs.permissions).
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
            pools=pools if pools is not None else shared_pools(),
            internal_networks=internal_networks,
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
