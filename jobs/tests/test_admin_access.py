"""Keyboard and screen-reader basics on the admin pages this project adds to, and their colours in both themes.

Every form control has a label (or an aria-label), ids are unique, nothing jumps the tab
order, statuses are text as well as colour, and each colour the stylesheet uses reads against
the admin's light and dark page colours (WCAG: 4.5:1 for text, 3:1 for the strip's cells).
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import django
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from jobs.admin_display import SYMBOLS, status_badge, status_label
from jobs.models import Job, Run
from jobs.services import job_create
from schedules import services as schedule_services

ADMIN_CSS = Path(django.__file__).parent / "contrib/admin/static/admin/css"
OURS = Path(__file__).resolve().parents[1] / "static/jobs/admin.css"


class Controls(HTMLParser):
    """The form controls, labels, ids and tab indexes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []
        self.label_for: set[str] = set()
        self.ids: list[str] = []
        self.tabindexes: list[int] = []
        self.buttons: list[dict[str, str]] = []
        self._button: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if "id" in attributes:
            self.ids.append(attributes["id"])
        if "tabindex" in attributes:
            self.tabindexes.append(int(attributes["tabindex"]))
        if tag == "label" and "for" in attributes:
            self.label_for.add(attributes["for"])
        if tag == "button":
            self._button = {**attributes, "text": ""}
            self.buttons.append(self._button)
        hidden = attributes.get("type") in ("hidden", "submit", "button", "reset", "image")
        if tag in ("input", "select", "textarea") and not hidden:
            self.controls.append({**attributes, "tag": tag})
        if tag == "input" and attributes.get("type") == "submit":
            self.buttons.append({**attributes, "text": attributes.get("value", "")})

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"] += data.strip()

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._button = None

    def unlabelled(self) -> list[dict[str, str]]:
        return [
            control
            for control in self.controls
            if not (
                control.get("id") in self.label_for
                or control.get("aria-label")
                or control.get("aria-labelledby")
                or "__prefix__" in control.get("id", "")  # the inline's template form, copied with its labels
            )
        ]


@pytest.fixture
def admin_client(db: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "root-password-1"))
    return client


@pytest.fixture
def pages(admin_client: Client, job: Job, user: User) -> dict[str, str]:
    hook = job_create(owner=user, name="hook", target_type="http", target={"url": "https://hooks.example.com/"})
    schedule = schedule_services.schedule_create(job=job, kind="cron", expression="30 2 * * 1-5")
    first = Run.objects.create(job=job, schedule=schedule, fire_key="s:1", status="failed", error="boom")
    Run.objects.create(job=job, schedule=schedule, fire_key="s:1", attempt=2, status="succeeded")
    urls = {
        "job add": reverse("admin:jobs_job_add"),
        "job change": reverse("admin:jobs_job_change", args=[job.pk]),
        "webhook job change": reverse("admin:jobs_job_change", args=[hook.pk]),
        "generate secret": reverse("admin:jobs_job_secret", args=[hook.pk]),
        "schedule add": reverse("admin:schedules_schedule_add"),
        "schedule change": reverse("admin:schedules_schedule_change", args=[schedule.pk]),
        "runs list": reverse("admin:jobs_run_changelist"),
        "run": reverse("admin:jobs_run_change", args=[first.pk]),
    }
    found = {}
    for name, url in urls.items():
        response = admin_client.get(url)
        assert response.status_code == 200, name
        found[name] = response.content.decode()
    shown = admin_client.post(reverse("admin:jobs_job_secret", args=[hook.pk]))
    found["secret shown"] = shown.content.decode()
    return found


def test_every_control_has_a_label_and_every_id_is_unique(pages: dict[str, str]) -> None:
    for name, html in pages.items():
        page = Controls()
        page.feed(html)
        assert page.controls, name
        assert [control.get("name") for control in page.unlabelled()] == [], name
        repeated = [element_id for element_id, count in Counter(page.ids).items() if count > 1]
        assert repeated == [], name
        assert all(index <= 0 for index in page.tabindexes), name  # nothing jumps the tab order
        for button in page.buttons:
            assert button["text"] or button.get("aria-label"), (name, button)


def test_the_target_type_comes_before_its_fields_in_the_page(pages: dict[str, str]) -> None:
    html = pages["job add"]
    order = [html.index(f'name="{name}"') for name in ("target_type", "python_task", "command_name", "webhook_url")]
    assert order == sorted(order)


def test_statuses_are_words_and_symbols_as_well_as_colours(pages: dict[str, str]) -> None:
    for status in Run.Status.values:
        badge = str(status_badge(status))
        assert status_label(status) in badge and SYMBOLS[status] in badge
        assert 'aria-hidden="true"' in badge  # the symbol is not read out; the word is
    assert '<span class="visually-hidden">Failed,' in pages["job change"]  # each strip cell says its status
    assert "✗ Failed" in re.sub(r"<[^>]+>", "", pages["runs list"])


# --- Colours in the light and the dark theme ---------------------------------------------------


def variables(css: str, selector: str) -> dict[str, str]:
    """The custom properties set in the first block whose selector list contains ``selector``."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        if selector in [part.strip() for part in selectors.split(",")]:
            return dict(re.findall(r"(--[\w-]+):\s*([^;]+);", body))
    raise AssertionError(f"no {selector} block")


def themes() -> dict[str, dict[str, str]]:
    light = variables((ADMIN_CSS / "base.css").read_text(), ":root")
    dark = {**light, **variables((ADMIN_CSS / "dark_mode.css").read_text(), 'html[data-theme="dark"]')}
    ours = variables(OURS.read_text(), ":root")
    return {"light": {**light, **ours}, "dark": {**dark, **ours}}


def colour(value: str, theme: dict[str, str]) -> str:
    while value.startswith("var("):
        value = theme[value[4:-1].strip()]
    hexadecimal = value.strip().lstrip("#")
    return "".join(digit * 2 for digit in hexadecimal) if len(hexadecimal) == 3 else hexadecimal


def contrast(first: str, second: str) -> float:
    def luminance(hexadecimal: str) -> float:
        channels = [int(hexadecimal[index : index + 2], 16) / 255 for index in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def rules(css: str) -> dict[str, dict[str, str]]:
    """Each rule's declarations, by its selector list."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    return {
        " ".join(selectors.split()): dict(re.findall(r"([\w-]+):\s*([^;]+);", body))
        for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css)
    }


@pytest.mark.parametrize("theme_name", ["light", "dark"])
def test_badges_read_in_both_themes(theme_name: str) -> None:
    theme = themes()[theme_name]
    found = rules(OURS.read_text())
    text = found[".run-status"]["color"]
    for status in Run.Status.values:
        background = next(
            declarations["background"]
            for selectors, declarations in found.items()
            if f".run-status.run-status-{status}" in selectors.split(", ")
        )
        ratio = contrast(colour(text, theme), colour(background, theme))
        assert ratio >= 4.5, (status, theme_name, ratio)


@pytest.mark.parametrize("theme_name", ["light", "dark"])
def test_strip_cells_read_in_both_themes(theme_name: str) -> None:
    theme = themes()[theme_name]
    found = rules(OURS.read_text())
    symbol = colour(found[".run-cell, .run-cell:link, .run-cell:visited"]["color"], theme)
    page = colour("var(--body-bg)", theme)
    for status in Run.Status.values:
        fill = colour(found[f".run-cell.run-status-{status}"]["background"], theme)
        assert contrast(symbol, fill) >= 4.5, (status, theme_name)
        assert contrast(fill, page) >= 3, (status, theme_name)  # the cell stands out from the page


def test_the_stylesheet_takes_every_colour_from_a_variable() -> None:
    # Hard-coded colours only where the strip's own palette is defined; everything else follows
    # the admin's variables, so the dark theme (and the theme toggle) apply.
    css = re.sub(r"/\*.*?\*/", "", OURS.read_text(), flags=re.S)
    for selectors, declarations in rules(css).items():
        if selectors == ":root":
            continue
        for name, value in declarations.items():
            if name in ("color", "background", "background-color", "border", "border-left", "outline"):
                assert "#" not in value and "rgb" not in value, (selectors, name, value)
