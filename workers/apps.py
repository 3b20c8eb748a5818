"""The workers app: execute dispatched runs (``run_worker``) and record how each attempt went.

It sits above both other apps: a worker reads jobs (what to run) and schedules (their overlap
policy, pausing one that keeps failing), while neither of them imports it.
"""

from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"
