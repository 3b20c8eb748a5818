"""Kept-alive connections to vetted addresses: urllib3 pools keyed by what decides safety and identity.

A pool serves one :class:`PoolKey` (scheme, vetted IP, port, host name, CA file, connector).
Its connections are only ever dialled to that IP, through the delivery's connector: our
``_new_conn`` replaces urllib3's, so urllib3 never looks a name up, and ``auto_open`` is off,
so nothing reconnects behind our back. For https the host name goes in SNI and the
certificate check. A delivery resolves and vets first and only then picks the pool of a
vetted IP: a warm connection to an address the name no longer resolves to, or that the
policy no longer allows, is never used for it.

Bounds: each pool keeps at most ``per_pool`` idle connections (about the worker's
concurrency); at most ``most`` pools live, the least recently used closed beyond that; and
a connection idle for over ``IDLE_SECONDS`` is closed rather than reused. Receivers close
idle keep-alive connections after a few seconds (gunicorn after 2, Node after 5); a request
sent just as one does fails, and a webhook may not be sent again once it has gone out, so
connections are only reused while receivers certainly keep them.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ClosedPoolError

from jobs.targets.http.deadlines import Watch

# (ip, port, timeout) -> a connected TCP socket to exactly that address.
Connector: TypeAlias = Callable[[str, int, float], socket.socket]

IDLE_SECONDS = 1.0
MOST_POOLS = 64


class PoolKey(NamedTuple):
    scheme: str
    ip: str  # the vetted address, and the only one a connection of the pool dials
    port: int
    host: str  # Host header; for https SNI and the name the certificate must carry
    ca_file: str  # https only: the CA bundle certificates are checked against ('' = system)
    connector: Connector


class _Dials:
    """What both connection classes do differently from urllib3's: dial through the connector."""

    auto_open = 0  # http.client must not reconnect by itself (it would, after a close)

    connector: Connector
    watch: Watch | None
    dialled: bool
    idle_since: float
    port: int
    timeout: Any
    _dns_host: str

    def _setup(self, connector: Connector) -> None:
        self.connector = connector
        self.watch = None  # the delivery in progress: guards a fresh socket from its dial on
        self.dialled = False  # the last connect() got as far as a TCP connection
        self.idle_since = 0.0

    def _new_conn(self) -> socket.socket:
        # _dns_host is the pool's vetted IP: never a name, so there is nothing to look up.
        sock = self.connector(self._dns_host, self.port, float(self.timeout))
        self.dialled = True
        if self.watch is not None:
            self.watch.guard(sock)  # the TLS handshake is inside the delivery's deadline too
        return sock


class VettedConnection(_Dials, HTTPConnection):
    def __init__(self, *args: Any, connector: Connector, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup(connector)


class VettedTLSConnection(_Dials, HTTPSConnection):
    def __init__(self, *args: Any, connector: Connector, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup(connector)


Connection: TypeAlias = VettedConnection | VettedTLSConnection


class _Pool(HTTPConnectionPool):
    ConnectionCls = VettedConnection
    last_used = 0.0


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = VettedTLSConnection
    last_used = 0.0


Pool: TypeAlias = _Pool | _TLSPool


class Pools:
    """The pools of a process (one shared by every delivery; tests make their own)."""

    def __init__(
        self,
        *,
        per_pool: int,
        most: int = MOST_POOLS,
        idle_seconds: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_pool = per_pool
        self.most = most
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._pools: OrderedDict[PoolKey, Pool] = OrderedDict()
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._pools)

    def pool(self, key: PoolKey, *, tls_context: Any = None) -> Pool:
        """The pool for ``key``, made on first use; pools past the bounds are closed."""
        now = self._clock()
        closing: list[Pool] = []
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._new(key, tls_context)
                self._pools[key] = pool
                while len(self._pools) > self.most:
                    closing.append(self._pools.popitem(last=False)[1])
            else:
                self._pools.move_to_end(key)
            pool.last_used = now
            if now >= self._next_sweep:
                # A pool unused this long holds only connections that will not be reused.
                self._next_sweep = now + self.idle_seconds
                for stale in [k for k, p in self._pools.items() if now - p.last_used > self.idle_seconds]:
                    closing.append(self._pools.pop(stale))
        for old in closing:
            old.close()  # idle connections now; those in use when they come back
        return pool

    def _new(self, key: PoolKey, tls_context: Any) -> Pool:
        options: dict[str, Any] = {"maxsize": self.per_pool, "block": False, "retries": False}
        if key.scheme == "https":
            return _TLSPool(
                key.ip,
                key.port,
                connector=key.connector,
                server_hostname=key.host,
                ssl_context=tls_context,
                **options,
            )
        return _Pool(key.ip, key.port, connector=key.connector, **options)

    def take(self, pool: Pool) -> Connection:
        """A connection of ``pool``: a kept-alive one if it is still good, else a new unconnected one."""
        try:
            # urllib3 closes a kept connection the receiver has closed (readable while idle).
            conn: Connection = pool._get_conn()  # type: ignore[assignment]
        except ClosedPoolError:  # evicted meanwhile: this delivery's connection is its last
            conn = pool._new_conn()  # type: ignore[assignment]
        if conn.sock is not None and self._clock() - conn.idle_since > self.idle_seconds:
            conn.close()
        conn.dialled = False
        return conn

    def give_back(self, pool: Pool, conn: Connection, *, reusable: bool) -> None:
        """Return ``conn`` to its pool, closed unless ``reusable`` (its last answer read to the end)."""
        conn.watch = None
        now = self._clock()
        pool.last_used = now
        if reusable:
            conn.idle_since = now
        else:
            conn.close()
        slots = pool.pool
        try:
            if slots is None:
                raise queue.Full
            slots.put(conn, block=False)
        except queue.Full:  # the pool is closed, or more were in use at once than it keeps
            conn.close()

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()
