"""What a run process may know of its worker: a minimal environment, and output with secrets masked.

Python and command targets run in child processes (workers/children.py) whose output is shown
to the job's owner. A child therefore starts from an explicit allow-list of the worker's
environment variables, never the whole of it: what Django and the servers need, the
project's non-secret ``JOBSCHEDULER_*`` settings, and the names the operator adds with
``JOBSCHEDULER_CHILD_ENV``. ``DJANGO_SECRET_KEY`` is not among them unless added: a child gets
a random key of its own, enough for Django to start (tasks that sign things for the web app
need the real one, and the operator can pass it on purpose).

Whatever a child prints or raises still passes :class:`Redactor` before it is recorded: the
values of secret-looking variables and the passwords in server URLs are masked, in case a
task prints its settings.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

# Passed as they are: the process, the locale, Python and Django's own, and the servers.
BASE_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "TMPDIR",
        "PYTHONPATH",
        "PYTHONHASHSEED",
        "VIRTUAL_ENV",
        "DJANGO_SETTINGS_MODULE",
        "DJANGO_DEBUG",
        "DJANGO_ALLOWED_HOSTS",
        "MONGODB_URI",
        "MONGODB_DB",
        "MONGODB_TIMEOUT_MS",
        "REDIS_URL",
    }
)
PROJECT_PREFIX = "JOBSCHEDULER_"
# A variable whose name says it holds a secret is masked in output and, among the project's
# own, not passed on by the prefix rule (JOBSCHEDULER_METRICS_TOKEN and the like).
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY|AUTH", re.I)
MASK = "[redacted]"
SHORTEST_SECRET = 6  # shorter values would mask ordinary words


def run_environment(parent: Mapping[str, str], extra_names: Iterable[str] = ()) -> dict[str, str]:
    """The environment a run process starts with, from its worker's ``parent`` environment."""
    wanted = BASE_NAMES | {name.strip() for name in extra_names if name.strip()}
    env = {
        name: value
        for name, value in parent.items()
        if name in wanted or (name.startswith(PROJECT_PREFIX) and not SECRET_NAME.search(name))
    }
    if "DJANGO_SECRET_KEY" not in env:
        env["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    return env


class Redactor:
    """Masks known secret values in text a child produced."""

    def __init__(self, values: Iterable[str]):
        unique = {value for value in values if len(value) >= SHORTEST_SECRET}
        # Longest first, so a secret that contains another is masked whole.
        self._values = sorted(unique, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(value) for value in self._values)) if unique else None

    @classmethod
    def for_environment(cls, parent: Mapping[str, str], *more: str) -> Redactor:
        """Secrets of ``parent``: secret-named variables' values and passwords inside URLs."""
        values = [*more]
        for name, value in parent.items():
            if SECRET_NAME.search(name):
                values.append(value)
            values.extend(url_passwords(value))
        return cls(values)

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern and text else text


def url_passwords(value: str) -> list[str]:
    """The password of each URL in ``value`` (as written and percent-decoded), if it has any."""
    found: list[str] = []
    for candidate in re.findall(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s,]+", value):
        try:
            password = urlsplit(candidate).password
        except ValueError:
            continue
        if password:
            found.extend({password, unquote(password)})
    return found
