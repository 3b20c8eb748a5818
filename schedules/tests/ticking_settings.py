"""The project's settings plus schedules.tests.ticking_app, for the processes of test_declared_processes.py.

The app is installed as any app would be, so its Task goes through the real checks (an installed
app's tasks module, a Django Task) when the scheduler syncs its declaration and the worker runs it.
"""

from jobscheduler.settings import *  # noqa: F403
from jobscheduler.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "schedules.tests.ticking_app"]
