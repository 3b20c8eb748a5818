"""The admin's job form: a target edited by its type (a Task chooser, an allowed command, a webhook's parts).

Each type's fields build the target the API takes as JSON, and the model's own check
(``jobs.targets.clean_target``, which every save through the services runs, the API's
included) judges it: the admin and the API refuse a bad target with the same message. Here
the message is shown beside the field it is about. Only the chosen type's fields are read;
without JavaScript every type's fields are on the page, with it only the chosen type's.
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any, cast

from django import forms
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from jobs import permissions, selectors, services
from jobs.models import Job
from jobs.targets import command as command_targets
from jobs.targets import python as python_targets
from jobs.targets.http import HTTP_METHODS

# The form fields of each target type, in the order the page shows them.
TARGET_FIELDS: dict[str, tuple[str, ...]] = {
    Job.TargetType.PYTHON: ("python_task", "python_args", "python_kwargs"),
    Job.TargetType.COMMAND: ("command_name", "command_args"),
    Job.TargetType.HTTP: ("webhook_url", "webhook_method", "webhook_headers", "webhook_body"),
}
# Where a target check's message goes: the field of the first pattern matching its start (in
# lower case), else the type's first field (jobs.targets writes each message about one part).
_MESSAGE_FIELDS: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    Job.TargetType.PYTHON: ((re.compile("args "), "python_args"), (re.compile("kwargs "), "python_kwargs")),
    Job.TargetType.COMMAND: (
        (re.compile("args "), "command_args"),
        (re.compile(r"command (['\"]).*\1: "), "command_args"),  # "Command 'x': <what its rule refuses>"
    ),
    Job.TargetType.HTTP: (
        (re.compile("method "), "webhook_method"),
        (re.compile("(headers |header |invalid header |invalid value for header )"), "webhook_headers"),
        (re.compile("body "), "webhook_body"),
    ),
}


def _text_area(label: str, rows: int, help_text: str, **options: Any) -> forms.CharField:
    """An optional target part typed as text over ``rows`` lines (JSON, arguments, headers, a body)."""
    return forms.CharField(
        required=False,
        label=label,
        widget=forms.Textarea(attrs={"rows": rows, "cols": 60, "spellcheck": "false"}),
        help_text=help_text,
        **options,
    )


class JobForm(forms.ModelForm):
    """Job.clean runs through ModelForm's full_clean; the secret is never rendered back."""

    # Set by JobAdmin.get_form: the user a new job belongs to when the form has no owner field.
    request_user: Any = None

    python_task = forms.ChoiceField(required=False, label="Task")
    python_args = _text_area("Positional arguments", 2, 'A JSON array, e.g. <code>["ops", 3]</code>. Blank: none.')
    python_kwargs = _text_area(
        "Keyword arguments", 3, 'A JSON object, e.g. <code>{"dry_run": false}</code>. Blank: none.'
    )
    command_name = forms.ChoiceField(required=False, label="Command")
    command_args = _text_area(
        "Arguments",
        3,
        "One argument per line, e.g. <code>--days</code> then <code>30</code> (or <code>--days=30</code>).",
    )
    webhook_url = forms.CharField(
        required=False,
        label="URL",
        max_length=2000,
        widget=forms.URLInput(attrs={"size": 60}),
        help_text="http or https, no credentials in it. Private and loopback addresses are refused "
        "unless the operator allows them.",
    )
    webhook_method = forms.ChoiceField(
        required=False, label="Method", choices=[(method, method) for method in HTTP_METHODS], initial="POST"
    )
    webhook_headers = _text_area(
        "Headers", 3, "One per line, <code>Name: value</code>. The signature headers are added for you."
    )
    webhook_body = _text_area(
        "Body", 5, "Sent as is (JSON unless a Content-Type header says otherwise). Blank: no body.", strip=False
    )
    secret = forms.CharField(
        required=False,
        label="Your own secret",
        widget=forms.PasswordInput(render_value=False),
        help_text="Only to set a secret you chose: leave blank to keep the current one (a new webhook "
        "job left blank gets a generated one, shown once after saving).",
    )

    class Meta:
        model = Job
        fields = ("owner", *(name for name in services.EDITABLE_FIELDS if name != "target"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._target_unreadable = False
        if self.instance.owner_id is None and self.request_user is not None:
            self.instance.owner = self.request_user
        if "target_type" not in self.fields:  # read-only (a job declared in code): nothing to edit
            for names in TARGET_FIELDS.values():
                for name in names:
                    self.fields.pop(name, None)
            return
        if "timeout_seconds" in self.fields:
            self.fields[
                "timeout_seconds"
            ].help_text = "A run (a whole webhook delivery included) is stopped after this many seconds."
        self._offer_tasks()
        self._offer_commands()
        self._show_target()

    def _offer_tasks(self) -> None:
        """The chooser lists every discovered Task with its docstring's first line; the help, all of it."""
        found = python_targets.discovered_tasks()
        field = cast(forms.ChoiceField, self.fields["python_task"])
        field.choices = [("", "---------")] + [
            (path, f"{path}: {summary}" if (summary := python_targets.summary(task)) else path)
            for path, task in found.items()
        ]
        docs = format_html_join(
            "",
            "<dt><code>{}</code></dt><dd>{}</dd>",
            ((path, inspect.cleandoc(task.func.__doc__ or "") or "No docstring.") for path, task in found.items()),
        )
        field.help_text = format_html(
            "The Django Task to run, from the installed apps' <code>tasks</code> modules."
            '<details class="task-docs"><summary>What each task does</summary><dl>{}</dl></details>',
            docs,
        )

    def _offer_commands(self) -> None:
        field = cast(forms.ChoiceField, self.fields["command_name"])
        try:
            rules = command_targets.allowed_rules()
        except ImproperlyConfigured as error:
            rules = {}
            field.help_text = format_html("No command can be chosen: {}", error)
        field.choices = [("", "---------")] + [(name, name) for name in sorted(rules)]
        if rules:
            field.help_text = format_html(
                "Only the commands in <code>JOBSCHEDULER_ALLOWED_COMMANDS</code>, with the arguments "
                'each allows:<ul class="command-rules">{}</ul>',
                format_html_join("", "<li><code>{}</code>: {}</li>", ((n, rules[n].describe()) for n in sorted(rules))),
            )
        elif not field.help_text:
            field.help_text = "The operator has allowed no command (JOBSCHEDULER_ALLOWED_COMMANDS)."

    def _show_target(self) -> None:
        """The stored target, spread over its type's fields."""
        target = self.instance.target if isinstance(self.instance.target, dict) else {}
        kind = self.instance.target_type
        if kind == Job.TargetType.PYTHON:
            self.initial["python_task"] = python_targets.target_path(target)
            if "args" in target:
                self.initial["python_args"] = json.dumps(target["args"])
            if "kwargs" in target:
                self.initial["python_kwargs"] = json.dumps(target["kwargs"], indent=2)
        elif kind == Job.TargetType.COMMAND:
            self.initial["command_name"] = target.get("command")
            self.initial["command_args"] = "\n".join(str(arg) for arg in target.get("args") or [])
        elif kind == Job.TargetType.HTTP:
            self.initial["webhook_url"] = target.get("url", "")
            self.initial["webhook_method"] = target.get("method", "POST")
            headers = target.get("headers") or {}
            if isinstance(headers, dict):
                self.initial["webhook_headers"] = "\n".join(f"{name}: {value}" for name, value in headers.items())
            self.initial["webhook_body"] = target.get("body", "")

    def clean_secret(self) -> str:
        return self.cleaned_data.get("secret") or self.instance.secret

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        target_type = cleaned.get("target_type")
        if "target_type" in self.fields and target_type:
            for kind, names in TARGET_FIELDS.items():  # the other types' fields are not read at all
                for field_name in names if kind != target_type else ():
                    self.errors.pop(field_name, None)
            target = self._target(target_type, cleaned)
            if target is None:
                self._target_unreadable = True  # its fields say what to fix; no check of half a target
            else:
                # What the services save and Job.clean checks (in _post_clean, after this).
                cleaned["target"] = self.instance.target = target
        # With no owner field ModelForm skips the (owner, name) constraint; check it here so a
        # duplicate name is a form error, not a service error at save time.
        name, owner_id = cleaned.get("name"), self.instance.owner_id
        if (
            "owner" not in self.fields
            and name
            and owner_id is not None
            and selectors.job_name_taken(owner_id, name, excluding=self.instance.pk)
        ):
            self.add_error("name", "This owner already has a job with this name.")
        # The service checks it again at save; here it is a form error rather than a 403 page.
        target_fields = {"target_type", *(name for names in TARGET_FIELDS.values() for name in names)}
        changed = not self.instance.pk or target_fields & set(self.changed_data)
        if self.request_user is not None and target_type and changed:
            problem = permissions.target_refusal(self.request_user, target_type, cleaned.get("target"))
            if problem:
                self.add_error("target_type", problem)
                self.instance.target_type = str(target_type)  # so the model's check judges the chosen type
        return cleaned

    def _target(self, target_type: str, cleaned: dict[str, Any]) -> dict[str, Any] | None:
        """The target the chosen type's fields make, or None (with field errors) if they cannot be read."""
        if target_type == Job.TargetType.PYTHON:
            python: dict[str, Any] = {"task": cleaned.get("python_task") or ""}
            for name, key in (("python_args", "args"), ("python_kwargs", "kwargs")):
                text = (cleaned.get(name) or "").strip()
                if text:
                    try:
                        python[key] = json.loads(text)
                    except ValueError as error:
                        self.add_error(name, f"Not valid JSON: {error}.")
            if not python["task"]:
                del python["task"]  # the check names the discovered tasks
            return None if self.has_error("python_args") or self.has_error("python_kwargs") else python
        if target_type == Job.TargetType.COMMAND:
            if not cleaned.get("command_name"):
                self.add_error("command_name", "Choose one of the allowed commands.")
                return None
            lines = [line.strip() for line in (cleaned.get("command_args") or "").splitlines()]
            return {"command": cleaned["command_name"], "args": [line for line in lines if line]}
        if target_type == Job.TargetType.HTTP:
            webhook: dict[str, Any] = {
                "url": (cleaned.get("webhook_url") or "").strip(),
                "method": cleaned.get("webhook_method") or "POST",
            }
            headers = self._headers(cleaned.get("webhook_headers") or "")
            if headers is None:
                return None
            if headers:
                webhook["headers"] = headers
            if cleaned.get("webhook_body"):
                webhook["body"] = cleaned["webhook_body"]
            return webhook
        return {}  # an unknown type: Job.clean says so

    def _headers(self, text: str) -> dict[str, str] | None:
        headers: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                self.add_error("webhook_headers", f"Line {number}: write a header as Name: value.")
                return None
            if name.strip() in headers:
                self.add_error("webhook_headers", f"Line {number}: {name.strip()} is given twice.")
                return None
            headers[name.strip()] = value.strip()
        return headers

    def add_error(self, field: str | None, error: Any) -> None:
        # Job.clean reports a bad target under "target", which is not a field of this form (the
        # model's errors arrive here as add_error(None, {...})): put the message beside the
        # field it is about, or drop it when the fields could not even be read (their own
        # errors say what to fix).
        error_dict = getattr(error, "error_dict", None) if field is None else None
        if error_dict is not None and "target" in error_dict and "target" not in self.fields:
            messages = error_dict.pop("target")
            target_type = self.cleaned_data.get("target_type") or self.instance.target_type
            if not self._target_unreadable and target_type in TARGET_FIELDS:
                for message in ValidationError(messages).messages:
                    super().add_error(target_field_for(target_type, message), message)
        super().add_error(field, error)


def target_field_for(target_type: str, message: str) -> str:
    """The form field a target check's message is about."""
    lowered = message.lower()
    for pattern, name in _MESSAGE_FIELDS.get(target_type, ()):
        if pattern.match(lowered):
            return name
    return TARGET_FIELDS[target_type][0]


def secret_status(job: Job) -> SafeString:
    """Whether a webhook job has a signing secret, and until when the one before it signs too."""
    if not job.secret:
        return format_html("{}", "None: deliveries go unsigned.")
    expires = job.previous_secret_expires_at
    if job.previous_secret and expires is not None:
        return format_html("Set. The previous secret also signs deliveries until {} UTC.", f"{expires:%Y-%m-%d %H:%M}")
    return format_html("{}", "Set (never shown again after it was first shown).")
