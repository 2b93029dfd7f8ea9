"""Installing into the shared prefix: wheels (with ``installer``) and staged trees.

Every file that reaches the prefix goes through :func:`publish_file`: it is
written to a temporary file in its target directory and then published by
linking it to the target if absent (so two installs never fail on each other
and no reader sees half a file); an existing target with the same bytes is
shared, one with different bytes is a collision.  Installs hold the prefix's
shared lock only while publishing (see :mod:`sage_build.lock`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import posixpath
import stat
import time
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, ContextManager, Iterable

# installer's public API only (its documented abstract classes and public functions), so that
# any installer in pyproject.toml's range works: tests/test_installer_api.py checks no private name is used.
from installer import install as installer_install
from installer.destinations import WheelDestination
from installer.records import Hash, RecordEntry, parse_record_file
from installer.sources import WheelSource
from installer.utils import Scheme, canonicalize_name, fix_shebang, parse_wheel_filename

from sage_build.install import bytecode
from sage_build.base.atomic import (
    TMP_MARK, create, hold_owner_lock, make_dirs, owner_alive, owner_id, power_loss_safe,
    sync_directory, sync_file, tmp_name, write_all, write_atomic,
)
from sage_build.base.errors import InstallError
from sage_build.base.killpoint import reach
from sage_build.base.layout import owners_dir_of, source_root
from sage_build.base.lock import prefix_lock
from sage_build.install.inflate import InflatingReader, inflate
from sage_build.install.zip_local_header import LOCAL_HEADER_SIZE, data_offset, encoded_name

INSTALLER_NAME = b"sage-build\n"
# In a dist-info directory: the files whose existing bytes SAGE_INSTALL_COLLISIONS=warn kept
# (JSON: [{"path": relative like a RECORD row, "owner": distribution or null}]).  spkg-piprm
# reads it to say which package an uninstall leaves damaged.
KEPT_COLLISIONS = "SAGE_KEPT_COLLISIONS"

PUBLISHED, SHARED, KEPT = "published", "shared", "kept"
_COPY_CHUNK = 1 << 20
_WHOLE_MEMBER = 16 << 20  # members up to this size are read (and checked) in one piece


class Collision(InstallError):
    def __init__(self, path: str | os.PathLike[str], owner: str | None, installing: str):
        self.path, self.owner, self.installing = Path(path), owner, installing
        other = f"'{owner}'" if owner else "another package (or a file not installed by sage-build)"
        super().__init__(
            f"{installing} would overwrite {path}, which {other} installed with different content;"
            f" uninstall {owner or 'it'} first, or set SAGE_INSTALL_COLLISIONS=warn to keep the existing file"
        )


def _same_content(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    import filecmp

    return filecmp.cmp(a, b, shallow=False)


def publish_file(tmp: str | os.PathLike[str], target: str | os.PathLike[str], *, installing: str,
                 collisions: str = "error", owner_of=None) -> str:
    """Publish a finished temporary file at ``target``.

    Returns PUBLISHED (the file is ours), SHARED (an identical file was there) or KEPT
    (different bytes were there and ``collisions`` is 'warn').  ``collisions``: 'error'
    (different bytes raise :class:`Collision`), 'warn' (keep the existing file, warn naming
    both), 'replace' (atomically replace: upgrades of our own files).
    """
    try:
        if collisions == "replace":
            os.replace(tmp, target)
            return PUBLISHED
        try:
            os.link(tmp, target)
            return PUBLISHED
        except FileExistsError:
            pass
        except OSError:
            # Filesystems without hard links: rename is atomic but may replace.
            if not os.path.exists(target):
                os.replace(tmp, target)
                return PUBLISHED
        if os.path.isfile(target) and not os.path.islink(target) and _same_content(tmp, target):
            return SHARED
        owner = owner_of(target) if owner_of else None
        error = Collision(target, owner, installing)
        if collisions == "warn":
            import warnings

            warnings.warn(str(error).split(";")[0] + "; the existing file was kept", stacklevel=2)
            return KEPT
        raise error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def escapes(rel: str) -> bool:
    """Whether a relative path (a wheel member, a RECORD row, a link) leaves the directory it is
    relative to: absolute, or climbing out with '..'.  Lexical: nothing on disk is resolved, so
    a prefix whose own path goes through a link installs like any other."""
    normal = posixpath.normpath(rel)
    return rel.startswith("/") or normal == ".." or normal.startswith("../")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _check_wheel_path(wheel: str, path: str, what: str) -> None:
    """Refuse a wheel path that would land outside its scheme directory, or that is named like our
    temporary files (the sweep of dead installs' leftovers would delete it)."""
    parts = path.split("/")
    in_data = len(parts) > 2 and parts[0].endswith(".data")
    if escapes(path) or (in_data and escapes("/".join(parts[2:]))):
        raise InstallError(
            f"{wheel}: {what} {path}, which would be installed outside its directory in the prefix"
            " (an absolute path or one that climbs out with '..'); nothing was installed."
            " The wheel is broken or hostile: do not install it")
    if any(TMP_MARK in part for part in parts):
        raise InstallError(
            f"{wheel}: {what} {path}, a name sage-build keeps for its temporary files ('{TMP_MARK}'):"
            " the next install into that directory would delete it; nothing was installed")


def refuse_links_out(directory: str, root: str, *, checked: set[str], installing: str) -> None:
    """Refuse to write into ``directory`` when it, or a directory between it and ``root``, is a
    link that leads out of ``root`` (``checked`` remembers the directories already found safe)."""
    real_root = None
    path = directory
    while path not in checked and _inside(path, root) and path != root:
        if os.path.islink(path):
            real_root = real_root or os.path.realpath(root)
            real = os.path.realpath(path)
            if not _inside(real, real_root):
                raise InstallError(
                    f"{installing}: {path} is a link to {real}, which leads out of the prefix {root};"
                    " nothing is installed through it. Remove the link (or point it inside the prefix)"
                    " and install again")
        checked.add(path)
        path = os.path.dirname(path)


def _b64(digest: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _tampered(wheel: str, path: str) -> InstallError:
    return InstallError(
        f"{wheel}: {path} does not match the hash in the wheel's RECORD"
        " (a corrupt or tampered wheel); nothing was installed. Delete the wheel and rebuild."
    )


class _HashCheckingReader(io.RawIOBase):
    """A stream that checks the RECORD hash of a (big) wheel member when it has been read to the end."""

    def __init__(self, stream: BinaryIO, path: str, expected: str, wheel: str):
        self.stream, self.path, self.wheel = stream, path, wheel
        algorithm, _, self.expected = expected.partition("=")
        self.digest = hashlib.new(algorithm)
        self.done = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.stream.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        # installer rewinds a script after peeking at its shebang: start hashing again.
        if (offset, whence) != (0, 0):
            raise io.UnsupportedOperation("only a rewind to the start is supported")
        self.digest = hashlib.new(self.digest.name)
        self.done = False
        return self.stream.seek(0)

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        if not data:
            self._check()
            return 0
        self.digest.update(data)
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        if data:
            self.digest.update(data)
        if not data or size < 0:
            self._check()
        return data

    def _check(self) -> None:
        if self.done:
            return
        self.done = True
        if _b64(self.digest.digest()) != self.expected:
            raise _tampered(self.wheel, self.path)


class _CheckedMember(io.BytesIO):
    """A whole wheel member, already checked against RECORD (its hash need not be computed again)."""

    def __init__(self, data: bytes, algorithm: str, value: str):
        super().__init__(data)
        self.algorithm, self.value = algorithm, value


def _read_member(fd: int, item: zipfile.ZipInfo) -> bytes:
    """A stored or deflated member in one piece, read with pread (no seeks, usually one call)."""
    # Enough for the header, its usual extra field and the member: usually one call.
    head = os.pread(fd, LOCAL_HEADER_SIZE + len(encoded_name(item)) + 64 + item.compress_size, item.header_offset)
    offset = data_offset(head, item)
    raw = head[offset:offset + item.compress_size]
    if len(raw) < item.compress_size:
        raw = os.pread(fd, item.compress_size, item.header_offset + offset)
    if item.compress_type == zipfile.ZIP_DEFLATED:
        # At most one byte more than the index promises: a member that inflates beyond its
        # declared size (a zip bomb) stops there instead of filling the memory.
        data = inflate(raw, item.file_size, item.filename)
    else:
        data = raw
    if len(data) != item.file_size:
        raise zipfile.BadZipFile(f"{item.filename} does not have the size the archive's index gives")
    return data


def _member_stream(fd: int, item: zipfile.ZipInfo) -> InflatingReader:
    """A big deflated member, inflated as it is read (with pread: no seeks)."""
    head = os.pread(fd, LOCAL_HEADER_SIZE + len(encoded_name(item)), item.header_offset)
    start = item.header_offset + data_offset(head, item)
    return InflatingReader(fd, start, item.compress_size, item.file_size, item.filename)


class CheckedWheelFile(WheelSource):
    """A wheel whose members are checked against RECORD as they are read (one pass).

    installer's abstract :class:`~installer.sources.WheelSource`, implemented over the
    :mod:`zipfile` index and our own file descriptor.  Members are read whole with pread
    (up to 16 MiB), so each is checked before any of it is written; bigger ones are inflated
    as they are written (:mod:`~sage_build.install.inflate`) and checked at their end, before
    anything is published."""

    def __init__(self, file: BinaryIO, archive: zipfile.ZipFile, path: str):
        distribution, version = parse_wheel_filename(os.path.basename(path))[:2]
        super().__init__(distribution=distribution, version=version)
        self.file, self.archive, self.path = file, archive, path

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: str | os.PathLike[str]):
        with open(path, "rb") as file, zipfile.ZipFile(file) as archive:
            yield cls(file, archive, os.fspath(path))

    @functools.cached_property
    def dist_info_dir(self) -> str:
        """The one top-level ``.dist-info`` directory, named like the wheel file."""
        found = sorted({name.split("/", 1)[0] for name in self.archive.namelist()
                        if name.split("/", 1)[0].endswith(".dist-info")})
        if len(found) != 1:
            raise ValueError(f"Wheel doesn't contain exactly one .dist-info directory"
                             f" (filename={self.path!r}, dist_info={found!r})")
        dist_info = found[0]
        if canonicalize_name(dist_info.rsplit("-", 2)[0]) != canonicalize_name(self.distribution):
            raise ValueError(f"Wheel .dist-info directory doesn't match wheel filename"
                             f" (filename={self.path!r}, dist_info={dist_info!r})")
        return dist_info

    @property
    def dist_info_filenames(self) -> list[str]:
        base = self.dist_info_dir + "/"
        return [name[len(base):] for name in self.archive.namelist()
                if name.startswith(base) and name[-1:] != "/"]

    def read_dist_info(self, filename: str) -> str:
        return self.archive.read(posixpath.join(self.dist_info_dir, filename)).decode("utf-8")

    def validate_record(self) -> None:
        """Check every member against RECORD without installing (what :meth:`get_contents` does
        as it reads); raises :attr:`validation_error`."""
        try:
            for _, stream, _ in self.get_contents():
                while stream.read(_COPY_CHUNK):
                    pass
        except (InstallError, zipfile.BadZipFile, KeyError) as error:
            raise self.validation_error(str(error)) from error

    def get_contents(self):
        archive = self.archive
        wheel = self.path
        record_path = f"{self.dist_info_dir}/RECORD"
        records = {r[0]: r for r in parse_record_file(self.read_dist_info("RECORD").splitlines())}
        for path in records:
            _check_wheel_path(wheel, path, "its RECORD lists")
        fd = self.file.fileno()
        for item in archive.infolist():
            path = item.filename
            if path[-1:] == "/":
                continue
            _check_wheel_path(wheel, path, "it holds")
            record = records.pop(path, (path, "", ""))
            mode = item.external_attr >> 16
            is_executable = bool(mode and stat.S_ISREG(mode) and mode & 0o111)
            checked = path != record_path and not path.endswith((".jws", ".p7s"))
            if checked and not record[1]:
                raise InstallError(f"{wheel}: {path} is not listed with a hash in the wheel's RECORD;"
                                   " nothing was installed")
            plain = not item.flag_bits & 0x21 and item.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
            if plain and item.file_size <= _WHOLE_MEMBER:
                data = _read_member(fd, item)
                if not checked:
                    if zlib.crc32(data) != item.CRC:
                        raise zipfile.BadZipFile(f"bad CRC-32 for {path}")
                    yield record, io.BytesIO(data), is_executable
                    continue
                algorithm, _, value = record[1].partition("=")
                if _b64(hashlib.new(algorithm, data).digest()) != value:
                    raise _tampered(wheel, path)
                yield record, _CheckedMember(data, algorithm, value), is_executable
            elif checked and plain and item.compress_type == zipfile.ZIP_DEFLATED:
                yield record, _HashCheckingReader(_member_stream(fd, item), path, record[1], wheel), is_executable
            else:
                with archive.open(item) as stream:
                    yield record, _HashCheckingReader(stream, path, record[1], wheel) if checked else stream, \
                        is_executable


class AtomicDestination(WheelDestination):
    """An installer destination that stages every file first and publishes all at the end.

    Nothing of a wheel reaches the prefix until every member has been written and
    checked; then collisions are checked for all files before the first publish.
    installer's abstract :class:`~installer.destinations.WheelDestination` (``write_file``,
    ``write_script``, ``finalize_installation``): paths are joined here, lexically (a prefix
    whose own path goes through a link is never resolved), and byte-code is compiled here.
    """

    def __init__(self, scheme_dict: dict[str, str], *, interpreter: str, script_kind: str, installing: str,
                 python: Path, collisions: str = "error", bytecode_levels: Iterable[int] = (0,),
                 lock_file: Path | None = None, compile_workers: int = 1, compile_here: bool = False,
                 destdir: str | None = None, hash_algorithm: str = "sha256",
                 borrow_jobs: Callable[[int], ContextManager[int]] | None = None):
        self.scheme_dict = scheme_dict  # final locations (RECORD, byte-code, shebangs)
        self.interpreter, self.script_kind = interpreter, script_kind
        self.hash_algorithm = hash_algorithm
        self.destdir = destdir
        # The scheme directories as written now: under DESTDIR when staging.
        self.real_dirs = {scheme: _under_destdir(directory, destdir) for scheme, directory in scheme_dict.items()}
        self.compile_workers = compile_workers
        self.borrow_jobs = borrow_jobs  # more job slots for a while: yields how many it got
        self.compiled_in = 0  # how many processes compiled the byte-code (0: none was compiled)
        self.compile_here = compile_here
        self.installing = installing
        self.python = python
        self.collisions = collisions
        self.bytecode_levels = tuple(bytecode_levels)
        self.lock_file = lock_file
        self.staged: list[tuple[str, str]] = []  # (temporary, target)
        self.published: list[str] = []
        self.ready_dirs: set[str] = set()  # made (or found) and swept by this install
        self.made_dirs: set[str] = set()
        self.created_dirs: list[str] = []  # top-most directories this install made, for a roll-back
        self.kept: list[str] = []  # targets whose different existing bytes 'warn' kept
        self.owners_dir = owners_dir_of(lock_file) if lock_file is not None else None
        self._owner_alive: dict[int, bool] = {}
        self._owners: dict[str, str | None] = {}
        # Everything of this wheel lands below the schemes' common directory (the prefix).
        self.root = os.path.commonpath(list(self.real_dirs.values()))
        self.link_checked: set[str] = set()

    def _prepare_directory(self, directory: str) -> None:
        """mkdir -p, once per directory; one that existed is swept of dead installs' temporaries."""
        for _ in range(10):
            try:
                os.mkdir(directory)
            except FileExistsError:
                cleanup_stale_temporaries(directory, self.owners_dir, self._owner_alive)
                break
            except FileNotFoundError:
                parent = os.path.dirname(directory)
                self.ready_dirs.discard(parent)  # a concurrent uninstall may just have removed it
                self._prepare_directory(parent)
                continue
            if os.path.dirname(directory) not in self.made_dirs:
                self.created_dirs.append(directory)
            self.made_dirs.add(directory)
            break
        else:
            make_dirs(directory)
        self.ready_dirs.add(directory)

    def real_path(self, scheme: Scheme, path: str) -> str:
        """Where ``path`` of ``scheme`` is written now (joined, never resolved)."""
        return os.path.join(self.real_dirs[scheme], path)

    def write_file(self, scheme: Scheme, path: str | os.PathLike[str], stream: BinaryIO,
                   is_executable: bool) -> RecordEntry:
        path = os.fspath(path)
        if scheme == "scripts":  # '#!python' becomes the prefix's interpreter
            with fix_shebang(stream, self.interpreter) as script:
                return self.write_to_fs(scheme, path, script, is_executable)
        return self.write_to_fs(scheme, path, stream, is_executable)

    def write_to_fs(self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool) -> RecordEntry:
        """Stage one file beside its target; it is published in :meth:`finalize_installation`."""
        if escapes(path) or TMP_MARK in posixpath.basename(path):
            # Members were checked as they were read; this catches entry-point script names.
            _check_wheel_path(self.installing, path, f"its {scheme} file")
        target = self.real_path(scheme, path)
        directory = os.path.dirname(target)
        if directory not in self.ready_dirs:
            refuse_links_out(directory, self.root, checked=self.link_checked, installing=self.installing)
            self._prepare_directory(directory)
        tmp = tmp_name(target)
        self.staged.append((tmp, target))
        fd = create(tmp, 0o755 if is_executable else 0o644)
        try:
            if isinstance(stream, _CheckedMember) and stream.algorithm == self.hash_algorithm:
                data = stream.getvalue()
                write_all(fd, data)
                value, size = stream.value, len(data)
            else:
                # A member checked against the wheel's RECORD has that hash: no need to hash it again.
                checked = isinstance(stream, _HashCheckingReader) and stream.digest.name == self.hash_algorithm
                digest = None if checked else hashlib.new(self.hash_algorithm)
                size = 0
                while True:
                    chunk = stream.read(_COPY_CHUNK)
                    if not chunk:
                        break
                    if digest is not None:
                        digest.update(chunk)
                    write_all(fd, chunk)
                    size += len(chunk)
                value = stream.expected if checked else _b64(digest.digest())
            sync_file(fd)
        finally:
            os.close(fd)
        return RecordEntry(path, Hash(self.hash_algorithm, value), size)

    def write_script(self, name: str, module: str, attr: str, section) -> RecordEntry:
        # Staged 0755 like any executable member (it is published in finalize_installation).
        from installer.scripts import Script

        script_name, data = Script(name, module, attr, section).generate(self.interpreter, self.script_kind)
        return self.write_to_fs(Scheme("scripts"), script_name, io.BytesIO(data), is_executable=True)

    def discard(self) -> None:
        """Drop the staged files and the directories made for them (if still empty)."""
        for tmp, _ in self.staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.staged.clear()
        for top in reversed(self.created_dirs):
            for root, dirs, files in sorted(os.walk(top, topdown=False), key=lambda e: -e[0].count(os.sep)):
                with contextlib.suppress(OSError):
                    os.rmdir(root)  # fails (and is kept) when another install put something there

    def site_dirs(self) -> list[str]:
        """The site directories as written now (under DESTDIR when staging)."""
        return sorted({os.path.normpath(self.real_dirs[s]) for s in ("purelib", "platlib")})

    def _owner_of(self, path: str | os.PathLike[str]) -> str | None:
        if str(path) in self._owners:
            return self._owners[str(path)]
        sites = [Path(p) for p in {self.scheme_dict["purelib"], self.scheme_dict["platlib"]}]
        owner = None
        # The owner may be publishing right now, its RECORD not yet written: give it a moment.
        for _ in range(30):
            owner = find_owner(Path(path), sites, self.destdir)
            if owner is not None:
                break
            time.sleep(0.1)
        self._owners[str(path)] = owner
        return owner

    def _kept_collisions_entry(self, scheme: Scheme, dist_info: str) -> RecordEntry:
        """Write the dist-info's record of the files whose existing bytes 'warn' kept."""
        root = self.real_dirs[scheme]
        kept = [{"path": os.path.relpath(target, root).replace(os.sep, "/"), "owner": self._owner_of(target)}
                for target in self.kept]
        data = (json.dumps(kept, indent=1) + "\n").encode()
        rel = f"{dist_info}/{KEPT_COLLISIONS}"
        target = self.real_path(scheme, rel)
        write_atomic(Path(target), data)
        self.published.append(target)
        return RecordEntry(rel, Hash("sha256", _b64(hashlib.sha256(data).digest())), len(data))

    def finalize_installation(self, scheme: Scheme, record_file_path: str, records) -> None:
        record_list = [(s, r) for s, r in records if r.path != record_file_path]
        with prefix_lock(self.lock_file, shared=True):
            if self.collisions == "error":
                for tmp, target in self.staged:
                    # In a directory this install made, only a concurrent install can have put a
                    # file since; publishing (link if absent, then compare) catches that too.
                    if os.path.dirname(target) in self.made_dirs:
                        continue
                    if os.path.exists(target) and not _same_content(tmp, target):
                        raise Collision(target, self._owner_of(target), self.installing)
            reach("install-staged")
            for tmp, target in self.staged:
                # A shared file that was already there (same bytes) is not ours to roll back.
                outcome = publish_file(tmp, target, installing=self.installing,
                                       collisions=self.collisions, owner_of=self._owner_of)
                if outcome == PUBLISHED:
                    self.published.append(target)
                elif outcome == KEPT:
                    self.kept.append(target)
                reach("install-published")
            self.staged.clear()
            if power_loss_safe():
                for directory in {os.path.dirname(p) for p in self.published}:
                    sync_directory(directory)
            record_list += self._compile_bytecode_all(record_list)
            if self.kept:
                record_list.append((scheme, self._kept_collisions_entry(scheme, posixpath.dirname(record_file_path))))
            record_list.append((scheme, RecordEntry(record_file_path, None, None)))
            root = self.scheme_dict[scheme]
            rows = []
            for file_scheme, entry in record_list:
                if file_scheme == scheme:
                    rel = entry.path
                else:
                    rel = os.path.relpath(os.path.join(self.scheme_dict[file_scheme], entry.path), root)
                    rel = rel.replace(os.sep, "/")
                hash_text = f"{entry.hash_.name}={entry.hash_.value}" if entry.hash_ else ""
                rows.append((rel, hash_text, "" if entry.size is None else str(entry.size)))
            record_target = Path(self.real_path(scheme, record_file_path))
            write_atomic(record_target, _csv(rows).encode())
            self.published.append(str(record_target))

    def _compile_bytecode_all(self, records) -> list[tuple[Scheme, RecordEntry]]:
        """Compile byte-code with the prefix's interpreter; return RECORD entries for the .pyc files."""
        if not self.bytecode_levels:
            return []
        sources = []
        for scheme, entry in records:
            if scheme in ("purelib", "platlib") and entry.path.endswith(".py"):
                real = self.real_path(scheme, entry.path)
                final = os.path.join(self.scheme_dict[scheme], entry.path)
                sources.append((scheme, entry.path, real, final))
        if not sources:
            return []
        for cache in {os.path.join(os.path.dirname(real), "__pycache__") for _, _, real, _ in sources}:
            if cache not in self.ready_dirs:
                refuse_links_out(cache, self.root, checked=self.link_checked, installing=self.installing)
                self.ready_dirs.add(cache)
                cleanup_stale_temporaries(cache, self.owners_dir, self._owner_alive)
        # A big wheel (sympy ...) compiles in several interpreters at once, with the job slots that
        # are free now (make's jobserver: what other packages do not use), given back afterwards.
        wanted = max(1, min(self.compile_workers, len(sources) // 150))
        with self.borrow_jobs(wanted - 1) if self.borrow_jobs else contextlib.nullcontext(wanted - 1) as extra:
            return self._compile_in(sources, 1 + extra)

    def _compile_in(self, sources: list, workers: int) -> list[tuple[Scheme, RecordEntry]]:
        self.compiled_in = workers
        chunks = [sources[i::workers] for i in range(workers)]
        levels = list(self.bytecode_levels)
        if self.compile_here:
            # This interpreter writes the same byte-code: it compiles one share itself, while
            # children (if any) compile the others.
            children = self._start_compilers(chunks[1:], levels)
            answers = [bytecode.compile_files([(real, final) for _, _, real, final in chunks[0]], levels)]
            answers += self._answers_of(children)
        else:
            answers = self._answers_of(self._start_compilers(chunks, levels))
        entries = []
        for chunk, answer in zip(chunks, answers):
            for (scheme, rel, real, _), pycs in zip(chunk, answer):
                for pyc, value, size in pycs:
                    pyc_rel = os.path.relpath(pyc, os.path.dirname(real))
                    rel_path = os.path.normpath(os.path.join(os.path.dirname(rel), pyc_rel)).replace(os.sep, "/")
                    entries.append((scheme, RecordEntry(rel_path, Hash("sha256", value), size)))
                    self.published.append(pyc)
        return entries

    def _start_compilers(self, chunks, levels: list[int]) -> list:
        """Start one prefix interpreter per chunk, each running bytecode.py (standard library only)
        from our source tree; return (process, future of its output) pairs."""
        if not chunks:
            return []
        import subprocess
        from concurrent.futures import ThreadPoolExecutor

        src = str(source_root())
        script = f"import sys; sys.path.insert(0, {src!r}); from sage_build.install.bytecode import main; main()"
        # Each child reads its whole request before it starts: hand them out side by side.
        pool = ThreadPoolExecutor(len(chunks))
        started = []
        for chunk in chunks:
            # The children's temporaries carry our id: our owner lock covers them.
            # They write as this process does: power-loss safe or not (set_power_loss_safe).
            request = json.dumps({"levels": levels, "owner": owner_id(), "fsync": power_loss_safe(),
                                  "files": [[real, final] for _, _, real, final in chunk]})
            process = subprocess.Popen([str(self.python), "-c", script], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            started.append((process, pool.submit(process.communicate, request)))
        pool.shutdown(wait=False)
        return started

    def _answers_of(self, started: list) -> list:
        answers = []
        for process, future in started:
            out, err = future.result()
            if process.returncode != 0:
                raise InstallError(f"compiling byte-code with {self.python} failed: {err.strip()[-1000:]}")
            answers.append(json.loads(out))
        return answers


def _under_destdir(directory: str, destdir: str | None) -> str:
    """``directory`` as written now: moved under ``destdir`` when staging (lexically, like
    installer 0.7 did: nothing is resolved)."""
    if destdir is None:
        return directory
    path = Path(directory)
    return os.path.join(destdir, path.relative_to(path.anchor))


def _csv(rows: list[tuple[str, str, str]]) -> str:
    import csv

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def find_owner(path: Path, site_dirs: Iterable[Path], destdir: str | None = None) -> str | None:
    """The installed distribution whose RECORD lists ``path`` (only used to name a collision)."""
    for site in site_dirs:
        real_site = Path(destdir + str(site)) if destdir else site
        for record in real_site.glob("*.dist-info/RECORD"):
            try:
                text = record.read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                rel = line.rsplit(",", 2)[0].strip('"')
                if rel and (real_site / rel).resolve() == path.resolve():
                    return record.parent.name.split("-")[0]
    return None


class InstalledWheel:
    def __init__(self, name: str, version: str, dist_info: Path, files: list[str], compiled_in: int = 0):
        self.name, self.version = name, version
        self.dist_info = dist_info  # as written now (staged if DESTDIR)
        self.files = files
        self.compiled_in = compiled_in  # how many processes compiled its byte-code (0: none)


def install_wheel(
    wheel: Path, *, paths: dict[str, str], python_final: Path, python_now: Path,
    collisions: str, destdir: Path | None = None, lock_file: Path | None = None,
    bytecode_levels: Iterable[int] = (0,), compile_workers: int = 1, compile_here: bool = False,
    borrow_jobs: Callable[[int], ContextManager[int]] | None = None,
) -> InstalledWheel:
    """Install ``wheel`` into the scheme ``paths`` (the target's sysconfig paths, final locations).

    ``python_final`` goes into script shebangs; ``python_now`` compiles byte-code, or this
    process does if ``compile_here`` (``python_now`` writes the same byte-code as we do), in up
    to ``compile_workers`` processes: as many as ``borrow_jobs(wanted - 1)`` yields more slots
    (none without it) while they compile.  ``collisions`` (SAGE_INSTALL_COLLISIONS, which the face
    reads): 'error' refuses a file another package installed, 'warn' keeps it and says so.
    """
    if collisions not in ("error", "warn"):
        raise InstallError(f"SAGE_INSTALL_COLLISIONS={collisions!r}: use 'error' or 'warn'")
    scheme = {key: paths[key] for key in ("purelib", "platlib", "scripts", "data")}
    try:
        file_name, file_version = parse_wheel_filename(wheel.name)[:2]
    except ValueError as error:
        raise InstallError(f"{wheel}: not a valid wheel file name ({error})") from None
    with contextlib.ExitStack() as stack:
        try:
            source = stack.enter_context(CheckedWheelFile.open(wheel))
            dist_info = source.dist_info_dir
            name, version = dist_info[: -len(".dist-info")].rsplit("-", 1)
        except Exception as error:  # zipfile.BadZipFile, OSError, installer's own errors ...
            raise InstallError(f"{wheel} is not a valid wheel: {error}") from None
        if canonicalize_name(name) != canonicalize_name(file_name) or not _same_version(version, file_version):
            raise InstallError(f"{wheel}: its file name says {file_name} {file_version}, but it holds {dist_info};"
                               " nothing was installed")
        scheme["headers"] = os.path.join(paths["data"], "include", "site",
                                         f"python{Path(paths['stdlib']).name[len('python'):]}", name)
        destination = AtomicDestination(
            scheme, interpreter=str(python_final), script_kind="posix", installing=f"{name} {version}",
            python=python_now, collisions=collisions, bytecode_levels=bytecode_levels,
            lock_file=lock_file, destdir=str(destdir) if destdir else None,
            compile_workers=compile_workers, borrow_jobs=borrow_jobs,
            compile_here=compile_here,
        )
        if destination.owners_dir is not None:
            hold_owner_lock(destination.owners_dir)
        try:
            installer_install(source, destination, {"INSTALLER": INSTALLER_NAME})
        except BaseException as error:
            roll_back(destination.published, site_dirs=destination.site_dirs(), lock_file=lock_file,
                      own_dist_info=destination.real_path(Scheme("purelib"), dist_info))
            destination.discard()
            if isinstance(error, InstallError) or not isinstance(error, Exception):
                raise
            raise InstallError(f"installing {wheel.name} failed: {error}; nothing of it was kept") from None
    root = Path(destination.real_path(Scheme("purelib"), dist_info))
    return InstalledWheel(name=name, version=version, dist_info=root, files=destination.published,
                          compiled_in=destination.compiled_in)


def _same_version(a: str, b: str) -> bool:
    if a == b:  # the usual case, without importing packaging's version parser
        return True
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


def roll_back(published: list[str], *, site_dirs: Iterable[str | os.PathLike[str]], lock_file: Path | None,
              own_dist_info: str | None = None) -> None:
    """Remove what a failed install published, except the files another distribution's RECORD lists.

    A concurrent install may have found one of our files present with the same bytes and
    listed it as its own: it is shared now.  So the roll-back takes the prefix's lock
    exclusively (nobody publishes, every finished install's RECORD is written) and only
    then decides, from every RECORD, what is ours alone."""
    if not published:
        return
    with prefix_lock(lock_file, shared=False):
        claimed = _listed_by_records(site_dirs, {os.path.basename(p) for p in published}, own_dist_info)
        for path in reversed(published):
            if os.path.normpath(path) in claimed:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _listed_by_records(site_dirs: Iterable[str | os.PathLike[str]], names: set[str],
                       skip_dist_info: str | None) -> set[str]:
    """The paths with one of ``names`` as file name that an installed distribution's RECORD lists."""
    skip = os.path.normpath(skip_dist_info) if skip_dist_info else None
    listed = set()
    for site in site_dirs:
        site = os.path.normpath(site)
        try:
            entries = os.listdir(site)
        except FileNotFoundError:
            continue
        for entry in entries:
            dist_info = os.path.join(site, entry)
            if not entry.endswith(".dist-info") or dist_info == skip:
                continue
            try:
                with open(os.path.join(dist_info, "RECORD"), encoding="utf-8", errors="replace") as handle:
                    rows = handle.read().splitlines()
            except OSError:
                continue
            for row in rows:
                rel = row.rsplit(",", 2)[0].strip('"')
                if rel and posixpath.basename(rel) in names:
                    listed.add(os.path.normpath(os.path.join(site, rel)))
    return listed


def merge_staging(staging_root: Path, prefix: Path, local: Path, *, installing: str,
                  lock_file: Path | None = None) -> list[str]:
    """Move a script's ``DESTDIR`` tree (``staging_root/<prefix>``) into the prefix.

    Returns the installed paths relative to the prefix, for the manifest.
    """
    staged_prefix = staging_root / prefix.relative_to(prefix.anchor)
    if not staging_root.exists():
        return []
    outside = [p for p in staging_root.rglob("*")
               if not p.is_dir() and not _is_relative_to(p, staged_prefix)]
    if outside:
        raise InstallError(
            f"{installing} installed files outside the prefix {prefix}, e.g. "
            f"{'/' + str(outside[0].relative_to(staging_root))}; install into $SAGE_LOCAL only"
        )
    _check_staged_tree(staged_prefix, prefix, local, installing)
    if lock_file is not None:
        hold_owner_lock(owners_dir_of(lock_file))
    installed = []
    with prefix_lock(lock_file, shared=True):
        for root, dirs, files in os.walk(staged_prefix):
            dirs.sort()
            rel_root = Path(root).relative_to(staged_prefix)
            for name in sorted(files) + sorted(d for d in dirs if os.path.islink(os.path.join(root, d))):
                source = Path(root, name)
                target = local / rel_root / name
                make_dirs(target.parent)
                tmp = tmp_name(target)
                if source.is_symlink():
                    os.symlink(os.readlink(source), tmp)
                else:
                    os.link(source, tmp) if _same_device(source, target.parent) else _copy(source, tmp)
                # A new build of a non-Python package replaces its own files.
                publish_file(tmp, target, installing=installing, collisions="replace")
                installed.append(str(rel_root / name))
    return installed


def _check_staged_tree(staged_prefix: Path, prefix: Path, local: Path, installing: str) -> None:
    """Before anything of a staged tree is published: refuse links that lead out of the prefix,
    files named like our temporaries, and targets reached through a link that leads out."""
    checked: set[str] = set()
    inside_roots = (str(staged_prefix), str(local), str(prefix))
    for root, dirs, files in os.walk(staged_prefix):
        rel_root = os.path.relpath(root, staged_prefix)
        refuse_links_out(os.path.normpath(os.path.join(local, rel_root)), str(local), checked=checked,
                         installing=installing)
        for name in files + dirs:
            rel = os.path.normpath(os.path.join(rel_root, name))
            if TMP_MARK in name:
                raise InstallError(f"{installing} installed {rel}, a name sage-build keeps for its temporary"
                                   f" files ('{TMP_MARK}'); rename it in the recipe")
            source = os.path.join(root, name)
            if not os.path.islink(source):
                continue
            link = os.readlink(source)
            if os.path.isabs(link):
                leads_out = not _inside(os.path.normpath(link), str(prefix))
            else:
                leads_out = escapes(posixpath.join(posixpath.dirname(rel), link))
            # Lexically inside is not enough when the way goes through another link
            # (up -> <prefix>, x -> up/../..): where it really leads must be inside too.
            real = os.path.realpath(source)
            leads_out = leads_out or not any(_inside(real, os.path.realpath(root_)) for root_ in inside_roots)
            if leads_out:
                raise InstallError(f"{installing} installed the link {rel} -> {link}, which leads out of the"
                                   f" prefix {prefix}; the links a package installs must stay inside it")


def _copy(source: Path, dest: Path) -> None:
    import shutil

    shutil.copy2(source, dest)


def _same_device(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def _is_relative_to(path: Path, base: Path) -> bool:
    try:
        path.relative_to(base)
        return True
    except ValueError:
        return False


def cleanup_stale_temporaries(directory: str | os.PathLike[str], owners_dir: str | os.PathLike[str] | None = None,
                              known: dict[int, bool] | None = None) -> int:
    """Remove the temporary files that installs which died left in ``directory``; return how many.

    Called for each directory an install writes into, so a killed install's leftovers go
    the next time anything is installed there.  Whether their owner still lives is asked of
    its owner lock in ``owners_dir`` (see :func:`atomic.owner_alive`); ``known`` caches the
    answers for one install.
    """
    known = {} if known is None else known
    removed = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if TMP_MARK not in name:
            continue
        pid_text = name.split(TMP_MARK, 1)[1].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid not in known:
            known[pid] = owner_alive(owners_dir, pid)
        if not known[pid]:
            # Our temporaries are files; a directory with the mark is nobody's leftover.
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(os.path.join(directory, name))
                removed += 1
    return removed

