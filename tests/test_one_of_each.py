"""One of each (#15): one atomic-write family, one lock helper, one Layout, and what they promise."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import ROOT, python_recipe

from sage_build.base import atomic
from sage_build.base.layout import Layout, TreeLayout, owners_dir_of
from sage_build.base.lock import locked, prefix_lock

SRC = ROOT / "src" / "sage_build"


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# -- one atomic write ---------------------------------------------------------------


def test_a_killed_store_leaves_a_temporary_that_the_next_store_sweeps(tree):
    # A kill while _store_wheel copies a wheel from another file system leaves
    # ".<wheel>.sbtmp-PID-N" in var/lib/sage/wheels; nothing installs into that directory, so
    # the store itself sweeps it (and keeps a living process's).
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": "V = 1\n"})
    tree.configure()
    tree.make("python3-venv")
    wheels = tree.prefix / "var/lib/sage/wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    stale = wheels / f".alpha-0.9-py3-none-any.whl{atomic.TMP_MARK}{_dead_pid()}-0"
    alive = wheels / f".alpha-0.9-py3-none-any.whl{atomic.TMP_MARK}{os.getpid()}-0"
    stale.write_bytes(b"half a whe")
    alive.write_bytes(b"being copied")
    tree.make("alpha")
    assert (wheels / "alpha-1.0-py3-none-any.whl").is_file()
    assert not stale.exists() and alive.exists()


def test_move_atomic_across_file_systems_copies_under_a_marked_temporary(tmp_path, monkeypatch):
    source, target = tmp_path / "build" / "w.whl", tmp_path / "wheels" / "w.whl"
    source.parent.mkdir()
    target.parent.mkdir()
    source.write_bytes(b"wheel")
    real_replace = os.replace
    temporaries = []

    def replace(src, dst):
        if Path(src) == source:  # the rename a single file system would allow
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        temporaries.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    atomic.move_atomic(source, target)
    assert target.read_bytes() == b"wheel" and not source.exists()
    [name] = temporaries  # what a kill during the copy would have left: the sweep's to remove
    assert name.startswith(".w.whl" + atomic.TMP_MARK) and f"{atomic.TMP_MARK}{atomic.owner_id()}-" in name
    assert sorted(os.listdir(target.parent)) == ["w.whl"]


def test_write_atomic_modes_and_a_failed_writer_leaves_nothing(tmp_path):
    metadata = tmp_path / "new" / "dir" / "meta.json"
    atomic.write_atomic(metadata, b"{}\n", mode=0o600)  # its directory is made
    assert metadata.read_bytes() == b"{}\n" and metadata.stat().st_mode & 0o777 == 0o600
    old = os.umask(0o027)
    try:
        atomic.write_atomic(tmp_path / "m.pyc", b"pyc", mode=None)  # as created: the umask applies
    finally:
        os.umask(old)
    assert (tmp_path / "m.pyc").stat().st_mode & 0o777 == 0o640
    try:
        with atomic.replacing(tmp_path / "meta.json") as tmp:
            Path(tmp).write_bytes(b"hal")
            raise RuntimeError("the writer failed")
    except RuntimeError:
        pass
    assert sorted(os.listdir(tmp_path)) == ["m.pyc", "new"]


# Every rename left in src/ is one of these (the rest go through base.atomic).
_RENAMES = {
    "base/atomic.py": "the atomic-write family itself",
    "base/events.py": "rotating the events log (a log moves, nothing is written)",
    "install/uninstall.py": "the removal journal: a stamp moves into .removing/ and back",
    "install/wheel.py": "publish_file: link if absent, replace only our own files",
    "pipeline/fetch.py": "a verified download (kept partial for resuming, under its lock) and a bad file set aside",
    "pipeline/spkg.py": "a pip package's downloads: a whole directory (under a marked name) renamed into place",
}


def test_no_hand_made_atomic_writes_or_locks_are_left():
    renames, flocks, tmp_names = set(), set(), []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        text = path.read_text()
        if "os.replace(" in text or "os.rename(" in text:
            renames.add(rel)
        if "fcntl.flock(" in text:
            flocks.add(rel)
        tmp_names += [f"{rel}: {m}" for m in re.findall(r"\.tmp\{|\.tmp\"|\.normalizing|\.part-\{", text)]
    assert renames <= set(_RENAMES), renames - set(_RENAMES)
    # base/atomic.py keeps the owner lock: the byte-code compiler imports it, never base.lock.
    assert flocks == {"base/lock.py", "base/atomic.py"}, flocks
    assert tmp_names == []


# -- one lock helper ----------------------------------------------------------------


def test_locked_says_whether_it_waited(tmp_path):
    path = tmp_path / "locks" / "p.lock"  # its directory is made
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locked(path) as waited:
            assert waited is False
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    said = []

    def on_wait() -> None:
        said.append(time.monotonic())
        release.set()  # the holder lets go once we wait

    with locked(path, on_wait=on_wait) as waited:
        assert waited is True and len(said) == 1
    holder.join(10)
    with locked(path, shared=True) as first, locked(path, shared=True, on_wait=on_wait) as second:
        assert (first, second) == (False, False) and len(said) == 1  # readers do not wait for readers


def test_the_prefix_lock_excludes_a_remover_while_one_publishes(tmp_path):
    lock_file = tmp_path / "var/lib/sage/prefix.lock"
    with prefix_lock(lock_file, shared=True):
        waits = []
        done = threading.Event()

        def remove() -> None:
            with locked(lock_file, on_wait=lambda: waits.append(1)):
                done.set()

        remover = threading.Thread(target=remove)
        remover.start()
        assert not done.wait(0.3) and waits == [1]
    remover.join(10)
    assert done.is_set()
    with prefix_lock(None, shared=False):  # no prefix lock: nothing to hold
        pass


# -- one Layout -----------------------------------------------------------------------


def test_layout_paths_are_the_on_disk_contracts(tmp_path):
    layout = Layout(sage_root=tmp_path / "root", prefix=Path("/opt/sage"), destdir=tmp_path / "stage")
    var = tmp_path / "stage/opt/sage/var/lib/sage"
    assert layout.lock_file == var / "prefix.lock"
    assert layout.package_lock("beta") == var / "locks/beta.lock"
    assert layout.owners_dir == owners_dir_of(layout.lock_file) == var / "locks/owners"
    assert layout.target_file == var / "target-python.json"
    assert layout.python_final == Path("/opt/sage/bin/python3")
    assert layout.python == tmp_path / "stage/opt/sage/bin/python3" and layout.bin_dir == layout.python.parent
    tree = TreeLayout(tmp_path / "root")
    for name in ("pkgs_dir", "make_dir", "makefile", "hashes_dir", "config_file", "logs_dir", "events_file",
                 "timeline_file", "upstream"):
        assert getattr(tree, name) == getattr(layout, name), name
    assert tree.makefile == tmp_path / "root/build/make/Makefile"
    assert tree.events_file == tmp_path / "root/logs/events.jsonl"
    assert tree.plan_file("s1") == tmp_path / "root/logs/plan-s1.json"
    assert Layout(tmp_path, Path("/p"), upstream_dir=Path("/u")).upstream == Path("/u")
