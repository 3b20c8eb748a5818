"""The dashboard's JSON endpoint: the panels' HTML and figures, which the page polls to stay live."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_safe

from dashboard import panels
from dashboard.overview import build_overview


@require_safe
@gzip_page  # polled every few seconds: the runs chart's SVG and figures shrink to a fifth or less
def data(request: HttpRequest) -> JsonResponse:
    """Everything the dashboard shows, now: ``panels`` (each panel's HTML by element id) for the
    page, ``figures`` for scripts. Staff only (the admin wraps it, jobscheduler/urls.py).
    Nothing of the request is echoed back, so compressing it leaks nothing (BREACH)."""
    overview = build_overview(request.user)
    return JsonResponse(
        {
            "generated_at": overview.generated_at.isoformat(),
            "updated_text": panels.updated_text(overview),
            "panels": panels.render(overview, request),
            "figures": panels.figures(overview),
        }
    )
