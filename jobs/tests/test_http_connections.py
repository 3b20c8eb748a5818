"""Kept-alive connections: reused, never to an address the name no longer earns, never sending twice.

Real receivers on loopback (``webhook_doubles``); each test has pools of its own.
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
from typing import Any

import pytest
from django.test import override_settings

from jobs.targets.http.connections import Pools
from jobs.tests.webhook_doubles import LOCAL, BreakableLoopback, Canary, FakeDNS, LoopbackOnly, Receiver, send

pytestmark = pytest.mark.usefixtures("no_allow_list")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pools(clock: Clock) -> Iterator[Pools]:
    own = Pools(per_pool=4, clock=clock)
    yield own
    own.close()


@pytest.fixture
def keeper(canary: Canary) -> Iterator[Receiver]:
    server = Receiver(canary_port=canary.port, keep_alive=True).start()
    yield server
    server.stop()


# --- Reuse ------------------------------------------------------------------------------------------


def test_deliveries_to_one_receiver_share_one_connection(keeper: Receiver, pools: Pools, allow_loopback: None) -> None:
    dialler = LoopbackOnly()
    results = [
        send(f"http://127.0.0.1:{keeper.port}/in", dialler=dialler, pools=pools, attempt=n, body="{}")
        for n in range(1, 6)
    ]

    assert [r.ok for r in results] == [True] * 5
    assert len(keeper.requests) == 5
    assert len(keeper.connections) == 1
    assert dialler.calls == [("127.0.0.1", keeper.port)]
    assert [r.header("X-Jobscheduler-Attempt") for r in keeper.requests] == ["1", "2", "3", "4", "5"]
    assert {r.header("Connection") for r in keeper.requests} == {None}


def test_a_receiver_that_says_connection_close_gets_a_connection_per_delivery(
    receiver: Receiver, pools: Pools, allow_loopback: None
) -> None:
    dialler = LoopbackOnly()
    results = [send(f"http://127.0.0.1:{receiver.port}/", dialler=dialler, pools=pools) for _ in range(3)]

    assert [r.ok for r in results] == [True] * 3
    assert len(receiver.connections) == 3
    assert len(dialler.calls) == 3


def test_a_connection_the_receiver_closed_while_idle_is_replaced(
    keeper: Receiver, pools: Pools, allow_loopback: None
) -> None:
    dialler = LoopbackOnly()
    first = send(f"http://127.0.0.1:{keeper.port}/idle-close", dialler=dialler, pools=pools)
    assert keeper.wait_closed(1)  # the receiver hung up after answering, without saying so
    second = send(f"http://127.0.0.1:{keeper.port}/", dialler=dialler, pools=pools)

    assert (first.ok, second.ok) == (True, True), second.error
    assert len(keeper.requests) == 2
    assert len(keeper.connections) == 2
    assert len(dialler.calls) == 2


def test_a_connection_idle_too_long_is_not_reused(
    keeper: Receiver, pools: Pools, clock: Clock, allow_loopback: None
) -> None:
    url = f"http://127.0.0.1:{keeper.port}/"
    assert send(url, pools=pools).ok
    clock.now += pools.idle_seconds + 0.1  # receivers close idle connections after a few seconds
    assert send(url, pools=pools).ok

    assert len(keeper.connections) == 2
    assert keeper.wait_closed(1)  # the idle one was closed, not left open


def test_a_partly_read_answer_is_drained_before_the_connection_is_reused(
    keeper: Receiver, pools: Pools, allow_loopback: None
) -> None:
    dialler = LoopbackOnly()
    long = send(f"http://127.0.0.1:{keeper.port}/long", dialler=dialler, pools=pools)  # 10,000 bytes, 8,000 read
    after = send(f"http://127.0.0.1:{keeper.port}/status/201", dialler=dialler, pools=pools)

    assert long.response_excerpt == "a" * 2000
    assert (after.status_code, after.response_excerpt) == (201, "status body")
    assert len(keeper.connections) == 1


def test_a_large_unread_answer_closes_its_connection(keeper: Receiver, pools: Pools, allow_loopback: None) -> None:
    dialler = LoopbackOnly()
    huge = send(f"http://127.0.0.1:{keeper.port}/huge", dialler=dialler, pools=pools)
    after = send(f"http://127.0.0.1:{keeper.port}/status/202", dialler=dialler, pools=pools)

    assert huge.ok
    assert huge.response_excerpt == "h" * 2000
    assert (after.status_code, after.response_excerpt) == (202, "status body")  # not the rest of /huge
    assert len(keeper.connections) == 2
    assert keeper.wait_closed(1)  # closed at once, not left to the garbage collector


# --- A request goes out once -----------------------------------------------------------------------


def test_a_kept_connection_that_fails_while_sending_is_replaced_once(
    keeper: Receiver, pools: Pools, allow_loopback: None
) -> None:
    dialler = BreakableLoopback()
    assert send(f"http://127.0.0.1:{keeper.port}/", dialler=dialler, pools=pools).ok
    dialler.break_sends()  # as if the receiver had reset the kept connection: the send fails
    result = send(f"http://127.0.0.1:{keeper.port}/", dialler=dialler, pools=pools, attempt=2)

    assert result.ok, result.error
    assert [r.header("X-Jobscheduler-Attempt") for r in keeper.requests] == ["1", "2"]
    assert len(dialler.calls) == 2


def test_a_fresh_connection_that_fails_while_sending_is_not_retried(
    keeper: Receiver, pools: Pools, allow_loopback: None
) -> None:
    class BrokenAtOnce(BreakableLoopback):
        def __call__(self, ip: str, port: int, timeout: float) -> socket.socket:
            sock = super().__call__(ip, port, timeout)
            self.break_sends()
            return sock

    dialler = BrokenAtOnce()
    result = send(f"http://127.0.0.1:{keeper.port}/", dialler=dialler, pools=pools)

    assert not result.ok
    assert result.error.startswith("connection to 127.0.0.1 (127.0.0.1) failed: Broken pipe"), result.error
    assert len(dialler.calls) == 1


def test_a_request_that_went_out_is_not_sent_again(keeper: Receiver, pools: Pools, allow_loopback: None) -> None:
    dialler = LoopbackOnly()
    assert send(f"http://127.0.0.1:{keeper.port}/", dialler=dialler, pools=pools).ok
    # The receiver reads this one on the kept connection and hangs up without answering.
    result = send(f"http://127.0.0.1:{keeper.port}/vanish", dialler=dialler, pools=pools, attempt=2)

    assert not result.ok
    assert result.error.startswith("bad HTTP response from 127.0.0.1"), result.error
    assert [r.path for r in keeper.requests] == ["/", "/vanish"]
    assert len(keeper.connections) == 1
    assert len(dialler.calls) == 1


def test_a_redirect_on_a_kept_connection_is_not_followed(
    keeper: Receiver, canary: Canary, pools: Pools, allow_loopback: None
) -> None:
    url = f"http://127.0.0.1:{keeper.port}"
    assert send(f"{url}/", pools=pools).ok
    result = send(f"{url}/redirect/307", pools=pools)

    assert result.error.startswith("redirect (307) not followed")
    assert len(keeper.requests) == 2
    assert canary.hits() == 0


# --- Every delivery vets again, whatever is pooled -------------------------------------------------


def test_a_name_now_resolving_to_a_refused_address_is_refused_with_a_warm_pool(
    keeper: Receiver, pools: Pools, allow_loopback: None
) -> None:
    # 127.0.0.1 is allowed (allow_loopback); 127.0.0.2, the name's second answer, is not.
    dns = FakeDNS({"hooks.test": [["127.0.0.1"], ["127.0.0.2"]]})
    dialler = LoopbackOnly()
    first = send(f"http://hooks.test:{keeper.port}/", resolver=dns, dialler=dialler, pools=pools)
    second = send(f"http://hooks.test:{keeper.port}/", resolver=dns, dialler=dialler, pools=pools)

    assert first.ok
    assert second.error == "refused: 127.0.0.2 is a loopback address (from hooks.test)"
    assert dns.calls == ["hooks.test", "hooks.test"]
    assert len(keeper.requests) == 1
    assert dialler.calls == [("127.0.0.1", keeper.port)]


def test_a_policy_change_refuses_an_address_with_a_warm_pool(keeper: Receiver, pools: Pools) -> None:
    url = f"http://127.0.0.1:{keeper.port}/"
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
        assert send(url, pools=pools).ok
    result = send(url, pools=pools)

    assert result.error == "refused: 127.0.0.1 is a loopback address"
    assert len(keeper.requests) == 1


def test_a_name_moving_to_another_allowed_address_gets_a_connection_there(
    keeper: Receiver, canary: Canary, pools: Pools
) -> None:
    try:
        moved = Receiver(canary_port=canary.port, keep_alive=True, host="127.0.0.2", port=keeper.port).start()
    except OSError:
        pytest.skip("no 127.0.0.2 on this machine, or its port is taken")
    dns = FakeDNS({"hooks.test": [["127.0.0.1"], ["127.0.0.2"]]})
    dialler = LoopbackOnly()
    try:
        with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["127.0.0.0/8"]):
            first = send(f"http://hooks.test:{keeper.port}/", resolver=dns, dialler=dialler, pools=pools)
            second = send(f"http://hooks.test:{keeper.port}/", resolver=dns, dialler=dialler, pools=pools)
        assert (first.ok, second.ok) == (True, True)
        assert dialler.calls == [("127.0.0.1", keeper.port), ("127.0.0.2", keeper.port)]
        assert (len(keeper.requests), len(moved.requests)) == (1, 1)
        assert moved.requests[0].header("Host") == f"hooks.test:{keeper.port}"
    finally:
        moved.stop()


def test_each_host_name_has_its_own_connections_on_one_address(
    keeper: Receiver, pools: Pools, allow_loopback: None
) -> None:
    dns = FakeDNS({"a.test": LOCAL, "b.test": LOCAL})
    dialler = LoopbackOnly()
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1", "a.test", "b.test"]):
        for host in ("a.test", "b.test", "a.test", "b.test"):
            assert send(f"http://{host}:{keeper.port}/", resolver=dns, dialler=dialler, pools=pools).ok

    assert len(keeper.connections) == 2
    assert [r.header("Host") for r in keeper.requests] == [f"{h}:{keeper.port}" for h in ("a.test", "b.test") * 2]


# --- The deadline holds on kept connections ----------------------------------------------------------


def test_a_dripping_receiver_on_a_kept_connection_hits_the_deadline(
    keeper: Receiver, pools: Pools, allow_loopback: None
) -> None:
    dialler = LoopbackOnly()
    assert send(f"http://127.0.0.1:{keeper.port}/", dialler=dialler, pools=pools).ok
    started = time.monotonic()
    result = send(f"http://127.0.0.1:{keeper.port}/drip", dialler=dialler, pools=pools, timeout=0.6)
    elapsed = time.monotonic() - started
    after = send(f"http://127.0.0.1:{keeper.port}/", dialler=dialler, pools=pools)

    assert (result.timed_out, result.error) == (True, "timed out after 0.6s")
    assert 0.5 < elapsed < 3
    assert after.ok  # on a new connection: the one the deadline cut is not pooled
    assert len(dialler.calls) == 2


def test_a_slow_answer_on_a_kept_connection_times_out(keeper: Receiver, pools: Pools, allow_loopback: None) -> None:
    assert send(f"http://127.0.0.1:{keeper.port}/", pools=pools).ok
    result = send(f"http://127.0.0.1:{keeper.port}/slow", pools=pools, timeout=0.4)
    assert (result.timed_out, result.status_code, result.error) == (True, None, "timed out after 0.4s")


# --- Bounds -----------------------------------------------------------------------------------------


def test_pools_beyond_the_most_are_closed_least_recently_used_first(canary: Canary, allow_loopback: None) -> None:
    receivers = [Receiver(canary_port=canary.port, keep_alive=True).start() for _ in range(3)]
    bounded = Pools(per_pool=2, most=2)
    try:
        for server in receivers:
            assert send(f"http://127.0.0.1:{server.port}/", pools=bounded).ok
        assert len(bounded) == 2
        assert receivers[0].wait_closed(1)  # its pool was evicted and its idle connection closed
        assert (receivers[1].closed, receivers[2].closed) == (0, 0)
    finally:
        bounded.close()
        for server in receivers:
            server.stop()


def test_a_pool_keeps_at_most_per_pool_idle_connections(keeper: Receiver, allow_loopback: None) -> None:
    bounded = Pools(per_pool=2)
    dialler = LoopbackOnly()
    results: list[bool] = []

    def deliver_slowly() -> None:
        results.append(send(f"http://127.0.0.1:{keeper.port}/slow", dialler=dialler, pools=bounded).ok)

    try:
        threads = [threading.Thread(target=deliver_slowly) for _ in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while len(keeper.requests) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        keeper.release.set()
        for thread in threads:
            thread.join(5)
        assert results == [True] * 4
        assert len(keeper.connections) == 4
        assert keeper.wait_closed(2)  # two went back to the pool, two were closed
        time.sleep(0.1)
        assert keeper.closed == 2
    finally:
        bounded.close()


# --- https -----------------------------------------------------------------------------------------


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
def tls_keeper(canary: Canary, certificate: tuple[Path, Path]) -> Iterator[Receiver]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = Receiver(canary_port=canary.port, keep_alive=True).start(tls=context)
    yield server
    server.stop()


def test_https_connections_are_kept_per_verified_name(
    tls_keeper: Receiver, certificate: tuple[Path, Path], pools: Pools, allow_loopback: None
) -> None:
    dns = FakeDNS({"hooks.test": LOCAL, "other.test": LOCAL})
    dialler = LoopbackOnly()
    with override_settings(JOBSCHEDULER_WEBHOOK_CA_FILE=str(certificate[0])):
        first = send(f"https://hooks.test:{tls_keeper.port}/", resolver=dns, dialler=dialler, pools=pools)
        second = send(f"https://hooks.test:{tls_keeper.port}/", resolver=dns, dialler=dialler, pools=pools)
        # Same address and port, another name: the certificate is checked for it, on its own connection.
        other = send(f"https://other.test:{tls_keeper.port}/", resolver=dns, dialler=dialler, pools=pools)

    assert (first.ok, second.ok) == (True, True), second.error
    assert tls_keeper.sni == ["hooks.test", "other.test"]
    assert other.error.startswith("TLS certificate of other.test not accepted"), other.error
    assert len(tls_keeper.requests) == 2
    assert len(dialler.calls) == 2


def test_https_connections_are_kept_per_ca_file(
    tls_keeper: Receiver, certificate: tuple[Path, Path], pools: Pools, allow_loopback: None
) -> None:
    dns = FakeDNS({"hooks.test": LOCAL})
    with override_settings(JOBSCHEDULER_WEBHOOK_CA_FILE=str(certificate[0])):
        assert send(f"https://hooks.test:{tls_keeper.port}/", resolver=dns, pools=pools).ok
    # The system's CAs do not know the test certificate: no kept connection may skip that check.
    result = send(f"https://hooks.test:{tls_keeper.port}/", resolver=dns, pools=pools)

    assert result.error.startswith("TLS certificate of hooks.test not accepted"), result.error
    assert len(tls_keeper.requests) == 1


# --- Internal networks and the owner's permission ----------------------------------------------------


def test_a_name_resolving_into_an_allow_listed_network_needs_the_owners_permission(
    keeper: Receiver, pools: Pools
) -> None:
    # The owner of a public-looking name points its DNS at an internal address: without
    # jobs.create_internal_webhooks the allow-listed network does not apply to it.
    dns = FakeDNS({"owner-controlled.example": [["127.0.0.1"]], "ci.internal": [["127.0.0.1"]]})
    url = f"http://owner-controlled.example:{keeper.port}/"
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["127.0.0.0/8", "ci.internal"]):
        refused = send(url, resolver=dns, pools=pools, internal_networks=False)
        allowed = send(url, resolver=dns, pools=pools, internal_networks=True)
        named = send(f"http://ci.internal:{keeper.port}/", resolver=dns, pools=pools, internal_networks=False)
    assert refused.error == "refused: 127.0.0.1 is a loopback address (from owner-controlled.example)"
    assert allowed.ok and named.ok  # an allow-listed name was judged when the job was saved
    assert len(keeper.requests) == 2


def test_the_workers_look_up_whether_an_owner_may_reach_internal_networks_once_per_job(
    django_user_model: Any, user: Any, plain_user: Any, django_assert_num_queries: Any
) -> None:
    from jobs.permissions import may_reach_internal
    from jobs.services import job_create

    target = {"url": "https://hooks.example.com/x"}
    trusted = job_create(owner=user, name="trusted", target_type="http", target=target)
    untrusted = job_create(owner=plain_user, name="untrusted", target_type="http", target=target)
    loaded = type(untrusted).objects.get(pk=untrusted.pk)
    assert may_reach_internal(type(trusted).objects.get(pk=trusted.pk)) is True
    assert may_reach_internal(loaded) is False
    with django_assert_num_queries(0):
        assert may_reach_internal(loaded) is False
