"""The Celery app of the execution peers (``celery -A peers.exec_celery worker``) and its task.

``BENCH_CELERY_RESULTS`` says where results go: ``ignored`` (no backend, ``task_ignore_result``),
``redis`` (a Redis result backend: the broker's server) or ``django-db`` (django-celery-results,
in the Django project of peers.django_settings: SQLite at ``BENCH_SQLITE``).
"""

from __future__ import annotations

import os

from celery import Celery

from peers import noop

RESULTS = os.environ.get("BENCH_CELERY_RESULTS", "ignored")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0")

if RESULTS == "django-db":
    # Before the app exists, so Celery installs its Django fix-up (DB connections across forks).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peers.django_settings")
    import django

    django.setup()

app = Celery("bench", broker=REDIS_URL, set_as_current=True)
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_ignore_result=RESULTS == "ignored",
    result_backend={"ignored": None, "redis": REDIS_URL, "django-db": "django-db"}[RESULTS],
    worker_hijack_root_logger=False,
)
hello = app.task(name="bench.hello")(noop.hello)
