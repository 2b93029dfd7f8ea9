"""Local zip headers: where a member's bytes begin, checked as zipfile checks it."""

import io
import zipfile

import pytest

from sage_build.install.zip_local_header import data_offset


def _archive(name: str = "pkg/mod.py", data: bytes = b"X = 1\n" * 50) -> tuple[bytes, zipfile.ZipInfo]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("first.txt", b"first")
        archive.writestr(name, data)
    raw = buffer.getvalue()
    return raw, zipfile.ZipFile(io.BytesIO(raw)).getinfo(name)


@pytest.mark.parametrize("name", ["pkg/mod.py", "pkg/modülé.py"])
def test_offset_points_at_the_members_bytes(name):
    raw, info = _archive(name)
    offset = data_offset(raw[info.header_offset:], info)
    assert raw[info.header_offset + offset:][:info.compress_size] == b"X = 1\n" * 50


def test_a_header_naming_another_file_is_refused():
    raw, info = _archive()
    start = info.header_offset + 30
    forged = raw[:start] + b"pkg/evil.py" + raw[start + len(b"pkg/evil.py"):]
    with pytest.raises(zipfile.BadZipFile, match="header differ"):
        data_offset(forged[info.header_offset:], info)


def test_a_missing_local_header_is_refused():
    raw, info = _archive()
    with pytest.raises(zipfile.BadZipFile, match="bad local header"):
        data_offset(raw[info.header_offset + 1:], info)
