"""The job form in chromium: a schedule's preview following the fields as they are typed, a generated secret shown once.

The preview is watched on the add-job page, where a new user first meets it: nothing is
saved there. The generated secret is copied from its page into a receiver that knows that
secret alone, and the live worker's deliveries must satisfy it.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from devtools.servers import free_port
from jobscheduler.tests.browser.pages import (
    WAIT_SECONDS,
    field,
    fill_new_job,
    open_admin_list,
    run_now,
    success_message,
)
from jobscheduler.tests.browser.stack import LiveStack, receiver_knowing, receiver_url, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WEEKDAY_0230_UTC = re.compile(r"^(Mon|Tue|Wed|Thu|Fri) \d{4}-\d\d-\d\d 02:30:00 UTC$")
GENERATED_SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]{40,}={0,2}$")


def last_sunday_of_march_after(today: date) -> date:
    """The next day British clocks go forward (01:00 GMT becomes 02:00 BST), at least a week away."""
    year = today.year
    while True:
        end = date(year, 3, 31)
        sunday = end - timedelta(days=(end.weekday() + 1) % 7)
        if sunday - today >= timedelta(days=7):
            return sunday
        year += 1


def test_the_schedule_preview_follows_the_expression_and_time_zone_as_they_are_typed(
    admin_page: Page, live: LiveStack, snap: Any
) -> None:
    page = admin_page
    open_admin_list(page, "jobs.job")
    page.get_by_role("link", name="Add job").click()
    description = page.locator(".schedule-description").filter(visible=True)
    upcoming = page.locator(".schedule-upcoming").filter(visible=True)
    occurrences = upcoming.locator(".schedule-preview").get_by_role("listitem")  # not the list of errors
    expect(description).to_have_text("Fill in the fields to see it in words.")

    field(page, "Kind").select_option(label="Cron expression")
    expression = field(page, "Expression")
    expression.press_sequentially("30 2 * *")  # four fields so far: the preview says what is missing
    expect(upcoming).to_contain_text("No preview until these are fixed:")
    expect(upcoming.get_by_role("listitem")).to_have_text([re.compile(r"^Expression: .*got 4 field\(s\)\.$")])
    expect(occurrences).to_have_count(0)
    snap(page, "half-typed")
    expression.press_sequentially(" 1-5")
    expect(description).to_have_text("At 02:30, Monday through Friday (UTC)")
    expect(occurrences).to_have_count(10)
    weekdays = occurrences.all_inner_texts()
    assert all(WEEKDAY_0230_UTC.match(text.strip()) for text in weekdays), weekdays
    snap(page, "weekdays")

    # Every day at 01:30 London time, from three days before the clocks go forward: that
    # Sunday's 01:30 never happens, and the preview says where the run goes instead.
    change = last_sunday_of_march_after(timezone.now().date())
    field(page, "Timezone").fill("Europe/London")
    page.get_by_text("Bounds", exact=True).filter(visible=True).click()
    start = page.locator(".field-start_at").filter(visible=True)  # "Date:" and "Time:" twice in Bounds
    start.get_by_label("Date:").fill(f"{change - timedelta(days=3):%Y-%m-%d}")
    start.get_by_label("Time:").fill("00:00:00")
    expression.fill("")
    expression.press_sequentially("30 1 * * *")
    expect(description).to_have_text("At 01:30 (Europe/London)")
    expect(upcoming).to_contain_text("In Europe/London:")
    expect(occurrences).to_have_count(10)
    daily = [text.strip() for text in occurrences.all_inner_texts()]
    expected = []
    for offset in range(-3, 7):
        day = change + timedelta(days=offset)
        if offset < 0:
            expected.append(f"{day:%a %Y-%m-%d} 01:30:00 GMT")
        elif offset == 0:
            expected.append(f"{day:%a %Y-%m-%d} 02:00:00 BST (moved from 01:30 by a daylight saving gap)")
        else:
            expected.append(f"{day:%a %Y-%m-%d} 01:30:00 BST")
    assert daily == expected
    assert daily != weekdays
    snap(page, "daylight-saving")


def test_a_webhook_job_saved_without_a_secret_shows_a_generated_one_once_and_deliveries_signed_with_it_are_accepted(
    admin_page: Page, live: LiveStack, snap: Any
) -> None:
    page, name, port = admin_page, "secret-generated", free_port()
    open_admin_list(page, "jobs.job")
    page.get_by_role("link", name="Add job").click()
    fill_new_job(page, name, receiver_url(port))  # no secret of our own
    expect(
        page.get_by_text("Saving a webhook job with no secret of your own generates one, shown once.")
    ).to_be_visible()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(success_message(page)).to_have_text(f"The job “{name}” was added.")
    shown = page.get_by_label(f"Signing secret of “{name}”")
    expect(shown).to_have_value(GENERATED_SECRET)
    expect(page.get_by_text("Copy it now: it is not shown again.")).to_be_visible()
    snap(page, "secret-shown")
    secret = shown.input_value()

    page.get_by_role("link", name="Back to the job").click()
    expect(page.get_by_text("Set (never shown again after it was first shown).")).to_be_visible()
    assert secret not in page.content()
    page.reload()
    assert secret not in page.content()

    with receiver_knowing(secret, port) as deliveries:
        key = run_now(page, name)
        delivered = wait_until(
            lambda: [entry for entry in deliveries() if entry["webhook_id"] == key], WAIT_SECONDS, "the delivery"
        )
    assert [(entry["status"], entry["verified"]) for entry in delivered] == [(200, True)]

    # A new one: confirmed first, shown once too; a receiver knowing only it accepts the next run.
    open_admin_list(page, "jobs.job")
    page.get_by_role("link", name=name, exact=True).click()
    page.get_by_role("link", name="Generate a new secret…").click()
    expect(page.get_by_text("It is shown once, on the next page")).to_be_visible()
    snap(page, "confirm-new-secret")
    page.get_by_role("button", name="Generate and show the new secret").click()
    expect(page.get_by_text("A new signing secret was generated.")).to_be_visible()
    expect(shown).to_have_value(GENERATED_SECRET)
    rotated = shown.input_value()
    assert rotated != secret
    page.get_by_role("link", name="Back to the job").click()
    expect(page.get_by_text(re.compile(r"The previous secret also signs deliveries until"))).to_be_visible()
    assert rotated not in page.content()

    with receiver_knowing(rotated, port) as deliveries:
        key = run_now(page, name)
        delivered = wait_until(
            lambda: [entry for entry in deliveries() if entry["webhook_id"] == key], WAIT_SECONDS, "the delivery"
        )
    assert [(entry["status"], entry["verified"]) for entry in delivered] == [(200, True)]
