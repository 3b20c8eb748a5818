"""A delivery's total deadline without a thread of its own: one watchdog, and shared lookup threads.

Socket timeouts bound each read, but a receiver dripping a byte at a time would stretch a
delivery far past its timeout. So each delivery puts its deadline and a duplicate of its
socket's descriptor on the :class:`Watchdog`'s heap; one thread for the whole process shuts
the socket down at that deadline, which wakes whatever read is blocked on it (a duplicate
descriptor survives the TLS wrap, and shutting it down reaches the same connection).

``getaddrinfo`` has no timeout at all, so lookups run on :class:`Lookups`' threads and the
delivery stops waiting at its deadline; a stuck lookup holds one thread, not the delivery.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


class Watch:
    """One delivery's deadline: the socket it guards is shut down if the deadline passes first."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self.ended = False
        self._lock = threading.Lock()
        self._guard: socket.socket | None = None

    def guard(self, sock: socket.socket) -> None:
        """Guard ``sock`` (the connection now in use) instead of any socket guarded before."""
        duplicate = socket.socket(fileno=os.dup(sock.fileno()))
        with self._lock:
            previous, self._guard = self._guard, duplicate
            if self.expired:
                _shut(duplicate)
        if previous is not None:
            previous.close()

    def expire(self) -> None:
        with self._lock:
            if self.ended:
                return
            self.expired = True
            if self._guard is not None:
                _shut(self._guard)

    def end(self) -> None:
        """After this the watchdog leaves the socket alone: it may go back to a pool."""
        with self._lock:
            self.ended = True
            guard, self._guard = self._guard, None
        if guard is not None:
            guard.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """One thread that expires :class:`Watch` es at their deadlines, started at the first one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._live = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watch(self, deadline: float) -> Iterator[Watch]:
        watch = Watch(deadline)
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="webhook-deadlines", daemon=True)
                self._thread.start()
            # Ended watches are left on the heap; rebuild it when they are most of it.
            if len(self._heap) > 64 and len(self._heap) > 4 * self._live:
                self._heap = [item for item in self._heap if not item[2].ended]
                heapq.heapify(self._heap)
            earliest = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (deadline, next(self._order), watch))
            self._live += 1
            if earliest is None or deadline < earliest:
                self._wake.notify()
        try:
            yield watch
        finally:
            watch.end()
            with self._wake:
                self._live -= 1

    def _run(self) -> None:
        with self._wake:
            while True:
                # Drop ended watches from the top, so the thread sleeps until a live deadline.
                while self._heap and self._heap[0][2].ended:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                deadline, _, watch = self._heap[0]
                wait = deadline - self._clock()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)
                watch.expire()


class Lookups:
    """Daemon threads for name lookups, started as needed up to ``most`` and then reused.

    Daemon threads, unlike a ThreadPoolExecutor's, do not hold up the process's exit behind a
    lookup that hangs.
    """

    def __init__(self, most: int = 32) -> None:
        self._most = most
        self._work: queue.SimpleQueue[tuple[Future[object], Callable[[], object]]] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads = 0

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._work.put((future, call))  # type: ignore[arg-type]
        if not self._idle.acquire(blocking=False):
            with self._lock:
                if self._threads < self._most:
                    self._threads += 1
                    threading.Thread(target=self._run, name="webhook-resolve", daemon=True).start()
        return future

    def _run(self) -> None:
        while True:
            future, call = self._work.get()
            if not future.set_running_or_notify_cancel():
                self._idle.release()
                continue
            try:
                result = call()
            except BaseException as exc:
                self._idle.release()  # before answering, so the caller's next lookup finds this thread
                future.set_exception(exc)
            else:
                self._idle.release()
                future.set_result(result)
            del future, call
