"""The shared watchdog and lookup threads that bound a delivery's time without a thread of its own."""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time

import pytest

from jobs.targets.http.deadlines import Lookups, Watchdog


def _threads(name: str) -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == name)


def test_a_blocked_read_is_woken_at_the_deadline() -> None:
    watchdog = Watchdog()
    near, far = socket.socketpair()
    with near, far:
        started = time.monotonic()
        with watchdog.watch(started + 0.2) as watch:
            watch.guard(near)
            assert near.recv(1) == b""  # shut down, not answered
        assert watch.expired
        assert 0.15 < time.monotonic() - started < 2


def test_a_watch_that_ended_leaves_its_socket_alone() -> None:
    watchdog = Watchdog()
    near, far = socket.socketpair()
    with near, far:
        with watchdog.watch(time.monotonic() + 0.1) as watch:
            watch.guard(near)
        time.sleep(0.2)
        far.sendall(b"x")
        assert near.recv(1) == b"x"
        assert not watch.expired


def test_the_socket_guarded_last_is_the_one_shut_down() -> None:
    watchdog = Watchdog()
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    with first, first_peer, second, second_peer:
        with watchdog.watch(time.monotonic() + 0.1) as watch:
            watch.guard(first)
            watch.guard(second)  # a replaced connection
            assert second.recv(1) == b""
        first_peer.sendall(b"x")
        assert first.recv(1) == b"x"


def test_a_socket_guarded_after_the_deadline_is_shut_down_at_once() -> None:
    watchdog = Watchdog()
    near, far = socket.socketpair()
    with near, far, watchdog.watch(time.monotonic() - 1) as watch:
        deadline = time.monotonic() + 2
        while not watch.expired and time.monotonic() < deadline:
            time.sleep(0.01)
        watch.guard(near)
        assert near.recv(1) == b""


def test_one_thread_watches_every_delivery() -> None:
    before = _threads("webhook-deadlines")
    watchdog = Watchdog()
    with contextlib.ExitStack() as stack:
        guarded = []
        for n in range(20):
            near, _far = (stack.enter_context(end) for end in socket.socketpair())
            stack.enter_context(watchdog.watch(time.monotonic() + 0.05 * (n % 4))).guard(near)
            guarded.append(near)
        assert _threads("webhook-deadlines") == before + 1
        assert [near.recv(1) for near in guarded] == [b""] * 20


def test_lookups_run_on_reused_threads() -> None:
    before = _threads("webhook-resolve")
    lookups = Lookups(most=4)
    for n in range(20):
        assert lookups.submit(functools.partial(pow, n, 2)).result(2) == n**2
    assert _threads("webhook-resolve") - before == 1


def test_a_stuck_lookup_holds_one_thread_not_the_others() -> None:
    lookups = Lookups(most=2)
    stuck = threading.Event()
    try:
        hung = lookups.submit(functools.partial(stuck.wait, 10))
        assert lookups.submit(lambda: "answer").result(2) == "answer"
        with pytest.raises(TimeoutError):
            hung.result(0.05)
    finally:
        stuck.set()


def test_a_lookups_exception_reaches_the_caller() -> None:
    def fails() -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(socket.gaierror):
        Lookups().submit(fails).result(2)
