"""Runs in chromium: "Run again" from a run's page, "Open the job", and the job page's strip of its last runs.

Told as an operator meets it: a webhook the receiver refuses, the job's secret put right on
its page, the failed run run again from its own page, and both runs on the job's strip.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from demo.receiver import DEMO_SECRET
from jobscheduler.tests.browser.pages import (
    WAIT_SECONDS,
    add_webhook_job,
    field,
    open_run,
    reload_until,
    run_now,
    run_rows,
    scroll_to_heading,
    search_runs,
    success_message,
)
from jobscheduler.tests.browser.stack import LiveStack, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WRONG_SECRET = "whsec_" + base64.b64encode(b"a secret the receiver never saw.").decode()


def test_a_failed_run_is_run_again_from_its_page_once_the_job_is_fixed_and_the_strip_shows_both(
    admin_page: Page, live: LiveStack, snap: Any
) -> None:
    page, name = admin_page, "run-again"
    add_webhook_job(page, name, live.receiver_url, secret=WRONG_SECRET)
    failed_key = run_now(page, name)
    search_runs(page, failed_key)
    open_run(reload_until(page, run_rows(page, name, "Failed"), "the refused run to fail"))
    expect(page.get_by_text("HTTP 401 Unauthorized")).to_be_visible()
    failed_run_url = page.url.split("?", 1)[0]  # without the list's filters it was opened from

    page.get_by_role("link", name="Open the job").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    field(page, "Your own secret").fill(DEMO_SECRET)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(success_message(page)).to_contain_text(f"The job “{name}” was changed successfully")

    page.goto(failed_run_url)
    page.get_by_role("button", name="Run again").click()
    expect(success_message(page)).to_contain_text("Started a new run: manual:")
    again_key = success_message(page).inner_text().split(": ", 1)[1].strip()
    assert again_key != failed_key
    expect(page.locator(".field-fire_key")).to_contain_text(again_key)  # the new run's own page
    reload_until(page, page.locator(".field-status_badge").get_by_text("Succeeded"), "the new run to succeed")
    snap(page, "run-again")
    delivered = wait_until(
        lambda: [entry for entry in live.deliveries() if entry["webhook_id"] == again_key], WAIT_SECONDS, "a delivery"
    )
    assert [(entry["status"], entry["verified"]) for entry in delivered] == [(200, True)]

    page.get_by_role("link", name="Open the job").click()
    strip = page.get_by_role("list", name="Last 2 runs, newest first")
    expect(strip.get_by_role("link")).to_have_count(2)
    expect(page.get_by_text("Last 2 runs, newest first: 1 succeeded, 1 failed.")).to_be_visible()
    newest, oldest = strip.get_by_role("link").all()
    expect(newest).to_have_accessible_name(re.compile(r"^Succeeded, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, attempt 1$"))
    expect(oldest).to_have_accessible_name(re.compile(r"^Failed, .* UTC, attempt 1$"))
    snap(page, "strip")
    scroll_to_heading(page, "Target")
    snap(page, "job-page", full_page=False)  # the README's picture of a job's page
    oldest.click()
    expect(page).to_have_url(failed_run_url)
    expect(page.locator(".field-fire_key")).to_contain_text(failed_key)
