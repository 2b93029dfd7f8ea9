"""Deterministic kill points for crash tests.

``SAGE_TEST_KILL_AT=<point>`` (or ``<point>#<n>``, the n-th time it is reached) makes the
process SIGKILL itself when it reaches that point, so a test can prove what a kill at each
step leaves behind instead of hoping a random delay hits it.  Unset (always, outside the
tests) it costs one comparison.  Standard library only.
"""

from __future__ import annotations

import os
import signal

_WANTED = os.environ.get("SAGE_TEST_KILL_AT", "")
_POINT, _, _COUNT = _WANTED.partition("#")
_seen = 0


def reach(point: str) -> None:
    """Die here (SIGKILL, no clean-up) if the tests asked for this point."""
    global _seen
    if point != _POINT:
        return
    _seen += 1
    if _seen >= (int(_COUNT) if _COUNT.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
