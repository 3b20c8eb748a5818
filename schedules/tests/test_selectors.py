"""Reads of schedules, against real MongoDB: who sees what, and the worker's overlap lookup."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from django.contrib.auth.models import AnonymousUser, User

from jobs.services import job_create
from schedules import calendar_services, selectors, services
from schedules.models import Schedule


def make_schedule(owner: User, name: str, **fields: Any) -> Schedule:
    job = job_create(owner=owner, name=name, target_type="python", target={"task": "demo.tasks.hello"})
    return services.schedule_create(job=job, kind="fixed", interval_seconds=60, **fields)


def test_schedules_visible_to_owner_superuser_and_others(user: User, other_user: User) -> None:
    superuser = User.objects.create_superuser("root", "root@example.com", "root-password-1")
    carol = User.objects.create_user("carol", "carol@example.com", "carol-password-1")
    mine, theirs = make_schedule(user, "alice's"), make_schedule(other_user, "bob's")
    also_mine = services.schedule_create(job=mine.job, kind="cron", expression="@daily")

    assert list(selectors.schedules_visible_to(user)) == [mine, also_mine]
    assert list(selectors.schedules_visible_to(other_user)) == [theirs]
    assert set(selectors.schedules_visible_to(superuser)) == {mine, also_mine, theirs}
    assert list(selectors.schedules_visible_to(carol)) == []
    assert list(selectors.schedules_visible_to(AnonymousUser())) == []


def test_overlap_policy(user: User) -> None:
    schedule = make_schedule(user, "nightly", overlap_policy="buffer_one")
    assert selectors.overlap_policy(str(schedule.pk)) == "buffer_one"
    assert selectors.overlap_policy(schedule.pk) == "buffer_one"
    assert selectors.overlap_policy(str(ObjectId())) is None
    assert selectors.overlap_policy("not-an-object-id") is None
    assert selectors.overlap_policy("") is None


def test_worker_lookups_read_many_schedules_at_once(user: User) -> None:
    calendar = calendar_services.calendar_create(
        owner=user, name="Holidays", timezone="UTC", days=[{"start": "2026-12-25", "name": "Christmas Day"}]
    )
    plain = make_schedule(user, "plain", overlap_policy="skip")
    named = services.schedule_create(
        job=plain.job, kind="fixed", interval_seconds=60, exclusion_calendars=[str(calendar.pk)]
    )
    found = selectors.worker_lookups([str(plain.pk), str(named.pk), str(named.pk), str(ObjectId()), "not-an-id"])
    assert set(found) == {str(plain.pk), str(named.pk)}  # gone and malformed ones left out
    assert found[str(plain.pk)] == ("skip", [])
    policy, days = found[str(named.pk)]
    assert policy == "allow"
    assert [(each.name, each.timezone) for each in days] == [("Holidays", "UTC")]
    assert days == selectors.schedule_exclusions(named.pk)  # what the one-at-a-time look-up says
    assert selectors.worker_lookups([]) == {}
