"""Running a helper program for its output, with one way to say why it failed."""

from __future__ import annotations

import subprocess
from typing import Callable, Mapping, Sequence


def output_of(command: Sequence[str], *, error: Callable[[str], Exception], timeout: float,
              env: Mapping[str, str] | None = None) -> str:
    """The standard output of ``command``; if it cannot start, times out or exits non-zero,
    raise ``error(why)``, ``why`` saying which (with the end of its standard error)."""
    try:
        result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout,
                                env=dict(env) if env is not None else None)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise error(str(exc)) from None
    if result.returncode != 0:
        raise error(f"exit {result.returncode}: {result.stderr.strip()[-2000:]}")
    return result.stdout
