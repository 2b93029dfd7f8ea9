"""A forced rebuild killed after each step of uninstall-old, install and record (deterministic
kill points, SAGE_TEST_KILL_AT: see sage_build/killpoint.py).

Afterwards either the old version is whole with its stamp (and its stored wheel), or there is no
stamp and make and the plan rebuild it: never a stamp on a half-removed package.  Running the
target again gives the tree of a clean install.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, Tree, add_recipe, python_recipe

pytestmark = pytest.mark.slow

PYTHON_POINTS = [
    "uninstall-keep", "uninstall-journal", "uninstall-prerm",
    "piprm-unlink", "piprm-unlink#3", "piprm-record",   # inside spkg-piprm, a process of its own
    "uninstall-piprm", "uninstall-files", "uninstall-postrm", "uninstall-scripts", "uninstall-stamp",
    "install-stored", "install-staged", "install-published", "install-published#3", "install-wheel",
    "record-scripts", "record-manifest",
]
# A package of staged files (no wheel): its manifest lists them, and merge_staging publishes them.
SCRIPT_POINTS = ["uninstall-journal", "uninstall-files", "uninstall-stamp", "install-merged", "record-manifest"]
SAGE_F, SAGE_SPKG = "./sage -f", "sage-spkg"
CASES = [("a", p, SAGE_F) for p in PYTHON_POINTS] + [("clib", p, SAGE_F) for p in SCRIPT_POINTS] \
    + [("a", "uninstall-files", SAGE_SPKG), ("a", "record-manifest", SAGE_SPKG)]
# Killed before the old stamp moves to the journal, or (without make) after the new one is written.
# make deletes a target that a killed recipe has written: under make the new stamp goes again.
WHOLE = {("uninstall-keep", SAGE_F), ("uninstall-keep", SAGE_SPKG), ("record-manifest", SAGE_SPKG)}
JOURNALED = {"uninstall-journal", "uninstall-prerm", "piprm-unlink", "piprm-unlink#3", "piprm-record",
             "uninstall-piprm", "uninstall-files", "uninstall-postrm", "uninstall-scripts"}


def _state(prefix: Path) -> dict[str, object]:
    """The prefix as a clean install defines it: every file and directory, without what differs
    between two installs of the same thing (build directories, locks, install dates, the
    timestamp in a .pyc's header, a rebuilt wheel's zip dates)."""
    state: dict[str, object] = {}
    for path in sorted(prefix.rglob("*")):
        rel = path.relative_to(prefix).as_posix()
        if rel.startswith(("var/tmp", "var/lib/sage/locks")) or rel == "var/lib/sage/prefix.lock":
            continue
        if path.is_symlink():
            state[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            state[rel] = "dir"
        elif path.suffix == ".pyc":
            state[rel] = path.read_bytes()[16:]
        elif path.suffix == ".whl":
            with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as wheel:
                state[rel] = sorted((name, wheel.read(name)) for name in wheel.namelist())
        elif path.name == "RECORD":  # a .pyc's hash covers its header
            state[rel] = [row.split(",")[0] if ".pyc," in row else row for row in path.read_text().splitlines()]
        elif rel.startswith("var/lib/sage/installed/"):
            manifest = json.loads(path.read_text())
            manifest.pop("install_date")
            state[rel] = manifest
        else:
            state[rel] = path.read_bytes()
    return state


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Tree, Path, dict]:
    """One tree built once; each case restores it (same path: a prefix names itself) with cp -a."""
    tree = Tree(tmp_path_factory.mktemp("kill") / "root")
    recipe = python_recipe(tree.root, "a", "1.0", {
        "a/__init__.py": "V = 1\n", "a/one.py": "ONE = 1\n", "a/sub/__init__.py": "", "a/sub/two.py": "TWO = 2\n",
        "a/data.txt": "data\n",
    })
    (recipe / "spkg-prerm.in").write_text("echo prerm of a\n")
    (recipe / "spkg-postrm.in").write_text("echo postrm of a\n")
    add_recipe(tree.root, "clib", version="1.0", deps="", files={"spkg-install.in": (
        'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/lib/clib" "$SAGE_DESTDIR$SAGE_LOCAL/include"\n'
        'echo "int v;" > "$SAGE_DESTDIR$SAGE_LOCAL/include/clib.h"\n'
        'echo "data" > "$SAGE_DESTDIR$SAGE_LOCAL/lib/clib/data.txt"\n'
        'ln -s clib.h "$SAGE_DESTDIR$SAGE_LOCAL/include/clib-link.h"\n')})
    tree.configure()
    tree.make("build")
    original = tree.root.with_name("root.orig")
    subprocess.run(["cp", "-a", str(tree.root), str(original)], check=True)
    return tree, original, _state(tree.prefix)


def _restore(tree: Tree, original: Path) -> None:
    shutil.rmtree(tree.root)
    subprocess.run(["cp", "-a", str(original), str(tree.root)], check=True)


def _killed(tree: Tree, command: list[str], point: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=dict(tree.env, SAGE_TEST_KILL_AT=point), capture_output=True, text=True)


def _assert_not_installed(tree: Tree, name: str) -> None:
    """What make, the plan and `--package list :installed:` decide from the stamps."""
    stamp = tree.stamp(name, "1.0")
    dry_run = subprocess.run(["make", "-n", "-f", str(tree.root / "build/make/Makefile"), str(stamp)],
                             env=tree.env, capture_output=True, text=True)
    assert f"sage-spkg {name}" in dry_run.stdout, dry_run.stdout + dry_run.stderr
    assert f"{name}-1.0" in tree.sage("--plan").stdout
    assert name not in tree.sage("--package", "list", ":installed:").stdout.split()


@pytest.mark.parametrize("name,point,via", CASES)
def test_forced_rebuild_killed_at_each_step(prepared, name, point, via):
    tree, original, clean = prepared
    _restore(tree, original)
    command = [sys.executable, str(ROOT / "sage"), "-f", name] if via == SAGE_F else \
        [str(ROOT / "build/bin/sage-spkg"), name]
    result = _killed(tree, command, point)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"the kill point {point} was not reached:\n{output[-3000:]}"
    journal = tree.prefix / f"var/lib/sage/installed/.removing/{name}-1.0"
    assert journal.exists() == (point in JOURNALED)
    if (point, via) in WHOLE:
        # (a) whole, stamp, stored wheel and scripts included
        assert _state(tree.prefix) == clean
    else:
        # (b) no stamp: not installed for everyone
        assert not tree.stamp(name, "1.0").exists()
        _assert_not_installed(tree, name)
    tree.make(name)
    assert _state(tree.prefix) == clean
    if name == "a":
        assert tree.python("import a.sub.two; print(a.sub.two.TWO)").stdout.strip() == "2"


@pytest.mark.parametrize("point", ["uninstall-journal", "piprm-unlink#2", "piprm-record", "uninstall-files"])
def test_uninstall_killed_is_completed_by_the_next_one(prepared, point):
    tree, original, _ = prepared
    _restore(tree, original)
    result = _killed(tree, [sys.executable, str(ROOT / "sage"), "--uninstall", "a"], point)
    assert result.returncode != 0
    assert not tree.stamp("a", "1.0").exists()
    _assert_not_installed(tree, "a")
    tree.sage("--uninstall", "a")  # completes the removal
    assert not list((tree.prefix / "var/lib/sage/installed/.removing").iterdir())
    assert not list(tree.site_packages().glob("a*"))
    assert not (tree.prefix / "var/lib/sage/scripts/a").exists()
    assert not list((tree.prefix / "var/lib/sage/wheels").glob("a-*"))
    assert "is not installed" in tree.sage("--uninstall", "a", check=False).stderr
