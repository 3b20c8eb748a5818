"""The operations dashboard (the admin's index) in chromium: runs and a failure appear on it live, with no reload.

The dashboard stays open in one tab while another, signed in as the same person, makes the
jobs and runs them through the admin, as an operator and a colleague would. The page is
marked when first loaded; the mark still there at the end shows it was never reloaded.
"""

from __future__ import annotations

import base64
from functools import partial
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from demo.receiver import DEMO_SECRET
from jobscheduler.tests.browser.pages import WAIT_SECONDS, add_webhook_job, run_now
from jobscheduler.tests.browser.stack import LiveStack, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WRONG_SECRET = "whsec_" + base64.b64encode(b"the receiver has never seen this").decode()
REFRESH_WAIT_MS = 20_000  # the page polls every 5 s; a busy machine answers slowly


def delivered(live: LiveStack, key: str) -> list[dict[str, Any]]:
    return [entry for entry in live.deliveries() if entry["webhook_id"] == key]


def figure(panel: Locator, term: str) -> int:
    """A whole-number figure of a dashboard panel, by the term it is listed under."""
    listed = panel.locator("dl > div").filter(has=panel.page.get_by_text(term, exact=True))
    text = listed.get_by_role("definition").inner_text()
    return int(text.strip())


def test_runs_and_a_failing_job_appear_on_the_dashboard_without_reloading_it(
    admin_page: Page, live: LiveStack, snap: Any
) -> None:
    dashboard = admin_page
    dashboard.goto("/admin/")
    processes = dashboard.get_by_role("region", name="Schedulers and workers")
    expect(processes.get_by_role("rowheader", name="browser-scheduler")).to_be_visible()
    expect(processes.get_by_role("rowheader", name="browser-worker")).to_be_visible()
    expect(dashboard.get_by_text("All clear:")).to_be_visible()
    runs = dashboard.get_by_role("region", name="Runs in the last 24 hours")
    failures = dashboard.get_by_role("region", name="Failures")
    upcoming = dashboard.get_by_role("region", name="What runs next (24 hours)")
    ended_before = figure(runs, "Ended, last hour")
    dashboard.evaluate("window.loadedOnce = true")

    # A colleague's tab: a job that succeeds, one the receiver refuses, one due every hour.
    colleague = dashboard.context.new_page()
    add_webhook_job(colleague, "dash-succeeds", live.receiver_url, secret=DEMO_SECRET)
    add_webhook_job(colleague, "dash-refused", live.receiver_url, secret=WRONG_SECRET)
    add_webhook_job(colleague, "dash-hourly", live.receiver_url, secret=DEMO_SECRET, cron="0 * * * *")
    succeeded_key = run_now(colleague, "dash-succeeds")
    refused_key = run_now(colleague, "dash-refused")
    for key in (succeeded_key, refused_key):
        wait_until(partial(delivered, live, key), WAIT_SECONDS, f"the receiver's line for {key}")
    colleague.close()

    failed = failures.get_by_role("row").filter(has=dashboard.get_by_role("link", name="dash-refused", exact=True))
    expect(failed).to_contain_text("HTTP 401 Unauthorized", timeout=REFRESH_WAIT_MS)
    expect(failed).to_contain_text("Failed")
    expect(upcoming.get_by_role("link", name="dash-hourly", exact=True)).to_be_visible(timeout=REFRESH_WAIT_MS)
    wait_until(lambda: figure(runs, "Ended, last hour") >= ended_before + 2, REFRESH_WAIT_MS / 1000, "the runs")
    assert dashboard.evaluate("window.loadedOnce") is True  # updated in place, never reloaded
    snap(dashboard, "dashboard", full_page=False)  # the README's picture of the dashboard
    snap(dashboard, "dashboard-whole")

    failed.get_by_role("link").first.click()  # the failure's time opens its run
    expect(dashboard.get_by_text("HTTP 401 Unauthorized")).to_be_visible()
    expect(dashboard.locator(".field-fire_key")).to_contain_text(refused_key)
