"""The jobs app: what runs (jobs) and what ran (runs)."""

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate
        from django.utils.module_loading import autodiscover_modules

        from jobs import checks, receivers, retention  # noqa: F401  (register the system checks, model receivers)

        # Every migrate gives the runs' TTL index the retention the settings ask for.
        post_migrate.connect(retention.apply_after_migrate, sender=self)
        # Register every app's @task functions, as the admin registers admin.py modules.
        autodiscover_modules("tasks")
