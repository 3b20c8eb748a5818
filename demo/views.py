"""A page that enqueues a demo Django Task, as any app's view would, and one that reads its result."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from demo.tasks import hello
from jobs.tasks_api import TaskResultDoesNotExist


@require_POST
@login_required
def enqueue_hello(request: HttpRequest) -> JsonResponse:
    """``POST /demo/hello/`` (``name`` in the form): queues demo.tasks.hello on the workers."""
    name = str(request.POST.get("name") or request.user.get_username())[:100]
    result = hello.enqueue(name=name)
    body: dict[str, Any] = {
        "id": result.id,
        "status": result.status,
        "result": reverse("demo-hello-result", args=[result.id]),
        "runs": f"{reverse('admin:jobs_run_changelist')}?q={result.id}",
    }
    return JsonResponse(body, status=202)


@require_GET
@login_required
def hello_result(request: HttpRequest, result_id: str) -> JsonResponse:
    """``GET /demo/hello/<id>/``: the TaskResult as the workers recorded it."""
    try:
        result = hello.get_result(result_id)
    except TaskResultDoesNotExist:
        return JsonResponse({"error": "No such result."}, status=404)
    body: dict[str, Any] = {"id": result.id, "status": result.status, "attempts": result.attempts}
    if result.is_finished:
        body["return_value"] = result.return_value if result.status == "SUCCESSFUL" else None
        body["errors"] = [error.exception_class_path for error in result.errors]
    return JsonResponse(body)
