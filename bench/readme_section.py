"""bench/README.md holds one section per benchmark, each between its own markers.

A benchmark rewrites only its own section (``<!-- NAME:start -->`` ... ``<!-- NAME:end -->``),
re-reading the file right before, so that benchmarks run one after another (or a hand edit
meanwhile) keep each other's text; notes written by hand between ``<!-- NAME:notes -->`` and
``<!-- NAME:notes-end -->`` inside a section survive the rewrite.
"""

from __future__ import annotations

import os
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(name: str, body: str, readme: Path = README) -> None:
    """Replace section ``name`` of ``readme`` with ``body`` (append it if the file has none)."""
    start, end = markers(name)
    notes_start, notes_end = f"<!-- {name}:notes -->", f"<!-- {name}:notes-end -->"
    old = readme.read_text() if readme.exists() else "# Benchmarks\n"
    section = f"{start}\n{body.strip()}\n"
    a, b = old.find(start), old.find(end)
    if a >= 0 and b > a:
        current = old[a:b]
        n, m = current.find(notes_start), current.find(notes_end)
        if n >= 0 and m > n:
            section += "\n" + current[n:m + len(notes_end)] + "\n"
        new = old[:a] + section + old[b:]
    else:
        new = old.rstrip("\n") + "\n\n" + section + end + "\n"
    tmp = readme.with_name(f"{readme.name}.tmp{os.getpid()}")
    tmp.write_text(new)
    os.replace(tmp, readme)
