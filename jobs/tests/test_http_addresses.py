"""The address policy: refusal reasons, IPv4 literals as the OS reads them, the allow-list, and SSRF.

Every URL in the SSRF corpus is delivered for real (through ``LoopbackOnly`` and ``FakeDNS``)
and must be refused before any socket is opened; a canary listener shows any connection.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.targets import clean_target
from jobs.targets.http.addresses import AllowList, Refused, allow_list, parse_ipv4_literal, refusal, vetted
from jobs.targets.http.transport import resolve
from jobs.tests.webhook_doubles import LOCAL, PUBLIC_IP, Canary, FakeDNS, LoopbackOnly, Receiver, send

pytestmark = pytest.mark.usefixtures("no_allow_list")


# --- Why an address is refused ------------------------------------------------------------------


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
    assert refusal(address) == reason


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", PUBLIC_IP, "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(address) is None


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=24))
def test_ipv4_literals_read_as_the_os_reads_them(host: str) -> None:
    try:
        # AI_NUMERICHOST: the C library's own parse, never a DNS query.
        expected: str | None = str(socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)[0][4][0])
    except (OSError, UnicodeError):
        expected = None
    parsed = parse_ipv4_literal(host)
    assert (str(parsed) if parsed else None) == expected


# --- The allow-list --------------------------------------------------------------------------------


def test_a_misconfigured_allow_list_is_reported_not_raised() -> None:
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["10.0.0.0/33"]):
        result = send("http://hooks.example/", resolver=FakeDNS({"hooks.example": [["10.0.0.1"]]}))
    assert result.error.startswith("misconfigured: JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS entry '10.0.0.0/33'")


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
    ("http://attacker.example:{port}/", {"attacker.example": LOCAL}),
    ("http://ATTACKER.Example:{port}/", {"attacker.example": LOCAL}),
    ("http://attacker.example.:{port}/", {"attacker.example": LOCAL}),
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
    ("http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3:{port}/", {"localhost": LOCAL}),  # circled
    ("http://\u0430ttacker.example:{port}/", {"xn--ttacker-1fg.example": LOCAL}),  # Cyrillic a
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
    resolver = FakeDNS(dns) if dns is not None else resolve
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
    assert all(refusal(ip) is None for ip, _ in dialler.calls), dialler.calls
    assert canary.hits() == 0


# --- Never reachable, whatever the allow-list says --------------------------------------------------

# Each of these with the allow-list entries that would otherwise let it through.
NEVER_REACHABLE: list[tuple[str, list[str]]] = [
    ("169.254.169.254", ["169.254.169.254"]),
    ("169.254.169.254", ["169.254.0.0/16"]),
    ("169.254.169.254", ["0.0.0.0/0"]),
    ("169.254.1.1", ["169.254.0.0/16"]),
    ("100.100.100.200", ["100.64.0.0/10"]),
    ("0.0.0.0", ["0.0.0.0/8"]),  # noqa: S104
    ("0.1.2.3", ["0.0.0.0/0"]),
    ("::", ["::/0"]),
    ("fd00:ec2::254", ["fc00::/7"]),
    ("fe80::1", ["fe80::/10"]),
    ("::ffff:169.254.169.254", ["::/0", "0.0.0.0/0"]),
    ("::ffff:0.0.0.0", ["::/0", "0.0.0.0/0"]),
    ("::169.254.169.254", ["::/0", "0.0.0.0/0"]),
    ("::169.254.1.1", ["::/0"]),
    ("64:ff9b::a9fe:a9fe", ["::/0"]),
]


@pytest.mark.parametrize(("address", "entries"), NEVER_REACHABLE)
def test_allow_listed_ranges_never_reach_metadata_link_local_or_unspecified(address: str, entries: list[str]) -> None:
    ip = ipaddress.ip_address(address)
    with pytest.raises(Refused, match="never reachable"):
        vetted(address, [ip], named=False, allow=allow_list_of(entries))


@pytest.mark.parametrize("address", sorted({address for address, _ in NEVER_REACHABLE}))
def test_allow_listed_names_never_reach_metadata_link_local_or_unspecified(address: str) -> None:
    allow = allow_list_of(["metadata.google.internal", ".internal"])
    with pytest.raises(Refused, match=r"never reachable.*\(from metadata.google.internal\)"):
        vetted("metadata.google.internal", [ipaddress.ip_address(address)], named=True, allow=allow)


def test_an_allow_listed_name_for_metadata_is_refused_before_dialling(canary: Canary) -> None:
    dialler = LoopbackOnly()
    dns = FakeDNS({"metadata.google.internal": [["169.254.169.254"]]})
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["metadata.google.internal", "169.254.0.0/16"]):
        result = send("http://metadata.google.internal/computeMetadata/v1/", resolver=dns, dialler=dialler)
    assert result.error == (
        "refused: 169.254.169.254 is a cloud metadata address, never reachable (from metadata.google.internal)"
    )
    assert dialler.calls == []


def test_the_allow_list_still_opens_other_private_addresses() -> None:
    allow = allow_list_of(["10.0.0.0/8", "fc00::/7", "hooks.internal"])
    assert vetted("10.1.2.3", [ipaddress.ip_address("10.1.2.3")], named=False, allow=allow)
    assert vetted("fd00::1", [ipaddress.ip_address("fd00::1")], named=False, allow=allow)
    assert vetted("hooks.internal", [ipaddress.ip_address("127.0.0.1")], named=True, allow=allow)


def allow_list_of(entries: list[str]) -> AllowList:
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=entries):
        return allow_list()


# --- Ports -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "ports", "refused"),
    [
        ("https://hooks.example.com/", [], False),
        ("https://hooks.example.com:8443/", [], False),
        ("https://hooks.example.com/", [443], False),
        ("https://hooks.example.com:443/", [443], False),
        ("http://hooks.example.com/", [443], True),  # the scheme's default port is the URL's port
        ("https://hooks.example.com:8443/", [443, 80], True),
        ("http://hooks.example.com:8080/", [8080], False),
    ],
)
def test_the_port_allow_list_is_checked_when_a_job_is_saved(url: str, ports: list[int], refused: bool) -> None:
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_PORTS=ports):
        problems = clean_target("http", {"url": url})
    if refused:
        port = url.rsplit(":", 1)[-1].strip("/") if url.count(":") == 2 else "80"
        assert problems == {
            "target": f"Port {port} is not in JOBSCHEDULER_WEBHOOK_ALLOWED_PORTS ({', '.join(map(str, ports))})."
        }
    else:
        assert problems == {}


def test_the_port_allow_list_is_checked_at_delivery(receiver: Receiver, allow_loopback: None) -> None:
    dialler = LoopbackOnly()
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_PORTS=[443]):
        result = send(f"http://127.0.0.1:{receiver.port}/", dialler=dialler)
    assert result.error == f"refused: port {receiver.port} is not in JOBSCHEDULER_WEBHOOK_ALLOWED_PORTS (443)"
    assert dialler.calls == []
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_PORTS=[receiver.port]):
        assert send(f"http://127.0.0.1:{receiver.port}/").ok
