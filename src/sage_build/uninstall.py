"""Uninstalling a package, in Sage's order.

``spkg-prerm`` (a failure aborts), ``spkg-piprm`` (the Python distributions,
RECORD-driven), the manifest's other files deepest first with the directories
they leave empty, ``spkg-postrm``, the package's scripts directory, and last
the stamp.  File removal holds the prefix's exclusive lock.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

from .errors import UninstallError
from .layout import Layout
from .lock import prefix_lock
from .manifest import read_manifest

PIPRM = "spkg-piprm"


def render_piprm(*, package: str, version: str, python: Path, prefix: Path,
                 distributions: list[tuple[str, str, str]]) -> str:
    """The text of a package's spkg-piprm (``distributions``: name, version, dist-info dir under prefix)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("sage_build", "templates"),
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return env.get_template("spkg-piprm.j2").render(
        package=package, version=version, python=str(python), prefix=str(prefix),
        distributions=[list(d) for d in distributions],
    )


def uninstall(layout: Layout, name: str, *, stamp_only: bool = False, say: Callable[[str], None] = print,
              force_piprm: bool = False) -> bool:
    """Uninstall every installed version of package ``name``; return False if none was installed."""
    stamps = layout.installed_stamps(name)
    if not stamps:
        return False
    if stamp_only:
        for stamp in stamps:
            stamp.unlink()
        say(f"{name}: removed the stamp only (-k); the files stay")
        return True
    scripts = layout.scripts_dir / name
    env = dict(os.environ, SAGE_LOCAL=str(layout.prefix))
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
        if result.returncode != 0:
            raise UninstallError(
                f"{name}: {path} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}\n"
                "The package stays installed."
                + (f" If its RECORD is broken, run {path} --force by hand, then uninstall again." if script == PIPRM else "")
            )

    run("spkg-prerm")
    run(PIPRM, *(["--force"] if force_piprm else []))
    with prefix_lock(layout.lock_file, shared=False):
        for stamp in stamps:
            remove_files(layout.local, read_manifest(stamp).get("files", []))
    run("spkg-postrm")
    shutil.rmtree(scripts, ignore_errors=True)
    for stamp in stamps:
        with contextlib.suppress(FileNotFoundError):
            stamp.unlink()
    return True


def remove_files(local: Path, files: list[str]) -> None:
    """Remove manifest files (relative to the prefix) deepest first, then emptied directories."""
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
    keep = {local, *(local / d for d in ("bin", "include", "lib", "share", "var", "etc", "var/lib/sage/wheels"))}
    for directory in sorted(parents, key=lambda p: -len(p.parts)):
        while directory not in keep and directory != directory.parent and str(directory).startswith(str(local)):
            try:
                directory.rmdir()
            except OSError:
                break
            directory = directory.parent
