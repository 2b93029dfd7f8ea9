"""Checksums of upstream files: sha256, and the legacy sha1/md5/cksum of old recipes.

Kept apart from fetch (and light: hashlib and zlib only) because every package build
verifies its cached tarball, while only a missing one needs the network code.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from sage_build.base.errors import ChecksumError

CHECKSUM_ALGORITHMS = ("sha256", "sha1", "md5", "cksum")
_LEGACY = ("sha1", "md5", "cksum")
_CHUNK = 1 << 20


def _bit_reverse_table() -> bytes:
    return bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


_REVERSE_BITS = _bit_reverse_table()


class _Cksum:
    """POSIX ``cksum``: CRC-32 (poly 0x04C11DB7, MSB first, init 0) over the data,
    then over the length (least significant byte first, no zero bytes), complemented.

    zlib only does the bit-reflected CRC-32, which on bit-reversed input yields the
    bit-reversed MSB-first CRC; that keeps the work in C instead of a Python loop
    over every byte. zlib's pre/post inversion cancels out against cksum's final
    complement, so the answer is just the bit-reversal of zlib's running value.
    """

    def __init__(self) -> None:
        self._crc = 0xFFFFFFFF  # zlib's state for "internal register = 0"
        self._length = 0

    def update(self, data: bytes) -> None:
        self._crc = zlib.crc32(data.translate(_REVERSE_BITS), self._crc)
        self._length += len(data)

    def value(self) -> int:
        n = self._length
        tail = bytearray()
        while n:
            tail.append(n & 0xFF)
            n >>= 8
        crc = zlib.crc32(bytes(tail).translate(_REVERSE_BITS), self._crc)
        return int(f"{crc:032b}"[::-1], 2)


def _digests(path: Path, algorithms: Sequence[str]) -> dict[str, str]:
    hashers: dict[str, hashlib._Hash] = {}
    cksum = _Cksum() if "cksum" in algorithms else None
    for algo in algorithms:
        if algo == "cksum":
            continue
        try:
            hashers[algo] = hashlib.new(algo, usedforsecurity=False)
        except ValueError:
            raise ChecksumError(f"{path}: unsupported checksum algorithm {algo!r}") from None
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashers.values():
                h.update(chunk)
            if cksum is not None:
                cksum.update(chunk)
    result = {algo: h.hexdigest() for algo, h in hashers.items()}
    if cksum is not None:
        result["cksum"] = str(cksum.value())
    return result


def compute_checksums(path: Path) -> dict[str, str]:
    """sha256, sha1, md5 and cksum of ``path``, read once (for ``fix-checksum``)."""
    return _digests(Path(path), CHECKSUM_ALGORITHMS)


def _wanted(expected: Mapping[str, str]) -> dict[str, str]:
    """The checksums to check: sha256 alone when the recipe has it, else every legacy sum."""
    sums = {k.lower(): str(v).strip() for k, v in expected.items() if str(v).strip()}
    if "sha256" in sums:
        return {"sha256": sums["sha256"].lower()}
    return {k: sums[k].lower() for k in _LEGACY if k in sums}


def _mismatch(path: Path, wanted: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(algorithm, expected, actual) of the first checksum that differs, else None."""
    actual = _digests(path, list(wanted))
    for algo, value in wanted.items():
        if actual[algo] != value:
            return algo, value, actual[algo]
    return None


def _no_checksum_error(name: str, package: str | None) -> ChecksumError:
    pkg = package or "PKG"
    return ChecksumError(
        f"{name}: the recipe has a tarball pattern without a checksum "
        f"(no sha256, sha1, md5 or cksum); add one with `./sage --package fix-checksum {pkg}`"
    )


def verify(path: Path, expected: Mapping[str, str], package: str | None = None) -> None:
    """Check ``path`` against the recipe's checksums; raise ChecksumError if it differs.

    ``expected`` maps ``sha256``/``sha1``/``md5``/``cksum`` to the recipe's values.
    sha256 is checked if present, else every legacy sum present.
    """
    path = Path(path)
    wanted = _wanted(expected)
    if not wanted:
        raise _no_checksum_error(str(path), package)
    bad = _mismatch(path, wanted)
    if bad is not None:
        algo, want, got = bad
        raise ChecksumError(
            f"checksum mismatch for {path}: {algo} expected {want}, got {got}. "
            f"If the file is right and the recipe is wrong, run "
            f"`./sage --package fix-checksum {package or 'PKG'}`."
        )


def verified_cached(path: Path, expected: Mapping[str, str]) -> bool:
    """Whether ``path`` exists and matches the recipe's checksums (the usual, offline case)."""
    wanted = _wanted(expected)
    return bool(wanted) and path.is_file() and _mismatch(path, wanted) is None
