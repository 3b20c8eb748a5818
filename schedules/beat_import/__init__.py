"""Moving from celery beat: read its schedule, translate each entry, create or update our jobs and schedules.

``sources`` reads the entries (django-celery-beat's tables through a database alias, in plain
SQL so django-celery-beat need not be installed; or a ``beat_schedule`` dict from a module),
``translate`` turns each into a celery job and its schedule, or says why it cannot, and
``apply`` creates or updates them through the services (``manage.py import_celery_beat``).
"""
