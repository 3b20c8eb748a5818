"""Python functions the demo and the tests schedule (demo.*), registered only where the demo app is installed."""

from typing import Any

from jobs.targets import task


@task("demo.hello")
def hello(name: str = "world") -> str:
    """The demo job: says hello, so a newcomer sees a run succeed."""
    return f"hello, {name}"


@task("demo.echo")
def echo(**kwargs: Any) -> dict[str, Any]:
    return kwargs


@task("demo.environment")
def environment(names: list[str]) -> dict[str, str | None]:
    """The value of each named variable as a run process sees it: shows what it is not given."""
    import os

    return {name: os.environ.get(name) for name in names}


@task("demo.sleep")
def sleep(seconds: float = 1.0) -> str:
    """Sleeps (at most an hour): shows timeouts, takeovers and overlap at work."""
    import time

    seconds = max(0.0, min(float(seconds), 3600.0))
    time.sleep(seconds)
    return f"slept {seconds}s"


@task("demo.fail")
def fail(message: str = "demo failure") -> None:
    """Always raises: shows retries and their backoff."""
    raise RuntimeError(message)
