"""deploy/: the systemd units, the timer, the crontab line and the environment file template.

Checked against the code they start (each command exists and takes the options given; stop
timeouts fit how each process stops) and the settings it reads (the template lists exactly the
variables the code reads, found in its source, with the code's defaults). `systemd-analyze
verify` checks the units too where it is installed; everything else runs without it. No server.
"""

from __future__ import annotations

import inspect
import re
import shlex
import shutil
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import gunicorn.arbiter
import gunicorn.config
import pytest
from django.core.management import get_commands, load_command_class

from jobs.models import Job
from jobscheduler.tests import deploy_files as files
from jobscheduler.tests.test_no_demo_in_production import production_modules
from schedules.cron import parse_cron
from schedules.engine.loop import LoopSettings

# Read by the code, yet no operator setting: left out of the template on purpose.
NOT_SETTINGS = {
    "DJANGO_SETTINGS_MODULE": "manage.py and the WSGI module name the settings",
    "JOBSCHEDULER_DEMO": "installs the demo app: local runs and tests only, never production",
}
STANDARD_TARGETS = {"multi-user.target", "timers.target", "network-online.target"}
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def production_commands() -> dict[str, str]:
    """Management command name -> app, the demo's left out (production never installs it)."""
    return {name: app for name, app in get_commands().items() if app != "demo"}


def check_manage_command(argv: list[str]) -> str:
    """``manage.py NAME args``: NAME is a production command whose parser takes ``args``."""
    name, args = argv[0], argv[1:]
    commands = production_commands()
    assert name in commands, f"no management command {name!r}"
    load_command_class(commands[name], name).create_parser("manage.py", name).parse_args(args)  # CommandError if not
    return name


def gunicorn_options(argv: list[str]) -> object:
    try:
        return gunicorn.config.Config().parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"gunicorn refuses {shlex.join(argv)}")


def services() -> dict[str, files.Unit]:
    return {name: unit for name, unit in files.units().items() if name.endswith(".service")}


def runs(unit: files.Unit) -> list[str]:
    """The argv after ``manage.py`` of the unit's ExecStart."""
    argv = shlex.split(unit.value("Service", "ExecStart") or "")
    assert argv[:2] == [files.PYTHON, files.MANAGE], argv
    return argv[2:]


# --- The units --------------------------------------------------------------------------------


def test_the_units_are_those_the_readme_installs() -> None:
    assert set(files.units()) == {
        "jobscheduler.target",
        "jobscheduler-web.service",
        "jobscheduler-scheduler@.service",
        "jobscheduler-worker@.service",
        "jobscheduler-scheduler-once.service",
        "jobscheduler-scheduler-once.timer",
    }
    readme = (files.ROOT / "README.md").read_text()
    for name in files.units():
        assert name in readme


def test_every_command_a_unit_starts_exists_and_takes_its_options() -> None:
    started = []
    for unit in files.units().values():
        for argv in unit.commands():
            if argv[:2] == [files.PYTHON, files.MANAGE]:
                started.append(check_manage_command(argv[2:]))
            elif argv[0] == files.GUNICORN:
                options = gunicorn_options(argv[1:])
                module, _, attribute = vars(options)["args"][0].partition(":")
                assert callable(getattr(import_module(module), attribute or "application"))
            else:
                assert argv[0] == "/bin/kill", f"{unit.name}: unexpected program {argv[0]}"
    assert sorted(set(started)) == ["migrate", "run_scheduler", "run_worker"]


def test_every_service_runs_hardened_as_the_service_user_with_the_environment_file() -> None:
    required = {
        "User": files.USER,
        "Group": files.USER,
        "WorkingDirectory": files.INSTALL_DIR,
        "EnvironmentFile": files.ENV_FILE,
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "SystemCallFilter": "@system-service",
        "CapabilityBoundingSet": "",
    }
    for name, unit in services().items():
        assert {key: unit.value("Service", key) for key in required} == required, name
        assert unit.values("Service", "EnvironmentFile") == [files.ENV_FILE], name  # required, not "-" optional


def test_long_running_services_restart_on_failure_and_stop_on_a_signal_they_handle() -> None:
    for name, unit in services().items():
        if unit.value("Service", "Type") == "oneshot":
            assert unit.value("Service", "Restart") is None, f"{name}: the timer runs it again"
            continue
        assert unit.value("Service", "Restart") == "on-failure", name
        assert files.timespan_seconds(unit.value("Service", "RestartSec") or "0") >= 1, name
    for name, unit in services().items():
        if name == "jobscheduler-web.service":
            continue  # gunicorn: SIGTERM is its graceful stop
        command = runs(unit)[0]
        module = sys.modules[type(load_command_class(production_commands()[command], command)).__module__]
        handled = re.findall(r"signal\.signal\(signal\.(SIG[A-Z]+), request_stop\)", inspect.getsource(module))
        assert unit.value("Service", "KillSignal", "SIGTERM") in handled, f"{name}: not a signal {command} stops on"


def test_the_scheduler_is_given_more_than_its_one_second_stop_and_not_much_more() -> None:
    scheduler = services()["jobscheduler-scheduler@.service"]
    assert runs(scheduler) == ["run_scheduler"]
    stop = files.timespan_seconds(scheduler.value("Service", "TimeoutStopSec") or "90")
    # It exits within a second (the last copy of fired state gets stop_sync_seconds); a stop that
    # hangs far longer should end in a kill, which loses nothing.
    assert 1 + LoopSettings().stop_sync_seconds < stop <= 30


def test_the_worker_is_given_the_default_job_timeout_to_drain_and_only_it_is_signalled() -> None:
    worker = services()["jobscheduler-worker@.service"]
    assert runs(worker) == ["run_worker"]
    stop = files.timespan_seconds(worker.value("Service", "TimeoutStopSec") or "90")
    job_timeout = Job._meta.get_field("timeout_seconds").default
    assert stop > job_timeout  # runs in progress finish, each within its job's timeout, then record
    # SIGTERM to the worker alone: it tells its run processes when to stop; what a task started
    # itself is not cut off midway.
    assert worker.value("Service", "KillMode") == "mixed"


def test_the_web_app_runs_gunicorn_as_compose_does_and_outlives_its_graceful_timeout() -> None:
    web = services()["jobscheduler-web.service"]
    start = shlex.split(web.value("Service", "ExecStart") or "")
    compose = (files.ROOT / "docker-compose.yml").read_text()
    assert "gunicorn jobscheduler.wsgi" in compose and "manage.py migrate --noinput" in compose
    assert start[:2] == [files.GUNICORN, "jobscheduler.wsgi"]
    assert web.values("Service", "ExecStartPre") == [f"{files.PYTHON} {files.MANAGE} migrate --noinput"]
    options = vars(gunicorn_options(start[1:]))
    graceful = options["graceful_timeout"] or gunicorn.config.GracefulTimeout.default
    assert files.timespan_seconds(web.value("Service", "TimeoutStopSec") or "90") > graceful
    assert web.value("Service", "KillMode") == "mixed"
    assert web.value("Service", "Type") == "notify" and "sd_notify" in inspect.getsource(gunicorn.arbiter)
    # What gunicorn writes goes to the unit's runtime directory: all else is read-only to it.
    runtime = f"/run/{web.value('Service', 'RuntimeDirectory')}"
    for option in ("control_socket", "worker_tmp_dir"):
        assert Path(options[option]).is_relative_to(runtime), option


def test_the_templates_run_as_many_instances_as_enabled_and_belong_to_the_target() -> None:
    everything = files.units()
    for name, unit in everything.items():
        for target in unit.names("Install", "WantedBy") + unit.names("Unit", "PartOf"):
            assert target in everything or target in STANDARD_TARGETS, f"{name}: {target}"
    for name in ("jobscheduler-scheduler@.service", "jobscheduler-worker@.service", "jobscheduler-web.service"):
        assert everything[name].values("Install", "WantedBy") == ["jobscheduler.target"]
        assert everything[name].values("Unit", "PartOf") == ["jobscheduler.target"]


def test_the_timer_starts_an_existing_service_that_runs_one_scheduler_pass() -> None:
    everything = files.units()
    timers = [unit for name, unit in everything.items() if name.endswith(".timer")]
    assert timers
    for timer in timers:
        target = timer.value("Timer", "Unit") or timer.name.replace(".timer", ".service")
        assert target in everything, f"{timer.name} starts {target}, which deploy/systemd lacks"
        service = everything[target]
        assert service.value("Service", "Type") == "oneshot"
        assert runs(service) == ["run_scheduler", "--once"]
        assert check_manage_command(runs(service)) == "run_scheduler"
        assert timer.values("Timer", "OnCalendar") == ["*-*-* *:*:00"]
        # systemd's default accuracy is a minute: the pass would start anywhere in it.
        assert files.timespan_seconds(timer.value("Timer", "AccuracySec") or "1min") <= 1
        if SYSTEMD_ANALYZE:
            for calendar in timer.values("Timer", "OnCalendar"):
                subprocess.run([SYSTEMD_ANALYZE, "calendar", calendar], check=True, capture_output=True)


def test_systemd_analyze_verify_accepts_every_unit_without_a_warning(tmp_path: Path) -> None:
    """The units as installed, but for the install directory: a temporary one whose .venv holds
    this Python and its gunicorn, since verify checks that each program is there."""
    analyze = SYSTEMD_ANALYZE or pytest.skip("systemd-analyze is not installed: the other tests read the units")
    bin_dir = tmp_path / "opt" / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    (bin_dir / "gunicorn").symlink_to(gunicorn if gunicorn.exists() else shutil.which("gunicorn") or "/nonexistent")
    (tmp_path / "units").mkdir()
    for path in files.UNITS.iterdir():
        text = path.read_text().replace(files.INSTALL_DIR, str(tmp_path / "opt"))
        (tmp_path / "units" / path.name).write_text(text)
    names = sorted(path.name for path in (tmp_path / "units").iterdir())
    names += ["jobscheduler-scheduler@1.service", "jobscheduler-worker@1.service"]  # instances of the templates
    verify = subprocess.run(
        [analyze, "verify", "--man=no", *names], cwd=tmp_path / "units", capture_output=True, text=True
    )
    assert (verify.returncode, verify.stderr) == (0, "")


@pytest.mark.skipif(not Path("/lib/systemd/systemd").exists(), reason="systemd is not installed")
def test_the_known_directives_are_systemd_s_own() -> None:
    dump = subprocess.run(
        ["/lib/systemd/systemd", "--dump-configuration-items"], capture_output=True, text=True, check=True
    ).stdout
    known: dict[str, set[str]] = {}
    section = ""
    for line in dump.splitlines():
        if match := re.fullmatch(r"\[(\w+)\]", line):
            section = match[1]
        elif "=" in line:
            known.setdefault(section, set()).add(line.partition("=")[0])
    for section, names in files.KNOWN_DIRECTIVES.items():
        assert names <= known[section], names - known[section]


def test_the_unit_reader_refuses_what_systemd_would_ignore(tmp_path: Path) -> None:
    for text in ("[Service]\nProtectSytem=strict\n", "ExecStart=/bin/true\n", "[Sevice]\n", "[Service]\nnot a line\n"):
        (tmp_path / "bad.service").write_text(text)
        with pytest.raises(ValueError):
            files.parse_unit(tmp_path / "bad.service")
    (tmp_path / "good.service").write_text("[Service]\n# why\nExecStart=/bin/echo a \\\n  b\nExecStart=\n")
    assert files.parse_unit(tmp_path / "good.service").values("Service", "ExecStart") == ["/bin/echo a b", ""]
    assert files.timespan_seconds("1min 30s") == 90 and files.timespan_seconds("330") == 330


# --- The crontab line -------------------------------------------------------------------------


def test_the_crontab_line_runs_one_scheduler_pass_a_minute_with_the_environment_file() -> None:
    jobs = []
    for line in files.CRONTAB.read_text().splitlines():
        if not line.strip() or line.startswith("#") or re.fullmatch(r"[A-Z]+=\S*", line):
            continue
        *when, user, command = line.split(None, 6)
        parse_cron(" ".join(when))  # Debian cron's grammar: raises on a bad field
        assert when == ["*"] * 5 and user == files.USER
        words = shlex.split(command)
        assert words[:2] == ["cd", files.INSTALL_DIR] and words[6:8] == [".", files.ENV_FILE]
        assert words[3:5] == ["set", "-a"]  # exported: the pass is a child of the shell
        start = words.index(files.PYTHON)
        assert words[start + 1] == files.MANAGE
        argv = words[start + 2 : words.index("2>&1")]
        jobs.append(check_manage_command(argv) if argv == ["run_scheduler", "--once"] else argv)
    assert jobs == ["run_scheduler"]
    assert "." not in files.CRONTAB.name  # cron skips /etc/cron.d files with a dot in their name


# --- The environment file template ------------------------------------------------------------


def code_reads() -> dict[str, list[object]]:
    reads = files.reads_of(production_modules())
    assert {"DJANGO_SECRET_KEY", "MONGODB_URI", "REDIS_URL", "JOBSCHEDULER_SHARDS"} <= set(reads)  # sees the settings
    return reads


def gunicorn_reads() -> dict[str, list[object]]:
    return files.environment_reads(Path(inspect.getsourcefile(gunicorn.config) or "").read_text())


def template() -> list[files.Variable]:
    return files.parse_env_template(files.ENV_TEMPLATE.read_text())


def test_the_template_lists_every_variable_the_code_reads_and_no_other() -> None:
    reads = code_reads()
    listed = [variable.name for variable in template()]
    assert len(listed) == len(set(listed)), "a variable listed twice"
    assert sorted(set(reads) - set(NOT_SETTINGS) - set(listed)) == [], "read by the code, missing from the template"
    assert sorted(set(listed) - set(reads) - set(gunicorn_reads())) == [], "in the template, read by nothing"
    assert set(NOT_SETTINGS) <= set(reads) and not set(NOT_SETTINGS) & set(listed)


def test_the_template_shows_the_code_s_defaults() -> None:
    defaults = {**gunicorn_reads(), **code_reads()}
    compared = 0
    for variable in template():
        literal = {value for value in defaults.get(variable.name, []) if value is not files.NO_DEFAULT}
        if variable.is_set or not literal:
            continue
        assert len(literal) == 1, f"{variable.name} is read with different defaults: {literal}"
        (default,) = literal
        if isinstance(default, bool):
            assert variable.value == str(int(default)), variable.name
        elif isinstance(default, int | float):
            assert float(variable.value) == default, variable.name
        else:
            assert variable.value == default, variable.name
        compared += 1
    assert compared >= 30


def test_the_template_sets_only_what_an_operator_must_give_and_the_secret_empty() -> None:
    set_here = {variable.name: variable.value for variable in template() if variable.is_set}
    assert set(set_here) == {"DJANGO_SECRET_KEY", "MONGODB_URI", "REDIS_URL", "DJANGO_ALLOWED_HOSTS"}
    assert set_here["DJANGO_SECRET_KEY"] == ""  # the service refuses to start until one is made


def test_sh_reads_the_template_as_systemd_does(tmp_path: Path) -> None:
    """The crontab line sources the file with sh; the units read it with systemd."""
    env_file = tmp_path / "jobscheduler.env"
    env_file.write_text(files.ENV_TEMPLATE.read_text().replace("DJANGO_SECRET_KEY=\n", "DJANGO_SECRET_KEY='a-b'\n"))
    printed = subprocess.run(
        ["/bin/sh", "-c", f"set -a && . {shlex.quote(str(env_file))} && env"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    seen = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
    for variable in files.parse_env_template(env_file.read_text()):
        assert seen.get(variable.name) == (variable.value if variable.is_set else None), variable.name


def test_the_readers_see_each_way_of_reading_the_environment() -> None:
    source = """
import os
a = os.environ.get("A_VAR", "1")
b = os.environ["B_VAR"]
c = "C_VAR" in os.environ
d = os.getenv("D_VAR")
e = env_int("E_VAR", 5, minimum=1)
f = _env_flag("F_VAR", default=True)
os.environ["NOT_READ"] = "x"
os.environ.setdefault("NOT_READ_EITHER", "y")
g = settings.get("lowercase_is_no_variable")
"""
    reads = files.environment_reads(source)
    assert reads == {
        "A_VAR": ["1"],
        "B_VAR": [files.NO_DEFAULT],
        "C_VAR": [files.NO_DEFAULT],
        "D_VAR": [files.NO_DEFAULT],
        "E_VAR": [5],
        "F_VAR": [True],
    }
    with pytest.raises(ValueError, match="no comment"):
        files.parse_env_template("X_VAR=1\n")
    with pytest.raises(ValueError, match="sh and systemd"):
        files.parse_env_template("# why\nX_VAR='$HOME'\n")
    with pytest.raises(ValueError, match="quote"):
        files.parse_env_template("# why\nX_VAR=a b\n")
