"""An http target as a request: one parser for its URL and headers, whether a job is saved or delivered.

The headers we add follow the Standard Webhooks format (https://www.standardwebhooks.com/):
``webhook-id`` is the fire key, the same on every attempt, so receivers can drop duplicates.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from jobs.targets.http.addresses import (
    HOST_NAME,
    IPAddress,
    Refused,
    allow_list,
    parse_ipv4_literal,
    port_refusal,
    vetted,
)
from jobs.targets.http.signing import signature_header

FIELDS = frozenset({"url", "method", "headers", "body"})
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_BODY_CHARS = 64 * 1024
USER_AGENT = "jobscheduler-webhooks/1"

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


class InvalidTarget(ValueError):
    """No request can be made from an http target; the message says why."""


@dataclass(frozen=True)
class Destination:
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


def parse_url(url: Any) -> Destination:
    """Where a webhook goes, or InvalidTarget; addresses are not judged here (see ``addresses``)."""
    if not isinstance(url, str) or not url:
        raise InvalidTarget("the target has no url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidTarget(f"invalid URL ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidTarget(f"only http and https URLs are delivered, not {parts.scheme or 'no scheme'!r}")
    if "@" in parts.netloc:
        raise InvalidTarget("the URL must not carry credentials; use headers")
    hostname = parts.hostname
    if not hostname:
        raise InvalidTarget("the URL has no host")
    if ":" in hostname:  # urlsplit has taken the brackets off an IPv6 literal
        if "%" in hostname:
            raise InvalidTarget("IPv6 zone identifiers are not allowed")
        try:
            literal: IPAddress | None = ipaddress.IPv6Address(hostname)
        except ValueError as exc:
            raise InvalidTarget(f"invalid IPv6 address {hostname!r}") from exc
        host = lookup_name = str(literal)
    else:
        # IDNA as socket.getaddrinfo applies it: full-width digits and "。" become ASCII here.
        try:
            lookup_name = hostname.encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise InvalidTarget(f"invalid host name {hostname!r}") from exc
        host = lookup_name.removesuffix(".")
        if not HOST_NAME.fullmatch(host):
            raise InvalidTarget(f"invalid host name {hostname!r}")
        # With or without a trailing dot, a number is checked as the address it spells.
        literal = parse_ipv4_literal(host)
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_QUERY_SAFE)
    return Destination(parts.scheme, host, lookup_name, literal, port, target)


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def job_headers(headers: Any) -> dict[str, str]:
    """The headers a job sets, each name and value checked; reserved ones are dropped."""
    if not isinstance(headers, dict):
        raise InvalidTarget("headers must be an object of strings")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise InvalidTarget(f"invalid header name {name!r}")
        if name.lower() in RESERVED_HEADERS:
            continue
        checked[name] = header_value(name, value)
    return checked


def header_value(name: str, value: Any) -> str:
    """``value`` if it can go out as a header: no line break or NUL (no injected headers), Latin-1 only."""
    if not isinstance(value, str) or any(char in value for char in "\r\n\0"):
        raise InvalidTarget(f"invalid value for header {name!r}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise InvalidTarget(f"header {name!r} has characters outside Latin-1") from exc
    return value


@dataclass(frozen=True)
class Request:
    """One attempt's request, ready to go to a vetted address of ``destination``."""

    method: str
    destination: Destination
    headers: dict[str, str]
    body: bytes


def build(
    job_target: dict[str, Any], *, fire_key: str, attempt: int, secret: str | Sequence[str], timestamp: int
) -> Request:
    """The request for one attempt of ``job_target``, signed when there is a secret; or InvalidTarget.

    ``secret`` may be several (the current one first, then one being rotated out): each signs,
    and ``webhook-signature`` carries all their signatures.
    """
    method = str(job_target.get("method") or "POST").upper()
    if method not in HTTP_METHODS:
        raise InvalidTarget(f"method must be one of {', '.join(HTTP_METHODS)}")
    body = job_target.get("body") or ""
    if not isinstance(body, str):
        raise InvalidTarget("body must be a string")
    destination = parse_url(job_target.get("url"))
    refused_port = port_refusal(destination.port)
    if refused_port:
        raise InvalidTarget(refused_port)
    headers = job_headers(job_target.get("headers") or {})
    present = {name.lower() for name in headers}
    if "user-agent" not in present:
        headers["User-Agent"] = USER_AGENT
    if body and "content-type" not in present:
        headers["Content-Type"] = "application/json"
    headers["Host"] = destination.host_header
    headers["webhook-id"] = header_value("webhook-id", fire_key)
    headers["webhook-timestamp"] = str(timestamp)
    keys = [secret] if isinstance(secret, str) else list(secret)
    keys = [key for key in keys if key]
    if keys:
        try:
            headers["webhook-signature"] = signature_header(keys, fire_key, timestamp, body)
        except ValueError as exc:
            raise InvalidTarget(str(exc)) from exc
    headers["Idempotency-Key"] = fire_key
    headers["X-Jobscheduler-Attempt"] = str(attempt)
    return Request(method, destination, headers, body.encode())


def clean(target: dict[str, Any]) -> str | None:
    """What is wrong with an http target as a job stores it, or None.

    The URL and headers go through the parsers :func:`build` uses, and a literal address in
    the URL through the address policy delivery applies, so a job that saves is not then
    refused at every delivery for them. Method, headers and body are held to the stored shape
    (an exact method name, an object of strings, a bounded body), which delivery reads more
    leniently.
    """
    try:
        destination = parse_url(target.get("url"))
    except InvalidTarget as exc:
        return _sentence(exc)
    refused_port = port_refusal(destination.port)  # the URL's port, or its scheme's default
    if refused_port:
        return _sentence(InvalidTarget(refused_port))
    method = target.get("method", "POST")
    if method not in HTTP_METHODS:
        return f"method must be one of {', '.join(HTTP_METHODS)}."
    headers = target.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        return "headers must be an object of strings."
    try:
        job_headers(headers)
    except InvalidTarget as exc:
        return _sentence(exc)
    body = target.get("body", "")
    if not isinstance(body, str) or len(body) > MAX_BODY_CHARS:
        return f"body must be a string of at most {MAX_BODY_CHARS} characters."
    # A literal address is judged now, by the policy delivery applies to what it dials
    # (names are judged when delivering, on the addresses they resolve to then).
    if destination.literal is not None:
        try:
            vetted(destination.host, [destination.literal], named=False, allow=allow_list())
        except Refused as exc:
            return f"The URL's host is off limits: {exc}."
        except ImproperlyConfigured as exc:  # the operator's to fix; jobs.E002 says so at start
            return f"Webhooks are misconfigured: {exc}."
    return None


def _sentence(problem: InvalidTarget) -> str:
    """A parser's message as the other target messages read: a sentence."""
    text = str(problem)
    return f"{text[:1].upper()}{text[1:]}."
