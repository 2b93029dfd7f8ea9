"""Atomic file writes: a temporary file beside the target, then a link or a rename.

No reader ever sees half a file, and a killed writer leaves only temporaries
whose names carry :data:`TMP_MARK` and its process id, so that the next install
into that directory can remove them (``install.cleanup_stale_temporaries``).

Standard library only: the prefix's interpreter imports this module too
(through :mod:`sage_build.bytecode`), and sage-spkg imports it before it needs
the heavier install machinery.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

TMP_MARK = ".sbtmp-"
_PID = os.getpid()
_counter = itertools.count()


def _after_fork() -> None:
    # a forked child inherits _PID and the counter: without this it would pick its parent's
    # (and its siblings') temporary names
    global _PID
    _PID = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


def tmp_name(target: str | os.PathLike[str]) -> str:
    """A temporary name beside ``target``, recognisable (and owned by this process) for clean-up."""
    directory, name = os.path.split(target)
    return os.path.join(directory, f".{name}{TMP_MARK}{_PID}-{next(_counter)}")


def make_dirs(path: str | os.PathLike[str]) -> None:
    """``mkdir -p`` that tolerates a concurrent uninstall removing a parent in between."""
    for _ in range(10):
        try:
            os.makedirs(path, exist_ok=True)
            return
        except FileNotFoundError:
            continue
    os.makedirs(path, exist_ok=True)


def create(path: str | os.PathLike[str], mode: int = 0o644) -> int:
    """Open a new file for writing (a descriptor), re-making its directory if a concurrent uninstall
    just removed it (an uninstall removes only empty directories, so once the file exists the
    directory stays)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for attempt in range(10):
        try:
            return os.open(path, flags, mode)
        except FileNotFoundError:
            if attempt == 9:
                raise
            make_dirs(os.path.dirname(path))
    raise AssertionError("not reached")


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written (a write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def power_loss_safe() -> bool:
    """SAGE_INSTALL_FSYNC=yes: fsync every file before it is published, and its directory after.

    Without it installs are SIGKILL-safe (no torn file, ever) but a power loss may lose the
    last writes; with it they survive a power loss too, at the cost of much slower installs."""
    return os.environ.get("SAGE_INSTALL_FSYNC", "no").lower() in ("yes", "1", "true")


def sync_file(fd: int) -> None:
    if power_loss_safe():
        os.fsync(fd)


def sync_directory(directory: str | os.PathLike[str]) -> None:
    if power_loss_safe():
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(target: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a whole file atomically, replacing what was there (for our own metadata)."""
    make_dirs(target.parent)
    tmp = tmp_name(target)
    fd = create(tmp)
    try:
        write_all(fd, data)
        sync_file(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, target)
    sync_directory(target.parent)
