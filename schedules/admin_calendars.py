"""Exclusion calendars in the admin: days as lines of text, an iCalendar (.ics) file to add days
from, and which schedules name each calendar. Writes go through schedules.calendar_services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from jobscheduler.admin_tools import admin_user, take_saved_state
from schedules import calendar_services, calendars, selectors
from schedules.models import ExclusionCalendar

MAX_ICS_BYTES = 1024 * 1024


class CalendarForm(forms.ModelForm):
    """The days as text, one a line; an uploaded .ics file's event days are added to them."""

    days_text = forms.CharField(
        label="Days",
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "cols": 60}),
        help_text="One a line: a day (2026-12-25 Christmas Day) or a range, ends included "
        "(2026-12-21 to 2027-01-04 Change freeze). Lines starting with # are ignored.",
    )
    ics_file = forms.FileField(
        label="Add days from an iCalendar file",
        required=False,
        help_text="A .ics file (a holiday feed, say): each event's days are added; repeats are not.",
    )

    class Meta:
        model = ExclusionCalendar
        fields = ("name", "description", "timezone")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["days_text"].initial = calendars.as_text(self.instance.ranges())

    def clean_days_text(self) -> list[calendars.DayRange]:
        try:
            return calendars.parse_text(self.cleaned_data.get("days_text") or "")
        except ValueError as error:
            raise ValidationError(str(error)) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("ics_file")
        ranges = cleaned.get("days_text")
        if upload is not None and ranges is not None:
            if upload.size > MAX_ICS_BYTES:
                self.add_error("ics_file", f"At most {MAX_ICS_BYTES // 1024} KiB.")
                return cleaned
            try:
                read = calendars.parse_ics(upload.read(), cleaned.get("timezone") or "UTC")
            except ValueError as error:
                self.add_error("ics_file", str(error))
                return cleaned
            cleaned["days_text"] = calendars.merge(ranges, read.ranges)
            cleaned["recurring"] = read.recurring_skipped
        return cleaned

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        days = [entry.stored() for entry in data.get("days_text") or []]
        return {
            "name": data["name"],
            "description": data.get("description", ""),
            "timezone": data["timezone"],
            "days": days,
        }


@admin.register(ExclusionCalendar)
class CalendarAdmin(admin.ModelAdmin):
    form = CalendarForm
    list_display = ("name", "timezone", "day_count", "description")
    search_fields = ("name",)
    readonly_fields = ("named_by", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "description", "timezone")}),
        ("Days", {"fields": ("days_text", "ics_file")}),
        ("Used by", {"fields": ("named_by", "created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ExclusionCalendar]:
        return selectors.calendars_visible_to(admin_user(request))

    @admin.display(description="Days or ranges")
    def day_count(self, calendar: ExclusionCalendar) -> int:
        return len(calendar.days or [])

    @admin.display(description="Schedules naming it")
    def named_by(self, calendar: ExclusionCalendar) -> str:
        if calendar.pk is None:
            return "-"
        return "; ".join(str(schedule) for schedule in selectors.schedules_naming_calendar(calendar)) or "None yet."

    def save_model(self, request: HttpRequest, obj: ExclusionCalendar, form: Any, change: bool) -> None:
        fields = form.service_fields()
        if change:
            calendar_services.calendar_update(obj, **fields)
        else:
            take_saved_state(obj, calendar_services.calendar_create(owner=admin_user(request), **fields))
        recurring = form.cleaned_data.get("recurring")
        if recurring:
            self.message_user(
                request,
                f"Recurring events were not added (their days are not expanded): {', '.join(recurring)}.",
                messages.WARNING,
            )

    def delete_model(self, request: HttpRequest, obj: ExclusionCalendar) -> None:
        try:
            calendar_services.calendar_delete(obj)
        except ValidationError as error:
            self.message_user(request, f"{obj} was not deleted: {' '.join(error.messages)}", messages.ERROR)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ExclusionCalendar]) -> None:
        for calendar in queryset:
            self.delete_model(request, calendar)


def calendar_choices(user: Any) -> list[tuple[str, str]]:
    """The calendars a schedule's form offers: those ``user`` sees, by id."""
    return [
        (str(calendar.pk), f"{calendar.name} ({calendar.timezone})")
        for calendar in selectors.calendars_visible_to(user)
    ]
