"""The one definition of a package's build inputs (#20 item 1): make's recipe hash and the binary
cache's key change with every input and stay with every non-input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, add_recipe, python_recipe
from sage_build.recipes.recipe import recipe_hash


def _recipe(tmp_path):
    return add_recipe(tmp_path, "alpha", version="1.0", files={
        "checksums.ini": "tarball=alpha-VERSION.tar.gz\nsha256=" + "a" * 64 + "\n",
        "spkg-install.in": "sdh_make_install\n",
        "patches/fix.patch": "--- a\n+++ b\n",
        "SPKG.rst": "alpha\n=====\n",
        "distros/debian.txt": "libalpha-dev\n",
        "spkg-configure.m4": "SAGE_SPKG_CONFIGURE([alpha], [])\n",
    })


@pytest.mark.parametrize("rel, text", [
    ("package-version.txt", "1.1\n"),
    ("checksums.ini", "tarball=alpha-VERSION.tar.gz\nsha256=" + "b" * 64 + "\n"),
    ("spkg-install.in", "sdh_make_install -j1\n"),
    ("patches/fix.patch", "--- a\n+++ c\n"),
    ("patches/new.patch", "--- x\n"),
    ("dependencies", "$(PYTHON) zlib\n"),
    ("dependencies_order_only", "gmp\n"),
    ("install-requires.txt", "alpha >=1.1\n"),
    ("a-file-nobody-knows", "x\n"),  # unknown files count: a rebuild too many beats a stale cache
])
def test_an_input_changes_the_recipe_hash(tmp_path, rel, text):
    recipe = _recipe(tmp_path)
    before = recipe_hash(recipe)
    (recipe / rel).parent.mkdir(parents=True, exist_ok=True)
    (recipe / rel).write_text(text)
    assert recipe_hash(recipe) != before


@pytest.mark.parametrize("rel, text", [
    ("SPKG.rst", "alpha\n=====\n\nRewritten.\n"),
    ("distros/fedora.txt", "alpha-devel\n"),
    ("distros/debian.txt", "libalpha2-dev\n"),
    ("spkg-configure.m4", "SAGE_SPKG_CONFIGURE([alpha], [sage_spkg_install_alpha=yes])\n"),
    ("type", "optional\n"),
    ("dependencies", "$(PYTHON)\n\n----------\nAll lines of this file are ignored except the first.\n"),
])
def test_a_non_input_leaves_the_recipe_hash(tmp_path, rel, text):
    recipe = _recipe(tmp_path)
    before = recipe_hash(recipe)
    (recipe / rel).parent.mkdir(parents=True, exist_ok=True)
    (recipe / rel).write_text(text)
    assert recipe_hash(recipe) == before


# -- the key of a configured tree: ./sage --cache key ------------------------------------------

def _keys(tree, *names, env=None) -> dict[str, str]:
    result = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "key", *names],
                            env=dict(tree.env, **(env or {})), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return dict(line.split() for line in result.stdout.splitlines())


@pytest.fixture
def chain(tree):
    """base <- mid <- top, and side alone: Python packages from sdists, one staged script package."""
    python_recipe(tree.root, "base", "1.0", {"base/__init__.py": ""})
    python_recipe(tree.root, "mid", "1.0", {"mid/__init__.py": ""}, deps="$(PYTHON) base")
    python_recipe(tree.root, "top", "1.0", {"top/__init__.py": ""}, deps="$(PYTHON) mid")
    add_recipe(tree.root, "side", deps="", files={
        "spkg-install": 'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share" && echo x > "$SAGE_DESTDIR$SAGE_LOCAL/share/side"\n'})
    tree.configure()
    return tree


def test_the_key_changes_with_each_input_and_with_a_dependency(chain):
    tree = chain
    before = _keys(tree, "base", "mid", "top", "side")
    assert len(set(before.values())) == 4 and all(len(k) == 64 for k in before.values())
    # a build setting changes every key
    for variable, value in (("CFLAGS", "-O3"), ("SAGE_FAT_BINARY", "yes"), ("LDFLAGS", "-Wl,-z,now"),
                            ("CC", "cc -m64")):
        changed = _keys(tree, "base", "side", env={variable: value})
        assert changed["base"] != before["base"] and changed["side"] != before["side"], variable
    # a recipe input of base changes base and everything above it, not side
    (tree.root / "build/pkgs/base/spkg-check").write_text("true\n")
    after = _keys(tree, "base", "mid", "top", "side")
    assert {n for n in after if after[n] != before[n]} == {"base", "mid", "top"}
    # the version
    (tree.root / "build/pkgs/top/package-version.txt").write_text("1.1\n")
    assert _keys(tree, "top")["top"] != after["top"]


def test_the_key_stays_with_non_inputs(chain):
    tree = chain
    before = _keys(tree, "base", "mid", "side")
    (tree.root / "build/pkgs/base/SPKG.rst").write_text("base\n====\n\nNew words.\n")
    (tree.root / "build/pkgs/base/distros").mkdir()
    (tree.root / "build/pkgs/base/distros/debian.txt").write_text("python3-base\n")
    (tree.root / "build/pkgs/base/dependencies").write_text("$(PYTHON)\n\n----------\nA comment.\n")
    time.sleep(0.05)  # "the time"
    again = _keys(tree, "base", "mid", "side", env={"MAKEFLAGS": "-j7", "SAGE_NUM_THREADS": "7",
                                                    "SAGE_BUILD_DIR": str(tree.root / "elsewhere")})
    assert again == before


def test_no_key_names_the_prefix_a_staged_package_s_prefix_key_does(chain, tmp_path):
    """A staged package is relocated when pushed: its key names no prefix; its prefix key (for an
    entry whose files could not be relocated) does."""
    from sage_build.cache.key import tree_keys
    from sage_build.configure.config import load_config

    tree = chain
    out = tree.sage("--cache", "key", "side", "base", "--explain").stdout
    assert 'prefix = "none: relocated when pushed (else the prefix key)"' in out and 'prefix = "none: a wheel"' in out
    assert "relocation: decided when it is pushed (it is not installed here)" in out
    assert out.count("prefix key (an entry whose files could not be relocated) = ") == 1
    before = tree_keys(load_config(tree.root), tree.env)
    assert before["side"].prefix_key and not before["base"].prefix_key
    assert str(tree.prefix) not in json.dumps(before["side"].inputs)
    tree.configure(f"--prefix={tmp_path / 'other'}")
    after = tree_keys(load_config(tree.root), tree.env)
    assert after["base"].key == before["base"].key and after["side"].key == before["side"].key
    assert after["side"].prefix_key != before["side"].prefix_key
    assert after["side"].candidates == [after["side"].key, after["side"].prefix_key]


def test_key_of_an_unknown_package_says_so(chain):
    result = chain.sage("--cache", "key", "bsae", check=False)
    assert result.returncode == 1 and "there is no package 'bsae'" in result.stderr and "base" in result.stderr
    assert "Traceback" not in result.stderr
    result = chain.sage("--cache", "frobnicate", check=False)
    assert result.returncode == 1 and "unknown ./sage --cache command 'frobnicate'" in result.stderr


def test_a_tree_hashed_before_20_rebuilds_nothing_on_upgrade(chain):
    """Stored hashes of the old definition (every recipe file) of unchanged recipes are replaced
    without a new time: `git pull && make` rebuilds nothing; a changed recipe still rebuilds."""
    from sage_build.recipes.recipe import hash_files_before_20, scan_recipe

    tree = chain
    tree.make("build")
    hashes = tree.root / "build/make/hashes"
    for name in ("base", "mid", "side"):
        old = hash_files_before_20(scan_recipe(tree.root / "build/pkgs" / name))
        times = (hashes / name).stat()
        (hashes / name).write_text(old + "\n")
        os.utime(hashes / name, ns=(times.st_atime_ns, times.st_mtime_ns))
    (tree.root / "build/pkgs/side/spkg-check").write_text("true\n")  # side changed meanwhile
    tree.configure()
    out = tree.make("build").stdout
    assert "sage-spkg base" not in out and "sage-spkg mid" not in out and "sage-spkg side" in out
    assert (hashes / "base").read_text().strip() != hash_files_before_20(scan_recipe(tree.root / "build/pkgs/base"))


# -- compilers and the CPU (#20 item 1, leftovers) ----------------------------------------------

def _fake_compiler(directory, name: str, version: str) -> str:
    """A compiler whose --version says ``version`` (what the key asks)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{version}'\necho 'Copyright: not part of the key'\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("variable", ["CC", "CXX", "FC"])
def test_each_compiler_s_version_is_an_input(chain, tmp_path, variable):
    tree = chain
    one = _fake_compiler(tmp_path / "one", "comp", f"{variable.lower()}-fake 1.0")
    two = _fake_compiler(tmp_path / "two", "comp", f"{variable.lower()}-fake 2.0")
    first = _keys(tree, "base", "side", env={variable: one})
    # the same path, a new version (an upgraded compiler): the key changes
    assert _keys(tree, "base", "side", env={variable: two}) != first
    again = _keys(tree, "base", "side", env={variable: one})
    assert again == first
    out = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "key", "side", "--explain"],
                         env=dict(tree.env, **{variable: one}), capture_output=True, text=True).stdout
    assert f'environment.compilers.{variable} = "{variable.lower()}-fake 1.0"' in out, out
    assert "Copyright" not in out


def test_an_unset_compiler_is_the_default_program_or_none(chain, tmp_path):
    """Unset, CXX/FC are the programs build systems look for (c++, gfortran) when PATH has them;
    a PATH without them has no such input, and a compiler that cannot run says so."""
    tree = chain
    bin_dir = tmp_path / "bin"
    _fake_compiler(bin_dir, "gfortran", "GNU Fortran (fake) 99")
    path = f"{bin_dir}:{tree.env['PATH']}"
    out = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "key", "side", "--explain"],
                         env=dict(tree.env, PATH=path), capture_output=True, text=True).stdout
    assert 'environment.compilers.FC = "GNU Fortran (fake) 99"' in out, out
    from sage_build.cache.key import compilers

    assert "FC" not in compilers({"PATH": str(tmp_path / "empty")})
    broken = compilers({"PATH": "/nowhere", "FC": str(tmp_path / "missing-f95")})
    assert broken["FC"] == f"{tmp_path / 'missing-f95'}: no --version"


def test_native_flags_key_the_host_cpu(chain):
    tree = chain
    plain = tree.sage("--cache", "key", "base", "--explain").stdout
    assert "cpu" not in plain
    for flags in ("-O2 -march=native", "-mtune=native", "-mcpu=native -O3"):
        out = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "key", "base", "--explain"],
                             env=dict(tree.env, CFLAGS=flags), capture_output=True, text=True).stdout
        assert "environment.cpu.host = " in out and "-m...=native in the flags" in out, (flags, out)
    out = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "key", "base", "--explain"],
                         env=dict(tree.env, CFLAGS="-march=x86-64-v2 -fnative-thing"), capture_output=True,
                         text=True).stdout
    assert "cpu" not in out  # a named target is a flag like any other (CFLAGS is in the key already)


def test_a_recipe_that_tunes_unless_fat_binary_is_keyed_on_the_host_cpu(tree, monkeypatch):
    """Sage's gmp, ntl, openblas ... tune for the host CPU unless SAGE_FAT_BINARY=yes: their scripts
    read it. Their key names the host CPU (another CPU: another key); the others' do not."""
    from sage_build.cache import key as cache_key
    from sage_build.configure.config import load_config

    add_recipe(tree.root, "gmp", deps="", files={
        "spkg-install.in": 'if [ "$SAGE_FAT_BINARY" = yes ]; then EXTRA=--enable-fat; fi\nsdh_configure $EXTRA\n'})
    add_recipe(tree.root, "plain", deps="gmp", files={"spkg-install.in": "sdh_configure\n"})
    tree.configure()
    config = load_config(tree.root)
    keys = cache_key.tree_keys(config, tree.env)
    assert keys["gmp"].inputs["cpu"]["host"] == cache_key.host_cpu() and "cpu" not in keys["plain"].inputs
    monkeypatch.setattr(cache_key, "host_cpu", lambda: "another-cpu (Nobody)")
    other = cache_key.tree_keys(config, tree.env)
    # gmp changes, and plain with it (its dependency's key is one of its inputs)
    assert other["gmp"].key != keys["gmp"].key and other["plain"].key != keys["plain"].key
    fat = cache_key.tree_keys(config, dict(tree.env, SAGE_FAT_BINARY="yes"))
    assert "cpu" not in fat["gmp"].inputs
    monkeypatch.undo()
    assert cache_key.tree_keys(config, dict(tree.env, SAGE_FAT_BINARY="yes"))["gmp"].key == fat["gmp"].key
    out = tree.sage("--cache", "key", "gmp", "--explain").stdout
    assert "cpu.because = \"its build tunes for the host CPU unless SAGE_FAT_BINARY=yes\"" in out, out


def test_hostile_compiler_settings_give_a_key_not_a_traceback(chain, tmp_path):
    """A compiler that is missing, fails, is quoted oddly or is not a program still gives a key
    (the value says it has no --version); it is never run through a shell."""
    tree = chain
    marker = tmp_path / "ran"
    for value in ("/nonexistent/cc", "cc '-unbalanced", f"cc; touch {marker}", "false", "", "   "):
        result = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "key", "base", "--explain"],
                                env=dict(tree.env, CXX=value), capture_output=True, text=True)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (value, result.stderr)
        if value.strip():
            assert f"environment.compilers.CXX = {json.dumps(value.strip() + ': no --version')}" in result.stdout \
                or value.startswith("cc;"), (value, result.stdout)
    assert not marker.exists()
