"""Running a helper program: its output, with one way to say why it failed, and the
environment it inherits."""

from __future__ import annotations

import os
import subprocess
from typing import Callable, Mapping, Sequence


def inherited_environment(**changes: str) -> dict[str, str]:
    """The environment a helper program starts with: this process's, with ``changes``.

    The one place below the face that touches ``os.environ``, and only to hand it on to a
    child (pip, apt-get, an interpreter, a recipe's script), which reads its own variables;
    a setting of ours is read by the face and passed as a parameter."""
    return {**os.environ, **changes}


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
