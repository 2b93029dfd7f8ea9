"""What make tells the recipes it runs, through MAKEFLAGS: the job budget and dry runs.

Kept apart (and light) because every sage-spkg and install process asks.
"""

from __future__ import annotations

import re
from typing import Mapping


def make_letters(environ: Mapping[str, str]) -> str:
    """make's single-letter flags (MAKEFLAGS' first word, unless it starts with '-')."""
    flags = environ.get("MAKEFLAGS", "").split()
    return flags[0] if flags and not flags[0].startswith("-") else ""


def make_dry_run(environ: Mapping[str, str]) -> str:
    """The dry-run flag make runs us under ('n', 'q' or 't'), else ''.

    The generated Makefile starts no build under -n and -q (Sage's PLUS), but make runs '+'
    lines even then (a sub-make's, a rule of an older Makefile), and under -t it runs the
    build lines on purpose rather than touch the stamps: we must only say what we would do."""
    letters = make_letters(environ)
    return next((flag for flag in "nqt" if flag in letters), "")


_JOBS = re.compile(r"(?:^|\s)-j\s*(\d+)")


def job_budget(environ: Mapping[str, str]) -> int:
    """How many jobs a build may run at once: make's -jN, else SAGE_NUM_THREADS, else 1."""
    match = _JOBS.search(" " + environ.get("MAKEFLAGS", ""))
    if match:
        return max(1, int(match.group(1)))
    try:
        return max(1, int(environ.get("SAGE_NUM_THREADS", "1")))
    except ValueError:
        return 1
