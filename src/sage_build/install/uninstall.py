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
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from sage_build.base.errors import UninstallError
from sage_build.base.killpoint import reach
from sage_build.base.commands import inherited_environment
from sage_build.base.layout import Layout
from sage_build.base.lock import prefix_lock
from sage_build.install.manifest import read_manifest
from sage_build.install.target import canonical_name, dist_infos

PIPRM = "spkg-piprm"
PIPRM_REMOVED_NOTHING = 3  # spkg-piprm's exit status when it failed before removing anything


def render_piprm(*, package: str, version: str, python: Path, prefix: Path,
                 distributions: list[tuple[str, str, str]]) -> str:
    """The text of a package's spkg-piprm (``distributions``: name, version, dist-info dir under prefix).

    templates/spkg-piprm.j2 is written in jinja2's syntax but uses only ``{{ name }}`` and
    ``{{ name | tojson }}``: those two are substituted here as jinja2 renders them, because
    importing jinja2 was most of the record phase of every Python package (issue #19;
    tests/test_unit_uninstall.py compares the result with jinja2's rendering)."""
    values = {"package": package, "version": version, "python": str(python), "prefix": str(prefix),
              "distributions": [list(d) for d in distributions], "removed_nothing": PIPRM_REMOVED_NOTHING}
    template = (Path(__file__).parent / "templates" / PIPRM_TEMPLATE).read_text(encoding="utf-8")

    def substitute(match: re.Match) -> str:
        if match[1] not in values:  # as jinja2's StrictUndefined
            raise UninstallError(f"{PIPRM_TEMPLATE}: '{match[1]}' is undefined")
        value = values[match[1]]
        return _tojson(value) if match[2] else str(value)

    rest = _PLACEHOLDER.sub("", template)
    if "{{" in rest or "{%" in rest or "{#" in rest:
        raise UninstallError(f"{PIPRM_TEMPLATE}: only {{{{ name }}}} and {{{{ name | tojson }}}} are rendered")
    return _PLACEHOLDER.sub(substitute, template)


PIPRM_TEMPLATE = "spkg-piprm.j2"
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*(?:\|\s*(tojson)\s*)?\}\}")


def _tojson(value: object) -> str:
    """jinja2's ``tojson`` filter: sorted keys, and HTML's special characters escaped."""
    return (json.dumps(value, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("'", "\\u0027"))


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


class ForeignDistribution(NamedTuple):
    """A distribution in the prefix that another installer (pip, uv, ...) put there."""
    name: str
    version: str
    dist_info: Path
    installer: str


def foreign_distributions(site_dirs: Iterable[Path], project: str) -> list[ForeignDistribution]:
    """The installations of ``project`` in ``site_dirs`` that sage-build did not make: its
    RECORD-driven uninstall knows nothing of them, and they collide with its install."""
    wanted = canonical_name(project)
    found = []
    for site, name, version in dist_infos(site_dirs):
        if canonical_name(name) != wanted:
            continue
        dist_info = site / f"{name}-{version}.dist-info"
        # Without INSTALLER it is no other installer's finished install: ours, cut short by a
        # kill (installer writes INSTALLER and RECORD last), which our own recovery completes.
        try:
            installer = (dist_info / "INSTALLER").read_text(errors="replace").strip()
        except OSError:
            continue
        if installer and installer != "sage-build":
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
