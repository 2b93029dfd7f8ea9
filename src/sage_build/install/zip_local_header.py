"""A zip member's local header: where its compressed bytes begin.

:mod:`zipfile` finds this as it opens a member; the installer (which reads small members
with one ``pread``) and the wheel normaliser (which copies compressed bytes as they are)
need it without opening members through zipfile.  Standard library only: both import it
early, before anything heavier.
"""

from __future__ import annotations

import struct
import zipfile

LOCAL_HEADER_SIZE = 30
_SIGNATURE = b"PK\x03\x04"


def encoded_name(info: zipfile.ZipInfo) -> bytes:
    """The member's name as its local header spells it."""
    return info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")


def data_offset(head: bytes, info: zipfile.ZipInfo) -> int:
    """Where the member's compressed bytes begin, relative to ``info.header_offset``.

    ``head``: the archive's bytes from ``info.header_offset``, at least the fixed header and
    the name.  Checked as zipfile checks it: the signature, and the name against the index's.
    """
    name = encoded_name(info)
    if head[:4] != _SIGNATURE or len(head) < LOCAL_HEADER_SIZE:
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    name_length, extra_length = struct.unpack("<HH", head[26:30])
    if head[LOCAL_HEADER_SIZE:LOCAL_HEADER_SIZE + name_length] != name:
        raise zipfile.BadZipFile(f"file name in directory {info.filename!r} and header differ")
    return LOCAL_HEADER_SIZE + name_length + extra_length
