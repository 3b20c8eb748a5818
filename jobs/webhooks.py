"""Deliver an ``http`` target: one signed webhook request to a checked address, never a redirect.

The worker calls :func:`deliver`; it never raises. Three decisions carry the safety:

- The host is resolved once, every answer is checked (loopback, private, link-local, metadata,
  IPv4 forms hidden in IPv6, ...), and the socket is opened to exactly a checked address. The
  name is never looked up again, so DNS rebinding has nothing to race. The original host still
  goes out in ``Host`` and, for https, in SNI and the certificate check.
- Literal IPv4 hosts are read the way the C library reads them (``inet_aton``: ``2130706433``,
  ``0177.0.0.1``, ``0x7f.1``), so a spelling cannot slip past the check.
- A 3xx is a failed delivery, not a hop to somewhere unchecked.

Messages follow the Standard Webhooks format (https://www.standardwebhooks.com/): ``webhook-id``
is the fire key, the same on every attempt, so receivers can drop duplicates.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import functools
import hashlib
import hmac
import http.client
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import quote, urlsplit

from django.conf import settings

from jobs.targets import HTTP_METHODS

logger = logging.getLogger(__name__)

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> addresses as strings, like the sockaddr hosts of socket.getaddrinfo.
Resolver: TypeAlias = Callable[[str, int], Iterable[str]]
# (ip, port, timeout) -> a connected TCP socket to exactly that address.
Connector: TypeAlias = Callable[[str, int, float], socket.socket]

DEFAULT_EXCERPT_CHARS = 2000
USER_AGENT = "jobscheduler-webhooks/1"
SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks key prefix, not a secret)

# Headers the job cannot set: ours (so a receiver can trust them) and the framing ones.
RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "idempotency-key",
        "x-jobscheduler-attempt",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
    }
)


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


# --- Signing (Standard Webhooks v1) -------------------------------------------------------


def signing_key(secret: str) -> bytes:
    """The HMAC key: a ``whsec_`` secret's base64 payload, otherwise the secret's UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error as exc:
            raise ValueError("the job's whsec_ secret is not valid base64") from exc
        if not key:
            raise ValueError("the job's whsec_ secret is empty")
        return key
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``."""
    content = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(signing_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


# --- Which addresses a webhook may reach ---------------------------------------------------


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# First match names the reason; anything else Python does not call global is refused after.
_REFUSED_RANGES: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    ("a cloud metadata address", _networks("169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32")),
    ("a loopback address", _networks("127.0.0.0/8", "::1/128")),
    ("an unspecified address", _networks("0.0.0.0/32", "::/128")),
    ("a 'this network' address", _networks("0.0.0.0/8")),
    ("a private address", _networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")),
    ("a link-local address", _networks("169.254.0.0/16", "fe80::/10")),
    ("a shared (carrier-grade NAT) address", _networks("100.64.0.0/10")),
    ("a multicast address", _networks("224.0.0.0/4", "ff00::/8")),
    ("a broadcast address", _networks("255.255.255.255/32")),
    ("a reserved address", _networks("240.0.0.0/4", "5f00::/16")),
    ("a benchmarking address", _networks("198.18.0.0/15", "2001:2::/48")),
    (
        "a documentation address",
        _networks("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"),
    ),
    ("an IETF protocol assignment address", _networks("192.0.0.0/24")),
    ("a site-local address", _networks("fec0::/10")),
    ("a discard-only address", _networks("100::/64")),
    ("a local-use NAT64 address", _networks("64:ff9b:1::/48")),
)
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_reason(ip: ipaddress.IPv6Address) -> str | None:
    """Why an IPv6 address that carries an IPv4 one is refused, judged by the IPv4 inside."""
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are reported as what they are
        # Deprecated (RFC 4291); nothing legitimate sends webhooks to ::a.b.c.d.
        return f"a deprecated IPv4-compatible address of {ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)}"
    embedded: list[tuple[str, ipaddress.IPv4Address]] = []
    if ip.sixtofour is not None:
        embedded.append(("a 6to4", ip.sixtofour))
    if ip.teredo is not None:
        embedded.extend(("a Teredo", address) for address in ip.teredo)
    if ip in _NAT64:
        embedded.append(("a NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    for kind, v4 in embedded:
        inner = _reason(v4)
        if inner:
            return f"{kind} address embedding {v4}, which is {inner}"
    return None


def _reason(ip: IPAddress) -> str | None:
    """What makes ``ip`` unreachable for webhooks (``'a loopback address'``), or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            inner = _reason(ip.ipv4_mapped)
            return f"an IPv4-mapped address of {ip.ipv4_mapped}, which is {inner}" if inner else None
        embedded = _embedded_reason(ip)
        if embedded:
            return embedded
    for reason, networks in _REFUSED_RANGES:
        if any(ip in network for network in networks):
            return reason
    if not ip.is_global:
        return "not a public address"
    return None


def refusal(address: str | IPAddress) -> str | None:
    """Why webhooks may not reach ``address`` (``'127.0.0.1 is a loopback address'``), or None.

    The allow-list is not consulted here; ``deliver`` applies it first.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    reason = _reason(ip)
    return f"{ip} is {reason}" if reason else None


_INET_ATON_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def parse_ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """Read ``host`` as C's ``inet_aton`` (and so ``getaddrinfo``) would, or None if it is a name.

    One to four parts, each decimal, octal (leading 0) or hex (0x); the last part fills the
    remaining bytes: ``127.1``, ``0177.0.0.1``, ``0x7f000001`` and ``2130706433`` are all
    127.0.0.1.
    """
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_ATON_PART.fullmatch(part) for part in parts):
        return None
    values = [int(part, 16) if part[:2] in ("0x", "0X") else int(part, 8 if part[0] == "0" else 10) for part in parts]
    *head, last = values
    if any(value > 0xFF for value in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = 0
    for value in head:
        number = number << 8 | value
    return ipaddress.IPv4Address(number << (8 * (4 - len(head))) | last)


@dataclass(frozen=True)
class _AllowList:
    names: frozenset[str]
    suffixes: tuple[str, ...]  # ".example.com": the domain and its subdomains
    networks: tuple[IPNetwork, ...]

    def allows_name(self, host: str) -> bool:
        return host in self.names or any(host == suffix[1:] or host.endswith(suffix) for suffix in self.suffixes)

    def allows_address(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(candidate in network for candidate in candidates for network in self.networks)


_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


def _allow_list() -> _AllowList:
    entries = getattr(settings, "JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS", [])
    if isinstance(entries, str):
        entries = entries.split(",")
    names: set[str] = set()
    suffixes: list[str] = []
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.removeprefix("[").removesuffix("]"), strict=False))
            continue
        except ValueError:
            pass
        domain = entry.startswith(".")
        try:
            name = entry.removeprefix(".").encode("idna").decode("ascii").removesuffix(".")
        except UnicodeError:
            name = ""
        if not _HOST_NAME.fullmatch(name):
            raise _Failure(
                f"misconfigured: JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS entry {raw!r} is neither a host name nor a network"
            )
        if domain:
            suffixes.append("." + name)
        else:
            names.add(name)
    return _AllowList(frozenset(names), tuple(suffixes), tuple(networks))


# --- The request ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Destination:
    scheme: str
    host: str  # ASCII, lower case, no trailing dot: for Host, SNI and the allow-list
    lookup_name: str  # what the resolver is asked (keeps a trailing dot)
    literal: IPAddress | None
    port: int
    request_target: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.scheme == "https" else 80
        return host if self.port == default_port else f"{host}:{self.port}"


_PATH_SAFE = "/%:@!$&'()*+,;="
_QUERY_SAFE = _PATH_SAFE + "?"


def _parse_url(url: Any) -> _Destination:
    if not isinstance(url, str) or not url:
        raise _Failure("refused: the target has no url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _Failure(f"refused: invalid URL ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise _Failure(f"refused: only http and https URLs are delivered, not {parts.scheme or 'no scheme'!r}")
    if "@" in parts.netloc:
        raise _Failure("refused: the URL must not carry credentials; use headers")
    hostname = parts.hostname
    if not hostname:
        raise _Failure("refused: the URL has no host")
    if ":" in hostname:  # urlsplit has taken the brackets off an IPv6 literal
        if "%" in hostname:
            raise _Failure("refused: IPv6 zone identifiers are not allowed")
        try:
            literal: IPAddress | None = ipaddress.IPv6Address(hostname)
        except ValueError as exc:
            raise _Failure(f"refused: invalid IPv6 address {hostname!r}") from exc
        host = lookup_name = str(literal)
    else:
        # IDNA as socket.getaddrinfo applies it: full-width digits and "。" become ASCII here.
        try:
            lookup_name = hostname.encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise _Failure(f"refused: invalid host name {hostname!r}") from exc
        host = lookup_name.removesuffix(".")
        if not _HOST_NAME.fullmatch(host):
            raise _Failure(f"refused: invalid host name {hostname!r}")
        # With or without a trailing dot, a number is checked as the address it spells.
        literal = parse_ipv4_literal(host)
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_QUERY_SAFE)
    return _Destination(parts.scheme, host, lookup_name, literal, port, target)


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _headers(
    job_target: dict[str, Any],
    dest: _Destination,
    *,
    body: str,
    fire_key: str,
    attempt: int,
    secret: str,
    timestamp: int,
) -> dict[str, str]:
    user_headers = job_target.get("headers") or {}
    if not isinstance(user_headers, dict):
        raise _Failure("refused: headers must be an object of strings")
    headers: dict[str, str] = {}
    for name, value in user_headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise _Failure(f"refused: invalid header name {name!r}")
        if name.lower() in RESERVED_HEADERS:
            continue
        headers[name] = _header_value(name, value)
    present = {name.lower() for name in headers}
    if "user-agent" not in present:
        headers["User-Agent"] = USER_AGENT
    if body and "content-type" not in present:
        headers["Content-Type"] = "application/json"
    headers["Host"] = dest.host_header
    headers["Connection"] = "close"
    headers["webhook-id"] = _header_value("webhook-id", fire_key)
    headers["webhook-timestamp"] = str(timestamp)
    if secret:
        try:
            headers["webhook-signature"] = sign(secret, fire_key, timestamp, body)
        except ValueError as exc:
            raise _Failure(f"refused: {exc}") from exc
    headers["Idempotency-Key"] = fire_key
    headers["X-Jobscheduler-Attempt"] = str(attempt)
    return headers


def _header_value(name: str, value: Any) -> str:
    if not isinstance(value, str) or any(char in value for char in "\r\n\0"):
        raise _Failure(f"refused: invalid value for header {name!r}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise _Failure(f"refused: header {name!r} has characters outside Latin-1") from exc
    return value


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


def _lookup(resolver: Resolver, dest: _Destination, *, timeout: float, deadline: float) -> list[IPAddress]:
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


def _checked(dest: _Destination, addresses: list[IPAddress], allow: _AllowList) -> list[IPAddress]:
    """The addresses to dial; refuses the lot if any one of them is off limits."""
    name_allowed = dest.literal is None and allow.allows_name(dest.host)
    for ip in addresses:
        if name_allowed or allow.allows_address(ip):
            continue
        reason = refusal(ip)
        if reason:
            origin = "" if str(ip) == dest.host else f" (from {dest.host})"
            raise _Failure(f"refused: {reason}{origin}")
    # An IPv4-mapped address is dialled as the IPv4 address it is.
    return [ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip for ip in addresses]


def _connect(
    connect: Connector, dest: _Destination, addresses: list[IPAddress], *, timeout: float, deadline: float
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


def _translate(exc: Exception, dest: _Destination, ip: IPAddress) -> _Failure:
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
    dest: _Destination,
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
    secret: str,
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
    method = str(job_target.get("method") or "POST").upper()
    if method not in HTTP_METHODS:
        raise _Failure(f"refused: method must be one of {', '.join(HTTP_METHODS)}")
    body = job_target.get("body") or ""
    if not isinstance(body, str):
        raise _Failure("refused: body must be a string")
    dest = _parse_url(job_target.get("url"))
    headers = _headers(
        job_target, dest, body=body, fire_key=fire_key, attempt=attempt, secret=secret, timestamp=int(now())
    )
    allow = _allow_list()
    addresses = _checked(dest, _lookup(resolver, dest, timeout=timeout, deadline=deadline), allow)
    sock, ip = _connect(connect, dest, addresses, timeout=timeout, deadline=deadline)
    excerpt_chars = int(getattr(settings, "JOBSCHEDULER_WEBHOOK_EXCERPT_CHARS", DEFAULT_EXCERPT_CHARS))
    try:
        return _exchange(
            sock,
            ip,
            dest,
            method=method,
            headers=headers,
            body=body.encode(),
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
    secret: str,
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
