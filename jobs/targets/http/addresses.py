"""The address policy: which IP addresses a webhook may reach, and the allow-list that widens it.

Every address a delivery would dial passes :func:`vetted` first (``transport`` calls it
between resolving and connecting, on the answers it will dial). By default nothing but
public addresses: not loopback, private, link-local, cloud metadata, nor an IPv4 address of
those kinds hidden in an IPv6 one (mapped, compatible, 6to4, Teredo, NAT64).
``JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS`` names trusted internal hosts and networks, but no
entry opens cloud metadata, link-local or unspecified addresses (:data:`NEVER_REACHABLE`):
an allow-listed name that resolves there, or a range that contains them, is still refused.
``JOBSCHEDULER_WEBHOOK_ALLOWED_PORTS`` optionally limits the ports (:func:`port_refusal`).

Literal IPv4 hosts are read the way the C library reads them (``inet_aton``: ``2130706433``,
``0177.0.0.1``, ``0x7f.1``), so a spelling cannot slip past the check.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

# A host name once IDNA-encoded, lower case, without a trailing dot (URLs and allow-list alike).
HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


class Refused(Exception):
    """A webhook may not reach an address; the message says which and why."""


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

# Refused even when the allow-list names the host or a range containing the address: nothing
# a webhook should reach lives there, and an instance's credentials do. Metadata: AWS, Azure,
# GCP, DigitalOcean, OpenStack and Oracle (169.254.169.254, and Oracle's older 192.0.0.192),
# AWS over IPv6 (fd00:ec2::254) and Alibaba Cloud (100.100.100.200, inside the shared range
# 100.64.0.0/10 that tailnets allow-list). Link-local holds the rest of them (Tencent's
# 169.254.0.23 too); the unspecified address and "this network" (0/8) are dialled as this host.
NEVER_REACHABLE: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    (
        "a cloud metadata address",
        _networks("169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32", "192.0.0.192/32"),
    ),
    ("a link-local address", _networks("169.254.0.0/16", "fe80::/10")),
    ("an unspecified address", _networks("0.0.0.0/32", "::/128")),
    ("a 'this network' address", _networks("0.0.0.0/8")),
)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 one carries: mapped, compatible, 6to4, Teredo, NAT64."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if (ip in _IPV4_COMPATIBLE and int(ip) > 1) or ip in _NAT64:  # :: and ::1 are what they are
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def never_reachable(ip: IPAddress) -> str | None:
    """Why no allow-list entry opens ``ip`` (``'169.254.169.254 is a cloud metadata address'``), or None."""
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        candidates.extend(_embedded_ipv4(ip))
    for candidate in candidates:
        for reason, networks in NEVER_REACHABLE:
            if any(candidate in network for network in networks):
                return f"{ip} is {reason}" if candidate is ip else f"{ip} embeds {candidate}, {reason}"
    return None


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

    The allow-list is not consulted here; :func:`vetted` applies it first.
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
class AllowList:
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


def allow_list() -> AllowList:
    """``JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS`` as read now; ImproperlyConfigured names a bad entry."""
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
        if not HOST_NAME.fullmatch(name):
            raise ImproperlyConfigured(
                f"JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS entry {raw!r} is neither a host name nor a network"
            )
        if domain:
            suffixes.append("." + name)
        else:
            names.add(name)
    return AllowList(frozenset(names), tuple(suffixes), tuple(networks))


def vetted(host: str, addresses: Sequence[IPAddress], *, named: bool, allow: AllowList) -> list[IPAddress]:
    """The addresses to dial for ``host``; raises Refused if any one of them is off limits.

    ``named``: ``host`` is a name that resolved to ``addresses`` (so allow-listed names
    apply), not an address literal. No allow-list entry opens :data:`NEVER_REACHABLE`.
    """
    name_allowed = named and allow.allows_name(host)
    for ip in addresses:
        origin = "" if str(ip) == host else f" (from {host})"
        never = never_reachable(ip)
        if never:
            raise Refused(f"{never}, never reachable{origin}")
        if name_allowed or allow.allows_address(ip):
            continue
        reason = refusal(ip)
        if reason:
            raise Refused(f"{reason}{origin}")
    # An IPv4-mapped address is dialled as the IPv4 address it is.
    return [ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip for ip in addresses]


def port_refusal(port: int) -> str | None:
    """Why webhooks may not go to ``port`` under ``JOBSCHEDULER_WEBHOOK_ALLOWED_PORTS``, or None (empty: any)."""
    allowed = [int(value) for value in getattr(settings, "JOBSCHEDULER_WEBHOOK_ALLOWED_PORTS", None) or ()]
    if not allowed or port in allowed:
        return None
    return f"port {port} is not in JOBSCHEDULER_WEBHOOK_ALLOWED_PORTS ({', '.join(map(str, allowed))})"
