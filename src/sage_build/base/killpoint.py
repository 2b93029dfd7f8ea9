"""Deterministic kill points for crash tests.

``SAGE_TEST_KILL_AT=<point>`` (or ``<point>#<n>``, the n-th time it is reached) makes the
process SIGKILL itself when it reaches that point, so a test can prove what a kill at each
step leaves behind instead of hoping a random delay hits it.  Unset (always, outside the
tests) it costs one comparison.  Standard library only.
"""

from __future__ import annotations

import os
import signal

_seen = 0


def reach(point: str) -> None:
    """Die here (SIGKILL, no clean-up) if the tests asked for this point."""
    global _seen
    # Read at each point, not at import: the session worker imports this once for many packages.
    wanted, _, count = os.environ.get("SAGE_TEST_KILL_AT", "").partition("#")
    if point != wanted:
        return
    _seen += 1
    if _seen >= (int(count) if count.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
