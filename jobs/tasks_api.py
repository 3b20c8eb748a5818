"""The one import of the Django Tasks API (the django-tasks backport until Django ships it)."""

from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, TaskResult, TaskResultStatus, task

# django-tasks 0.12.0 does not export Task from its package (django.tasks does).
from django_tasks.base import Task

__all__ = ["DEFAULT_TASK_BACKEND_ALIAS", "Task", "TaskResult", "TaskResultStatus", "task"]
