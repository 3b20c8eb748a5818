"""The cluster benchmark's section of docs/engine-benchmark.md: written in place, the rest kept."""

from pathlib import Path

from engine_cluster import MARK_END, MARK_START, write


def test_the_cluster_section_replaces_its_last_version_and_keeps_the_rest(tmp_path: Path) -> None:
    doc = tmp_path / "engine-benchmark.md"
    doc.write_text("# Scheduling engine benchmark\n\n| the main table |\n")
    write(doc, [MARK_START, "first run", MARK_END])
    write(doc, [MARK_START, "second run", MARK_END])
    text = doc.read_text()
    assert text.startswith("# Scheduling engine benchmark\n\n| the main table |\n")
    assert "second run" in text
    assert "first run" not in text
    assert text.count(MARK_START) == text.count(MARK_END) == 1
