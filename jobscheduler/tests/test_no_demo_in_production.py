"""Production runs without the demo app and without the development tooling.

Settings install ``demo`` only when JOBSCHEDULER_DEMO says so (bin/run and the test plugin set
it), and no production module imports ``demo`` or ``devtools``: read from the
source here, and seen in a process started with the production environment.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]
NOT_FOR_PRODUCTION = ("demo", "devtools")

# Imports everything a production process loads: apps (models, admin, tasks), URLconf and
# views, the WSGI application and every management command; then reports what it saw.
PROBE = """
import json, sys
import django
django.setup()
from django.apps import apps
from django.core.management import get_commands, load_command_class
from django.urls import get_resolver
import jobscheduler.wsgi
get_resolver().url_patterns
commands = get_commands()
for name, app in commands.items():
    load_command_class(app, name)
print(json.dumps({
    "apps": [config.name for config in apps.get_app_configs()],
    "commands": sorted(commands),
    "modules": sorted(name for name in sys.modules if name.partition(".")[0] in ("demo", "jobscheduler")),
}))
"""


def production_environment() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in ("JOBSCHEDULER_DEMO", "DJANGO_DEBUG")}
    return {**env, "DJANGO_SETTINGS_MODULE": "jobscheduler.settings", "DJANGO_SECRET_KEY": "production-like-key"}


def not_for_production(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in NOT_FOR_PRODUCTION)


def production_modules() -> list[Path]:
    """Every module of the service: top-level packages but the demo and the devtools, without tests."""
    packages = [path.parent for path in ROOT.glob("*/__init__.py") if path.parent.name not in NOT_FOR_PRODUCTION]
    modules = [ROOT / "manage.py"]
    for package in packages:
        for path in package.rglob("*.py"):
            parts = path.relative_to(ROOT).parts
            if "tests" not in parts:
                modules.append(path)
    return sorted(modules)


def imported_names(source: str, package: list[str]) -> set[str]:
    """Absolute names of the modules (and imported names) that the import statements of a module
    of ``package`` (its dotted path as a list) name, relative imports resolved."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_production_settings_do_not_install_the_demo() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=production_environment(), capture_output=True, text=True
    )
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert "jobs" in seen["apps"] and "schedules" in seen["apps"]  # the probe saw the service
    assert "demo" not in seen["apps"]
    assert not {"seed_demo", "demo_receiver"} & set(seen["commands"])
    assert "run_worker" in seen["commands"] and "run_scheduler" in seen["commands"]
    assert [name for name in seen["modules"] if not_for_production(name)] == []


def test_the_image_leaves_the_demo_and_the_devtools_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {"demo", "devtools"} <= ignored
    for name in ("Dockerfile", "docker-compose.yml"):
        assert "JOBSCHEDULER_DEMO" not in (ROOT / name).read_text()


def test_the_tests_run_with_the_demo_installed() -> None:
    """The test plugin sets JOBSCHEDULER_DEMO=1 before Django's settings load."""
    assert os.environ["JOBSCHEDULER_DEMO"] == "1"
    assert apps.is_installed("demo")


def test_no_production_module_imports_the_demo_or_the_devtools() -> None:
    modules = production_modules()
    assert ROOT / "jobs" / "models.py" in modules and ROOT / "jobscheduler" / "settings.py" in modules
    assert not any({"demo", "devtools", "tests"} & set(path.relative_to(ROOT).parts) for path in modules)
    offenders = {}
    for path in modules:
        package = list(path.relative_to(ROOT).parts[:-1])  # a module's package, or an __init__'s own
        names = sorted(name for name in imported_names(path.read_text(), package) if not_for_production(name))
        if names:
            offenders[str(path.relative_to(ROOT))] = names
    assert offenders == {}


def test_the_import_check_sees_absolute_and_relative_imports() -> None:
    names = imported_names("import demo.tasks\nfrom demo import seed\nimport devtools.servers\n", ["jobscheduler"])
    assert {name for name in names if not_for_production(name)} == {
        "demo",
        "demo.tasks",
        "demo.seed",
        "devtools.servers",
    }
    names = imported_names("from ..seed import seed_demo\n", ["demo", "management"])
    assert "demo.seed" in names
