"""base/atomic.py, in process: atomic replacement, temporary names, owner locks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT
from sage_build.base import atomic
from sage_build.base.atomic import TMP_MARK


@pytest.fixture
def own_owner_lock(monkeypatch):
    """This process's owner-lock state as at its start: an in-process install run by another test
    in this worker holds its owner lock for the process's life (hold_owner_lock would keep that)."""
    monkeypatch.setattr(atomic, "_owner_lock", None)
    monkeypatch.setattr(atomic, "_PID", os.getpid())


def test_write_atomic_replaces_the_file_a_reader_holds_open(tmp_path):
    target = tmp_path / "sub" / "meta.json"
    atomic.write_atomic(target, b"old\n")
    assert target.read_bytes() == b"old\n"
    with open(target, "rb") as reader:
        atomic.write_atomic(target, b"new contents\n", mode=0o600)
        # a rename: the reader keeps the whole old file, a new open sees the whole new one
        assert reader.read() == b"old\n"
    assert target.read_bytes() == b"new contents\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(target.parent)) == ["meta.json"]  # no temporary left behind


def test_write_atomic_writes_through_a_marked_temporary_of_this_process(tmp_path, monkeypatch):
    seen = []
    real_create = atomic.create

    def create(path, mode=0o644):
        seen.append(str(path))
        return real_create(path, mode)

    monkeypatch.setattr(atomic, "create", create)
    target = tmp_path / "stamp"
    atomic.write_atomic(target, b"x")
    [tmp] = seen
    assert os.path.dirname(tmp) == str(tmp_path)  # beside its target: same file system, rename works
    assert os.path.basename(tmp).startswith(f".stamp{TMP_MARK}{os.getpid()}-")
    assert not os.path.exists(tmp)
    assert target.read_bytes() == b"x"


def test_a_write_that_fails_half_way_leaves_the_target_whole(tmp_path, monkeypatch):
    target = tmp_path / "stamp"
    atomic.write_atomic(target, b"before\n")

    def torn(fd, data):
        os.write(fd, data[:3])
        raise OSError("disk full")

    monkeypatch.setattr(atomic, "write_all", torn)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_atomic(target, b"after, longer\n")
    assert target.read_bytes() == b"before\n"
    # whatever stays behind is recognisable by the sweep: marked, and named after its owner
    for leftover in set(os.listdir(tmp_path)) - {"stamp"}:
        assert leftover.startswith(f".stamp{TMP_MARK}{os.getpid()}-"), leftover


def test_tmp_names_are_unique_and_carry_mark_and_pid(tmp_path):
    target = tmp_path / "dir" / "file.txt"
    names = {atomic.tmp_name(target) for _ in range(50)}
    assert len(names) == 50
    for name in names:
        directory, base = os.path.split(name)
        assert directory == str(tmp_path / "dir")
        head, _, counter = base.rpartition("-")
        assert head == f".file.txt{TMP_MARK}{os.getpid()}" and counter.isdigit()
    assert atomic.owner_id() == os.getpid()


def test_adopt_owner_names_temporaries_after_the_adopted_pid(tmp_path):
    try:
        atomic.adopt_owner(424242)
        assert atomic.owner_id() == 424242
        assert f"{TMP_MARK}424242-" in atomic.tmp_name(tmp_path / "x")
    finally:
        atomic.adopt_owner(os.getpid())
    assert f"{TMP_MARK}{os.getpid()}-" in atomic.tmp_name(tmp_path / "x")


def test_a_forked_child_names_its_temporaries_after_itself(tmp_path, own_owner_lock):
    owners = tmp_path / "owners"
    atomic.hold_owner_lock(owners)
    parent_lock = Path(atomic.owner_lock_path(owners, os.getpid()))
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, release (must not touch the parent's lock), exit at once
            try:
                name = os.path.basename(atomic.tmp_name(tmp_path / "f"))
                atomic.release_owner_lock()
                os.write(write, f"{os.getpid()} {atomic.owner_id()} {name}".encode())
            finally:
                os._exit(0)
        os.close(write)
        report = os.read(read, 4096).decode()
        os.close(read)
        os.waitpid(pid, 0)
        child_pid, child_owner, child_name = report.split(" ")
        assert int(child_pid) == pid and int(child_owner) == pid
        assert child_name.startswith(f".f{TMP_MARK}{pid}-")
        # the child's release left the parent's owner lock in place, and held
        assert parent_lock.exists()
        assert atomic.owner_alive(owners, os.getpid())
        assert f"{TMP_MARK}{os.getpid()}-" in atomic.tmp_name(tmp_path / "f")
    finally:
        atomic.release_owner_lock()
    assert not parent_lock.exists()


def test_hold_and_release_owner_lock_in_this_process(tmp_path, own_owner_lock):
    owners = tmp_path / "locks" / "owners"
    atomic.hold_owner_lock(owners)
    try:
        lock = Path(atomic.owner_lock_path(owners, os.getpid()))
        assert lock == owners / f"{os.getpid()}.lock"
        assert lock.exists()
        atomic.hold_owner_lock(owners)  # a second call keeps the one lock
        assert os.listdir(owners) == [lock.name]
        # a lock on another open file description conflicts even inside this process
        assert atomic.owner_alive(owners, os.getpid()) is True
    finally:
        atomic.release_owner_lock()
    assert not lock.exists()
    atomic.release_owner_lock()  # idempotent


# A child that takes its owner lock, says so, and waits for a line on stdin.
HOLDER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {src!r})
    from sage_build.base import atomic
    atomic.hold_owner_lock({owners!r})
    print("held", flush=True)
    sys.stdin.readline()
    if {clean!r}:
        atomic.release_owner_lock()
""")


def _holder(owners: Path, clean: bool = False) -> subprocess.Popen:
    code = HOLDER.format(src=str(ROOT / "src"), owners=str(owners), clean=clean)
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "held\n"
    return child


def test_owner_alive_for_a_live_owner_then_after_its_clean_exit(tmp_path):
    owners = tmp_path / "owners"
    child = _holder(owners, clean=True)
    try:
        assert (owners / f"{child.pid}.lock").exists()
        assert atomic.owner_alive(owners, child.pid) is True
    finally:
        child.communicate("\n", timeout=30)
    assert child.returncode == 0
    assert not (owners / f"{child.pid}.lock").exists()  # released and removed at a clean exit
    assert atomic.owner_alive(owners, child.pid) is False  # reaped: no lock file, no process


def test_owner_alive_for_a_killed_and_reaped_owner(tmp_path):
    owners = tmp_path / "owners"
    child = _holder(owners)
    child.kill()
    child.wait()
    child.stdin.close()
    child.stdout.close()
    assert (owners / f"{child.pid}.lock").exists()  # a kill leaves the file, without its lock
    assert atomic.owner_alive(owners, child.pid) is False


def test_owner_alive_for_a_killed_owner_nobody_reaped(tmp_path):
    owners = tmp_path / "owners"
    child = _holder(owners)
    try:
        os.kill(child.pid, signal.SIGKILL)
        # wait until it is dead, but leave it in the process table (a zombie)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        os.kill(child.pid, 0)  # the process table still says it exists ...
        assert atomic.owner_alive(owners, child.pid) is False  # ... the lock says it is gone
        # without an owners directory only the process table can be asked
        assert atomic.owner_alive(None, child.pid) is True
    finally:
        child.wait()
        child.stdin.close()
        child.stdout.close()


def test_owner_alive_without_a_lock_asks_the_process_table(tmp_path):
    assert atomic.owner_alive(None, os.getpid()) is True
    assert atomic.owner_alive(tmp_path / "no-owners", os.getpid()) is True
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert atomic.owner_alive(None, child.pid) is False
    assert atomic.owner_alive(tmp_path / "no-owners", child.pid) is False
