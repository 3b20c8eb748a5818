"""The admin in chromium against the live service: sign in, add webhook jobs, cron schedules, pause, resume, run now.

One web server, scheduler, worker and webhook receiver serve the whole module (conftest.py);
every job here is made through the admin's forms and every action taken on its pages. The
database is read only to learn what the pages should show (a run's fire key) and to check
what they did (nothing fired while paused).
"""

from __future__ import annotations

import base64
import re
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from demo.receiver import DEMO_SECRET
from jobs.models import Run
from jobscheduler.tests.browser.pages import (
    WAIT_SECONDS,
    add_webhook_job,
    field,
    fill_new_job,
    log_in,
    open_admin_list,
    open_run,
    reload_until,
    run_action,
    run_now,
    run_rows,
    search_runs,
    success_message,
)
from jobscheduler.tests.browser.stack import ADMIN_PASSWORD, ADMIN_USERNAME, LiveStack, wait_until
from schedules.models import Schedule

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WEEKDAY_0230 = re.compile(r"^(Mon|Tue|Wed|Thu|Fri) (\d{4}-\d\d-\d\d) 02:30:00 (GMT|BST)$")


def scheduled_runs_after(job_name: str, moment: datetime) -> list[Run]:
    return list(Run.objects.filter(job__name=job_name, trigger="schedule", nominal_time__gt=moment))


def test_signing_in_refuses_a_wrong_password_then_opens_the_admin(page: Page, live: LiveStack, snap: Any) -> None:
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    snap(page, "login")
    page.get_by_label("Username").fill(ADMIN_USERNAME)
    page.get_by_label("Password").fill("not-" + ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Please enter the correct username and password")).to_be_visible()
    snap(page, "wrong-password")
    log_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    expect(page).to_have_url(f"{live.base_url}/admin/")
    snap(page, "index")


def test_a_webhook_job_with_a_cron_schedule_made_in_the_forms_fires_and_is_delivered(
    admin_page: Page, live: LiveStack, snap: Any
) -> None:
    page, name = admin_page, "hook-made-in-forms"
    open_admin_list(page, "jobs.job")
    snap(page, "jobs")
    page.get_by_role("link", name="Add job").click()
    fill_new_job(page, name, live.receiver_url, secret=DEMO_SECRET, cron="*/2 * * * * *")
    snap(page, "form-filled")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(success_message(page)).to_contain_text(f"The job “{name}” was added successfully")
    snap(page, "saved")

    open_admin_list(page, "jobs.run")
    row = reload_until(page, run_rows(page, name, "Succeeded"), "a scheduled run that succeeded")
    expect(row).to_contain_text("Schedule")
    snap(page, "runs")
    run = Run.objects.filter(job__name=name, trigger="schedule", status="succeeded").first()
    assert run is not None
    assert run.nominal_time is not None and run.nominal_time.second % 2 == 0  # */2: even seconds
    delivered = wait_until(
        lambda: [entry for entry in live.deliveries() if entry["webhook_id"] == run.fire_key],
        10,
        f"the receiver's line for {run.fire_key}",
    )
    assert [(entry["status"], entry["verified"]) for entry in delivered] == [(200, True)]

    # Paused on the job's page (its schedules are inline there), so it stops firing for the
    # tests after this one. Deleting it is refused: a job with runs cannot be deleted in the
    # admin, since runs are read-only there.
    open_admin_list(page, "jobs.job")
    page.get_by_role("link", name=name, exact=True).click()
    page.get_by_role("checkbox", name="Paused").first.check()  # the saved schedule's form comes first
    snap(page, "pausing-inline")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(success_message(page)).to_contain_text(f"The job “{name}” was changed successfully")
    assert Schedule.objects.get(job__name=name).paused


def test_a_cron_schedule_added_on_its_own_page_previews_its_next_occurrences(
    admin_page: Page, live: LiveStack, snap: Any
) -> None:
    page, name = admin_page, "previewed"
    add_webhook_job(page, name, live.receiver_url, secret=DEMO_SECRET)
    open_admin_list(page, "schedules.schedule")
    page.get_by_role("link", name="Add schedule").click()
    field(page, "Job").select_option(label=name)
    field(page, "Kind").select_option(label="Cron expression")
    field(page, "Expression").fill("30 2 * * 1-5")
    field(page, "Timezone").fill("Europe/London")
    snap(page, "form-filled")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(success_message(page)).to_contain_text("was added successfully")

    occurrences = page.locator(".field-upcoming").get_by_role("listitem")
    expect(occurrences).to_have_count(10)
    snap(page, "preview")
    days = []
    for text in occurrences.all_inner_texts():
        match = WEEKDAY_0230.match(text.strip())
        assert match, f"not a weekday at 02:30 London time: {text!r}"
        days.append(match.group(2))
    assert days == sorted(set(days)), days  # one a day, in order
    first = datetime.fromisoformat(days[0]).date()
    assert first - timezone.now().date() <= timedelta(days=3)  # the next weekday, not a later one


def test_pausing_stops_the_firing_run_now_still_runs_and_resuming_fires_again(
    admin_page: Page, live: LiveStack, snap: Any
) -> None:
    page, name = admin_page, "paused-and-resumed"
    add_webhook_job(page, name, live.receiver_url, secret=DEMO_SECRET, cron="* * * * * *")
    open_admin_list(page, "jobs.run")
    reload_until(page, run_rows(page, name, "Succeeded"), "the schedule's first run")

    open_admin_list(page, "schedules.schedule")
    run_action(page, "Pause selected schedules", name)
    expect(success_message(page)).to_have_text("Paused 1 schedule.")
    paused_at = timezone.now()
    snap(page, "paused")
    time.sleep(3)  # three occurrences of an every-second schedule
    assert scheduled_runs_after(name, paused_at + timedelta(seconds=1)) == []

    key = run_now(page, name)
    snap(page, "run-now")
    search_runs(page, key)
    row = reload_until(page, run_rows(page, name, "Succeeded"), "the manual run to succeed")
    expect(row).to_contain_text("Manual")
    snap(page, "manual-run")
    assert [entry["status"] for entry in live.deliveries() if entry["webhook_id"] == key] == [200]

    open_admin_list(page, "schedules.schedule")
    run_action(page, "Resume selected schedules", name)
    expect(success_message(page)).to_have_text("Resumed 1 schedule.")
    resumed_at = timezone.now()
    snap(page, "resumed")
    wait_until(lambda: scheduled_runs_after(name, resumed_at), WAIT_SECONDS, "a scheduled run after resuming")

    open_admin_list(page, "schedules.schedule")
    run_action(page, "Pause selected schedules", name)  # quiet again for the tests after this one
    expect(success_message(page)).to_have_text("Paused 1 schedule.")


def test_a_run_the_receiver_refuses_shows_as_failed_with_its_error(
    admin_page: Page, live: LiveStack, snap: Any
) -> None:
    page, name = admin_page, "refused-by-receiver"
    wrong_secret = "whsec_" + base64.b64encode(b"not the receiver's secret, 32 b").decode()
    add_webhook_job(page, name, live.receiver_url, secret=wrong_secret)
    key = run_now(page, name)

    open_admin_list(page, "jobs.run")
    page.get_by_role("link", name="Failed", exact=True).click()
    row = reload_until(page, run_rows(page, name, "Failed"), "the refused run to fail")
    snap(page, "failed-runs")
    open_run(row)
    expect(page.get_by_text("HTTP 401 Unauthorized")).to_be_visible()
    snap(page, "failed-run")
    refused = [entry for entry in live.deliveries() if entry["webhook_id"] == key]
    assert [(entry["status"], entry["verified"], entry["reason"]) for entry in refused] == [
        (401, False, "no v1 signature matches")
    ]
