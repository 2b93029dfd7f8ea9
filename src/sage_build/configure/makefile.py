"""Rendering build/make/Makefile: make is the scheduler.

One stamp target per package, its prerequisites the stamps of its
dependencies (order-only after ``|``) and a recipe-hash file that changes only
when the recipe's content changes.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from sage_build.recipes.graph import PYTHON_PSEUDO, Graph, is_verbatim
from sage_build.base.atomic import write_atomic
from sage_build.base.layout import tool_bin_dir
from sage_build.configure.build_plan import priorities
from sage_build.recipes.recipe import hash_files_before_20, recipe_hash, scan_recipe


@dataclass(frozen=True)
class PackageDecision:
    """What configure decided for one package."""

    name: str
    enabled: bool
    from_system: bool
    reason: str   # for the table: why enabled/disabled/from system


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("sage_build.configure", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


def render_makefile(
    graph: Graph,
    decisions: dict[str, PackageDecision],
    *,
    sage_root: Path,
    prefix: Path,
    python_version: str,
    argv: list[str],
    disabled_installed: list[str] = (),
    durations: dict[str, float] | None = None,
    binary_cache_configured: bool = False,
) -> str:
    """The text of build/make/Makefile."""
    built = {name for name, decision in decisions.items() if not decision.from_system}
    enabled = {name for name, decision in decisions.items() if decision.enabled}
    # make starts prerequisites left to right: the longest remaining chains go first.
    rank = priorities(graph, graph.packages, durations or {})

    def by_priority(names: list[str]) -> list[str]:
        return sorted(names, key=lambda n: (-rank.get(n, 0.0), n))
    def stamps(deps: list[str]) -> list[str]:
        # The pseudo-package is a prerequisite of every stamp anyway; system packages need no stamp.
        names = [f"$(inst_{d})" for d in by_priority([d for d in deps if d in built])]
        return names + [make_prerequisite(d) for d in deps if is_verbatim(d)]

    packages = []
    for name in sorted(graph.packages):
        pkg = graph.packages[name]
        normal, order_only = graph.dependencies(name, enabled=enabled)
        normal_stamps = stamps(normal)
        order_stamps = stamps(order_only)
        check_stamps = [d for d in stamps(graph.check_dependencies(name)) if d not in normal_stamps]
        prerequisites = " ".join([f"$(HASHES)/{name}", "$(PYTHON)", *normal_stamps])
        if check_stamps:
            # Sage's rule: what spkg-check needs is a prerequisite when SAGE_CHECK asks for it
            prerequisites += f" $(if $(filter-out no,$(SAGE_CHECK)),{' '.join(check_stamps)})"
        if order_stamps:
            prerequisites += " | " + " ".join(order_stamps)
        packages.append({
            "name": name,
            "stamp": f"$(INST)/{name}-{pkg.stamp_version}" if name in built else "",
            "source_stamp": f"$(INST)/{name}-{pkg.stamp_version}",
            "built": name in built,
            "reason": decisions[name].reason,
            "prerequisites": prerequisites,
        })
    build_order = by_priority([name for name in enabled if name in built])
    phony = [f"{n}{suffix}" for n in sorted(graph.packages)
             for suffix in ("", "-no-deps", "-uninstall", "-clean", "-from-source")]
    return _environment().get_template("Makefile.j2").render(
        argv_text=" ".join(shlex.quote(a) for a in ["./configure.py", *argv]),
        sage_root=_make_path(sage_root),
        bin_dir=_make_path(tool_bin_dir()),
        tool_python=_make_path(Path(sys.executable)),
        prefix=_make_path(prefix),
        python_pseudo=PYTHON_PSEUDO,
        python_version=python_version,
        toolchain=[f"$(inst_{name})" for name in graph.toolchain if name in built],
        versions={name: pkg.stamp_version for name, pkg in sorted(graph.packages.items())},
        blas="$(inst_openblas)" if "openblas" in built else "",
        mp_library="$(inst_gmp)" if "gmp" in built else "",
        packages=packages,
        enabled=sorted(enabled),
        phony=phony,
        build_stamps=[f"$(inst_{name})" for name in build_order],
        disabled_installed=list(disabled_installed),
        binary_cache_configured=binary_cache_configured,
        # Pulled from a binary cache ahead of the build order: what needs nothing installed first to
        # be installed (no install-time script of its own, which may run what it depends on).
        pull_ahead=[name for name in build_order if not any(
            graph.packages[name].script_path(script) for script in ("spkg-preinst", "spkg-postinst"))],
    )


def make_prerequisite(token: str) -> str:
    """A verbatim dependency as Sage's Makefile hands it to make: a file path or ``FORCE`` as
    written; a make expression through ``sage_deps`` (Sage's ``pkg_deps``), so that a package
    name it yields stands for that package's stamp."""
    if token.startswith("$(") and _group_end(token) == len(token) and not _top_level_comma(token):
        return f"$(call sage_deps,{token})"
    return token


def _group_end(token: str) -> int:
    """The index after the ``$(...)`` group that starts ``token``."""
    depth = 0
    for index, char in enumerate(token):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(token) + 1


def _top_level_comma(token: str) -> bool:
    depth = 0
    for char in token:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            return True
    return False


def _make_path(path: Path) -> str:
    text = str(path)
    if any(c in text for c in " #$:%"):
        raise ValueError(f"{text!r}: make cannot handle paths with spaces, '#', '$', ':' or '%'")
    return text


def write_if_changed(path: Path, text: str) -> bool:
    """Write atomically, and only when the content differs (so make sees no new mtime)."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    write_atomic(path, text.encode())
    return True


def update_recipe_hash(hashes_dir: Path, name: str, pkg_path: Path, content_hash: str | None = None) -> bool:
    """Refresh ``hashes/<name>`` (only if the recipe's content changed) and touch ``<name>.checked``."""
    path = hashes_dir / name
    new = content_hash or recipe_hash(pkg_path)
    before = _stored_before_20(path, pkg_path, new)
    changed = write_if_changed(path, new + "\n")
    if before is not None:
        # Only the hash's definition changed (#20), not the recipe: make keeps seeing the old time,
        # so `git pull && make` rebuilds nothing for it.
        os.utime(path, ns=before)
        changed = False
    # Exactly as new as the newest recipe file (its prerequisites in the Makefile), not "now":
    # then it is not newer than an unchanged hashes/<name>, and `make -q` sees nothing to do.
    checked = hashes_dir / f"{name}.checked"
    checked.touch()
    newest = newest_recipe_mtime_ns(pkg_path)
    if newest is not None:
        os.utime(checked, ns=(newest, newest))
    return changed


def _stored_before_20(path: Path, pkg_path: Path, new: str) -> tuple[int, int] | None:
    """The (atime, mtime) of a stored hash that is the pre-#20 hash of this very recipe."""
    try:
        stored = path.read_text().strip()
        times = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stored == new or stored != hash_files_before_20(scan_recipe(pkg_path)):
        return None
    return times.st_atime_ns, times.st_mtime_ns


def newest_recipe_mtime_ns(pkg_path: Path) -> int | None:
    """The newest mtime of a recipe directory, its files and theirs one level down."""
    try:
        newest = pkg_path.stat().st_mtime_ns
        for entry in os.scandir(pkg_path):
            if entry.name.startswith("."):  # make's wildcard skips them too
                continue
            newest = max(newest, _mtime_ns(entry))
            if entry.is_dir():
                for sub in os.scandir(entry.path):
                    if not sub.name.startswith("."):
                        newest = max(newest, _mtime_ns(sub))
    except OSError:
        return None
    return newest


def _mtime_ns(entry: os.DirEntry) -> int:
    """The mtime of what an entry leads to; 0 for a link that leads nowhere (make leaves it out)."""
    try:
        return entry.stat(follow_symlinks=True).st_mtime_ns
    except FileNotFoundError:
        return 0
