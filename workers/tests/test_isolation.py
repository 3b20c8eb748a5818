"""The run processes' environment and the masking of secrets (pure functions: no server)."""

from __future__ import annotations

from workers.isolation import MASK, Redactor, run_environment, url_passwords

PARENT = {
    "PATH": "/usr/bin",
    "HOME": "/home/app",
    "DJANGO_SETTINGS_MODULE": "jobscheduler.settings",
    "DJANGO_SECRET_KEY": "site-secret-key-0123456789",
    "MONGODB_URI": "mongodb://app:pa%24%24word@db:27017/jobs",
    "JOBSCHEDULER_SHARDS": "16",
    "JOBSCHEDULER_METRICS_TOKEN": "metrics-token-abcdef",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
    "GITHUB_TOKEN": "ghp_0123456789",
    "REPORTS_BUCKET": "reports",
}


def test_only_the_allow_list_and_the_projects_non_secret_settings_pass():
    env = run_environment(PARENT)
    assert set(env) == {
        "PATH",
        "HOME",
        "DJANGO_SETTINGS_MODULE",
        "MONGODB_URI",
        "JOBSCHEDULER_SHARDS",
        "DJANGO_SECRET_KEY",
    }
    assert env["DJANGO_SECRET_KEY"] != PARENT["DJANGO_SECRET_KEY"] and len(env["DJANGO_SECRET_KEY"]) >= 50
    assert run_environment(PARENT)["DJANGO_SECRET_KEY"] != env["DJANGO_SECRET_KEY"]  # fresh per process


def test_the_operator_adds_names_on_purpose():
    env = run_environment(PARENT, ["REPORTS_BUCKET", "DJANGO_SECRET_KEY", " "])
    assert env["REPORTS_BUCKET"] == "reports"
    assert env["DJANGO_SECRET_KEY"] == PARENT["DJANGO_SECRET_KEY"]


def test_url_passwords_are_found_as_written_and_decoded():
    assert sorted(url_passwords("mongodb://app:pa%24%24word@db:27017/jobs")) == ["pa$$word", "pa%24%24word"]
    assert url_passwords("redis://db:6379/0, http://[::1") == []


def test_secret_values_are_masked_and_ordinary_text_is_not():
    redact = Redactor.for_environment(PARENT, "extra-secret-given")
    text = "key site-secret-key-0123456789, db pa$$word, token ghp_0123456789, bucket reports, extra-secret-given"
    assert redact(text) == f"key {MASK}, db {MASK}, token {MASK}, bucket reports, {MASK}"
    assert redact("") == ""
    assert Redactor(["abc"])("abc") == "abc"  # too short to mask without masking words


def test_a_secret_containing_another_is_masked_whole():
    redact = Redactor(["secret-one", "secret-one-and-more"])
    assert redact("secret-one-and-more / secret-one") == f"{MASK} / {MASK}"
