"""Unpack an upstream source archive into a fresh build directory and apply the recipe's patches.

Archives come from mirrors and upstream servers, so nothing in them is trusted:
every entry is checked from the archive's index before the first byte is
written, and again against the real file system while writing (a link created
by an earlier entry must not redirect a later one).  The rules are those of
tarfile's ``filter='data'``, implemented here so that Python 3.10 (which has no
filters) and 3.12+ behave the same, and so that zip files get the same rules.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import struct
import subprocess
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sage_build.base.atomic import write_all
from sage_build.base.errors import UnpackError

MAX_TOTAL_SIZE = 4 * 1024**3
"""Default limit on the total uncompressed size of an archive's files, in bytes."""

MAX_RATIO = 200.0
"""Default limit on uncompressed size / archive size (source code compresses about 5-10x)."""

RATIO_MIN_SIZE = 1024**2
"""Below this uncompressed total the ratio is not checked: a small expansion is harmless whatever its ratio."""

_TAR_MODES = (
    (".tar.gz", "r:gz"),
    (".tgz", "r:gz"),
    (".tar.bz2", "r:bz2"),
    (".tbz2", "r:bz2"),
    (".tar.xz", "r:xz"),
    (".txz", "r:xz"),
    (".tar", "r:"),
)

# What reading a damaged archive raises.  OSError is included because bz2 reports bad
# data as OSError and gzip as BadGzipFile(OSError); the archive itself is opened
# separately, so an OSError here comes from its contents, not from a missing file.
_READ_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    OSError,
    ValueError,
    struct.error,
)
# Readable archives that use something we cannot decode (zip encryption, deflate64 ...).
_UNSUPPORTED_ERRORS = (tarfile.CompressionError, NotImplementedError, RuntimeError)

_CHUNK = 1024 * 1024
_MAX_ZIP_LINK = 4096
_EXTRACTED_KINDS = ("file", "dir", "symlink", "hardlink")


@dataclass
class _Entry:
    name: str  # as stored, for messages
    kind: str  # one of _EXTRACTED_KINDS, else a description of why it is refused
    member: tarfile.TarInfo | zipfile.ZipInfo
    size: int = 0
    mode: int = 0
    mtime: float | None = None
    link: str = ""  # symlink target (relative to the link's directory) or hard link target (archive path)
    path: tuple[str, ...] = ()  # destination below src/, after stripping the single top directory
    target: tuple[str, ...] = ()  # hard link target below src/


def unpack_source(
    archive: Path,
    build_dir: Path,
    *,
    max_total_size: int | None = MAX_TOTAL_SIZE,
    max_ratio: float | None = MAX_RATIO,
) -> Path:
    """Extract ``archive`` into ``build_dir/src`` and return that directory.

    If the archive holds a single top-level directory, its contents become
    ``src/`` (as Sage renames ``pkg-1.0/`` to ``src/``); otherwise every entry
    goes into ``src/``.  ``build_dir`` must exist and ``src`` must not.
    Unsafe entries, corrupt archives and archives that expand beyond
    ``max_total_size`` bytes or ``max_ratio`` times their own size (``None``
    disables a limit) raise :class:`UnpackError`, and leave no ``src/`` behind.
    """
    archive = Path(archive)
    build_dir = Path(build_dir)
    mode = _archive_mode(archive)
    if not build_dir.is_dir():
        raise UnpackError(f"cannot unpack {archive}: build directory {build_dir} does not exist")
    src = build_dir / "src"
    if os.path.lexists(src):
        raise UnpackError(f"cannot unpack {archive}: {src} already exists; remove it and try again")
    try:
        fileobj = open(archive, "rb")
    except OSError as exc:
        raise UnpackError(f"cannot read {archive}: {exc.strerror or exc}") from None
    with fileobj:
        archive_size = os.fstat(fileobj.fileno()).st_size
        container: tarfile.TarFile | zipfile.ZipFile
        try:
            if mode == "zip":
                container = zipfile.ZipFile(fileobj)
                entries = _zip_entries(container)
            else:
                container = tarfile.open(fileobj=fileobj, mode=mode)
                entries = _tar_entries(container)
        except (*_READ_ERRORS, *_UNSUPPORTED_ERRORS) as exc:
            raise _read_error(archive, exc) from None
        with container:
            _check_size(archive, entries, archive_size, max_total_size, max_ratio)
            plan = _entries_to_extract(archive, entries)
            try:
                src.mkdir()
            except OSError as exc:
                raise UnpackError(f"cannot unpack {archive}: cannot create {src}: {exc.strerror or exc}") from None
            try:
                _extract(archive, plan, src, _opener(container))
            except BaseException:
                shutil.rmtree(src, ignore_errors=True)
                raise
    return src


def apply_patches(
    src_dir: Path, patches: Sequence[Path], log: Callable[[str], None] | None = None
) -> None:
    """Apply ``patches`` in order with ``patch -p1 --batch --forward`` inside ``src_dir``.

    patch's output goes to ``log`` line by line; a patch that does not apply
    raises :class:`UnpackError` naming it, with patch's output.
    """
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise UnpackError(f"cannot apply patches: source directory {src_dir} does not exist")
    for patch in map(Path, patches):
        if not patch.is_file():
            raise UnpackError(f"patch {patch} does not exist")
        if log:
            log(f"Applying {patch}")
        try:
            # stdin closed: --batch already avoids questions, but patch must never wait on a terminal.
            proc = subprocess.run(
                ["patch", "-p1", "--batch", "--forward", "-i", str(patch.resolve())],
                cwd=src_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
        except FileNotFoundError:
            raise UnpackError(
                f"cannot apply {patch}: the 'patch' program is not installed; install it with your system's package manager"
            ) from None
        output = proc.stdout.rstrip()
        if log:
            for line in output.splitlines():
                log(line)
        if proc.returncode != 0:
            raise UnpackError(
                f"patch {patch} does not apply to {src_dir} (patch exited with status {proc.returncode}):\n{output}"
            )


def _archive_mode(archive: Path) -> str:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    for suffix, mode in _TAR_MODES:
        if name.endswith(suffix):
            return mode
    if name.endswith(".whl"):
        raise UnpackError(f"cannot unpack {archive}: a wheel is installed, not unpacked as a source archive")
    raise UnpackError(
        f"cannot unpack {archive}: unknown archive format "
        "(known: .tar, .tar.gz, .tgz, .tar.bz2, .tbz2, .tar.xz, .txz, .zip)"
    )


def _read_error(archive: Path, exc: BaseException) -> UnpackError:
    if isinstance(exc, _UNSUPPORTED_ERRORS):
        return UnpackError(f"cannot unpack {archive}: it uses a feature that cannot be read here ({exc})")
    return UnpackError(f"{archive} is corrupt or truncated ({exc or type(exc).__name__}); delete it and download again")


def _tar_entries(tf: tarfile.TarFile) -> list[_Entry]:
    entries = []
    for m in tf.getmembers():
        if m.isreg():
            kind = "file"
        elif m.isdir():
            kind = "dir"
        elif m.issym():
            kind = "symlink"
        elif m.islnk():
            kind = "hardlink"
        elif m.ischr() or m.isblk():
            kind = "device file"
        elif m.isfifo():
            kind = "FIFO (named pipe)"
        else:
            kind = f"member of unknown type {m.type!r}"
        size = m.size if kind == "file" else 0
        entries.append(_Entry(m.name, kind, m, size, m.mode, m.mtime, m.linkname))
    return entries


def _zip_entries(zf: zipfile.ZipFile) -> list[_Entry]:
    entries = []
    for zi in zf.infolist():
        # Only zips made on Unix carry a file type and permissions.
        mode = zi.external_attr >> 16 if zi.create_system == 3 else 0
        ftype = stat.S_IFMT(mode)
        link = ""
        if zi.is_dir() or ftype == stat.S_IFDIR:
            kind = "dir"
        elif ftype == stat.S_IFLNK:
            kind = "symlink"
            with zf.open(zi) as f:
                data = f.read(_MAX_ZIP_LINK + 1)
            if len(data) > _MAX_ZIP_LINK:
                kind = "symbolic link with an overlong target"
            link = data.decode("utf-8", "surrogateescape")
        elif ftype in (stat.S_IFCHR, stat.S_IFBLK):
            kind = "device file"
        elif ftype == stat.S_IFIFO:
            kind = "FIFO (named pipe)"
        elif ftype == stat.S_IFSOCK:
            kind = "socket"
        else:
            kind = "file"
        size = zi.file_size if kind == "file" else 0
        entries.append(_Entry(zi.filename, kind, zi, size, mode or 0o644, _zip_mtime(zi), link))
    return entries


def _zip_mtime(zi: zipfile.ZipInfo) -> float | None:
    try:
        return time.mktime((*zi.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


def _check_size(
    archive: Path,
    entries: list[_Entry],
    archive_size: int,
    max_total_size: int | None,
    max_ratio: float | None,
) -> None:
    total = sum(e.size for e in entries if e.kind == "file")
    if max_total_size is not None and total > max_total_size:
        raise UnpackError(
            f"refusing to unpack {archive}: its files total {total} bytes, "
            f"more than the limit of {max_total_size} bytes (a decompression bomb?)"
        )
    if max_ratio is not None and total > RATIO_MIN_SIZE and total > max_ratio * max(archive_size, 1):
        raise UnpackError(
            f"refusing to unpack {archive}: it would expand {total / max(archive_size, 1):.0f} times "
            f"to {total} bytes, more than the limit of {max_ratio:g} times (a decompression bomb?)"
        )


def _refuse(archive: Path, what: str) -> UnpackError:
    return UnpackError(f"refusing to unpack {archive}: {what}; the archive is unsafe, check where it came from")


def _archive_path(archive: Path, name: str, what: str) -> tuple[str, ...]:
    if "\0" in name:
        raise _refuse(archive, f"{what} contains a NUL character")
    try:
        os.fsencode(name)
    except UnicodeError:
        raise _refuse(archive, f"{what} cannot be represented as a file name") from None
    if name.startswith("/"):
        raise _refuse(archive, f"{what} is an absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise _refuse(archive, f"{what} contains a '..' component")
    return parts


def _single_top_dir(entries: list[_Entry]) -> str | None:
    tops = {e.path[0] for e in entries if e.path}
    if len(tops) != 1:
        return None
    (top,) = tops
    if any(e.path == (top,) and e.kind != "dir" for e in entries):
        return None
    return top


def _entries_to_extract(archive: Path, entries: list[_Entry]) -> list[_Entry]:
    """Check every entry from the index and compute where it goes; return those to extract."""
    for e in entries:
        e.path = _archive_path(archive, e.name, f"entry {e.name!r}")
    top = _single_top_dir(entries)
    if top is not None:
        for e in entries:
            e.path = e.path[1:]
    # Computed over the whole archive, so that the order of entries cannot matter.
    symlinks = {e.path for e in entries if e.kind == "symlink"}
    files: set[tuple[str, ...]] = set()
    plan = []
    for e in entries:
        if e.kind not in _EXTRACTED_KINDS:
            raise _refuse(archive, f"entry {e.name!r} is a {e.kind}; only files, directories and links are unpacked")
        for i in range(1, len(e.path)):
            if e.path[:i] in symlinks:
                raise _refuse(archive, f"entry {e.name!r} lies below a symbolic link of the archive")
        if not e.path:
            if e.kind == "dir":
                continue
            raise _refuse(archive, f"entry {e.name!r} is a {e.kind} in place of the top directory")
        if e.kind == "symlink":
            problem = _symlink_problem(e.path, e.link, symlinks)
            if problem:
                raise _refuse(archive, f"symbolic link {e.name!r} -> {e.link!r} {problem}")
        elif e.kind == "hardlink":
            what = f"hard link {e.name!r} -> {e.link!r}"
            try:
                target = _archive_path(archive, e.link, what)
            except UnpackError:
                raise _refuse(archive, f"{what} points outside the source tree") from None
            if top is not None and target[:1] == (top,):
                target = target[1:]
            if target not in files or target in symlinks:
                raise _refuse(archive, f"{what} does not point to a regular file earlier in the archive")
            e.target = target
        if e.kind in ("file", "hardlink"):
            files.add(e.path)
        else:
            files.discard(e.path)
        plan.append(e)
    return plan


def _symlink_problem(path: tuple[str, ...], target: str, symlinks: set[tuple[str, ...]]) -> str | None:
    if not target or "\0" in target:
        return "has an empty or invalid target"
    if target.startswith("/"):
        return "points to an absolute path"
    stack = list(path[:-1])
    through_link = False
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            # After passing another link, '..' climbs from wherever that link leads.
            if not stack or through_link:
                return "points outside the source tree"
            stack.pop()
        else:
            stack.append(part)
            through_link = through_link or tuple(stack) in symlinks
    return None


def _opener(container: tarfile.TarFile | zipfile.ZipFile) -> Callable[[_Entry], IO[bytes]]:
    if isinstance(container, zipfile.ZipFile):
        return lambda e: container.open(e.member)  # type: ignore[arg-type]

    def open_tar_member(e: _Entry) -> IO[bytes]:
        f = container.extractfile(e.member)  # type: ignore[arg-type]
        assert f is not None  # only regular files are opened
        return f

    return open_tar_member


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _extract(archive: Path, plan: list[_Entry], src: Path, open_member: Callable[[_Entry], IO[bytes]]) -> None:
    root = os.path.realpath(src)
    # Directories checked (real path inside the tree) and made: a later entry cannot turn one
    # into a link or a file (that is refused below), so each is checked once, not per file.
    ready = {root}
    for e in plan:
        dest = os.path.join(root, *e.path)
        try:
            parent = os.path.dirname(dest)
            if parent not in ready:
                # The index checks make this impossible; it guards against what they did not foresee.
                if not _inside(root, os.path.realpath(parent)):
                    raise _refuse(archive, f"entry {e.name!r} would be written outside the source tree")
                os.makedirs(parent, exist_ok=True)
                ready.add(parent)
            if e.kind == "dir":
                if dest not in ready:
                    if os.path.lexists(dest) and (os.path.islink(dest) or not os.path.isdir(dest)):
                        raise _refuse(archive, f"directory {e.name!r} conflicts with an earlier entry of the same name")
                    os.makedirs(dest, exist_ok=True)
                    ready.add(dest)
                continue
            if e.kind == "file":
                _write_file(archive, e, dest, open_member)
                continue
            _make_room(archive, e, dest)
            if e.kind == "symlink":
                if not _inside(root, os.path.realpath(os.path.join(parent, e.link))):
                    raise _refuse(archive, f"symbolic link {e.name!r} -> {e.link!r} points outside the source tree")
                os.symlink(e.link, dest)
            else:
                os.link(os.path.join(root, *e.target), dest, follow_symlinks=False)
        except (OSError, ValueError, UnicodeError) as exc:
            raise UnpackError(f"cannot unpack {archive}: writing entry {e.name!r} failed: {exc}") from None


def _make_room(archive: Path, e: _Entry, dest: str) -> None:
    """A later entry replaces an earlier file of the same name, as with tar; never a directory."""
    if os.path.isdir(dest) and not os.path.islink(dest):
        raise _refuse(archive, f"entry {e.name!r} conflicts with a directory of the same name")
    if os.path.lexists(dest):
        os.unlink(dest)


def _write_file(archive: Path, e: _Entry, dest: str, open_member: Callable[[_Entry], IO[bytes]]) -> None:
    # Like filter='data': no setuid/setgid/sticky, no group/other write; executable only if the owner could run it.
    mode = (e.mode & 0o755) | 0o600
    if not e.mode & 0o100:
        mode &= ~0o111
    try:
        fsrc = open_member(e)
    except (*_READ_ERRORS, *_UNSUPPORTED_ERRORS) as exc:
        raise _read_error(archive, exc) from None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with fsrc:
        try:
            fd = os.open(dest, flags, 0o600)
        except FileExistsError:  # the usual case never gets here: one lookup less per file
            _make_room(archive, e, dest)
            fd = os.open(dest, flags, 0o600)
        try:
            while True:
                try:
                    chunk = fsrc.read(_CHUNK)
                except (*_READ_ERRORS, *_UNSUPPORTED_ERRORS) as exc:
                    raise _read_error(archive, exc) from None
                if not chunk:
                    break
                write_all(fd, chunk)
            os.fchmod(fd, mode)
            if e.mtime is not None:
                # make compares timestamps: configure must stay newer than configure.ac.
                try:
                    os.utime(fd, (e.mtime, e.mtime))
                except (OverflowError, OSError, ValueError):
                    pass
        finally:
            os.close(fd)
