"""Micro-benchmark of webhook delivery: N signed deliveries through ``deliver`` from 16 threads.

Not a test: run it on purpose (about half a minute).

    .venv/bin/python bench/webhooks.py                   # 3 setups, 2 rounds each
    .venv/bin/python bench/webhooks.py -n 5000 --rounds 3

A local receiver (an asyncio HTTP/1.1 server in its own process, so its CPU is not counted)
answers every delivery 200. Each setup runs in a fresh client process that reports
deliveries per second and its own CPU (every thread) per delivery:

- ``before``: the code before pooling (``jobs/`` of ``--before``, by default the parent of the
  commit that added ``jobs/targets/http/connections.py``): a connection and a deadline
  timer thread per delivery;
- ``pooled``: this tree, the receiver keeping connections alive;
- ``pooled, receiver closes``: this tree, the receiver answering ``Connection: close``, so a
  connection per delivery again (what pooling itself saves, apart from the timer thread).

Rounds alternate the setups, so a busy moment on a shared machine does not land on one setup.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec-bench"  # noqa: S105 (a benchmark's signing key)
ANSWER_KEEP = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
ANSWER_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


# --- The receiver ---------------------------------------------------------------------------------


async def _serve(port: int, close: bool) -> None:
    async def one_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                writer.write(ANSWER_CLOSE if close else ANSWER_KEEP)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(one_connection, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def _start_receiver(close: bool) -> tuple[subprocess.Popen[bytes], int]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [sys.executable, __file__, "--serve", str(port)] + (["--close"] if close else [])
    process = subprocess.Popen(args)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the receiver did not start") from None
            time.sleep(0.05)


# --- The client -------------------------------------------------------------------------------------


def _client(port: int, count: int, threads: int) -> dict[str, Any]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobscheduler.settings")
    os.environ["JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"
    import django

    django.setup()
    from jobs.targets.http import deliver

    target = {"url": f"http://127.0.0.1:{port}/hooks/in", "body": '{"event": "tick"}'}
    failures: list[str] = []
    remaining = [count]
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
                n = remaining[0]
            result = deliver(target, fire_key=f"bench:{n}", attempt=1, secret=SECRET, timeout=10)
            if not result.ok:
                failures.append(result.error)

    for n in range(threads * 2):  # warm up: imports, and (pooled) the connections
        deliver(target, fire_key=f"warm:{n}", attempt=1, secret=SECRET, timeout=10)
    cpu, wall = time.process_time(), time.monotonic()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    import jobs

    return {
        "code": str(Path(jobs.__file__).parents[1]),
        "deliveries": count,
        "per_second": count / wall,
        "cpu_ms": cpu * 1000 / count,
        "failures": len(failures),
        "first_failure": failures[0] if failures else "",
    }


def _run_client(code_root: Path, port: int, count: int, threads: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(code_root), "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "1")}
    env.setdefault("DJANGO_SECRET_KEY", "bench-only")
    args = [sys.executable, __file__, "--client", str(port), "-n", str(count), "--threads", str(threads)]
    out = subprocess.run(args, env=env, cwd=code_root, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _before_tree(rev: str, into: Path) -> str:
    """This repository at ``rev``, its ``jobs`` app swapped in: the code before pooling."""
    if rev == "auto":
        added = subprocess.run(
            ["git", "log", "-1", "--diff-filter=A", "--format=%H", "--", "jobs/targets/http/connections.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        rev = f"{added}^" if added else "HEAD"
    parsed = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, check=True)
    short = parsed.stdout.strip()
    archive = subprocess.run(["git", "archive", short], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return short


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=3000, help="deliveries per setup and round (default 3000)")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default="auto", help="revision measured as 'before' (default: before pooling)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--close", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        asyncio.run(_serve(options.serve, options.close))
        return
    if options.client:
        print(json.dumps(_client(options.client, options.n, options.threads)))
        return

    keep, keep_port = _start_receiver(close=False)
    closing, close_port = _start_receiver(close=True)
    rows: dict[str, list[dict[str, Any]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as folder:
            before_rev = _before_tree(options.before, Path(folder))
            setups = [
                (f"before ({before_rev}), connection per delivery", Path(folder), keep_port),
                ("pooled, receiver keeps connections", ROOT, keep_port),
                ("pooled, receiver closes (Connection: close)", ROOT, close_port),
            ]
            setup_code = {name: code for name, code, _ in setups}
            for _ in range(options.rounds):
                for name, code, port in setups:
                    rows.setdefault(name, []).append(_run_client(code, port, options.n, options.threads))
    finally:
        for process in (keep, closing):
            process.terminate()
            process.wait(10)

    print(f"{options.n} deliveries x {options.rounds} rounds, {options.threads} threads, {os.cpu_count()} CPUs")
    print(f"{'setup':<48} {'deliveries/s':>13} {'CPU ms/delivery':>16} {'failed':>7}")
    for name, runs in rows.items():
        rate = statistics.median(run["per_second"] for run in runs)
        cpu = statistics.median(run["cpu_ms"] for run in runs)
        failed = sum(run["failures"] for run in runs)
        print(f"{name:<48} {rate:>13,.0f} {cpu:>16.3f} {failed:>7}")
        for run in runs:
            assert run["code"] == str(setup_code[name]), f"{name} ran the code in {run['code']}"
            if run["first_failure"]:
                print(f"    e.g. {run['first_failure']}")


if __name__ == "__main__":
    main()
