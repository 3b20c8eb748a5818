"""Backfills in the admin: the schedules' "Backfill..." action (a form for the range and the
overlap policy) and the backfills' page with their progress and a cancel action."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobscheduler.admin_tools import admin_user
from schedules import backfills, selectors
from schedules.models import Backfill, Schedule


class BackfillForm(forms.Form):
    start = forms.DateTimeField(help_text="The first instant (in the site's time zone unless an offset is given).")
    end = forms.DateTimeField(help_text="The last instant, included; not later than now.")
    overlap_policy = forms.ChoiceField(
        choices=Schedule.Overlap.choices,
        initial=Schedule.Overlap.ALLOW,
        help_text="For the backfilled runs: allow them side by side, skip one while another runs, or let one wait.",
    )
    rate_per_second = forms.FloatField(required=False, min_value=0.001, help_text="Blank: the maximum.")


def backfill_action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Schedule]) -> Any:
    """Ask for the range, then make one backfill a schedule (a worker runs it)."""
    form = BackfillForm(request.POST if request.POST.get("confirm") else None)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        for schedule in queryset:
            try:
                backfill, created = backfills.backfill_request(
                    schedule,
                    start=data["start"],
                    end=data["end"],
                    overlap_policy=data["overlap_policy"],
                    rate_per_second=data["rate_per_second"],
                    user=admin_user(request),
                )
            except ValidationError as error:
                modeladmin.message_user(request, f"{schedule}: {' '.join(error.messages)}", messages.ERROR)
                continue
            verb = "Backfilling" if created else "Already backfilled (nothing new sent)"
            modeladmin.message_user(request, f"{verb}: {schedule}, {backfill.total} occurrences.", messages.SUCCESS)
        return None
    return TemplateResponse(
        request,
        "admin/schedules/backfill.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": "Backfill schedules",
            "form": form,
            "schedules": list(queryset),
            "max_rate": f"{settings.JOBSCHEDULER_BACKFILL_MAX_RATE:g}",
        },
    )


backfill_action.short_description = "Backfill... (dispatch past occurrences not run)"  # type: ignore[attr-defined]


@admin.register(Backfill)
class BackfillAdmin(admin.ModelAdmin):
    list_display = ("schedule", "start_at", "end_at", "status", "progress", "overlap_policy", "created_at")
    list_filter = ("status",)
    actions = ("cancel",)
    readonly_fields = (
        "schedule",
        "start_at",
        "end_at",
        "overlap_policy",
        "rate_per_second",
        "status",
        "progress",
        "total",
        "dispatched",
        "already_recorded",
        "cursor",
        "cancel_requested",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Backfill]:
        return selectors.backfills_visible_to(admin_user(request)).select_related("schedule", "schedule__job")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made from a schedule (the Backfill... action) or the API

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Progress")
    def progress(self, backfill: Backfill) -> SafeString:
        done = min(backfill.handled, backfill.total)
        return format_html(
            '<progress max="{}" value="{}" aria-label="handled">{}</progress> {} of {} ({} sent, {} recorded already)',
            max(backfill.total, 1),
            done if backfill.total else 1,
            done,
            done,
            backfill.total,
            backfill.dispatched,
            backfill.already_recorded,
        )

    @admin.action(description="Cancel selected backfills")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Backfill]) -> HttpResponse | None:
        for backfill in queryset:
            backfills.backfill_cancel(backfill)
        self.message_user(request, f"Cancelled {queryset.count()} backfill(s).", messages.SUCCESS)
        return None
