"""The no-op Django Task django-tasks' backends run in bench/tasks.py: our ``demo.tasks.hello``, word for word."""

from django_tasks import task


@task
def hello(name: str = "world") -> str:
    """Says hello."""
    return f"hello, {name}"
