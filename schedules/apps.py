"""The schedules app: when jobs run, and the engine that fires them."""

from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"

    def ready(self) -> None:
        # Enabling, disabling and deleting a job reach its schedules through jobs.signals; the
        # checks judge the schedules declared in code.
        from schedules import checks, receivers  # noqa: F401
