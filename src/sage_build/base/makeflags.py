"""What make tells the recipes it runs, through MAKEFLAGS: the job budget and dry runs.

Kept apart (and light) because every sage-spkg and install process asks.
"""

from __future__ import annotations

import os
import re
from typing import Mapping


def make_dry_run(environ=os.environ) -> bool:
    """Whether make runs us under -n or -q: make runs '+' lines even then; we must only say so."""
    flags = environ.get("MAKEFLAGS", "").split()
    return bool(flags) and not flags[0].startswith("-") and any(c in flags[0] for c in "nq")


def job_budget(environ: Mapping[str, str] = os.environ) -> int:
    """How many jobs a build may run at once: make's -jN, else SAGE_NUM_THREADS, else 1."""
    match = re.search(r"(?:^|\s)-j\s*(\d+)", " " + environ.get("MAKEFLAGS", ""))
    if match:
        return max(1, int(match.group(1)))
    try:
        return max(1, int(environ.get("SAGE_NUM_THREADS", "1")))
    except ValueError:
        return 1
