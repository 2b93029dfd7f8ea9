"""The per-prefix lock: shared while publishing files, exclusive while removing them.

Installs of different packages publish at the same time (shared); an uninstall
removes files only when nobody publishes (exclusive), so it never deletes a
directory that a concurrent install is filling.  Never held during a build or
a download, never nested.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def prefix_lock(lock_file: Path | None, *, shared: bool) -> Iterator[None]:
    """Hold the prefix's lock (no-op when ``lock_file`` is None)."""
    if lock_file is None:
        yield
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
