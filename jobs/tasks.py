"""Python functions the demo and the tests schedule."""

from typing import Any

from jobs.targets import task


@task("demo.hello")
def hello(name: str = "world") -> str:
    """The demo job: says hello, so a newcomer sees a run succeed."""
    return f"hello, {name}"


@task("demo.echo")
def echo(**kwargs: Any) -> dict[str, Any]:
    return kwargs
