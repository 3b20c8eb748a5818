"""The local run command (bin/run): start what is missing, migrate, seed the demo, serve.

``python -m devtools.devserver`` on a fresh machine starts SecantusDB (data kept in
.data/mongo) unless MONGODB_URI is set and a private redis-server unless one answers at
REDIS_URL, then runs every process in ``local_services`` as a child (web, scheduler, worker
and, with the demo, the webhook receiver the demo webhook goes to) and stops them all, by
PID, on Ctrl-C or SIGTERM. It is for development only: debug on, a generated secret key,
the demo app installed (JOBSCHEDULER_DEMO=1) and, with the demo, webhooks allowed to reach
127.0.0.1 (where the receiver listens).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from demo.receiver import DEFAULT_PORT as DEFAULT_RECEIVER_PORT
from demo.receiver import PATH as RECEIVER_PATH
from devtools.servers import Servers, ensure_servers, port_open

BASE_DIR = Path(__file__).resolve().parents[1]
DATA_DIR = BASE_DIR / ".data"
LOG_DIR = DATA_DIR / "logs"
MONGO_DIR = DATA_DIR / "mongo"
STOP_SECONDS = 15


def local_services(port: int, receiver_port: int | None = None) -> dict[str, list[str]]:
    """The long-running processes of a local run, by name; each one added here runs too.

    With ``receiver_port``, the demo's webhook receiver too (first, so it stops last).
    """
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    services = {"receiver": [*manage, "demo_receiver", "--port", str(receiver_port)]} if receiver_port else {}
    return services | {
        "web": [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        "scheduler": [*manage, "run_scheduler"],
        "worker": [*manage, "run_worker"],
    }


def local_secret_key() -> str:
    """A secret key generated once per checkout, kept in .data/secret_key (mode 0600)."""
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def prepare_environment(demo: bool = True) -> None:
    """Local defaults; anything already set in the environment wins, except that the demo app is on."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobscheduler.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    # Installs the demo app (settings) in this process and every child; even with --no-demo,
    # since jobs seeded by an earlier run still name the demo tasks.
    os.environ["JOBSCHEDULER_DEMO"] = "1"
    if not os.environ.get("DJANGO_SECRET_KEY"):
        os.environ["DJANGO_SECRET_KEY"] = local_secret_key()
    if demo and "JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS" not in os.environ:
        # The demo webhook goes to the local receiver; loopback is refused unless allowed.
        os.environ["JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"


def migrate_and_seed(seed: bool, receiver_port: int = DEFAULT_RECEIVER_PORT) -> tuple[str, str, str] | None:
    """Migrate, then (optionally) seed the demo; return its username, password and token."""
    import django
    from django.core.management import call_command

    django.setup()
    print("== migrating", flush=True)
    call_command("migrate", interactive=False, verbosity=0)
    if not seed:
        return None
    from demo.seed import DEFAULT_PASSWORD, seed_demo

    print("== seeding the demo user and jobs", flush=True)
    demo = seed_demo(os.environ.get("DEMO_PASSWORD") or DEFAULT_PASSWORD, receiver_port=receiver_port)
    return demo.user.username, demo.password, demo.token


class Supervisor:
    """Child processes started together and stopped together, each by its own PID."""

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()

    def start(self, commands: dict[str, list[str]]) -> None:
        for name, command in commands.items():
            self.children[name] = subprocess.Popen(command, cwd=BASE_DIR)
            print(f"== started {name} (pid {self.children[name].pid})", flush=True)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def exited(self) -> tuple[str, int] | None:
        for name, child in self.children.items():
            if (code := child.poll()) is not None:
                return name, code
        return None

    def wait(self) -> int:
        """Block until a stop is asked for (0) or a child exits on its own (1)."""
        while not self.stopping.wait(0.5):
            if (ended := self.exited()) is not None:
                print(f"== {ended[0]} exited with {ended[1]}; stopping everything", flush=True)
                return 1
        return 0

    def stop(self) -> None:
        for child in reversed(self.children.values()):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for name, child in reversed(self.children.items()):
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"== {name} did not stop within {STOP_SECONDS}s; killing pid {child.pid}", flush=True)
                child.kill()
                child.wait()


def wait_for_port(port: int, supervisor: Supervisor, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not supervisor.stopping.is_set():
        if port_open("127.0.0.1", port):
            return True
        if supervisor.exited() is not None:
            return False
        time.sleep(0.1)
    return False


def loopback_allowed(allowed_hosts: str) -> bool:
    """Whether a JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS value lets webhooks reach 127.0.0.1."""
    for entry in allowed_hosts.split(","):
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address("127.0.0.1") in ipaddress.ip_network(entry.strip(), strict=False):
                return True
    return False


def banner(
    port: int, demo: tuple[str, str, str] | None, started_secantus: bool, receiver_port: int | None = None
) -> str:
    base = f"http://127.0.0.1:{port}"
    mongo_note = f" (SecantusDB, data in {MONGO_DIR.relative_to(BASE_DIR)}/)" if started_secantus else ""
    lines = [
        "",
        "jobscheduler is running",
        f"  admin      {base}/admin/",
        f"  runs       {base}/admin/jobs/run/ (the demo jobs' runs appear here within seconds)",
        f"  API docs   {base}/api/docs/",
    ]
    if demo is not None:
        username, password, token = demo
        lines += [
            f"  login      {username} / {password}",
            f'  API token  curl -H "Authorization: Token {token}" {base}/api/jobs/',
        ]
    if receiver_port:
        lines.append(
            f"  webhooks   the demo webhook goes to http://127.0.0.1:{receiver_port}{RECEIVER_PATH} (signature checked)"
        )
        allowed = os.environ.get("JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS", "")
        if not loopback_allowed(allowed):
            lines.append(
                f"             but JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS={allowed!r} keeps webhooks off 127.0.0.1"
            )
    lines += [
        f"  MongoDB    {os.environ['MONGODB_URI']}{mongo_note}",
        f"  Redis      {os.environ['REDIS_URL']}",
        f"  logs       {LOG_DIR.relative_to(BASE_DIR)}/",
        "Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/run", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")), help="web port (PORT)")
    parser.add_argument("--no-demo", action="store_true", help="do not create the demo user and jobs")
    parser.add_argument(
        "--receiver-port",
        type=int,
        default=int(os.environ.get("DEMO_RECEIVER_PORT") or DEFAULT_RECEIVER_PORT),
        help="port of the demo's webhook receiver (DEMO_RECEIVER_PORT)",
    )
    options = parser.parse_args(argv)
    receiver_port = None if options.no_demo else options.receiver_port
    for taken, how in (
        (options.port, "PORT=... or --port"),
        (receiver_port, "DEMO_RECEIVER_PORT=... or --receiver-port"),
    ):
        if taken and port_open("127.0.0.1", taken):
            print(f"Port {taken} is already in use; choose another with {how}.", file=sys.stderr)
            return 2

    os.chdir(BASE_DIR)
    prepare_environment(demo=not options.no_demo)
    supervisor = Supervisor()
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)

    print("== starting what is missing (MongoDB unless MONGODB_URI is set, Redis unless one answers)", flush=True)
    started_secantus = not os.environ.get("MONGODB_URI")
    servers = Servers()
    code = 0
    try:
        servers = ensure_servers(log_dir=LOG_DIR, secantus_storage=str(MONGO_DIR))
        demo = migrate_and_seed(seed=not options.no_demo, receiver_port=options.receiver_port)
        if supervisor.stopping.is_set():
            return 0
        supervisor.start(local_services(options.port, receiver_port))
        if wait_for_port(options.port, supervisor):
            print(banner(options.port, demo, started_secantus, receiver_port), flush=True)
        code = supervisor.wait()
    except RuntimeError as error:  # a server that would not start: its log says why
        print(f"== {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        print("== stopping", flush=True)
        supervisor.stop()
        servers.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
