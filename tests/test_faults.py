"""Faults and fuzzing: parsers never crash, disk full leaves no torn file, concurrent runs, permissions."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, add_recipe, make_wheel, python_recipe
from sage_build.base.errors import InstallError, RecipeError
from sage_build.recipes.recipe import load_package, parse_checksums, parse_dependency_line

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(TEXT)
@settings(max_examples=300)
def test_dependency_line_parser_never_crashes(text):
    try:
        normal, order_only = parse_dependency_line(text, "f")
    except RecipeError as error:
        assert str(error).startswith("f, line 1:")
        return
    assert all(token and "|" not in token and "#" not in token for token in normal + order_only)


@given(TEXT)
@settings(max_examples=300)
def test_checksums_parser_never_crashes(text):
    try:
        values = parse_checksums(text, "checksums.ini")
    except RecipeError as error:
        assert "checksums.ini" in str(error)
        return
    assert all(key and value for key, value in values.items())


@given(st.dictionaries(st.sampled_from(["type", "package-version.txt", "checksums.ini", "dependencies",
                                         "install-requires.txt", "requirements.txt", "spkg-install.in",
                                         "dependencies_order_only", "version_requirements.txt"]),
                       st.binary(max_size=200), min_size=1))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_recipe_loader_never_crashes(tmp_path, files):
    recipe = tmp_path / "fuzz"
    shutil.rmtree(recipe, ignore_errors=True)
    recipe.mkdir()
    for name, data in files.items():
        (recipe / name).write_bytes(data)
    try:
        pkg = load_package(recipe)
    except RecipeError:
        return
    pkg.kind  # the kind decision works on whatever loaded
    pkg.tarball


def test_disk_full_during_install_leaves_no_torn_file(tmp_path, monkeypatch):
    from sage_build.install import wheel as install
    from sage_build.install.target import query_python

    prefix = tmp_path / "prefix"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    target = query_python(prefix / "bin" / "python3")
    old = make_wheel(tmp_path / "w", "keep", "1.0", {"keep/__init__.py": b"K = 1\n"})
    install.install_wheel(old, paths=target.paths, python_final=prefix / "bin/python3",
                          python_now=prefix / "bin/python3", collisions="error")
    before = sorted(str(p) for p in prefix.rglob("*"))
    big = make_wheel(tmp_path / "w", "big", "1.0", {f"big/m{i}.py": b"x = 1\n" * 5000 for i in range(20)})
    real_write = install.write_all
    calls = {"n": 0}

    def write_until_the_disk_is_full(fd, data):
        calls["n"] += 1
        if calls["n"] > 8:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data)

    monkeypatch.setattr(install, "write_all", write_until_the_disk_is_full)
    with pytest.raises(InstallError) as info:
        install.install_wheel(big, paths=target.paths, python_final=prefix / "bin/python3",
                              python_now=prefix / "bin/python3", collisions="error")
    assert "No space left on device" in str(info.value)
    assert sorted(str(p) for p in prefix.rglob("*")) == before  # nothing torn, nothing left
    assert subprocess.run([str(prefix / "bin/python3"), "-c", "import keep"]).returncode == 0


def test_two_builds_in_one_tree_build_each_package_once(tree):
    for name in ("a", "b", "c"):
        python_recipe(tree.root, name, "1.0", {f"{name}/__init__.py": ""})
    tree.configure()
    results = []

    def build():
        results.append(tree.make("build", check=False))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.returncode == 0 for r in results), [r.stderr[-2000:] for r in results]
    assert tree.python("import a, b, c").returncode == 0
    builds = [line for r in results for line in r.stdout.splitlines() if line.endswith(("installed", "nothing to do"))
              or " installed in " in line]
    for name in ("a", "b", "c"):
        installed = [line for line in builds if line.startswith(f"[{name}-1.0] installed in")]
        assert len(installed) == 1, builds  # the other run waited and found it built


def test_sage_i_while_make_build_runs(tree):
    for name in ("a", "b"):
        python_recipe(tree.root, name, "1.0", {f"{name}/__init__.py": ""})
    python_recipe(tree.root, "opt", "1.0", {"opt/__init__.py": ""}, type_="optional", deps="$(PYTHON) a")
    tree.configure()
    results = {}
    build = threading.Thread(target=lambda: results.setdefault("make", tree.make("build", check=False)))
    build.start()
    results["sage"] = tree.sage("-i", "opt", check=False)
    build.join()
    assert results["make"].returncode == 0 and results["sage"].returncode == 0
    assert tree.python("import a, b, opt").returncode == 0


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to act as another user")
def test_permission_denied_on_the_prefix_is_a_clear_error(tree):
    python_recipe(tree.root, "a", "1.0", {"a/__init__.py": ""})
    tree.configure()
    tree.make("python3-venv")
    for path in [tree.root, *tree.root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o005 | (0o001 if path.is_dir() else 0))
    (tree.root / "logs").chmod(0o777)
    for path in (tree.root / "logs").rglob("*"):
        path.chmod(0o777)
    for parent in tree.root.parents:
        if parent != Path("/"):
            parent.chmod(parent.stat().st_mode | 0o005)
    before = sorted(str(p) for p in tree.prefix.rglob("*"))
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "make", "-f",
         str(tree.root / "build/make/Makefile"), "a"],
        env=dict(tree.env, HOME="/tmp"), capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Permission denied" in output
    assert "Traceback" not in output, output
    assert "check that you may write to" in output or "Permission denied" in output
    assert sorted(str(p) for p in tree.prefix.rglob("*")) == before


def test_failed_install_of_an_upgrade_puts_the_old_version_back(tree):
    """The new version built, the old one was uninstalled, then its install failed (here: a
    collision, as a full disk would): the old version is installed again, stamp and all."""
    python_recipe(tree.root, "a", "1.0", {"a/__init__.py": "V = 1\n"})
    python_recipe(tree.root, "squatter", "1.0", {"b_new/__init__.py": "# squatter's\n"})
    tree.configure()
    tree.make("build")
    python_recipe(tree.root, "a", "2.0", {"a/__init__.py": "V = 2\n", "b_new/__init__.py": "# a's\n"})
    tree.configure()
    result = tree.make("a", check=False)
    assert result.returncode != 0
    assert "would overwrite" in result.stderr
    assert "the previous version was put back" in result.stderr + result.stdout
    assert tree.python("import a; print(a.V)").stdout.strip() == "1"
    assert tree.stamp("a", "1.0").exists() and not tree.stamp("a", "2.0").exists()
    assert (tree.prefix / "var/lib/sage/scripts/a/spkg-piprm").exists()
    assert (tree.prefix / "var/lib/sage/wheels/a-1.0-py3-none-any.whl").exists()


def test_failed_install_of_a_script_package_upgrade_puts_its_files_back(tree):
    """A non-Python package: its old files were uninstalled, then the new version's install
    failed before publishing anything (its spkg-preinst failed): the old files come back."""
    def clib(version: str, preinst: str = "") -> None:
        files = {"spkg-install.in": (
            'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/lib" "$SAGE_DESTDIR$SAGE_LOCAL/include"\n'
            f'echo "int v{version[0]};" > "$SAGE_DESTDIR$SAGE_LOCAL/include/clib.h"\n'
            'ln -s clib.h "$SAGE_DESTDIR$SAGE_LOCAL/include/clib-link.h"\n')}
        if preinst:
            files["spkg-preinst.in"] = preinst
        add_recipe(tree.root, "clib", version=version, deps="", files=files)

    clib("1.0")
    tree.configure()
    tree.make("build")
    def installed() -> list[str]:  # the failed build's directory stays for inspection: not installed
        return sorted(str(p) for p in tree.prefix.rglob("*") if "tmp" not in p.relative_to(tree.prefix).parts[:2])

    before = installed()
    clib("2.0", preinst="echo no room left >&2; exit 1\n")
    tree.configure()
    result = tree.make("clib", check=False)
    assert result.returncode != 0
    assert "the previous version was put back" in result.stderr + result.stdout
    assert (tree.prefix / "include/clib.h").read_text() == "int v1;\n"
    assert os.readlink(tree.prefix / "include/clib-link.h") == "clib.h"
    assert tree.stamp("clib", "1.0").exists() and not tree.stamp("clib", "2.0").exists()
    assert installed() == before


def test_a_package_another_run_installed_after_our_make_started_is_not_built_again(tree):
    # Deterministic form of two builds in one tree: our make decided before the other run's stamp
    # was written, and sage-spkg starts only after that run finished (no lock to wait for).
    python_recipe(tree.root, "a", "1.0", {"a/__init__.py": ""})
    tree.configure()
    tree.make("a")
    stamp = tree.stamp("a", "1.0")
    spkg = [sys.executable, str(ROOT / "build" / "bin" / "sage-spkg"), "a"]
    before_stamp = f"{stamp.stat().st_mtime - 5:.6f}"
    again = subprocess.run(spkg, env=dict(tree.env, SAGE_MAKE_STARTED=before_stamp), capture_output=True, text=True)
    assert again.returncode == 0 and "built meanwhile by another run" in again.stdout, again.stdout + again.stderr
    # A make that started after the stamp was written decided on a stamp it saw: it builds.
    after_stamp = f"{stamp.stat().st_mtime + 5:.6f}"
    rebuilt = subprocess.run(spkg, env=dict(tree.env, SAGE_MAKE_STARTED=after_stamp), capture_output=True, text=True)
    assert rebuilt.returncode == 0 and "built meanwhile" not in rebuilt.stdout, rebuilt.stdout
    # ./sage -f always builds.
    forced = subprocess.run(spkg, env=dict(tree.env, SAGE_MAKE_STARTED="0", SAGE_FORCE="a"), capture_output=True,
                            text=True)
    assert forced.returncode == 0 and "built meanwhile" not in forced.stdout, forced.stdout


def test_uninstall_waits_for_a_build_of_the_same_package(tree):
    # ./sage --uninstall takes the package's lock, as sage-spkg does: it never removes files while
    # a build of that package is installing them.
    from sage_build.base.lock import locked

    python_recipe(tree.root, "a", "1.0", {"a/__init__.py": ""})
    tree.configure()
    tree.make("a")
    lock = tree.prefix / "var/lib/sage/locks/a.lock"
    with locked(lock):  # a build of a holds it
        removal = subprocess.Popen([sys.executable, str(ROOT / "sage"), "--uninstall", "a"], env=tree.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.5)
        assert removal.poll() is None, removal.communicate()[0]  # still waiting
        assert tree.stamp("a", "1.0").exists()
    output = removal.communicate(timeout=60)[0]
    assert removal.returncode == 0 and "waiting for it" in output, output
    assert not tree.stamp("a", "1.0").exists()
