"""How an attempt went: its output and error excerpts, bounded and saying what was cut."""

from __future__ import annotations

from workers.outcome import excerpt, tail_excerpt


def test_excerpts_are_bounded_and_say_what_was_cut():
    assert excerpt("short", 10) == "short"
    cut = excerpt("x" * 1000, 100)
    assert len(cut) == 100 and cut.endswith("(900 more characters)")
    tail = tail_excerpt("".join(f"line {index}\n" for index in range(500)), 120)
    assert len(tail) == 120 and tail.rstrip().endswith("line 499")
