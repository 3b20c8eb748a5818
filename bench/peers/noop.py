"""The no-op task every execution peer runs: like our ``demo.hello``, it returns a short greeting.

It also notes when it ran (``peers.firelog``: one ``os.write`` to a file of its process, a few
microseconds), which is how the harness counts completions the same way for every peer.
"""

from __future__ import annotations

from peers import firelog


def hello(name: str = "world") -> str:
    firelog.record(name)
    return f"hello, {name}"
