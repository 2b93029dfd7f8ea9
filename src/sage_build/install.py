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
import filecmp
import hashlib
import io
import itertools
import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable

from installer import install as installer_install
from installer.destinations import SchemeDictionaryDestination
from installer.records import Hash, RecordEntry
from installer.sources import WheelFile
from installer.utils import Scheme

from .errors import InstallError
from .lock import prefix_lock
from .makeflags import job_budget

INSTALLER_NAME = b"sage-build\n"
_PID = os.getpid()
TMP_MARK = ".sbtmp-"
_COPY_CHUNK = 1 << 20


_counter = itertools.count()


def tmp_name(target: Path) -> Path:
    """A temporary name beside ``target``, recognisable (and owned by this process) for clean-up."""
    return target.with_name(f".{target.name}{TMP_MARK}{_PID}-{next(_counter)}")


def make_dirs(path: Path) -> None:
    """``mkdir -p`` that tolerates a concurrent uninstall removing a parent in between."""
    for _ in range(10):
        try:
            path.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            continue
    path.mkdir(parents=True, exist_ok=True)


class Collision(InstallError):
    def __init__(self, path: Path, owner: str | None, installing: str):
        self.path, self.owner, self.installing = path, owner, installing
        other = f"'{owner}'" if owner else "another package (or a file not installed by sage-build)"
        super().__init__(
            f"{installing} would overwrite {path}, which {other} installed with different content;"
            f" uninstall {owner or 'it'} first, or set SAGE_INSTALL_COLLISIONS=warn to keep the existing file"
        )


def publish_file(tmp: Path, target: Path, *, installing: str, collisions: str = "error",
                 owner_of=None) -> bool:
    """Publish a finished temporary file at ``target``; return False if an identical file was there.

    ``collisions``: 'error' (different bytes raise :class:`Collision`), 'warn' (keep the
    existing file, warn naming both), 'replace' (atomically replace: upgrades of our own files).
    """
    try:
        if collisions == "replace":
            os.replace(tmp, target)
            return True
        try:
            os.link(tmp, target)
            return True
        except FileExistsError:
            pass
        except OSError:
            # Filesystems without hard links: rename is atomic but may replace.
            if not target.exists():
                os.replace(tmp, target)
                return True
        if target.is_file() and not target.is_symlink() and filecmp.cmp(tmp, target, shallow=False):
            return False
        owner = owner_of(target) if owner_of else None
        error = Collision(target, owner, installing)
        if collisions == "warn":
            warnings.warn(str(error).split(";")[0] + "; the existing file was kept", stacklevel=2)
            return False
        raise error
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _create(path: Path, mode: int = 0o644) -> BinaryIO:
    """Open a new file for writing, re-making its directory if a concurrent uninstall just removed it
    (an uninstall removes only empty directories, so once the file exists the directory stays)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for attempt in range(10):
        try:
            return os.fdopen(os.open(path, flags, mode), "wb")
        except FileNotFoundError:
            if attempt == 9:
                raise
            make_dirs(path.parent)
    raise AssertionError("not reached")


def power_loss_safe() -> bool:
    """SAGE_INSTALL_FSYNC=yes: fsync every file before it is published, and its directory after.

    Without it installs are SIGKILL-safe (no torn file, ever) but a power loss may lose the
    last writes; with it they survive a power loss too, at the cost of much slower installs."""
    return os.environ.get("SAGE_INSTALL_FSYNC", "no").lower() in ("yes", "1", "true")


def _sync(handle) -> None:
    if power_loss_safe():
        handle.flush()
        os.fsync(handle.fileno())


def _sync_directory(directory: Path) -> None:
    if power_loss_safe():
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _b64(digest: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def write_atomic(target: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a whole file atomically, replacing what was there (for our own metadata)."""
    make_dirs(target.parent)
    tmp = tmp_name(target)
    with _create(tmp) as handle:
        handle.write(data)
        _sync(handle)
    os.chmod(tmp, mode)
    os.replace(tmp, target)
    _sync_directory(target.parent)


class _HashCheckingReader(io.RawIOBase):
    """A stream that checks the RECORD hash of a wheel member when it has been read to the end."""

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
        actual = _b64(self.digest.digest())
        if actual != self.expected:
            raise InstallError(
                f"{self.wheel}: {self.path} does not match the hash in the wheel's RECORD"
                " (a corrupt or tampered wheel); nothing was installed. Delete the wheel and rebuild."
            )


class CheckedWheelFile(WheelFile):
    """A wheel whose members are checked against RECORD while they stream (one pass)."""

    def get_contents(self):
        record_path = f"{self.dist_info_dir}/RECORD"
        for record, stream, is_executable in super().get_contents():
            path, hash_text, _ = record
            if path != record_path and not path.endswith((".jws", ".p7s")):
                if not hash_text:
                    raise InstallError(
                        f"{self._zipfile.filename}: {path} is not listed with a hash in the wheel's RECORD;"
                        " nothing was installed"
                    )
                stream = _HashCheckingReader(stream, path, hash_text, str(self._zipfile.filename))
            yield record, stream, is_executable


@dataclass
class _Staged:
    tmp: Path
    target: Path


class AtomicDestination(SchemeDictionaryDestination):
    """An installer destination that stages every file first and publishes all at the end.

    Nothing of a wheel reaches the prefix until every member has been written and
    checked; then collisions are checked for all files before the first publish.
    """

    def __init__(self, *args, installing: str, python: Path, collisions: str = "error",
                 bytecode_levels: Iterable[int] = (0,), lock_file: Path | None = None,
                 compile_workers: int = 1, **kwargs):
        super().__init__(*args, bytecode_optimization_levels=(), **kwargs)
        self.compile_workers = compile_workers
        self.installing = installing
        self.python = python
        self.collisions = collisions
        self.bytecode_levels = tuple(bytecode_levels)
        self.lock_file = lock_file
        self.staged: list[_Staged] = []
        self.published: list[Path] = []
        self.swept: set[Path] = set()
        self.created_dirs: list[Path] = []  # top-most directories this install made, for a roll-back

    def write_to_fs(self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool) -> RecordEntry:
        target = Path(self._path_with_destdir(scheme, path))
        if target.parent not in self.swept:  # once per directory: make it, sweep dead temporaries
            missing = target.parent
            while not missing.parent.exists():
                missing = missing.parent
            if not missing.exists():
                self.created_dirs.append(missing)
            make_dirs(target.parent)
            self.swept.add(target.parent)
            cleanup_stale_temporaries(target.parent)
        tmp = tmp_name(target)
        checked = isinstance(stream, _HashCheckingReader) and stream.digest.name == self.hash_algorithm
        digest = None if checked else hashlib.new(self.hash_algorithm)
        size = 0
        self.staged.append(_Staged(tmp, target))
        with _create(tmp, 0o755 if is_executable else 0o644) as handle:
            while True:
                chunk = stream.read(_COPY_CHUNK)
                if not chunk:
                    break
                if digest is not None:
                    digest.update(chunk)
                handle.write(chunk)
                size += len(chunk)
            _sync(handle)
        # A member checked against the wheel's RECORD has that hash: no need to hash it again.
        value = stream.expected if checked else _b64(digest.digest())
        return RecordEntry(path, Hash(self.hash_algorithm, value), size)

    def write_script(self, name: str, module: str, attr: str, section) -> RecordEntry:
        # The stock method chmods the target right away; ours is still staged (and made 0755).
        from installer.scripts import Script

        script_name, data = Script(name, module, attr, section).generate(self.interpreter, self.script_kind)
        return self.write_to_fs(Scheme("scripts"), script_name, io.BytesIO(data), is_executable=True)

    def discard(self) -> None:
        """Drop the staged files and the directories made for them (if still empty)."""
        for item in self.staged:
            with contextlib.suppress(FileNotFoundError):
                item.tmp.unlink()
        self.staged.clear()
        for top in reversed(self.created_dirs):
            for root, dirs, files in sorted(os.walk(top, topdown=False), key=lambda e: -e[0].count(os.sep)):
                with contextlib.suppress(OSError):
                    os.rmdir(root)  # fails (and is kept) when another install put something there

    def _owner_of(self, path: Path) -> str | None:
        sites = [Path(p) for p in {self.scheme_dict["purelib"], self.scheme_dict["platlib"]}]
        # The owner may be publishing right now, its RECORD not yet written: give it a moment.
        for _ in range(30):
            owner = find_owner(path, sites, self.destdir)
            if owner is not None:
                return owner
            time.sleep(0.1)
        return None

    def finalize_installation(self, scheme: Scheme, record_file_path: str, records) -> None:
        record_list = [(s, r) for s, r in records if r.path != record_file_path]
        with prefix_lock(self.lock_file, shared=True):
            if self.collisions == "error":
                for item in self.staged:
                    if item.target.exists() and not filecmp.cmp(item.tmp, item.target, shallow=False):
                        raise Collision(item.target, self._owner_of(item.target), self.installing)
            for item in list(self.staged):
                publish_file(item.tmp, item.target, installing=self.installing,
                             collisions=self.collisions, owner_of=self._owner_of)
                self.published.append(item.target)
                self.staged.remove(item)
            if power_loss_safe():
                for directory in {p.parent for p in self.published}:
                    _sync_directory(directory)
            record_list += self._compile_bytecode_all(record_list)
            record_list.append((scheme, RecordEntry(record_file_path, None, None)))
            root = Path(self.scheme_dict[scheme])
            lines = []
            for file_scheme, entry in record_list:
                if file_scheme == scheme:
                    rel = entry.path
                else:
                    rel = os.path.relpath(Path(self.scheme_dict[file_scheme]) / entry.path, root).replace(os.sep, "/")
                hash_text = f"{entry.hash_.name}={entry.hash_.value}" if entry.hash_ else ""
                size = "" if entry.size is None else str(entry.size)
                lines.append(_csv_line(rel, hash_text, size))
            record_target = Path(self._path_with_destdir(scheme, record_file_path))
            write_atomic(record_target, "".join(lines).encode())
            self.published.append(record_target)

    def _compile_bytecode_all(self, records) -> list[tuple[Scheme, RecordEntry]]:
        """Compile byte-code with the prefix's interpreter; return RECORD entries for the .pyc files."""
        if not self.bytecode_levels:
            return []
        sources = []
        for scheme, entry in records:
            if scheme in ("purelib", "platlib") and entry.path.endswith(".py"):
                real = self._path_with_destdir(scheme, entry.path)
                final = os.path.join(self.scheme_dict[scheme], entry.path)
                sources.append((scheme, entry.path, real, final))
        if not sources:
            return []
        for cache in {Path(real).parent / "__pycache__" for _, _, real, _ in sources} - self.swept:
            self.swept.add(cache)
            cleanup_stale_temporaries(cache)
        # A big wheel (sympy ...) compiles in several interpreters at once, within the job budget.
        workers = max(1, min(self.compile_workers, len(sources) // 150))
        chunks = [sources[i::workers] for i in range(workers)]
        processes = []
        for chunk in chunks:
            request = {"levels": list(self.bytecode_levels), "files": [[real, final] for _, _, real, final in chunk]}
            process = subprocess.Popen([str(self.python), "-c", _COMPILE_SCRIPT], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            processes.append((process, json.dumps(request)))
        entries = []
        for chunk, (process, request) in zip(chunks, processes):
            out, err = process.communicate(request)
            if process.returncode != 0:
                raise InstallError(f"compiling byte-code with {self.python} failed: {err.strip()[-1000:]}")
            for (scheme, rel, real, _), pycs in zip(chunk, json.loads(out)):
                for pyc, value, size in pycs:
                    pyc_rel = os.path.relpath(pyc, os.path.dirname(real))
                    rel_path = os.path.normpath(os.path.join(os.path.dirname(rel), pyc_rel)).replace(os.sep, "/")
                    entries.append((scheme, RecordEntry(rel_path, Hash("sha256", value), size)))
                    self.published.append(Path(pyc))
        return entries


def _csv_line(*fields: str) -> str:
    import csv

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue()


# Run by the prefix's interpreter: compile each file to a temporary name, then rename;
# answer each .pyc with its RECORD hash and size.
_COMPILE_SCRIPT = r"""
import base64, hashlib, importlib.util, json, os, py_compile, sys
request = json.load(sys.stdin)
out = []
for real, final in request["files"]:
    made = []
    for level in request["levels"]:
        cfile = importlib.util.cache_from_source(real, optimization=level if level else "")
        tmp = "%s.sbtmp-%d" % (cfile, os.getpid())
        try:
            py_compile.compile(real, cfile=tmp, dfile=final, doraise=True, optimize=level)
            with open(tmp, "rb") as handle:
                data = handle.read()
            os.replace(tmp, cfile)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            made.append([cfile, digest, len(data)])
        except (py_compile.PyCompileError, SyntaxError, UnicodeError):
            pass
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    out.append(made)
json.dump(out, sys.stdout)
"""


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


@dataclass
class InstalledWheel:
    name: str
    version: str
    dist_info: Path          # as written now (staged if DESTDIR)
    files: list[Path] = field(default_factory=list)


def install_wheel(
    wheel: Path, *, paths: dict[str, str], python_final: Path, python_now: Path,
    destdir: Path | None = None, lock_file: Path | None = None, collisions: str | None = None,
    bytecode_levels: Iterable[int] = (0,), compile_workers: int | None = None,
) -> InstalledWheel:
    """Install ``wheel`` into the scheme ``paths`` (the target's sysconfig paths, final locations).

    ``python_final`` goes into script shebangs; ``python_now`` compiles byte-code.
    """
    collisions = collisions or os.environ.get("SAGE_INSTALL_COLLISIONS", "error")
    if collisions not in ("error", "warn"):
        raise InstallError(f"SAGE_INSTALL_COLLISIONS={collisions!r}: use 'error' or 'warn'")
    scheme = {key: paths[key] for key in ("purelib", "platlib", "scripts", "data")}
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
    from packaging.version import InvalidVersion, Version

    try:
        file_name, file_version, _, _ = parse_wheel_filename(wheel.name)
    except (InvalidWheelFilename, InvalidVersion) as error:
        raise InstallError(f"{wheel}: not a valid wheel file name ({error})") from None
    try:
        with WheelFile.open(wheel) as probe:
            dist_info = probe.dist_info_dir
            name, version = dist_info[: -len(".dist-info")].rsplit("-", 1)
    except Exception as error:  # zipfile.BadZipFile, installer's own errors, KeyError ...
        raise InstallError(f"{wheel} is not a valid wheel: {error}") from None
    try:
        mismatch = canonicalize_name(name) != file_name or Version(version) != file_version
    except InvalidVersion:
        mismatch = True
    if mismatch:
        raise InstallError(
            f"{wheel}: its file name says {file_name} {file_version}, but it holds {dist_info}; nothing was installed"
        )
    scheme["headers"] = os.path.join(paths["data"], "include", "site",
                                     f"python{Path(paths['stdlib']).name[len('python'):]}", name)
    destination = AtomicDestination(
        scheme, interpreter=str(python_final), script_kind="posix", installing=f"{name} {version}",
        python=python_now, collisions=collisions, bytecode_levels=bytecode_levels,
        lock_file=lock_file, destdir=str(destdir) if destdir else None,
        compile_workers=compile_workers if compile_workers is not None else job_budget(),
    )
    try:
        with CheckedWheelFile.open(wheel) as source:
            installer_install(source, destination, {"INSTALLER": INSTALLER_NAME})
    except InstallError:
        _roll_back(destination.published)
        destination.discard()
        raise
    except Exception as error:
        _roll_back(destination.published)
        destination.discard()
        raise InstallError(f"installing {wheel.name} failed: {error}; nothing of it was kept") from None
    root = Path(destination._path_with_destdir(Scheme("purelib"), dist_info))
    return InstalledWheel(name=name, version=version, dist_info=root, files=list(destination.published))


def _roll_back(published: list[Path]) -> None:
    # Only reached before RECORD exists, i.e. files are ours alone or identical shared ones
    # (those were never counted as published by us).
    for path in reversed(published):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


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


def cleanup_stale_temporaries(directory: Path) -> int:
    """Remove the temporary files that installs which died left in ``directory``; return how many.

    Called for each directory an install writes into, so a killed install's leftovers go
    the next time anything is installed there.
    """
    removed = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if TMP_MARK not in name:
            continue
        pid_text = name.split(TMP_MARK, 1)[1].split("-", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / name)
                removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m sage_build.install --prefix DIR WHEEL...``: install wheels as sage-spkg does."""
    import argparse

    from .errors import SageBuildError
    from .target import TargetPython, query_python

    parser = argparse.ArgumentParser(prog="python -m sage_build.install",
                                     description="Install wheels into a prefix (a virtual environment) race-free.")
    parser.add_argument("--prefix", required=True, type=Path)
    parser.add_argument("--bytecode", default="0", help="optimisation levels, e.g. '0' or '0 1', or 'none'")
    parser.add_argument("wheels", nargs="+", type=Path)
    args = parser.parse_args(argv)
    target_file = args.prefix / "var" / "lib" / "sage" / "target-python.json"
    try:
        target = TargetPython.load(target_file) if target_file.exists() else query_python(args.prefix / "bin" / "python3")
        levels = () if args.bytecode == "none" else tuple(int(x) for x in args.bytecode.split())
        for wheel in args.wheels:
            install_wheel(wheel, paths=target.paths, python_final=args.prefix / "bin" / "python3",
                          python_now=args.prefix / "bin" / "python3",
                          lock_file=args.prefix / "var" / "lib" / "sage" / "prefix.lock", bytecode_levels=levels)
    except SageBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
