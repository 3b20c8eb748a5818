"""A throwaway Django project for django-tasks' own backends (bench/tasks.py), never our MongoDB.

``BENCH_TASKS_BACKEND`` chooses the backend: ``db`` (django-tasks-db, on the SQLite file
``BENCH_SQLITE`` or, with ``BENCH_PG_DB`` set, that PostgreSQL database on 127.0.0.1:5432) or
``rq`` (django-tasks-rq on the Redis at ``BENCH_REDIS_URL``).
"""

import os

SECRET_KEY = "benchmark-only"  # noqa: S105 - a throwaway project on loopback
DEBUG = False  # no autoreloading db_worker, no query log
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django_tasks",
    "django_tasks_db",
    "django_rq",
    "django_tasks_rq",
]
if os.environ.get("BENCH_PG_DB"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["BENCH_PG_DB"],
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "USER": os.environ.get("BENCH_PG_USER", "postgres"),
            "CONN_MAX_AGE": 600,  # kept, as a deployment would: db_worker closes expired ones per loop
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("BENCH_SQLITE", ":memory:"),
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},  # writers wait instead of failing
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
BACKENDS = {"db": "django_tasks_db.DatabaseBackend", "rq": "django_tasks_rq.RQBackend"}
TASKS = {"default": {"BACKEND": BACKENDS[os.environ.get("BENCH_TASKS_BACKEND", "db")], "QUEUES": ["default"]}}
RQ_QUEUES = {"default": {"URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0")}}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
