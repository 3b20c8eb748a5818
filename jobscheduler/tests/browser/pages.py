"""The admin's pages as a person uses them, for the browser tests: sign in, fill a job, act on a list, wait for a row.

Everything is found by role and label, as a screen reader would, so a reworked form breaks
only the helper that fills it. The tests fall back on the admin's class hooks only where no
label names the thing: a read-only field's row (``.field-fire_key``), a schedule's live
description and preview (``.schedule-description``, ``.schedule-upcoming``), and the row of
one of a schedule's two "Date:"/"Time:" pairs (``.field-start_at``).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from django.urls import reverse
from playwright.sync_api import Locator, Page, expect

WAIT_SECONDS = 45  # for the scheduler and worker to get a run done on a busy machine


def log_in(page: Page, username: str, password: str) -> None:
    """Fill and send the login form; wait for the signed-in page."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def field(page: Page, label: str) -> Locator:
    """The visible form control labelled ``label`` (the admin adds a colon).

    Not a fieldset of that name, nor an inline's hidden template form.
    """
    labelled = page.get_by_label(re.compile(rf"^{re.escape(label)}:?$"))
    return labelled.and_(page.locator("input, select, textarea")).filter(visible=True)


def open_admin_list(page: Page, model: str) -> None:
    """The change list of ``model`` ("jobs.run"), by its address: the index page is being reworked."""
    app, name = model.split(".")
    page.goto(reverse(f"admin:{app}_{name}_changelist"))


def fill_webhook_target(page: Page, url: str, *, body: dict[str, Any], secret: str = "") -> None:
    """The target of a webhook job, by its own fields: type, URL, method, headers, body; a secret of our own.

    Without ``secret`` the field is left blank, so saving generates one and shows it once.
    """
    field(page, "Target type").select_option(label="HTTP webhook")
    field(page, "URL").fill(url)
    field(page, "Method").select_option("POST")
    field(page, "Headers").fill("Content-Type: application/json")
    field(page, "Body").fill(json.dumps(body))
    if secret:
        field(page, "Your own secret").fill(secret)


def fill_new_job(page: Page, name: str, receiver_url: str, *, secret: str = "", cron: str = "") -> None:
    """On the add-job page: a webhook job to ``receiver_url`` and, given ``cron``, its first schedule."""
    field(page, "Name").fill(name)
    fill_webhook_target(page, receiver_url, body={"job": name}, secret=secret)
    field(page, "Timeout seconds").fill("10")
    if cron:
        field(page, "Kind").select_option(label="Cron expression")
        field(page, "Expression").fill(cron)


def add_webhook_job(page: Page, name: str, receiver_url: str, *, secret: str, cron: str = "") -> None:
    """Jobs, Add job, fill it in with our own ``secret``, Save: the job exists (and fires, given ``cron``)."""
    open_admin_list(page, "jobs.job")
    page.get_by_role("link", name="Add job").click()
    fill_new_job(page, name, receiver_url, secret=secret, cron=cron)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(success_message(page)).to_contain_text("was added successfully")


def run_action(page: Page, action: str, *rows: str) -> None:
    """On a change list: tick each row whose link reads one of ``rows``, choose ``action``, send it."""
    for name in rows:
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))
        row.get_by_role("checkbox").check()
    page.get_by_role("combobox", name=re.compile(r"^Action")).select_option(label=action)
    page.get_by_role("button", name="Go", exact=True).click()


def run_now(page: Page, job_name: str) -> str:
    """Jobs, tick ``job_name``, "Run now": the new run's fire key, as the message gives it."""
    open_admin_list(page, "jobs.job")
    run_action(page, "Run now (schedules do not move)", job_name)
    expect(success_message(page)).to_contain_text("Started 1 run: manual:")
    return success_message(page).inner_text().split(": ", 1)[1].strip()


def search_runs(page: Page, fire_key: str) -> None:
    """The runs list narrowed to one fire key through its search box (its attempts)."""
    open_admin_list(page, "jobs.run")
    page.get_by_role("textbox", name="Search").fill(fire_key)
    page.get_by_role("button", name="Search").click()


def success_message(page: Page) -> Locator:
    """The admin's message after a save or an action."""
    return page.locator("ul.messagelist li.success")


def reload_until(page: Page, target: Locator, what: str, timeout: float = WAIT_SECONDS) -> Locator:
    """Reload the page until ``target`` is on it (the runs list is not live yet)."""
    deadline = time.monotonic() + timeout
    while target.count() == 0:
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what} on {page.url}"
        time.sleep(0.5)
        page.reload()
    return target.first


def scroll_to_heading(page: Page, name: str) -> None:
    """Scroll the page so the heading ``name`` (a fieldset's) is at the top of the window."""
    heading = page.get_by_role("heading", name=name, exact=True).filter(visible=True)
    heading.evaluate("h => window.scrollTo(0, h.getBoundingClientRect().top + window.scrollY - 8)")


def open_run(row: Locator) -> None:
    """From its row in the runs list, a run's page: the link on its nominal time (the job and
    schedule cells link to those)."""
    row.get_by_role("rowheader").get_by_role("link").click()


def run_rows(page: Page, job_name: str, status: str) -> Locator:
    """Rows of the runs list for ``job_name`` whose status cell reads ``status``."""
    return (
        page.get_by_role("row")
        .filter(has=page.get_by_role("cell", name=job_name, exact=True))
        .filter(has=page.get_by_role("cell", name=status, exact=True))
    )
