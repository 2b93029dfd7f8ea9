"""Inflating a wheel's deflated members: with ISA-L when python-isal is installed, else zlib.

Inflating was the biggest single cost of installing a wheel (issue #19: a third of the CPU
time of 50 real wheels). ISA-L's inflate gives the same bytes in less time; python-isal is an
optional dependency of sage-build (its ``speed`` extra, in the tool's lock), so an interpreter
without it, such as a prefix that runs sage-build, inflates with zlib. Both release the GIL.

A member never inflates to more than one byte beyond the size the archive's index gives: a
member that would (a zip bomb) stops there and its size check refuses it.
"""

from __future__ import annotations

import io
import os
import zipfile

try:
    from isal.isal_zlib import decompressobj as _decompressobj
    from isal.isal_zlib import error as _InflateError

    ENGINE = "isal"
except ImportError:  # the optional speed extra is not installed
    from zlib import decompressobj as _decompressobj
    from zlib import error as _InflateError

    ENGINE = "zlib"

_CHUNK = 1 << 20


def inflate(raw: bytes, size: int, name: str) -> bytes:
    """The raw deflate stream ``raw`` inflated: at most ``size + 1`` bytes (the caller checks
    the size); raises :class:`zipfile.BadZipFile` naming member ``name`` on broken data."""
    try:
        return _decompressobj(-15).decompress(raw, size + 1)
    except _InflateError as error:
        raise zipfile.BadZipFile(f"{name}: its compressed data is broken ({error})") from None


class InflatingReader(io.RawIOBase):
    """A big deflated member, inflated as it is read: ``compress_size`` bytes of ``fd`` from
    ``offset`` (read with pread: the descriptor's position is not used). Reading past the end
    of the compressed bytes, or more than ``size`` inflated bytes, raises BadZipFile."""

    def __init__(self, fd: int, offset: int, compress_size: int, size: int, name: str):
        self._fd, self._start, self._end, self._size, self._name = fd, offset, offset + compress_size, size, name
        self.seek(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._produced

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) != (0, 0):
            raise io.UnsupportedOperation("only a rewind to the start is supported")
        self._position, self._produced, self._inflater = self._start, 0, _decompressobj(-15)
        return 0

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(_CHUNK), b""))
        data = b""
        while not data and size:
            left = self._size + 1 - self._produced  # one byte over the promise is enough to refuse
            if left <= 0 or self._inflater.eof:
                break
            pending = self._inflater.unconsumed_tail
            if not pending and self._position < self._end:
                pending = os.pread(self._fd, min(_CHUNK, self._end - self._position), self._position)
                self._position += len(pending)
            try:
                # Even with no input left, the inflater may still hold output (ISA-L does).
                data = self._inflater.decompress(pending, min(size, left))
            except _InflateError as error:
                raise zipfile.BadZipFile(f"{self._name}: its compressed data is broken ({error})") from None
            if not data and not pending:
                break
        self._produced += len(data)
        if self._produced > self._size or (not data and self._produced != self._size):
            raise zipfile.BadZipFile(f"{self._name} does not have the size the archive's index gives")
        return data
