"""How the per-package command-line entry points end."""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """Exit with ``code`` without the interpreter's teardown.

    sage-spkg runs once per package, and tearing down the modules a build has loaded
    (installer, email, jinja2, packaging ...) costs every package time for nothing
    (bench/README.md, "Measurements behind the design"): by the time an entry point returns, its logs, manifests and stamps are closed
    (written with ``os.write`` or through closed files) and its child processes have
    ended.  Only the standard streams still hold buffered output.
    """
    from sage_build.base.atomic import release_owner_lock

    release_owner_lock()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:  # None: the descriptor was closed when the process started
                stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to say
            pass
    os._exit(code)
