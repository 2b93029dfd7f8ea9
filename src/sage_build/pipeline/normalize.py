"""Reproducible wheels: a wheel rewritten so that the same contents always give the same bytes.

Entries sorted (dist-info last, RECORD at the very end), one timestamp, permissions
0644/0755, RECORD's lines sorted, every member deflated.  The contents, and so RECORD's
hashes, are unchanged.

The members' compressed bytes are copied as they are, not inflated and deflated again
(ten times faster: bench/README.md, "Measurements behind the design"): the backends write wheels
with :mod:`zipfile`'s default compression, as the rewrite would, so two builds of the
same source still give the same bytes.  A member stored uncompressed (or compressed
another way) is deflated here; a wheel that needs ZIP64 is rewritten by :mod:`zipfile`.
"""

from __future__ import annotations

import struct
import time
import zipfile
import zlib
from pathlib import Path

from sage_build.base.atomic import replacing
from sage_build.install.ziplocal import LOCAL_HEADER_SIZE, data_offset, encoded_name

_CENTRAL_HEADER = struct.Struct("<4s4B4HL2L5H2L")  # as zipfile writes it, without ZIP64 fields
_END_OF_CENTRAL_DIRECTORY = struct.Struct("<4s4H2LH")
_ZIP32_LIMIT = 0xFFFFFFFF
_VERSION = 20  # what zipfile writes for a deflated member


_CHUNK = 1 << 20


def normalize_wheel(wheel: Path, epoch: int) -> None:
    """Rewrite ``wheel`` in place into its canonical form (see the module's description)."""
    date_time = time.gmtime(epoch)[:6]
    with replacing(wheel) as tmp, zipfile.ZipFile(wheel) as source, open(wheel, "rb") as raw:
        infos = [i for i in source.infolist() if not i.is_dir()]
        record = next((i.filename for i in infos if i.filename.endswith(".dist-info/RECORD")), None)

        def order(info: zipfile.ZipInfo) -> tuple[int, str]:
            return (2 if info.filename == record else 1 if ".dist-info/" in info.filename else 0, info.filename)

        infos.sort(key=order)
        if _needs_zip64(infos):
            _rewrite_with_zipfile(source, infos, Path(tmp), date_time, record)
        else:
            _copy_members(source, raw, infos, Path(tmp), date_time, record)


def _canonical_info(info: zipfile.ZipInfo, date_time: tuple) -> zipfile.ZipInfo:
    target = zipfile.ZipInfo(info.filename, date_time=date_time)
    target.compress_type = zipfile.ZIP_DEFLATED
    target.external_attr = (0o100755 if (info.external_attr >> 16) & 0o111 else 0o100644) << 16
    target.create_system = 3
    target.extract_version = target.create_version = _VERSION
    return target


def _sorted_record(data: bytes, record: str) -> bytes:
    lines = [line for line in data.decode().splitlines() if line.strip()]
    own = [line for line in lines if line.split(",")[0] == record]
    rest = sorted(line for line in lines if line.split(",")[0] != record)
    return ("\n".join(rest + own) + "\n").encode()


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)  # as zipfile does
    return compressor.compress(data) + compressor.flush()


def _needs_zip64(infos: list[zipfile.ZipInfo]) -> bool:
    # Deflating a member can make it a little bigger than it is (zlib's bound: 0.1 % + 64 bytes).
    sizes = [i.compress_size if i.compress_type == zipfile.ZIP_DEFLATED else i.file_size * 1001 // 1000 + 64
             for i in infos]
    total = sum(LOCAL_HEADER_SIZE + len(i.filename.encode()) + size for i, size in zip(infos, sizes))
    return len(infos) >= 0xFFFF or total >= _ZIP32_LIMIT or any(i.file_size >= _ZIP32_LIMIT for i in infos)


def _copy_members(source: zipfile.ZipFile, raw, infos: list[zipfile.ZipInfo], path: Path,
                  date_time: tuple, record: str | None) -> None:
    """A zip archive byte for byte as zipfile writes the canonical members (without ZIP64), the
    deflated members' bytes copied from ``raw`` (the wheel's file)."""
    central = []
    with open(path, "wb") as out:
        for info in infos:
            target = _canonical_info(info, date_time)
            target.header_offset = out.tell()
            if info.compress_type == zipfile.ZIP_DEFLATED and info.filename != record:
                target.CRC, target.file_size, target.compress_size = info.CRC, info.file_size, info.compress_size
                out.write(target.FileHeader(zip64=False))
                _copy_raw(raw, info, out)
            else:
                data = source.read(info)
                if info.filename == record:
                    data = _sorted_record(data, record)
                compressed = _deflate(data)
                target.CRC, target.file_size, target.compress_size = zlib.crc32(data), len(data), len(compressed)
                out.write(target.FileHeader(zip64=False))
                out.write(compressed)
            central.append(_central_header(target))
        start = out.tell()
        directory = b"".join(central)
        out.write(directory)
        out.write(_END_OF_CENTRAL_DIRECTORY.pack(b"PK\005\006", 0, 0, len(central), len(central),
                                                 len(directory), start, 0))


def _copy_raw(raw, info: zipfile.ZipInfo, out) -> None:
    """Copy the compressed bytes of ``info`` as they are in the archive."""
    raw.seek(info.header_offset)
    offset = data_offset(raw.read(LOCAL_HEADER_SIZE + len(encoded_name(info))), info)
    raw.seek(info.header_offset + offset)
    left = info.compress_size
    while left:
        chunk = raw.read(min(left, _CHUNK))
        if not chunk:
            raise zipfile.BadZipFile(f"{info.filename}: the member is cut short")
        out.write(chunk)
        left -= len(chunk)


def _central_header(info: zipfile.ZipInfo) -> bytes:
    name = info.filename.encode("utf-8")
    flags = 0 if info.filename.isascii() else 0x800  # UTF-8 name, as zipfile marks it
    dos_date = (info.date_time[0] - 1980) << 9 | info.date_time[1] << 5 | info.date_time[2]
    dos_time = info.date_time[3] << 11 | info.date_time[4] << 5 | info.date_time[5] // 2
    return _CENTRAL_HEADER.pack(
        b"PK\001\002", info.create_version, info.create_system, info.extract_version, 0, flags,
        info.compress_type, dos_time, dos_date, info.CRC, info.compress_size, info.file_size,
        len(name), 0, 0, 0, 0, info.external_attr, info.header_offset,
    ) + name


def _rewrite_with_zipfile(source: zipfile.ZipFile, infos: list[zipfile.ZipInfo], path: Path,
                          date_time: tuple, record: str | None) -> None:
    """The same canonical members through zipfile, which handles ZIP64 (wheels of 4 GiB or more)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as target:
        for info in infos:
            canonical = _canonical_info(info, date_time)
            if info.filename == record:
                target.writestr(canonical, _sorted_record(source.read(info), record))
                continue
            canonical.file_size = info.file_size
            with source.open(info) as member, target.open(canonical, "w", force_zip64=True) as copy:
                while chunk := member.read(_CHUNK):
                    copy.write(chunk)
