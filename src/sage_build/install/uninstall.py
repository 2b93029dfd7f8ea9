"""Uninstalling a package, in Sage's order.

``spkg-prerm`` (a failure aborts), ``spkg-piprm`` (the Python distributions,
RECORD-driven), the manifest's other files deepest first with the directories
they leave empty, ``spkg-postrm``, the package's scripts directory, and last
the stamp.  File removal holds the prefix's exclusive lock.

A journal makes this safe against a kill: before anything is removed, the stamp
moves (by rename) into ``installed/.removing/``, so make, the plan and
``--package list`` see the package as not installed from then on; the journal
entry is deleted last.  Every step can run again, so the next uninstall or build
of the package simply runs them all again to complete a removal a kill cut short.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from sage_build.base.errors import UninstallError
from sage_build.base.killpoint import reach
from sage_build.base.commands import inherited_environment
from sage_build.base.layout import Layout
from sage_build.base.lock import prefix_lock
from sage_build.install.manifest import read_manifest

PIPRM = "spkg-piprm"
PIPRM_REMOVED_NOTHING = 3  # spkg-piprm's exit status when it failed before removing anything


def render_piprm(*, package: str, version: str, python: Path, prefix: Path,
                 distributions: list[tuple[str, str, str]]) -> str:
    """The text of a package's spkg-piprm (``distributions``: name, version, dist-info dir under prefix)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("sage_build.install", "templates"),
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return env.get_template("spkg-piprm.j2").render(
        package=package, version=version, python=str(python), prefix=str(prefix),
        distributions=[list(d) for d in distributions], removed_nothing=PIPRM_REMOVED_NOTHING,
    )


def begin_removal(layout: Layout, name: str) -> dict[Path, Path]:
    """Move every stamp of ``name`` into the removal journal; return {stamp: journal entry}.

    A rename: from here on the package is not installed for make (which checks the stamp),
    before the first of its files goes."""
    moved = {}
    for stamp in layout.installed_stamps(name):
        layout.removing_dir.mkdir(exist_ok=True)
        entry = layout.removing_dir / stamp.name
        os.replace(stamp, entry)
        moved[stamp] = entry
        reach("uninstall-journal")
    return moved


def uninstall(layout: Layout, name: str, *, stamp_only: bool = False, say: Callable[[str], None] = print,
              force_piprm: bool = False) -> bool:
    """Uninstall every installed version of package ``name``, and complete a removal that a kill
    interrupted; return False if there was neither."""
    if stamp_only:
        stamps = layout.installed_stamps(name)
        for stamp in stamps:
            stamp.unlink()
        if stamps:
            say(f"{name}: removed the stamp only (-k); the files stay")
        return bool(stamps)
    moved = begin_removal(layout, name)
    entries = layout.removal_journal(name)
    if not entries:
        return False
    scripts = layout.scripts_dir / name
    env = inherited_environment(SAGE_LOCAL=str(layout.prefix))
    if layout.destdir is not None:
        env["DESTDIR"] = str(layout.destdir)

    def run(script: str, *args: str) -> None:
        path = scripts / script
        if not path.exists():
            return
        command = [str(layout.python), str(path), *args] if script == PIPRM else ["bash", str(path)]
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        for line in result.stdout.splitlines():
            say(f"  {line}")
        if result.returncode == 0:
            return
        # spkg-prerm runs before anything is removed; spkg-piprm says when it removed nothing.
        # Then the package is whole and its stamp goes back; else the journal stays (not installed).
        whole = script == "spkg-prerm" or (script == PIPRM and result.returncode == PIPRM_REMOVED_NOTHING)
        if whole:
            for stamp, entry in moved.items():
                os.replace(entry, stamp)
        raise UninstallError(
            f"{name}: {path} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}\n"
            + ("The package stays installed." if whole else
               f"The removal stopped half-way; `./sage --uninstall {name}` or `make {name}` completes it.")
            + (f" If its RECORD is broken, run {path} --force by hand, then uninstall again." if script == PIPRM else "")
        )

    run("spkg-prerm")
    reach("uninstall-prerm")
    run(PIPRM, *(["--force"] if force_piprm else []))
    reach("uninstall-piprm")
    with prefix_lock(layout.lock_file, shared=False):
        for entry in entries:
            remove_files(layout, read_manifest(entry).get("files", []))
    reach("uninstall-files")
    run("spkg-postrm")
    reach("uninstall-postrm")
    shutil.rmtree(scripts, ignore_errors=True)
    reach("uninstall-scripts")
    for entry in entries:
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
    reach("uninstall-stamp")
    return True


def remove_files(layout: Layout, files: list[str]) -> None:
    """Remove manifest files (relative to the prefix) deepest first, then emptied directories."""
    local = layout.local
    root = local.resolve()
    parents: set[Path] = set()
    for rel in sorted(files, key=lambda f: -f.count("/")):
        path = local / rel
        if not path.resolve(strict=False).is_relative_to(root) and not path.is_symlink():
            continue
        with contextlib.suppress(FileNotFoundError):
            if path.is_dir() and not path.is_symlink():
                continue
            path.unlink()
            parents.add(path.parent)
    keep = {local, layout.wheels_dir, *(local / d for d in ("bin", "include", "lib", "share", "var", "etc"))}
    for directory in sorted(parents, key=lambda p: -len(p.parts)):
        while directory not in keep and directory != directory.parent and str(directory).startswith(str(local)):
            try:
                directory.rmdir()
            except OSError:
                break
            directory = directory.parent


@dataclass(frozen=True)
class ForeignDistribution:
    """A distribution in the prefix that another installer (pip, uv, ...) put there."""
    name: str
    version: str
    dist_info: Path
    installer: str


def foreign_distributions(site_dirs: Iterable[Path], project: str) -> list[ForeignDistribution]:
    """The installations of ``project`` in ``site_dirs`` that sage-build did not make: its
    RECORD-driven uninstall knows nothing of them, and they collide with its install."""
    from packaging.utils import canonicalize_name

    wanted = canonicalize_name(project)
    found = []
    for site in dict.fromkeys(site_dirs):
        for dist_info in sorted(Path(site).glob("*.dist-info")):
            name, _, version = dist_info.name[: -len(".dist-info")].rpartition("-")
            if canonicalize_name(name) != wanted:
                continue
            try:
                installer = (dist_info / "INSTALLER").read_text(errors="replace").strip() or "an unknown installer"
            except OSError:
                installer = "an unknown installer"
            if installer != "sage-build":
                found.append(ForeignDistribution(name, version, dist_info, installer))
    return found


def remove_foreign(layout: Layout, dist: ForeignDistribution, *, work_dir: Path,
                   say: Callable[[str], None] = print) -> None:
    """Remove ``dist`` as pip would before installing another version of it: by its RECORD,
    with the same spkg-piprm as our own uninstalls (files inside the prefix only; a file another
    distribution lists stays)."""
    script = work_dir / f"{PIPRM}-{dist.name}"
    script.write_text(render_piprm(package=dist.name, version=dist.version, python=layout.python,
                                   prefix=layout.prefix,
                                   distributions=[(dist.name, dist.version,
                                                   str(dist.dist_info.relative_to(layout.local)))]))
    result = subprocess.run([str(layout.python), str(script)], env=inherited_environment(),
                            capture_output=True, text=True)
    for line in result.stdout.splitlines():
        say(f"  {line}")
    if result.returncode != 0:
        raise UninstallError(
            f"{dist.name} {dist.version}, which {dist.installer} installed in the prefix, could not be"
            f" removed to make room for sage-build's: {result.stderr.strip()[-1000:]}\n"
            f"Remove it with `{layout.python} -m pip uninstall {dist.name}` (or delete {dist.dist_info}"
            f" and its files), then build again."
        )
