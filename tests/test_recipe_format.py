"""The rest of Sage's recipe format (#16): sage-dist-helpers, spkg-check, spkg-legacy-uninstall,
trees.txt, distros/*.txt systems, dangling links in a recipe directory."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from conftest import ROOT, add_recipe

HELPERS = ROOT / "build" / "bin" / "sage-dist-helpers"

# Every sdh_* helper of Sage's build/bin/sage-dist-helpers (SageMath 10.x, passagemath).
SAGE_HELPERS = """sdh_die sdh_check_vars sdh_guard sdh_configure sdh_make sdh_make_check sdh_make_install
sdh_setup_bdist_wheel sdh_build_wheel sdh_build_and_store_wheel sdh_pip_install sdh_pip_editable_install
sdh_store_wheel sdh_store_and_pip_install_wheel sdh_actually_pip_install_wheel sdh_pip_uninstall sdh_cmake
sdh_install sdh_preload_lib sdh_generate_windows_lib_files""".split()


def test_every_sage_helper_is_defined():
    result = subprocess.run(["bash", "-c", f". '{HELPERS}'; declare -F"], capture_output=True, text=True)
    defined = {line.split()[-1] for line in result.stdout.splitlines()}
    assert sorted(set(SAGE_HELPERS) - defined) == []


def _helper(script: str, cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f". '{HELPERS}'\n{script}"], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, **env))


def test_sdh_die_reads_its_message_from_standard_input_and_keeps_the_status(tmp_path):
    result = _helper("(exit 7) || sdh_die <<EOF\nfirst line\nsecond line\nEOF\n", tmp_path)
    assert result.returncode == 7 and "first line\nsecond line" in result.stderr


def test_sdh_cmake_adds_the_current_directory_only_when_the_recipe_names_none(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "cmake").write_text('#!/bin/sh\nfor a in "$@"; do case "$a" in -DCMAKE_*) ;; *) printf "%s " "$a";; esac; done\n')
    (fake / "cmake").chmod(0o755)
    env = {"PATH": f"{fake}:{os.environ['PATH']}", "SAGE_LOCAL": "/p", "SAGE_INST_LOCAL": "/p"}
    said = lambda args: _helper(f"sdh_cmake {args}", tmp_path, **env).stdout.split("\n", 1)[1].split()
    assert said("-GNinja -DX=1") == [".", "-GNinja", "-DX=1"]
    assert said("-G Ninja -D X=1") == [".", "-G", "Ninja", "-D", "X=1"]
    assert said("-GNinja -S../.. -B.") == ["-GNinja", "-S../..", "-B."]
    assert said("-S src -B build") == ["-S", "src", "-B", "build"]
    assert said("-GNinja ..") == ["-GNinja", ".."]


def _autotools_tarball(upstream: Path, fail_check: bool = False) -> Path:
    """A tiny package in autotools' shape: configure writes config.mk, make builds, checks, installs."""
    files = {
        "configure": "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --prefix=*) echo \"prefix=${a#--prefix=}\" > config.mk;; esac; done\n"
                     "echo \"$@\" > configure.args\n",
        "Makefile": "include config.mk\nall:\n\techo built > built.txt\ncheck:\n\t@echo running the tiny test suite\n"
                    + ("\t@false\n" if fail_check else "\ttest -f built.txt\n")
                    + "install:\n\tmkdir -p $(DESTDIR)$(prefix)/share/tiny\n\tcp built.txt $(DESTDIR)$(prefix)/share/tiny/\n",
    }
    upstream.mkdir(parents=True, exist_ok=True)
    path = upstream / "tiny-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(f"tiny-1.0/{name}")
            data = text.encode()
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return path


SPKG_INSTALL = """cd src
sdh_guard
sdh_configure --enable-tiny
grep -q -- --disable-static configure.args || sdh_die "no --disable-static"
sdh_make
sdh_make_install
echo extra > extra.txt
sdh_install -T extra.txt "$SAGE_LOCAL/share/tiny/renamed.txt"
sdh_install extra.txt "$SAGE_LOCAL/share/tiny/more"
"""


def test_helpers_build_a_package_and_sage_check_runs_sdh_make_check(tree):
    tarball = _autotools_tarball(tree.root / "upstream")
    add_recipe(tree.root, "tiny", version="1.0", deps="", tarball=tarball, files={
        "spkg-install.in": SPKG_INSTALL, "spkg-check.in": "cd src\nsdh_make_check\n"})
    tree.configure()
    tree.make("tiny", extra_env={"SAGE_CHECK": "yes"})
    share = tree.prefix / "share" / "tiny"
    assert (share / "built.txt").read_text() == "built\n"
    assert (share / "renamed.txt").read_text() == (share / "more" / "extra.txt").read_text() == "extra\n"
    log = (tree.root / "logs/pkgs/tiny-1.0.log").read_text()
    assert "running the tiny test suite" in log
    assert json.loads(tree.stamp("tiny", "1.0").read_text())["test_result"] == "passed"


def test_a_failing_spkg_check_fails_under_sage_check_yes_and_warns_under_warn(tree):
    tarball = _autotools_tarball(tree.root / "upstream", fail_check=True)
    add_recipe(tree.root, "tiny", version="1.0", deps="", tarball=tarball, files={
        "spkg-install.in": SPKG_INSTALL, "spkg-check.in": "cd src\nsdh_make_check\n"})
    tree.configure()
    tree.make("python3-venv")
    failed = tree.make("tiny", check=False, extra_env={"SAGE_CHECK": "yes"})
    assert failed.returncode != 0 and not tree.stamp("tiny", "1.0").exists()
    assert "Failures checking tiny" in (tree.root / "logs/pkgs/tiny-1.0.log").read_text()
    tree.make("tiny", extra_env={"SAGE_CHECK": "warn"})
    assert json.loads(tree.stamp("tiny", "1.0").read_text())["test_result"] == "failed"
    assert "(ignored)" in (tree.root / "logs/pkgs/tiny-1.0.log").read_text()
    # without SAGE_CHECK the suite does not run
    tree.make("tiny-uninstall")
    tree.make("tiny")
    assert "running the tiny test suite" not in (tree.root / "logs/pkgs/tiny-1.0.log").read_text()


def test_spkg_legacy_uninstall_runs_when_there_is_no_stamp(tree):
    """Sage runs it for a package without a stamp (files of an install from before stamps)."""
    legacy = 'rm -rf "$SAGE_LOCAL/share/oldpkg"\necho legacy-ran >> "$SAGE_ROOT/legacy.log"\n'
    add_recipe(tree.root, "oldpkg", deps="", files={
        "spkg-legacy-uninstall": legacy,
        "spkg-install": 'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share/oldpkg"\n'
                        'echo new > "$SAGE_DESTDIR$SAGE_LOCAL/share/oldpkg/new.txt"\n'})
    tree.configure()
    tree.make("python3-venv")
    leftover = tree.prefix / "share" / "oldpkg" / "old.txt"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("from an old install\n")
    tree.make("oldpkg")
    assert not leftover.exists() and (tree.prefix / "share/oldpkg/new.txt").exists()
    assert (tree.root / "legacy.log").read_text() == "legacy-ran\n"
    tree.make("oldpkg-uninstall")  # a stamp: the modern uninstall, not the legacy script
    assert (tree.root / "legacy.log").read_text() == "legacy-ran\n"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("again\n")
    result = tree.make("oldpkg-uninstall")  # no stamp: the legacy script
    assert "spkg-legacy-uninstall" in result.stdout and not leftover.exists()


def test_trees_txt_and_the_default_trees(tree):
    add_recipe(tree.root, "docs", files={"trees.txt": "SAGE_DOCS  # the documentation tree\nignored\n"})
    add_recipe(tree.root, "venvpkg", files={"version_requirements.txt": "venvpkg\n"})
    add_recipe(tree.root, "clib")
    tree.configure()
    props = json.loads(tree.sage("--package", "properties", "docs", "venvpkg", "clib", "--format", "json").stdout)
    assert props["docs"]["trees"] == ["SAGE_DOCS"]
    assert props["venvpkg"]["trees"] == ["SAGE_VENV"]
    assert props["clib"]["trees"] == ["SAGE_LOCAL"]


@pytest.mark.parametrize("system,expected", [
    ("openbsd", "pkg_add"), ("mingw", "pacman -S --needed"), ("cpan", "cpan -i"),
    ("repology", "# repology names"), ("pyodide", "# pyodide names"),
])
def test_every_distros_system_of_a_current_tree_is_known(tree, system, expected):
    add_recipe(tree.root, "gmp", files={f"distros/{system}.txt": "gmp-name\n"})
    tree.configure()
    result = subprocess.run([sys.executable, str(ROOT / "build/bin/sage-print-system-package-command"),
                             system, "gmp"], env=tree.env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(expected)


def test_dangling_links_in_a_recipe_are_ignored_by_the_hash_and_by_make(tree):
    """A Sage tree's recipe links src, SPKG.rst, package-version.txt into pkgs/; without pkgs/ they
    lead nowhere (#16: 'No rule to make target .../SPKG.rst')."""
    from sage_build.recipes.recipe import recipe_hash

    recipe = add_recipe(tree.root, "linked", deps="", files={
        "spkg-install": 'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share" && echo x > "$SAGE_DESTDIR$SAGE_LOCAL/share/linked"\n'})
    before = recipe_hash(recipe)
    for name, target in (("src", "../../../pkgs/linked/src"), ("SPKG.rst", "../../../pkgs/linked/README.rst"),
                         ("package-version.txt", "../../../pkgs/linked/VERSION.txt")):
        (recipe / name).symlink_to(target)
    assert recipe_hash(recipe) == before
    tree.configure()
    run = tree.top_level()
    result = run("build")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (tree.prefix / "share" / "linked").exists()
    assert run("-q", "build").returncode == 0
    time.sleep(1.1)
    assert run("-q", "build").returncode == 0
