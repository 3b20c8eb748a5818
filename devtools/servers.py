"""Start the servers the service needs when none is configured: SecantusDB and Redis.

Used by the test plugin and by the run command, so a fresh machine needs nothing but
Python. Each server started here is ended by its PID when its owner exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


@dataclass
class Servers:
    """Processes started here, stopped by PID (never by name)."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[BinaryIO] = field(default_factory=list)

    def _wait(self, process: subprocess.Popen[bytes], port: int, what: str, log: Path, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}; see {log}")
            if port_open("127.0.0.1", port):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{what} did not listen on port {port} within {seconds:.0f}s; see {log}")

    def start_secantus(self, storage: str, log_dir: Path, port: int | None = None, options: Sequence[str] = ()) -> str:
        """Start SecantusDB on loopback; return its MongoDB URI (without database).

        ``options`` go to secantusd-py as they are (``--sync-on-commit``: a server killed with
        SIGKILL keeps every write it acknowledged, as a journaled mongod does).
        """
        port = port or free_port()
        executable = shutil.which("secantusd-py") or str(Path(sys.executable).with_name("secantusd-py"))
        log = log_dir / "secantusdb.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [
                executable,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                storage,
                "--log-level",
                "WARNING",
                *options,
            ],
            stdout=self._log(log),
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        self._wait(process, port, "SecantusDB", log)
        return f"mongodb://127.0.0.1:{port}/"

    def start_redis(self, log_dir: Path, port: int | None = None) -> str:
        """Start a private redis-server on loopback that keeps nothing on disk."""
        port = port or free_port()
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("No Redis answers at REDIS_URL and redis-server is not installed.")
        log = log_dir / "redis.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [
                executable,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(log_dir),
            ],
            stdout=self._log(log),
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        self._wait(process, port, "redis-server", log)
        return f"redis://127.0.0.1:{port}/0"

    def _log(self, path: Path) -> BinaryIO:
        handle = path.open("ab")
        self.logs.append(handle)
        return handle

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        for handle in self.logs:
            handle.close()
        self.logs.clear()


def ensure_servers(log_dir: Path, secantus_storage: str) -> Servers:
    """Fill MONGODB_URI and REDIS_URL in os.environ, starting servers for what is missing."""
    servers = Servers()
    atexit.register(servers.stop)
    if not os.environ.get("MONGODB_URI"):
        os.environ["MONGODB_URI"] = servers.start_secantus(secantus_storage, log_dir)
        # No failover to retry across, and its record of retryable writes slows every write
        # (jobscheduler/settings.py); processes started from here inherit it.
        os.environ.setdefault("MONGODB_RETRY_WRITES", "0")
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    if not redis_answers(redis_url):
        redis_url = servers.start_redis(log_dir)
    os.environ["REDIS_URL"] = redis_url
    return servers
