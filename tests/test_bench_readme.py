"""The benchmarks' README writer: each rewrites its own section only, keeping hand-written notes."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from readme_section import write_section  # noqa: E402


def test_sections_are_replaced_alone_and_notes_survive(tmp_path):
    readme = tmp_path / "README.md"
    write_section("one", "## One\n\nfirst", readme)
    write_section("two", "## Two\n\nsecond", readme)
    text = readme.read_text()
    assert text.index("## One") < text.index("## Two")
    # a hand-written note inside section one, then a rewrite of it
    text = text.replace("first\n", "first\n\n<!-- one:notes -->\nby hand\n<!-- one:notes-end -->\n")
    readme.write_text(text)
    write_section("one", "## One\n\nagain", readme)
    text = readme.read_text()
    assert "first" not in text and "again" in text and "by hand" in text
    assert "## Two\n\nsecond" in text and text.count("<!-- one:start -->") == 1
    assert text.index("again") < text.index("by hand") < text.index("<!-- one:end -->") < text.index("## Two")
