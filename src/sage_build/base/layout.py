"""Where things are: the source tree, the prefix, and an optional staging root.

Every path the tools write goes through :class:`Layout`, so that a staged
install (``DESTDIR``) changes one object and not every caller.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple


class TreeLayout(NamedTuple):
    """The paths of a distribution tree (``SAGE_ROOT``) alone: what a command knows before a
    configuration (and so a prefix) exists.  :class:`Layout` adds the prefix."""

    sage_root: Path

    @property
    def pkgs_dir(self) -> Path:
        return self.sage_root / "build" / "pkgs"

    @property
    def make_dir(self) -> Path:
        return self.sage_root / "build" / "make"

    @property
    def makefile(self) -> Path:
        """The generated Makefile of a distribution tree."""
        return self.make_dir / "Makefile"

    @property
    def hashes_dir(self) -> Path:
        return self.make_dir / "hashes"

    @property
    def config_file(self) -> Path:
        return self.make_dir / "config.json"

    @property
    def logs_root(self) -> Path:
        """``logs/``: the build events, the plan handed to sage-spkg, the timeline, and ``pkgs/``."""
        return self.sage_root / "logs"

    @property
    def logs_dir(self) -> Path:
        """The per-package logs."""
        return self.logs_root / "pkgs"

    @property
    def events_file(self) -> Path:
        """The build events log (:mod:`sage_build.base.events`)."""
        return self.logs_root / "events.jsonl"

    @property
    def timeline_file(self) -> Path:
        return self.logs_root / "build-timeline.html"

    def plan_file(self, session: str) -> Path:
        """The reasons of one build session's plan, which sage-progress hands to sage-spkg."""
        return self.logs_root / f"plan-{session}.json"

    @property
    def upstream(self) -> Path:
        return self.sage_root / "upstream"


class Layout(NamedTuple):
    """The tree's paths (those of :class:`TreeLayout`) and the prefix's."""

    sage_root: Path
    prefix: Path              # SAGE_LOCAL as the installed tree will see it
    destdir: Path | None = None  # staging root; None installs in place
    upstream_dir: Path | None = None
    build_dir: Path | None = None  # where packages are built, if not the prefix's (SAGE_BUILD_DIR)

    # The tree's paths are TreeLayout's own (they read sage_root alone): one definition of each.
    pkgs_dir = TreeLayout.pkgs_dir
    make_dir = TreeLayout.make_dir
    makefile = TreeLayout.makefile
    hashes_dir = TreeLayout.hashes_dir
    config_file = TreeLayout.config_file
    logs_root = TreeLayout.logs_root
    logs_dir = TreeLayout.logs_dir
    events_file = TreeLayout.events_file
    timeline_file = TreeLayout.timeline_file
    plan_file = TreeLayout.plan_file

    def staged(self, path: Path) -> Path:
        """Where a path of the final prefix is written now (under DESTDIR when staging)."""
        if self.destdir is None:
            return path
        return self.destdir / path.relative_to(path.anchor)

    @property
    def local(self) -> Path:
        """The prefix as written now (staged when DESTDIR is set)."""
        return self.staged(self.prefix)

    @property
    def var_sage(self) -> Path:
        return self.local / "var" / "lib" / "sage"

    @property
    def installed_dir(self) -> Path:
        return self.var_sage / "installed"

    @property
    def removing_dir(self) -> Path:
        """The removal journal: a stamp moves here (by rename) before its package's first file goes,
        and is deleted after the last; an entry here is a package half-removed, not installed."""
        return self.installed_dir / ".removing"

    @property
    def wheels_dir(self) -> Path:
        return self.var_sage / "wheels"

    @property
    def scripts_dir(self) -> Path:
        return self.var_sage / "scripts"

    @property
    def lock_file(self) -> Path:
        """The prefix lock (:func:`sage_build.base.lock.prefix_lock`); installed spkg-piprm scripts
        name this path too."""
        return self.var_sage / "prefix.lock"

    @property
    def locks_dir(self) -> Path:
        return _locks_dir(self.var_sage)

    def package_lock(self, name: str) -> Path:
        """The lock that keeps two sage-spkg runs of one package apart."""
        return self.locks_dir / f"{name}.lock"

    @property
    def owners_dir(self) -> Path:
        """The owner locks of the processes installing into this prefix (base.atomic.hold_owner_lock)."""
        return owners_dir_of(self.lock_file)

    @property
    def target_file(self) -> Path:
        return self.var_sage / "target-python.json"

    @property
    def build_root(self) -> Path:
        """Where packages are built: :attr:`build_dir` (Sage's $SAGE_BUILD_DIR, which the face reads)
        if given, else under the prefix."""
        return self.build_dir or self.local / "var" / "tmp" / "sage" / "build"

    @property
    def upstream(self) -> Path:
        return self.upstream_dir or TreeLayout.upstream.fget(self)

    @property
    def python_final(self) -> Path:
        """The prefix's interpreter as the installed tree names it (shebangs, spkg-piprm)."""
        return self.prefix / "bin" / "python3"

    @property
    def python(self) -> Path:
        """The prefix's interpreter as the tools run it now."""
        return self.staged(self.python_final)

    @property
    def bin_dir(self) -> Path:
        """The prefix's ``bin`` as written now (where its python3 is)."""
        return self.python.parent

    def stamp(self, name: str, version: str) -> Path:
        return self.installed_dir / f"{name}-{version}"

    def cache_record(self, name: str, version: str) -> Path:
        """The binary-cache key (and its inputs) recorded when this version of the package was
        built: what ``./sage --cache push`` publishes it under (#20)."""
        return self.var_sage / "cache-keys" / f"{name}-{version}.json"

    def log_file(self, name: str, version: str) -> Path:
        return self.logs_dir / f"{name}-{version}.log"

    def installed_stamps(self, name: str) -> list[Path]:
        """The stamps of every installed version of package ``name``."""
        return _entries_of(self.installed_dir, name)

    def removal_journal(self, name: str) -> list[Path]:
        """The journal entries (see :attr:`removing_dir`) of package ``name``: removals to complete."""
        return _entries_of(self.removing_dir, name)


def owners_dir_of(lock_file: Path) -> Path:
    """The owner locks' directory of the prefix whose lock is ``lock_file`` (the install layer knows
    a prefix by its lock file alone; :attr:`Layout.owners_dir` is the same path)."""
    return _locks_dir(lock_file.parent) / "owners"


def _locks_dir(var_sage: Path) -> Path:
    # The package locks and, in owners/, the owner locks (on-disk contracts: see ARCHITECTURE.md).
    return var_sage / "locks"


def _entries_of(directory: Path, name: str) -> list[Path]:
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    prefix = name + "-"
    # A version never starts with a letter... except 'none'; a recipe's name has no '-' (configure
    # refuses it) but the pseudo-package python3-venv has, so match on "<name>-<a version>".
    return sorted(
        directory / entry for entry in entries
        if entry.startswith(prefix) and _is_version_part(entry[len(prefix):])
    )


def _is_version_part(text: str) -> bool:
    return bool(text) and (text[0].isdigit() or text == "none") and "-" not in text


def tool_root() -> Path:
    """The sage-build checkout these modules run from (build/bin, templates ...)."""
    return Path(__file__).resolve().parents[3]


def tool_bin_dir() -> Path:
    """The tool's own scripts (sage-spkg, sage-dist-helpers ...)."""
    return tool_root() / "build" / "bin"


def source_root() -> Path:
    """The directory that holds the ``sage_build`` package (put on sys.path of helper interpreters)."""
    return Path(__file__).resolve().parents[2]
