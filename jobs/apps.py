"""The jobs app: what runs (jobs) and what ran (runs)."""

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"

    def ready(self) -> None:
        # Register every app's @task functions, as the admin registers admin.py modules.
        from django.utils.module_loading import autodiscover_modules

        from jobs import checks, receivers  # noqa: F401  (register the system checks, model receivers)

        autodiscover_modules("tasks")
