"""Reproducible wheels: normalize_wheel gives the canonical archive, whatever the backend wrote."""

from __future__ import annotations

import time
import zipfile

from sage_build.pipeline import normalize
from sage_build.pipeline.normalize import normalize_wheel

EPOCH = 1700000000
MEMBERS = {  # name: (data, mode)
    "pkg/__init__.py": (b"A = 1\n" * 200, 0o664),
    "pkg/tool.sh": (b"#!/bin/sh\necho hi\n", 0o775),
    "pkg/d\u00e4ta.txt": (b"non-ASCII name\n", 0o600),
    "pkg-1.0.data/scripts/run": (b"#!python\n", 0o755),
    "pkg-1.0.dist-info/METADATA": (b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n", 0o644),
    "pkg-1.0.dist-info/WHEEL": (b"Wheel-Version: 1.0\n", 0o644),
}
RECORD = "pkg-1.0.dist-info/RECORD"


def _backend_wheel(path, order, stored=()):
    """A wheel as a backend might write it: any order, its own times and modes, RECORD unsorted."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in order:
            data, mode = MEMBERS[name]
            info = zipfile.ZipInfo(name, date_time=(2024, 5, 17, 10, 3, 8))
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
        record = "".join(f"{name},,\n" for name in reversed(order)) + f"{RECORD},,\n"
        archive.writestr(RECORD, record)
    return path


def _expected(path):
    """The canonical form, written by zipfile itself."""
    names = sorted(MEMBERS, key=lambda n: (".dist-info/" in n, n))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in names + [RECORD]:
            data, mode = MEMBERS.get(name, (None, 0o644))
            if name == RECORD:
                data = ("".join(f"{n},,\n" for n in sorted(MEMBERS)) + f"{RECORD},,\n").encode()
            info = zipfile.ZipInfo(name, date_time=time.gmtime(EPOCH)[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100755 if mode & 0o111 else 0o100644) << 16
            info.create_system = 3
            archive.writestr(info, data)
    return path.read_bytes()


def test_canonical_bytes_whatever_the_order_times_modes_and_compression(tmp_path):
    expected = _expected(tmp_path / "expected.whl")
    one = _backend_wheel(tmp_path / "pkg-1.0-py3-none-any.whl", list(MEMBERS))
    other = _backend_wheel(tmp_path / "b.whl", list(reversed(MEMBERS)), stored={"pkg/__init__.py", RECORD})
    normalize_wheel(one, EPOCH)
    normalize_wheel(other, EPOCH)
    assert one.read_bytes() == expected
    assert other.read_bytes() == expected
    with zipfile.ZipFile(one) as archive:
        assert archive.testzip() is None
        assert archive.read("pkg/d\u00e4ta.txt") == b"non-ASCII name\n"


def test_zip64_fallback_gives_the_same_members(tmp_path, monkeypatch):
    wheel = _backend_wheel(tmp_path / "w.whl", list(reversed(MEMBERS)), stored={"pkg/tool.sh"})
    monkeypatch.setattr(normalize, "_needs_zip64", lambda infos: True)
    normalize_wheel(wheel, EPOCH)
    _expected(tmp_path / "e.whl")
    with zipfile.ZipFile(wheel) as archive, zipfile.ZipFile(tmp_path / "e.whl") as expected:
        assert archive.testzip() is None
        got = [(i.filename, i.date_time, i.external_attr, i.compress_type) for i in archive.infolist()]
        want = [(i.filename, i.date_time, i.external_attr, i.compress_type) for i in expected.infolist()]
        assert got == want
        assert all(archive.read(n) == expected.read(n) for n in expected.namelist())
