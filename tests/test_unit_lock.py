"""base/lock.py, in process: shared and exclusive prefix locks exclude each other."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import ROOT
from sage_build.base.lock import prefix_lock


def _can_lock(path, mode) -> bool:
    """Whether a lock of ``mode`` can be had now, on a second open file description."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_no_lock_file_is_a_no_op():
    with prefix_lock(None, shared=False):
        pass


def test_shared_admits_shared_and_excludes_exclusive(tmp_path):
    lock = tmp_path / "var" / "lib" / "sage" / "prefix.lock"
    with prefix_lock(lock, shared=True):
        assert lock.is_file()  # its directory made on the way
        assert _can_lock(lock, fcntl.LOCK_SH)
        assert not _can_lock(lock, fcntl.LOCK_EX)
    assert _can_lock(lock, fcntl.LOCK_EX)


def test_exclusive_excludes_shared_and_exclusive(tmp_path):
    lock = tmp_path / "prefix.lock"
    with prefix_lock(lock, shared=False):
        assert not _can_lock(lock, fcntl.LOCK_SH)
        assert not _can_lock(lock, fcntl.LOCK_EX)
    assert _can_lock(lock, fcntl.LOCK_EX)


def test_an_exception_releases_the_lock(tmp_path):
    lock = tmp_path / "prefix.lock"
    with pytest.raises(RuntimeError):
        with prefix_lock(lock, shared=False):
            raise RuntimeError("boom")
    assert _can_lock(lock, fcntl.LOCK_EX)


# Another process takes the prefix lock, says when it has it, and holds it until stdin closes.
TAKER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {src!r})
    from pathlib import Path
    from sage_build.base.lock import prefix_lock
    with prefix_lock(Path({lock!r}), shared={shared!r}):
        print("locked", time.monotonic(), flush=True)
        sys.stdin.read()
""")


def _line(child: subprocess.Popen, timeout: float) -> str | None:
    """The child's next line, or None if it says nothing within ``timeout`` seconds."""
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    return child.stdout.readline() if ready else None


def _taker(lock, shared: bool) -> subprocess.Popen:
    code = TAKER.format(src=str(ROOT / "src"), lock=str(lock), shared=shared)
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_another_process_waits_for_the_exclusive_lock_until_publishers_leave(tmp_path):
    lock = tmp_path / "prefix.lock"
    with prefix_lock(lock, shared=True):
        child = _taker(lock, shared=False)
        try:
            assert _line(child, 1.5) is None  # still waiting in flock
        except BaseException:
            child.kill()
            raise
        released = time.monotonic()
    line = _line(child, 30)
    assert line.startswith("locked "), line
    assert float(line.split()[1]) >= released
    # while it holds the exclusive lock, nobody publishes
    assert not _can_lock(lock, fcntl.LOCK_SH)
    child.communicate("", timeout=30)
    assert child.returncode == 0
    assert _can_lock(lock, fcntl.LOCK_EX)


def test_two_processes_publish_at_the_same_time(tmp_path):
    lock = tmp_path / "prefix.lock"
    with prefix_lock(lock, shared=True):
        child = _taker(lock, shared=True)
        try:
            line = _line(child, 30)  # not blocked by our shared lock
            assert line is not None and line.startswith("locked "), line
            assert not _can_lock(lock, fcntl.LOCK_EX)
        finally:
            child.kill()
            child.communicate(timeout=30)
