"""Locks: the one place that opens and flocks a lock file.

:func:`locked` holds a lock file (shared or exclusive) for a ``with`` block and says whether it
had to wait for another holder.  The locks built on it:

* the prefix lock (:func:`prefix_lock`, ``var/lib/sage/prefix.lock``): shared while publishing
  files, exclusive while removing them.  Installs of different packages publish at the same time
  (shared); an uninstall removes files only when nobody publishes (exclusive), so it never deletes
  a directory that a concurrent install is filling.  Never held during a build or a download,
  never nested.  Installed spkg-piprm scripts take it themselves (standard library only).
* the package locks (``var/lib/sage/locks/<pkg>.lock``, ``face.spkg_command.package_lock``): one
  sage-spkg per package and prefix.
* the download locks (``upstream/.<tarball>.lock``, ``pipeline.fetch``): one fetch per tarball.
* a make session's worker lock (:func:`try_lock`, ``face.spkg_worker``): one worker a session,
  held for the worker's life.

The owner locks (``var/lib/sage/locks/owners/<pid>.lock``) stay in :mod:`sage_build.base.atomic`:
they are held for a process's life, not a block, and the byte-code compiler, which imports
atomic under the target Python, must not import this module (an import-linter contract).

The paths are on-disk contracts (:class:`sage_build.base.layout.Layout`); an flock is released
when its descriptor is closed or its process ends, killed or not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Callable, Iterator


@contextlib.contextmanager
def locked(path: Path, *, shared: bool = False, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
    """Hold ``path``'s flock (made with its directory if missing) for a ``with`` block; yield whether
    another holder made us wait.  ``on_wait`` is called once before waiting (to say why nothing
    happens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # os.open's descriptors are not inherited by children (PEP 446): a build that outlives us
    # cannot keep the lock.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            waited = False
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, mode)
            waited = True
        yield waited
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def prefix_lock(lock_file: Path | None, *, shared: bool) -> Iterator[None]:
    """Hold the prefix's lock (no-op when ``lock_file`` is None)."""
    if lock_file is None:
        yield
        return
    with locked(lock_file, shared=shared):
        yield


def try_lock(path: str | os.PathLike[str]) -> int | None:
    """Take ``path``'s exclusive flock without waiting (the file is made if missing); return the
    descriptor that holds it (closing it releases the lock), or None when another process holds it.

    For a lock held for a whole process's life (a make session's worker), or a look whether
    such a process is alive (take it and close it at once)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
