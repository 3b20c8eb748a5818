"""Schedules in the admin: a readable description, a preview, pause and resume; inline on the job page.

Every write goes through schedules.services (which also updates the Redis mirror), both
here and in the inline on the job page; the forms run the model's own validation first,
so a bad cron expression or time zone is a form error, never a 500. Who sees what comes
from the selectors, as in the API.
"""

from __future__ import annotations

from datetime import datetime, time
from functools import partial
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import NOT_PROVIDED, QuerySet
from django.forms.models import BaseInlineFormSet, modelform_factory
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from jobs.admin import JobAdmin, run_now_each
from jobs.models import Job
from jobs.selectors import jobs_visible_to
from jobscheduler.admin_tools import (
    DeclaredInCodeFilter,
    admin_user,
    declared_in_code_notice,
    editable_values,
    take_saved_state,
)
from jobscheduler.declared import declared_message
from schedules import selectors, services, timeline
from schedules.admin_calendars import calendar_choices
from schedules.kinds import KINDS, zone
from schedules.models import Schedule

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldOpts

PREVIEW_COUNT = 10
# What the live preview reads of a form being edited (schedules/static/schedules/preview.js
# sends these, the date-times as the admin's split widgets name them).
PREVIEW_FIELDS = (
    "kind",
    "interval_seconds",
    "anchor",
    "expression",
    "timezone",
    "dst_gap",
    "dst_repeat",
    "solar_event",
    "latitude",
    "longitude",
    "solar_offset_seconds",
    "start_at",
    "end_at",
    "max_runs",
    "jitter_seconds",
    "exclusion_calendars",
    "paused",
)

SCHEDULE_FIELDSETS: tuple[tuple[str | None, _FieldOpts], ...] = (
    (None, {"fields": ("kind", "interval_seconds", "expression", "timezone", "anchor")}),
    (
        "Sun (solar schedules)",
        {"classes": ("collapse",), "fields": ("solar_event", "latitude", "longitude", "solar_offset_seconds")},
    ),
    (
        "Daylight saving (cron at a fixed time)",
        {"classes": ("collapse",), "fields": ("dst_gap", "dst_repeat")},
    ),
    (
        "Bounds",
        {"classes": ("collapse",), "fields": ("start_at", "end_at", "max_runs", "jitter_seconds")},
    ),
    (
        "When the scheduler falls behind or a run is still running",
        {
            "classes": ("collapse",),
            "fields": (
                "misfire_policy",
                "misfire_grace_seconds",
                "catchup_window_seconds",
                "catchup_max_runs",
                "overlap_policy",
            ),
        },
    ),
    ("Exclusion calendars", {"classes": ("collapse",), "fields": ("exclusion_calendars",)}),
    ("Pause", {"fields": ("paused", "paused_until", "pause_reason")}),
)


class LabelledSplitDateTime(AdminSplitDateTime):
    """The admin's date and time inputs, each with its own label (screen readers name both)."""

    template_name = "schedules/widgets/split_datetime.html"


# The schedule pages' date-times, in both admins (and the live preview, which reads their fields).
DATE_TIME_WIDGETS: dict[type[models.Field[Any, Any]], dict[str, Any]] = {
    models.DateTimeField: {"widget": LabelledSplitDateTime}
}


class ScheduleForm(forms.ModelForm):
    """Runs Schedule.clean (through ModelForm's full_clean), with the service's defaults."""

    class Meta:
        model = Schedule
        fields = ("job", *services.EDITABLE_FIELDS)
        help_texts = {
            "interval_seconds": "Fixed schedules: seconds between runs (at least 1).",
            "expression": "Cron schedules: 5 fields (minute hour day month weekday), 6 with leading "
            "seconds, or a macro such as @daily.",
            "timezone": "An IANA time zone such as Europe/London; cron times are read in it, and a solar "
            "schedule's days.",
            "solar_event": "Solar schedules: civil dawn and dusk are when the sun is 6 degrees below the horizon.",
            "anchor": "Fixed schedules: where the grid of runs starts (blank: the start time, else now). "
            "One-off schedules: when to run.",
            "paused_until": "Blank: paused until resumed.",
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        job = cleaned.get("job")
        if self.instance.pk is None and job is not None and job.code_key:
            self.add_error("job", declared_message(job.code_key, "job") + " Its schedule is declared there too.")
        # The admin's widgets show whole seconds; an unedited time keeps its milliseconds,
        # or every save would shift a fixed schedule's grid by a fraction of a second.
        for name in ("anchor", "start_at", "end_at", "paused_until"):
            saved, posted = getattr(self.instance, name, None), cleaned.get(name)
            if saved is not None and posted is not None and posted == saved.replace(microsecond=0):
                cleaned[name] = saved
        # The same default schedule_create applies, so validation sees what will be saved.
        kind = KINDS.get(cleaned.get("kind") or "")
        if kind is not None and not cleaned.get("anchor") and "anchor" in self.fields:
            cleaned["anchor"] = kind.default_anchor(Schedule(start_at=cleaned.get("start_at")), timezone.now())
        return cleaned


def calendar_formfield(db_field: Any, request: HttpRequest, default: Any) -> Any:
    """The schedule's exclusion calendars as a choice among those the user sees, not raw JSON."""
    if db_field.name != "exclusion_calendars":
        return default
    return forms.MultipleChoiceField(
        label="Exclusion calendars",
        choices=calendar_choices(admin_user(request)),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 5}),
        help_text="The schedule does not run on these calendars' days (Exclusion calendars in the menu).",
    )


class ScheduleInlineFormSet(BaseInlineFormSet):
    """The job page's schedules, saved, changed and deleted through the schedule services."""

    def save_new(self, form: forms.ModelForm, commit: bool = True) -> Schedule:
        schedule = services.schedule_create(job=self.instance, **editable_values(form, services.EDITABLE_FIELDS))
        form.instance = schedule
        return schedule

    def save_existing(self, form: forms.ModelForm, obj: Schedule, commit: bool = True) -> Schedule:
        return services.schedule_update(obj, **editable_values(form, services.EDITABLE_FIELDS))

    def delete_existing(self, obj: Schedule, commit: bool = True) -> None:
        services.schedule_delete(obj)


class ScheduleInline(admin.StackedInline):
    model = Schedule
    form = ScheduleForm
    formset = ScheduleInlineFormSet
    fk_name = "job"
    extra = 1
    show_change_link = True
    fieldsets = (
        *SCHEDULE_FIELDSETS[:1],
        (None, {"fields": ("description", "upcoming", "next_run_at", "last_run_at", "run_count")}),
        *SCHEDULE_FIELDSETS[1:],
    )
    readonly_fields = ("description", "upcoming", "next_run_at", "last_run_at", "run_count", "pause_reason")
    formfield_overrides = DATE_TIME_WIDGETS

    class Media:
        js = ("schedules/preview.js",)

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        return calendar_formfield(db_field, request, super().formfield_for_dbfield(db_field, request, **kwargs))

    # The schedules of a job declared in code are its declaration's: shown, not edited here.
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _declared(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _declared(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _declared(obj) and super().has_delete_permission(request, obj)

    @admin.display(description="Description")
    def description(self, schedule: Schedule) -> SafeString:
        return live_description(schedule)

    @admin.display(description=f"Next {PREVIEW_COUNT} occurrences")
    def upcoming(self, schedule: Schedule) -> SafeString:
        return live_preview(schedule)


def live_description(schedule: Schedule) -> SafeString:
    """The schedule in words, in an element the live preview rewrites as the fields change."""
    return format_html(
        '<span class="schedule-description" aria-live="polite">{}</span>',
        schedule.describe() if schedule.pk else "Fill in the fields to see it in words.",
    )


def live_preview(schedule: Schedule) -> SafeString:
    """The next occurrences (a saved schedule's now, from the server), in an element the live
    preview (schedules/static/schedules/preview.js) refreshes from the fields being edited."""
    shown = render_preview(schedule) if schedule.pk else format_html("<p>{}</p>", "Fill in the fields to see them.")
    return format_html(
        '<div class="schedule-live" data-preview-url="{}" data-schedule="{}">'
        '<div class="schedule-upcoming" aria-live="polite">{}</div></div>',
        reverse("admin:schedules_schedule_preview"),
        str(schedule.pk or ""),
        shown,
    )


def preview_rows(schedule: Schedule, after: Any = None, count: int = PREVIEW_COUNT) -> list[dict[str, Any]]:
    """The next occurrences in the schedule's time zone, and what it skips among them, in order.

    Each row has its time (``at``, ISO 8601 with offset; None for a skipped one), ``shown``, the
    wall time a daylight saving gap moved it from (``moved_from``), the pass of a wall time a
    fall-back repeats (``repeated_pass``), and for a skipped one ``skipped``: why, in words.
    Raises ValueError (or OverflowError) for a schedule that cannot be previewed."""
    tz = zone(schedule.timezone or "UTC")
    days = selectors.calendar_days(schedule.exclusion_calendars or [])
    found, skipped = timeline.preview_with_skipped(schedule, after or timezone.now(), count, days)
    # (local wall time, row): a skipped day falls in place among the occurrences; a stable sort
    # keeps both passes of a repeated wall time in order.
    rows: list[tuple[datetime, dict[str, Any]]] = []
    for occurrence in found:
        local = occurrence.at.astimezone(tz)
        moved = occurrence.moved_from
        row = {
            "at": local.isoformat(),
            "shown": local.strftime("%a %Y-%m-%d %H:%M:%S %Z"),
            "moved_from": f"{moved:%H:%M}" if moved is not None else None,
            "repeated_pass": occurrence.repeated_pass,
            "skipped": None,
        }
        rows.append((local.replace(tzinfo=None), row))
    for item in skipped:
        wall = item.wall_time or datetime.combine(item.day, time())
        if item.at is not None:
            wall = item.at.astimezone(tz).replace(tzinfo=None)
            shown = item.at.astimezone(tz).strftime("%a %Y-%m-%d %H:%M:%S %Z")
        else:
            shown = f"{wall:%a %Y-%m-%d %H:%M:%S}" if item.wall_time else f"{item.day:%a %Y-%m-%d}"
        row = {"at": None, "shown": shown, "moved_from": None, "repeated_pass": None, "skipped": item.message}
        rows.append((wall, row))
    rows.sort(key=lambda pair: pair[0])
    return [row for _, row in rows]


def _row_note(row: dict[str, Any]) -> str:
    if row["skipped"]:
        return (
            f" ({row['skipped'][0].lower()}{row['skipped'][1:]})"
            if row["skipped"].startswith("Skipped")
            else (f" (skipped: {row['skipped']})")
        )
    if row["moved_from"]:
        return f" (moved from {row['moved_from']} by a daylight saving gap)"
    if row["repeated_pass"]:
        which = "first" if row["repeated_pass"] == 1 else "second"
        return f" ({which} pass of a wall time the clocks go back over)"
    return ""


def render_preview(schedule: Schedule, after: Any = None, count: int = PREVIEW_COUNT) -> SafeString:
    """The next occurrences as an HTML list, in the schedule's time zone, DST moves, repeats and
    skipped days marked."""
    try:
        rows = preview_rows(schedule, after, count)
    except (ValueError, OverflowError, AssertionError) as error:
        return format_html("<p>No preview: {}</p>", error)
    if not rows:
        return format_html("<p>{}</p>", "No further occurrences.")
    items = [
        format_html("<li><s>{}</s><strong>{}</strong></li>", row["shown"], _row_note(row))
        if row["at"] is None
        else format_html(
            '<li><time datetime="{}">{}</time><strong>{}</strong></li>', row["at"], row["shown"], _row_note(row)
        )
        for row in rows
    ]
    return format_html(
        '<p>In {}{}:</p><ol class="schedule-preview">{}</ol>',
        schedule.timezone or "UTC",
        " (paused)" if schedule.paused else "",
        format_html_join("", "{}", ((item,) for item in items)),
    )


def _fix_these(errors: dict[str, list[str]]) -> SafeString:
    """What the live preview shows while the fields do not make a schedule yet."""
    items = (
        (name.replace("_", " ").capitalize() if name != "__all__" else "Schedule", " ".join(messages))
        for name, messages in errors.items()
    )
    return format_html(
        '<p>No preview until these are fixed:</p><ul class="schedule-preview-errors">{}</ul>',
        format_html_join("", "<li>{}: {}</li>", items),
    )


def _declared(obj: Any) -> bool:
    return bool(obj is not None and getattr(obj, "code_key", None))


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = (
        "job",
        "in_words",
        "kind",
        "timezone",
        "next_run_at",
        "last_run_at",
        "run_count",
        "paused",
        "in_code",
    )
    list_filter = ("kind", "paused", "misfire_policy", "overlap_policy", DeclaredInCodeFilter)
    search_fields = ("job__name", "expression")
    list_select_related = ("job",)
    readonly_fields = (
        "description",
        "upcoming",
        "next_run_at",
        "last_run_at",
        "run_count",
        "pause_reason",
        "created_at",
        "updated_at",
    )
    actions = ("pause", "resume", "run_now")
    formfield_overrides = DATE_TIME_WIDGETS

    class Media:
        js = ("schedules/preview.js",)

    fieldsets = (
        (None, {"fields": ("job", "description", "upcoming")}),
        *SCHEDULE_FIELDSETS,
        ("Engine", {"fields": ("next_run_at", "last_run_at", "run_count", "created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        return selectors.schedules_visible_to(admin_user(request)).select_related("job")

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> tuple[str, ...]:
        # A schedule stays with its job (the service cannot move it); one declared in code is
        # only paused and resumed here.
        if _declared(obj):
            declared = [name for name in services.EDITABLE_FIELDS if name not in services.CODE_EDITABLE_FIELDS]
            return (*self.readonly_fields, "declared_in_code", "job", *declared)
        return (*self.readonly_fields, "job") if obj else tuple(self.readonly_fields)

    def get_fieldsets(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if _declared(obj):
            return ((None, {"fields": ("declared_in_code",)}), *fieldsets)
        return fieldsets

    def has_delete_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        # Only its code removes a schedule declared in code (schedules.services refuses it too).
        return not _declared(obj) and super().has_delete_permission(request, obj)

    @admin.display(description="In code", boolean=True)
    def in_code(self, schedule: Schedule) -> bool:
        return bool(schedule.code_key)

    @admin.display(description="Declared in code")
    def declared_in_code(self, schedule: Schedule) -> SafeString:
        return declared_in_code_notice(schedule.code_key, "Paused and Paused until")

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        return calendar_formfield(db_field, request, super().formfield_for_dbfield(db_field, request, **kwargs))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "job":
            kwargs["queryset"] = jobs_visible_to(admin_user(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Schedule")
    def in_words(self, schedule: Schedule) -> str:
        return schedule.describe()

    @admin.display(description="Schedule")
    def description(self, schedule: Schedule) -> SafeString:
        return live_description(schedule)

    @admin.display(description=f"Next {PREVIEW_COUNT} occurrences")
    def upcoming(self, schedule: Schedule) -> SafeString:
        return live_preview(schedule)

    # --- the live preview: GET the fields being edited, answer JSON -----------------------

    def get_urls(self) -> list[URLPattern]:
        preview = path("preview/", self.admin_site.admin_view(self.preview_view), name="schedules_schedule_preview")
        return [preview, *super().get_urls()]

    def preview_view(self, request: HttpRequest) -> JsonResponse:
        """The description and next occurrences of a schedule as its form now stands.

        Read with the admin's own form (its widgets parse the fields as a save would, its
        validation is the model's) and previewed by the code the saved page uses
        (``preview_rows``, ``render_preview``), daylight saving moves marked. ``schedule``
        names a saved one being edited (for its run count, which bounds ``max_runs``).
        Nothing is saved.
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        instance = Schedule()
        saved_id = request.GET.get("schedule")
        if saved_id:
            saved = self.get_object(request, saved_id)
            if saved is None:
                raise Http404
            instance.run_count = saved.run_count
        form_class = modelform_factory(
            Schedule,
            form=ScheduleForm,
            fields=PREVIEW_FIELDS,
            formfield_callback=partial(self.formfield_for_dbfield, request=request),
        )
        data = request.GET.copy()
        for name in PREVIEW_FIELDS:  # a field left out reads as a new schedule's default
            default = getattr(Schedule._meta.get_field(name), "default", NOT_PROVIDED)
            if (
                name not in data
                and default is not NOT_PROVIDED
                and not isinstance(default, bool)
                and not callable(default)
            ):
                data[name] = str(default)
        form = form_class(data=data, instance=instance)
        if not form.is_valid():
            errors = {name: [item["message"] for item in items] for name, items in form.errors.get_json_data().items()}
            return JsonResponse({"errors": errors, "description": "", "occurrences": [], "html": _fix_these(errors)})
        schedule = form.instance
        try:
            rows = preview_rows(schedule)
        except (ValueError, OverflowError, AssertionError) as error:
            rows = []
            problem = str(error)
        else:
            problem = ""
        return JsonResponse(
            {
                "errors": {"__all__": [problem]} if problem else {},
                "description": schedule.describe(),
                "occurrences": rows,
                "html": render_preview(schedule),
            }
        )

    def save_model(self, request: HttpRequest, obj: Schedule, form: forms.ModelForm, change: bool) -> None:
        fields = editable_values(form, services.EDITABLE_FIELDS)
        if change:
            services.schedule_update(obj, **fields)
        else:
            take_saved_state(obj, services.schedule_create(job=form.cleaned_data["job"], **fields))

    def delete_model(self, request: HttpRequest, obj: Schedule) -> None:
        services.schedule_delete(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            try:
                services.schedule_delete(schedule)
            except ValidationError as error:  # declared in code
                self.message_user(request, f"{schedule} was not deleted: {' '.join(error.messages)}", messages.WARNING)

    @admin.action(description="Pause selected schedules")
    def pause(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._each(request, queryset, services.schedule_pause, "Paused")

    @admin.action(description="Resume selected schedules")
    def resume(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._each(request, queryset, services.schedule_resume, "Resumed")

    @admin.action(description="Run now (the schedule does not move)")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        run_now_each(self, request, [(schedule.job, schedule) for schedule in queryset])

    def _each(self, request: HttpRequest, queryset: QuerySet[Schedule], service: Any, verb: str) -> None:
        done = 0
        for schedule in queryset:
            try:
                service(schedule)
            except ValidationError as error:
                self.message_user(request, f"{schedule}: {'; '.join(error.messages)}", messages.ERROR)
            else:
                done += 1
        self.message_user(request, f"{verb} {done} schedule{'s' if done != 1 else ''}.", messages.SUCCESS)


class JobWithSchedulesAdmin(JobAdmin):
    """The jobs app's job page, with the job's schedules inline."""

    inlines = (*JobAdmin.inlines, ScheduleInline)


# The jobs app registers its job page knowing nothing of schedules (jobs never imports this
# app); this app swaps in the page with its schedules inline, the way Django's docs add an
# inline to the User admin. Chosen over an inline registry in jobs or a class attribute
# patched from here: the registered class says what the page shows, and this is the one
# place that decides it.
admin.site.unregister(Job)
admin.site.register(Job, JobWithSchedulesAdmin)
