"""The demo app: installed by settings only when JOBSCHEDULER_DEMO is set (bin/run, the tests), never in production."""

from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "demo"
    verbose_name = "Demo"
