"""A local Redis Cluster for tests and benchmarks: six redis-server processes on loopback.

Three masters and three replicas in cluster mode on free ports, nothing kept on disk but each
node's cluster configuration (so a node killed and started again rejoins), created with
``redis-cli --cluster create``. Nodes are killed (kill -9, a failover test) and stopped by
their PIDs, never by name.
"""

from __future__ import annotations

import atexit
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from devtools.servers import port_open

# A cluster node also listens on its port + 10000 (the cluster bus).
_BUS_OFFSET = 10_000


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(count: int) -> list[int]:
    """``count`` ports free on loopback whose cluster bus ports (+10000) are free too."""
    chosen: list[int] = []
    candidates = random.Random().sample(range(20_000, 30_000), 2_000)
    for port in candidates:
        if port not in chosen and _bindable(port) and _bindable(port + _BUS_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free ports for a Redis Cluster on 127.0.0.1")


@dataclass
class LocalCluster:
    """Six (by default) cluster nodes started here, and what tests do to them."""

    root: Path
    node_timeout_ms: int = 1500
    replicas: int = 1  # per master
    ports: list[int] = field(default_factory=list)
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def start(cls, root: Path, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1500) -> LocalCluster:
        cluster = cls(root, node_timeout_ms, replicas)
        atexit.register(cluster.stop)  # whatever happens to the process that started it
        try:
            for port in free_cluster_ports(masters * (1 + replicas)):
                cluster.ports.append(port)
                cluster.start_node(port)
            cluster._create(replicas)
            cluster.wait_ok()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def url(self) -> str:
        """A URL of a live node (a cluster client discovers the rest)."""
        for port in self.ports:
            if self.alive(port):
                return f"redis://127.0.0.1:{port}/0"
        raise RuntimeError("no node of the local Redis Cluster is running")

    def start_node(self, port: int) -> None:
        """Start (or start again) the node on ``port``; its cluster configuration survives."""
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed")
        folder = self.root / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                executable,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--save",
                "",
                "--appendonly",
                "no",
                # A replica's first sync starts at once (not after the diskless default's 5 s).
                "--repl-diskless-sync-delay",
                "0",
                "--dir",
                str(folder),
                "--logfile",
                "redis.log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port):
            if self.processes[port].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {port} did not start; see {folder / 'redis.log'}")
            time.sleep(0.05)

    def _create(self, replicas: int) -> None:
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *[f"127.0.0.1:{port}" for port in self.ports],
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def alive(self, port: int) -> bool:
        process = self.processes.get(port)
        return process is not None and process.poll() is None

    def wait_ok(self, seconds: float = 60) -> None:
        """Until every live node says cluster_state:ok with all slots served, and agrees on the masters."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                if self._settled():
                    return
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local Redis Cluster did not settle within {seconds:.0f}s")
            time.sleep(0.1)

    def _settled(self) -> bool:
        """Every live node: all slots served, the same masters, a replica of each master
        (when enough nodes live) and, if it is a replica, its link to its master up."""
        views = set()
        live = [port for port in self.ports if self.alive(port)]
        for port in live:
            client = self.node(port)
            info: Any = client.cluster("INFO")
            if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != 16384:
                return False
            masters = self._master_ports(client)
            views.add(tuple(sorted(masters)))
            nodes = _text(client.execute_command("CLUSTER", "NODES"))
            flags = [set(line.split()[2].split(",")) for line in nodes.splitlines() if line.strip()]
            replicas = sum(1 for flag in flags if "slave" in flag and not flag & {"fail", "fail?"})
            if replicas < min(len(live) - len(masters), len(masters) * self.replicas):
                return False
            replication: Any = client.info("replication")
            if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                return False
        return len(views) == 1

    @staticmethod
    def _master_ports(client: redis.Redis) -> list[int]:
        slots: Any = client.cluster("SLOTS")
        return [int(entry[2][1]) for entry in slots]

    def masters(self) -> list[int]:
        """The ports of the masters serving slots now."""
        port = next(port for port in self.ports if self.alive(port))
        return sorted(set(self._master_ports(self.node(port))))

    def master_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot."""
        slot = int(self.node(self.masters()[0]).cluster("KEYSLOT", key))
        port = next(port for port in self.ports if self.alive(port))
        slots: Any = self.node(port).cluster("SLOTS")
        for entry in slots:
            if int(entry[0]) <= slot <= int(entry[1]):
                return int(entry[2][1])
        raise RuntimeError(f"slot {slot} is not served")

    def kill(self, port: int) -> None:
        """kill -9 the node on ``port`` (by its PID)."""
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def slots_of(self, master: int) -> list[int]:
        """The slots the master on port ``master`` serves, lowest first."""
        port = next(port for port in self.ports if self.alive(port))
        ranges: Any = self.node(port).cluster("SLOTS")
        return sorted(
            slot
            for first, last, owner, *_ in ranges
            if int(owner[1]) == master
            for slot in range(int(first), int(last) + 1)
        )

    def _reshard_command(self, source: int, target: int, slots: int) -> list[str]:
        ids = {port: _text(self.node(port).cluster("MYID")) for port in (source, target)}
        return [
            "redis-cli",
            "--cluster",
            "reshard",
            f"127.0.0.1:{source}",
            "--cluster-from",
            ids[source],
            "--cluster-to",
            ids[target],
            "--cluster-slots",
            str(slots),
            "--cluster-yes",
        ]

    def reshard(self, source: int, target: int, slots: int) -> subprocess.CompletedProcess[bytes]:
        """Move the lowest ``slots`` slots of the master on ``source`` to the one on ``target``
        (``redis-cli --cluster reshard``), and wait until every node agrees."""
        done = subprocess.run(
            self._reshard_command(source, target, slots), check=True, capture_output=True, timeout=300
        )
        self.wait_ok()
        return done

    def reshard_in_background(self, source: int, target: int, slots: int) -> subprocess.Popen[bytes]:
        """``reshard`` started, not waited for (its output in ``stdout``, errors in ``stderr``)."""
        return subprocess.Popen(
            self._reshard_command(source, target, slots), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
