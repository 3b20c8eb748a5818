"""Fixtures of the schedules tests: schedules declared in code, in a test app installed for the test."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from django.test.utils import modify_settings

from schedules import declarations

DECLARED_APP = "schedules.tests.declared_app"
DECLARED_TASKS = f"{DECLARED_APP}.tasks"


@pytest.fixture
def declared(db: Any) -> Iterator[ModuleType]:
    """The test app's tasks module imported afresh, its @periodic declarations in a registry of
    their own. The app is installed meanwhile, so its Tasks pass the real checks of python
    targets (jobs.targets.python: a Django Task in an installed app's tasks module). The
    registry is isolated first: installing the app imports its tasks module (jobs.apps
    discovers every app's tasks), and its declarations must not outlive the test."""
    with declarations.isolated(), modify_settings(INSTALLED_APPS={"append": DECLARED_APP}):
        sys.modules.pop(DECLARED_TASKS, None)
        module = importlib.import_module(DECLARED_TASKS)
        yield module
    sys.modules.pop(DECLARED_TASKS, None)
