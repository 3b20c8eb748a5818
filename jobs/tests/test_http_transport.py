"""Delivering a webhook: statuses, redirects, time and size bounds, connection failures, https.

Every delivery goes to real local receivers through ``LoopbackOnly`` and ``FakeDNS`` (see
``webhook_doubles``); nothing here leaves loopback.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from jobs.targets.http import deliver
from jobs.tests.webhook_doubles import (
    LOCAL,
    PUBLIC_IP,
    Canary,
    FakeDNS,
    LoopbackOnly,
    Receiver,
    send,
    standard_webhooks_signature,
)

pytestmark = pytest.mark.usefixtures("no_allow_list")


# --- What the receiver answered -----------------------------------------------------------------


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


# --- The address dialled is the address checked ---------------------------------------------------


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
    dns = FakeDNS({"hooks.test": LOCAL})
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
    dns = FakeDNS({"other.test": LOCAL})
    with override_settings(JOBSCHEDULER_WEBHOOK_CA_FILE=str(certificate[0])):
        result = send(f"https://other.test:{tls_receiver.port}/in", resolver=dns)

    assert not result.ok
    assert result.error.startswith("TLS certificate of other.test not accepted"), result.error
    assert tls_receiver.requests == []


def test_https_refuses_an_untrusted_certificate(tls_receiver: Receiver, allow_loopback: None) -> None:
    result = send(f"https://hooks.test:{tls_receiver.port}/in", resolver=FakeDNS({"hooks.test": LOCAL}))
    assert result.error.startswith("TLS certificate of hooks.test not accepted"), result.error
    assert tls_receiver.requests == []
