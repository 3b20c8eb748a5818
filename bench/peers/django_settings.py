"""A throwaway Django project for the Django-based peers: SQLite in the run's folder, never our MongoDB."""

import os

SECRET_KEY = "benchmark-only"  # noqa: S105 - a throwaway project on loopback
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_celery_beat",
    "django_celery_results",
    "django_q",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_SQLITE", ":memory:"),
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},  # writers wait instead of failing
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
Q_CLUSTER = {
    "name": "bench",
    "workers": int(os.environ.get("BENCH_Q_WORKERS", "1")),  # the execution peers run 2
    "timeout": 60,
    "retry": 120,
    "log_level": os.environ.get("BENCH_Q_LOG_LEVEL", "INFO"),  # the execution peers: WARNING, as everyone
    "redis": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0"),
}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
