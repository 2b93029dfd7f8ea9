"""One of each (#15): one atomic-write family, one lock helper, one Layout, and what they promise."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sage_build.base.layout import Layout, TreeLayout, owners_dir_of
from sage_build.base.lock import locked, prefix_lock


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
