"""The run command's pieces (devtools.devserver), without starting servers."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from demo.receiver import DEFAULT_PORT, PATH
from devtools import devserver

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def local_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """What prepare_environment may set, recorded so that each test leaves os.environ as it was."""
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "jobscheduler.settings")
    monkeypatch.setenv("DJANGO_DEBUG", "1")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "a-key-so-none-is-generated")
    monkeypatch.delenv("JOBSCHEDULER_DEMO", raising=False)
    monkeypatch.delenv("JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS", raising=False)
    return monkeypatch


@pytest.mark.parametrize("demo", [True, False])
def test_every_process_of_a_local_run_installs_the_demo_app(local_env: pytest.MonkeyPatch, demo: bool) -> None:
    devserver.prepare_environment(demo=demo)
    assert devserver.os.environ["JOBSCHEDULER_DEMO"] == "1"  # children inherit os.environ
    assert ("JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS" in devserver.os.environ) is demo


def test_the_demo_app_is_on_even_when_the_environment_said_no(local_env: pytest.MonkeyPatch) -> None:
    local_env.setenv("JOBSCHEDULER_DEMO", "0")
    devserver.prepare_environment()
    assert devserver.os.environ["JOBSCHEDULER_DEMO"] == "1"


def test_local_services_run_the_demo_receiver_by_name_first() -> None:
    services = devserver.local_services(8123, receiver_port=8124)
    assert list(services) == ["receiver", "web", "scheduler", "worker"]
    manage = [sys.executable, str(ROOT / "manage.py")]
    assert services["receiver"] == [*manage, "demo_receiver", "--port", "8124"]
    assert services["web"] == [*manage, "runserver", "127.0.0.1:8123", "--noreload"]
    assert list(devserver.local_services(8123)) == ["web", "scheduler", "worker"]


def test_the_run_command_finds_the_project_from_devtools() -> None:
    assert devserver.BASE_DIR == ROOT
    assert (devserver.BASE_DIR / "manage.py").is_file()
    assert devserver.DEFAULT_RECEIVER_PORT == DEFAULT_PORT and devserver.RECEIVER_PATH == PATH


def test_the_devserver_imports_plain_modules_not_management_commands() -> None:
    tree = ast.parse(Path(devserver.__file__).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert "demo.receiver" in imported and "demo.seed" in imported
    assert [name for name in imported if ".management.commands" in name] == []  # commands run by name
