"""Fixtures of the browser tests: Debian's chromium, one live service per package, a signed-in admin, screenshots.

Every module here shares one LiveStack (web server, scheduler, worker, webhook receiver) and
one browser; each test gets fresh pages. Pages run in Debian's ``chromium`` (Playwright's own
browser download is not used); without it the tests are skipped, saying what to install.
Screenshots go to $JOBSCHEDULER_SCREENSHOTS, else a new folder under the system temp dir,
printed at the end of the run.

A new page's tests go in a new module here, marked ``browser`` and ``slow``; they ask for
``live`` (its URLs and the receiver's log), ``admin_page`` or the signed-out ``page``, and
``snap``; pages.py holds the helpers that know the admin's forms.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test.utils import setup_databases, teardown_databases
from playwright.sync_api import Browser, BrowserType, Page, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from devtools.pytest_servers import delete_keys_with_prefix
from jobscheduler.tests.browser.pages import log_in
from jobscheduler.tests.browser.stack import ADMIN_PASSWORD, ADMIN_USERNAME, SHARDS, LiveStack

CHROMIUM = os.environ.get("JOBSCHEDULER_CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT = (
    "as root: apt-get update && apt-get install -y chromium (bin/test does this when run as root),"
    " or point JOBSCHEDULER_CHROMIUM at a chromium binary"
)
# The database the settings name, read before any fixture runs (pytest-django may then switch
# the connection to its test database).
CONFIGURED_DATABASE = connection.settings_dict["NAME"]
VIEWPORT = {"width": 1280, "height": 800}  # the README's screenshots are taken at this size

_screenshot_dir: Path | None = None
_screenshot_count = 0
_log_dir: Path | None = None
FAILED = pytest.StashKey[bool]()


# --- chromium and Playwright, for this package only -----------------------------------------
# pytest-playwright keeps Playwright for the whole session. Its sync API runs an asyncio loop
# in the test thread, and Django refuses ORM calls while one runs, so every database test
# after these would fail: here Playwright lives as long as this package, and ORM calls are
# allowed meanwhile (the tests' own; the service runs in its own processes).
@pytest.fixture(scope="package")
def chromium() -> str:
    """Debian's chromium, or a skip that says how to install it (before any process starts)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}; install it {INSTALL_HINT}")
    return CHROMIUM


@pytest.fixture(scope="package")
def browser_type_launch_args(chromium: str, pytestconfig: pytest.Config) -> dict[str, Any]:
    launch: dict[str, Any] = {"executable_path": chromium}
    if pytestconfig.getoption("--headed"):
        launch["headless"] = False
    if slow_mo := pytestconfig.getoption("--slowmo"):
        launch["slow_mo"] = slow_mo
    return launch


@pytest.fixture(scope="package")
def playwright(browser_type_launch_args: dict[str, Any], _pw_api_request_contexts: Any) -> Iterator[Playwright]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        running = sync_playwright().start()
        if _pw_api_request_contexts:
            _pw_api_request_contexts.instrument(running)
        yield running
        running.stop()


@pytest.fixture(scope="package")
def browser_type(playwright: Playwright) -> BrowserType:
    return playwright.chromium


@pytest.fixture(scope="package")
def launch_browser(browser_type_launch_args: dict[str, Any], browser_type: BrowserType) -> Callable[..., Browser]:
    return lambda **options: browser_type.launch(**{**browser_type_launch_args, **options})


@pytest.fixture(scope="package")
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    launched = launch_browser()
    yield launched
    launched.close()


@pytest.fixture(scope="package")
def browser_context_args(live: LiveStack) -> dict[str, Any]:
    """Every page opens on the live server: ``page.goto("/admin/")``."""
    return {"base_url": live.base_url, "viewport": VIEWPORT}


# --- the live service -----------------------------------------------------------------------
@pytest.fixture(scope="package")
def test_database(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """This run's migrated test database (its name), set up here when pytest-django did not.

    pytest-django creates it only when a collected test asks for a database (a django_db mark,
    the db fixtures), and these ask through ``live``, which it cannot see. Run alone, they went
    to the database the settings name, unmigrated (so without the indexes the service relies
    on: a manual run the worker recorded first was recorded twice) and flushed it at the end.
    """
    if connection.settings_dict["NAME"] != CONFIGURED_DATABASE:  # pytest-django switched to its own
        yield connection.settings_dict["NAME"]
        return
    with django_db_blocker.unblock():
        # django-stubs types aliases as a Mapping; Django reads any collection of aliases.
        config = setup_databases(0, False, aliases={DEFAULT_DB_ALIAS}, serialized_aliases=())  # type: ignore[arg-type]
    try:
        yield connection.settings_dict["NAME"]
    finally:
        with django_db_blocker.unblock():
            teardown_databases(config, verbosity=0)


@pytest.fixture(scope="package")
def live(
    chromium: str, test_database: str, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    """Web server, scheduler, worker and receiver on this run's test database, with a superuser.

    The database is emptied afterwards, as pytest-django empties it after each database test.
    """
    from django.contrib.auth.models import User

    global _log_dir
    prefix = f"{os.environ['JOBSCHEDULER_REDIS_PREFIX']}:browser-{uuid.uuid4().hex[:6]}"
    log_dir = Path(os.environ.get("JOBSCHEDULER_TEST_LOG_DIR") or tmp_path_factory.mktemp("logs")) / "browser"
    log_dir.mkdir(parents=True, exist_ok=True)
    _log_dir = log_dir
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "jobscheduler.settings",
        "DJANGO_DEBUG": "1",
        "MONGODB_DB": test_database,
        "JOBSCHEDULER_REDIS_PREFIX": prefix,
        "JOBSCHEDULER_SHARDS": str(SHARDS),
        "JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",  # the receiver listens on loopback
        "JOBSCHEDULER_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    stack = LiveStack(env=env, log_dir=log_dir, redis_url=os.environ["REDIS_URL"], prefix=prefix)
    with django_db_blocker.unblock():
        User.objects.create_superuser(ADMIN_USERNAME, "browser-admin@example.com", ADMIN_PASSWORD)
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()
            for alias in connections:
                call_command("flush", verbosity=0, interactive=False, database=alias)
            delete_keys_with_prefix(os.environ["REDIS_URL"], prefix)


@pytest.fixture(scope="package")
def signed_in_state(
    browser: Browser, browser_context_args: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The superuser's session cookie, from signing in once through the login form."""
    context = browser.new_context(**browser_context_args)
    try:
        page = context.new_page()
        page.goto("/admin/login/")
        log_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
        state = tmp_path_factory.mktemp("browser") / "signed-in.json"
        context.storage_state(path=state)
        return state
    finally:
        context.close()


@pytest.fixture
def admin_page(new_context: Callable[..., Any], signed_in_state: Path) -> Page:
    """A page signed in as the superuser (``page`` is a signed-out one)."""
    page: Page = new_context(storage_state=signed_in_state).new_page()
    return page


# --- screenshots ----------------------------------------------------------------------------
def screenshot_dir() -> Path:
    """$JOBSCHEDULER_SCREENSHOTS, or a new folder under the temp dir; made on first use."""
    global _screenshot_dir
    if _screenshot_dir is None:
        chosen = os.environ.get("JOBSCHEDULER_SCREENSHOTS")
        if chosen:
            _screenshot_dir = Path(chosen).resolve()
            _screenshot_dir.mkdir(parents=True, exist_ok=True)
        else:
            _screenshot_dir = Path(tempfile.mkdtemp(prefix="jobscheduler-screenshots-"))
    return _screenshot_dir


@pytest.fixture
def snap(request: pytest.FixtureRequest) -> Iterator[Callable[..., Path]]:
    """``snap(page, "what")`` saves the whole page as NN-test-what.png, numbered in the order taken;
    ``full_page=False``, only what the viewport shows (the README's pictures).

    When the test fails, the last page it took is saved once more as it was then ("failed").
    """
    name = getattr(request.node, "originalname", request.node.name)  # without pytest-playwright's [chromium]
    test = re.sub(r"[^a-z0-9]+", "-", name.removeprefix("test_").lower()).strip("-")[:60]
    last: list[Page] = []

    def take(page: Page, what: str, *, full_page: bool = True) -> Path:
        global _screenshot_count
        _screenshot_count += 1
        path = screenshot_dir() / f"{_screenshot_count:02d}-{test}-{what}.png"
        page.screenshot(path=path, full_page=full_page)
        last[:] = [page]
        return path

    yield take
    if last and request.node.stash.get(FAILED, False):
        with contextlib.suppress(PlaywrightError):
            take(last[0], "failed")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _screenshot_dir is not None and _screenshot_count:
        terminalreporter.write_line(f"browser screenshots: {_screenshot_dir} ({_screenshot_count} taken)")
    if _log_dir is not None:
        terminalreporter.write_line(f"browser tests' server, scheduler, worker and receiver logs: {_log_dir}")
