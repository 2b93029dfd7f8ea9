"""Byte-code for installed modules: compiled atomically, answered with RECORD hashes.

The prefix's interpreter compiles.  When it is the very build that runs sage-build
(same version string, cache tag and magic number: the same compiler), the compile
runs in this process, which saves an interpreter start per wheel; otherwise the
prefix's interpreter runs :func:`main` of this module (it imports nothing of
sage-build but this file, :mod:`sage_build.base.atomic` and :mod:`sage_build.base.errors`, and only the standard library).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import sys
from importlib._bootstrap_external import _code_to_hash_pyc, _code_to_timestamp_pyc  # what py_compile uses

from sage_build.base.errors import InstallError
from sage_build.base.atomic import adopt_owner, set_power_loss_safe, write_atomic


def parse_levels(text: str, where: str) -> tuple[int, ...]:
    """Optimisation levels as a person writes them: 'none' (or nothing), '0', '0 1 2', '0,1'.

    ``where`` names the setting in the error (``SAGE_BYTECODE_LEVELS``, ``--bytecode``)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        levels = tuple(int(v) for v in text.replace(",", " ").split())
    except ValueError:
        levels = (-1,)
    if any(level not in (0, 1, 2) for level in levels):
        raise InstallError(f"{where}={text!r}: use 'none' or levels from 0 to 2, such as '0' or '0 1 2'")
    return levels


def fingerprint() -> str:
    """What determines the byte-code this interpreter writes."""
    return f"{sys.implementation.cache_tag}|{importlib.util.MAGIC_NUMBER.hex()}|{sys.version}"


def compile_files(files: list[tuple[str, str]], levels: list[int]) -> list[list[tuple[str, str, int]]]:
    """Compile each ``(path now, path at run time)`` at each optimisation level.

    Each .pyc is written to a temporary name beside it and renamed into place.  Returns,
    per file, ``(pyc path, urlsafe-b64 sha256, size)`` of what was written; a file that
    does not compile (Python 2 code in a test directory ...) gets none, as with pip.
    """
    # As py_compile: reproducible builds (SOURCE_DATE_EPOCH) get checked-hash byte-code.
    checked_hash = bool(os.environ.get("SOURCE_DATE_EPOCH"))
    results = []
    for real, final in files:
        made: list[tuple[str, str, int]] = []
        try:
            with open(real, "rb") as handle:
                source = handle.read()
                stat = os.fstat(handle.fileno())
        except OSError:
            results.append(made)
            continue
        for level in levels:
            try:
                code = compile(source, final, "exec", dont_inherit=True, optimize=level)
            except (SyntaxError, ValueError, UnicodeError):
                break
            if checked_hash:
                data = bytes(_code_to_hash_pyc(code, importlib.util.source_hash(source), True))
            else:
                data = bytes(_code_to_timestamp_pyc(code, stat.st_mtime, stat.st_size))
            pyc = importlib.util.cache_from_source(real, optimization=level if level else "")
            write_atomic(pyc, data, mode=None)  # None: the umask applies, as to the installed sources
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            made.append((pyc, digest, len(data)))
        results.append(made)
    return results


def main() -> None:
    """Child mode: a JSON request ``{"levels": [...], "owner": pid, "fsync": bool, "files": [[real, final], ...]}``
    on stdin."""
    import json

    request = json.load(sys.stdin)
    set_power_loss_safe(bool(request.get("fsync")))
    if "owner" in request:
        adopt_owner(request["owner"])
    json.dump(compile_files([tuple(f) for f in request["files"]], request["levels"]), sys.stdout)


if __name__ == "__main__":
    main()
