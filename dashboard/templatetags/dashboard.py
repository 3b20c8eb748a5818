"""``{% operations_dashboard %}``: the dashboard, rendered into the admin's index page (dashboard/admin_index.html)."""

from __future__ import annotations

import logging
from typing import Any

from django import template
from django.urls import reverse

from dashboard import panels
from dashboard.overview import build_overview

register = template.Library()
logger = logging.getLogger(__name__)


@register.inclusion_tag("dashboard/dashboard.html", takes_context=True)
def operations_dashboard(context: dict[str, Any]) -> dict[str, Any]:
    request = context["request"]
    try:
        overview = build_overview(request.user)
    except Exception:  # a bug here must not take the admin's index (and its links) down with it
        logger.exception("the operations dashboard failed")
        return {"failed": True}
    return {
        **panels.context(overview),
        "request": request,
        "data_url": reverse("dashboard-data"),
        "refresh_seconds": panels.REFRESH_SECONDS,
        "updated_text": panels.updated_text(overview),
    }


@register.filter
def status_label(status: str) -> str:
    """A run status as the admin names it ("timed_out": "Timed out")."""
    return str(panels.STATUS_LABELS.get(status, status))
