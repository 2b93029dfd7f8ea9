"""Atomic file writes: a temporary file beside the target, then a link or a rename.

No reader ever sees half a file, and a killed writer leaves only temporaries
whose names carry :data:`TMP_MARK` and its owner's process id, so that the next
install into that directory can remove them (``install.wheel.cleanup_stale_temporaries``).
Every writer of a whole file goes through one family here: :func:`write_atomic` (bytes),
:func:`replacing` (a writer that makes the file itself: a zip writer, a download) and
:func:`move_atomic` (a finished file, from another file system too); the install layer's
publishing (link if absent) builds on :func:`tmp_name` and :func:`create`.
An installing process holds an owner lock (:func:`hold_owner_lock`) for its whole
life: the sweep asks that lock, not the process table, whether the owner still
writes (a killed process that nobody has reaped yet still has its pid, but no lock).

Standard library only: the prefix's interpreter imports this module too
(through :mod:`sage_build.install.bytecode`), and sage-spkg imports it before it needs
the heavier install machinery.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
from typing import Iterator, Mapping

TMP_MARK = ".sbtmp-"
_PID = os.getpid()
_counter = itertools.count()
_owner_lock: tuple[int, str] | None = None  # (descriptor, path) while this process holds its owner lock


def _after_fork() -> None:
    # a forked child inherits _PID and the counter: without this it would pick its parent's
    # (and its siblings') temporary names.  Its parent's owner lock stays its parent's: the child
    # must not remove it when it exits (its own temporaries are judged by its pid).
    global _PID, _owner_lock
    _PID = os.getpid()
    _owner_lock = None


os.register_at_fork(after_in_child=_after_fork)


def tmp_name(target: str | os.PathLike[str]) -> str:
    """A temporary name beside ``target``, recognisable (and owned by this process) for clean-up."""
    directory, name = os.path.split(target)
    return os.path.join(directory, f".{name}{TMP_MARK}{_PID}-{next(_counter)}")


def owner_id() -> int:
    """The id that this process's temporary names carry."""
    return _PID


def adopt_owner(pid: int) -> None:
    """Name this process's temporaries after ``pid``, whose owner lock covers them (a byte-code
    compiler working for an install: when the install dies, its helpers' temporaries are stale too)."""
    global _PID
    _PID = pid


def owner_lock_path(owners_dir: str | os.PathLike[str], pid: int) -> str:
    return os.path.join(owners_dir, f"{pid}.lock")


def hold_owner_lock(owners_dir: str | os.PathLike[str]) -> None:
    """Hold ``owners_dir/<pid>.lock`` until this process ends: its temporaries are alive while it does.

    An flock is released when its process ends, zombie or not, and no other process
    takes this process's lock, so the sweep can tell a dead install from a live one
    whatever the process table says (see :func:`owner_alive`)."""
    global _owner_lock
    if _owner_lock is not None:
        return
    os.makedirs(owners_dir, exist_ok=True)
    path = owner_lock_path(owners_dir, _PID)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # removed by its previous owner's exit while we waited: take the new one
    _owner_lock = (fd, path)


def release_owner_lock() -> None:
    """At a clean exit: remove this process's owner lock (a killed process leaves an empty file)."""
    global _owner_lock
    if _owner_lock is None:
        return
    fd, path = _owner_lock
    _owner_lock = None
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.close(fd)


def owner_alive(owners_dir: str | os.PathLike[str] | None, pid: int) -> bool:
    """Whether the temporaries named after ``pid`` may still be written to.

    With an owner lock: alive while somebody holds it.  Without one (a writer that took
    none, or a sweep that knows no owners directory): alive while the pid exists."""
    if owners_dir is not None:
        try:
            fd = os.open(owner_lock_path(owners_dir, pid), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            pass
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return False
            except BlockingIOError:
                return True
            finally:
                os.close(fd)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


_power_loss_safe = False  # set once by the command (the face: SAGE_INSTALL_FSYNC), never read here


def set_power_loss_safe(on: bool) -> None:
    """Whether this process fsyncs every file before it is published, and its directory after.

    Off (the default), installs are SIGKILL-safe (no torn file, ever) but a power loss may lose
    the last writes; on, they survive a power loss too, at the cost of much slower installs.
    The command sets it once (``face.settings.configure_writes``, from SAGE_INSTALL_FSYNC); the
    byte-code compiler's children get it in their request."""
    global _power_loss_safe
    _power_loss_safe = on


def power_loss_safe_asked(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` (the command's: the face's settings, ``python -m sage_build.install``)
    asks for power-loss-safe writes: SAGE_INSTALL_FSYNC=yes (or 1, true)."""
    return environ.get("SAGE_INSTALL_FSYNC", "no").lower() in ("yes", "1", "true")


def power_loss_safe() -> bool:
    """What :func:`set_power_loss_safe` said (off unless a command turned it on)."""
    return _power_loss_safe


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


@contextlib.contextmanager
def replacing(target: str | os.PathLike[str], mode: int | None = None) -> Iterator[str]:
    """A marked temporary name beside ``target`` for a writer that makes the whole file itself.

    When the block ends the file replaces ``target`` atomically (made ``mode`` first, unless
    None); when it fails the temporary is removed; when the process is killed, the temporary is
    left to the sweep (its name carries :data:`TMP_MARK` and this process's id)."""
    tmp = tmp_name(target)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        if power_loss_safe():
            fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)  # the writer's descriptor is closed by now
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    sync_directory(os.path.dirname(target) or ".")


def write_atomic(target: str | os.PathLike[str], data: bytes, mode: int | None = 0o644) -> None:
    """Write a whole file atomically, replacing what was there.

    ``mode`` None keeps what :func:`create` gives (0644 less the umask, as for installed files:
    the byte-code compiler's .pyc files); our own metadata is made exactly ``mode``.  A missing
    directory is made (by :func:`create`, only when the first attempt finds none: the compiler
    writes thousands of files into directories that exist)."""
    with replacing(target, mode) as tmp:
        fd = create(tmp)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)


def move_atomic(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Move a finished file to ``target``, replacing what was there: a rename; from another file
    system, a copy to a marked temporary beside ``target`` first, then a rename (never half a file
    at ``target``, and a killed copy is left to the sweep)."""
    try:
        os.replace(source, target)
        return
    except OSError:  # another file system (EXDEV) and the like: renaming beside the target works
        pass
    import shutil  # only across file systems: the byte-code compiler imports this module too

    with replacing(target) as tmp:
        shutil.copy2(source, tmp)
    os.unlink(source)
