"""A prefix built by sage-build as it was before the code was rearranged (commit 2571125), then
upgraded and uninstalled by the code of this checkout: what `git pull && make` does to a
long-lived tree. Its installed spkg-piprm scripts, manifests and stamps are the old ones."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT, Tree, python_recipe

BEFORE = "2571125"  # the last commit before the sub-packages (issue #15)
OLD_DEPENDENCIES = ["packaging>=23", "wheel>=0.41", "installer==0.7.0", "jinja2>=3.1", "pyyaml>=6", "tqdm>=4.60",
                    "pyproject_hooks>=1.0", "setuptools>=61"]


def _old_tool(directory: Path) -> Path:
    """The tool as of BEFORE, with its own environment (its dependencies from pip's index)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"this checkout has no commit {BEFORE} (a shallow clone?): {archive.stderr.decode()[:200]}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(directory, filter="data")
    venv = directory / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          *OLD_DEPENDENCIES], capture_output=True, text=True)
    if pip.returncode != 0:
        pytest.skip(f"the old tool's dependencies cannot be installed here (no index?): {pip.stderr[-300:]}")
    # The old bootstrap would reinstall unless its stamp says the environment is complete.
    stamp = hashlib.sha256((directory / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".sage-build-deps").write_text(stamp + "\n")
    return directory


def _run(command: list[str], tree: Tree, *, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=tree.env, capture_output=True, text=True, cwd=tree.root)
    if check:
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


@pytest.mark.slow
@pytest.mark.network
def test_a_prefix_built_before_the_rearrangement_upgrades_and_uninstalls(tmp_path):
    old = _old_tool(tmp_path / "old-tool")
    tree = Tree(tmp_path / "root")
    python_recipe(tree.root, "a", "1.0", {"a/__init__.py": "A = 1\n", "ns/shared.py": "S = 1\n"})
    python_recipe(tree.root, "b", "1.0", {"b/__init__.py": "B = 1\n", "ns/shared.py": "S = 1\n"}, deps="$(PYTHON) a")
    old_python = str(old / ".venv" / "bin" / "python")
    _run([old_python, str(old / "configure.py"), f"--prefix={tree.prefix}", "--quiet"], tree)
    _run(["make", "-f", str(tree.root / "build" / "make" / "Makefile"), "build"], tree)
    piprm = tree.prefix / "var/lib/sage/scripts/b/spkg-piprm"
    assert "REMOVED_NOTHING" not in piprm.read_text()  # really the old script
    assert tree.python("import a, b, ns.shared").returncode == 0

    # git pull: the new code reconfigures the tree, then an upgrade of a and a removal of b.
    (tree.root / "build/pkgs/a/package-version.txt").write_text("1.0.p1\n")
    _run([sys.executable, str(ROOT / "configure.py"), f"--prefix={tree.prefix}", "--quiet"], tree)
    _run([sys.executable, str(ROOT / "sage"), "-f", "a"], tree)
    assert tree.stamp("a", "1.0.p1").is_file() and not tree.stamp("a", "1.0").exists()
    assert tree.python("import a, b, ns.shared").returncode == 0
    _run([sys.executable, str(ROOT / "sage"), "--uninstall", "b"], tree)  # through b's old spkg-piprm
    site = tree.site_packages()
    assert not (site / "b").exists() and not list(site.glob("b-*.dist-info"))
    assert (site / "ns" / "shared.py").is_file()  # a still lists it
    assert not tree.stamp("b", "1.0").exists()
    assert not list((tree.prefix / "var/lib/sage/installed/.removing").glob("*"))
    _run([sys.executable, str(ROOT / "sage"), "--uninstall", "a"], tree)
    assert not (site / "ns").exists() and not (site / "a").exists()
    leftovers = [p for p in tree.prefix.rglob("*") if ".sbtmp-" in p.name]
    assert leftovers == []
