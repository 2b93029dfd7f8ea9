"""install/inflate.py: a wheel member inflated whole or as it is read, with ISA-L or zlib.

Each engine must give the same bytes as zlib for any stream, and refuse what zipfile refuses: a
member that inflates beyond the size the archive's index gives (a zip bomb), one cut short, broken
data. The streaming reader is tried with every read size the installer and its readers use.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sage_build.install import inflate as inflate_module
from sage_build.install.inflate import InflatingReader, inflate

ENGINES = ["zlib"] + (["isal"] if inflate_module.ENGINE == "isal" else [])


@pytest.fixture(params=ENGINES)
def engine(request, monkeypatch):
    if request.param == "zlib":
        monkeypatch.setattr(inflate_module, "_decompressobj", zlib.decompressobj)
        monkeypatch.setattr(inflate_module, "_InflateError", zlib.error)
    return request.param


def test_the_tool_environment_inflates_with_isal():
    # The speed extra is in the tool's lock: losing it silently would double the inflate time.
    assert inflate_module.ENGINE == "isal"


def _deflate(data: bytes, level: int = 6) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def _member(data_parts: list[tuple[bytes, int]]) -> bytes:
    return b"".join(chunk * count for chunk, count in data_parts)


def _read_all(raw: bytes, size: int, read_size: int) -> bytes:
    with tempfile.TemporaryFile() as file:
        file.write(b"local header and name" + raw + b"next member")
        file.flush()
        reader = InflatingReader(file.fileno(), 21, len(raw), size, "pkg/big.bin")
        out = []
        while True:
            data = reader.read(read_size)
            if not data:
                return b"".join(out)
            assert len(data) <= read_size
            out.append(data)


members = st.lists(st.tuples(st.binary(min_size=1, max_size=300), st.integers(1, 3000)), min_size=0, max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=members, level=st.sampled_from([0, 1, 6, 9]), read_size=st.sampled_from([1, 7, 4096, 1 << 20, -1]))
def test_same_bytes_as_zlib_whole_and_streamed(engine, parts, level, read_size):
    data = _member(parts)
    raw = _deflate(data, level)
    assert inflate(raw, len(data), "m") == data
    if read_size == -1:
        with tempfile.TemporaryFile() as file:
            file.write(raw)
            file.flush()
            assert InflatingReader(file.fileno(), 0, len(raw), len(data), "m").read() == data
    else:
        assert _read_all(raw, len(data), read_size) == data


@pytest.mark.parametrize("read_size", [1 << 20, 333])
def test_a_bomb_stops_one_byte_over_its_declared_size(engine, read_size):
    data = b"\0" * (40 << 20)  # 40 MiB of zeros: 40 KB deflated
    raw = _deflate(data, 9)
    assert len(inflate(raw, 1000, "bomb")) == 1001  # the caller's size check refuses it
    with pytest.raises(zipfile.BadZipFile, match="pkg/big.bin does not have the size the archive's index gives"):
        _read_all(raw, 1000, read_size)
    with tempfile.TemporaryFile() as file:
        file.write(raw)
        file.flush()
        reader = InflatingReader(file.fileno(), 0, len(raw), 1000, "bomb")
        with pytest.raises(zipfile.BadZipFile):
            reader.read()
        assert reader.tell() == 1001  # it stopped there, not after 40 MiB


def test_a_member_cut_short_or_broken_is_refused(engine):
    data = os.urandom(3 << 20) + b"a" * (2 << 20)
    raw = _deflate(data)
    with pytest.raises(zipfile.BadZipFile, match="does not have the size"):
        _read_all(raw[: len(raw) // 2], len(data), 1 << 20)
    with pytest.raises(zipfile.BadZipFile, match="does not have the size"):
        _read_all(raw, len(data) + 1, 1 << 20)  # the index promises more than there is
    broken = b"\xff" + raw[1:]  # a first block of type 3, which deflate does not have
    with pytest.raises(zipfile.BadZipFile, match="m: its compressed data is broken"):
        inflate(broken, len(data), "m")
    with pytest.raises(zipfile.BadZipFile, match="pkg/big.bin: its compressed data is broken"):
        _read_all(broken, len(data), 1 << 20)


def test_a_rewind_starts_again(engine):
    data = os.urandom(100_000) * 3
    raw = _deflate(data)
    with tempfile.TemporaryFile() as file:
        file.write(raw)
        file.flush()
        reader = InflatingReader(file.fileno(), 0, len(raw), len(data), "m")
        head = reader.read(10)
        assert reader.seek(0) == 0
        assert reader.read() == data and head == data[:10]
        with pytest.raises(OSError):
            reader.seek(5)
