"""What a build will do and why; durations learned from past builds.

The reasons are decided from the same files make decides from (stamps, the
recipe-hash files, the dependencies' stamps) as make will find them: after the
top-level Makefile configured again and sage-recipe-hash refreshed the hashes of
edited recipes.  So ``./sage --plan`` tells what ``make`` will run, from the
recipes as they are now, and writes nothing.  Durations come from the build
events (``logs/events.jsonl``).
"""

from __future__ import annotations

import os
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from sage_build.configure.config import Config
from sage_build.recipes.graph import PYTHON_PSEUDO, Graph, load_graph
from sage_build.base.layout import Layout
from sage_build.base import events
from sage_build.recipes.recipe import Package

DEFAULT_DURATION = 20.0  # seconds, for a package never built here


@dataclass(frozen=True)
class PlanItem:
    name: str
    version: str
    reason: str
    estimate: float | None


@dataclass(frozen=True)
class BuildState:
    """What make will build from: the packages, which are enabled, which are built from source."""

    graph: Graph
    enabled: set[str]
    built: set[str]
    reconfigured: bool  # the top-level Makefile runs configure again before building


def build_state(config: Config) -> BuildState:
    """The state make will decide from, without writing anything."""
    layout = config.layout()
    if makefile_is_stale(layout):
        from sage_build.configure.configure import decide  # configure imports this module

        result = decide(config.argv, layout.sage_root)
        return BuildState(
            graph=result.graph,
            enabled={name for name, plan in result.plans.items() if plan.enabled},
            built={name for name, plan in result.plans.items() if not plan.from_system},
            reconfigured=True,
        )
    graph = load_graph(layout.pkgs_dir)
    return BuildState(graph=graph, enabled=enabled_in_makefile(layout),
                      built=set(graph.packages) - set(config.from_system), reconfigured=False)


def enabled_in_makefile(layout: Layout) -> set[str]:
    """The enabled packages, as the generated Makefile lists them."""
    text = layout.makefile.read_text()
    match = re.search(r"^ENABLED_PACKAGES := (.*)$", text, re.M)
    return set(match.group(1).split()) if match else set()


def makefile_is_stale(layout: Layout) -> bool:
    """Whether ``make build`` in the tree configures again first: its top-level Makefile's rule for
    build/make/Makefile (mirrored here) finds a prerequisite newer.  A tree without a top-level
    Makefile is built from build/make/Makefile as it is."""
    top = layout.sage_root / "Makefile"
    if not top.is_file():
        return False
    generated = _mtime_ns(layout.makefile)
    if generated is None:
        return True
    template = Path(os.path.realpath(top)).parent / "src" / "sage_build" / "configure" / "templates" / "Makefile.j2"
    inputs = [layout.sage_root / "configure.py", template, layout.pkgs_dir]
    for entry in _entries(layout.pkgs_dir):
        if any(c in entry.name for c in ":$") or any(c.isspace() for c in entry.name):
            continue  # the top-level Makefile drops these paths (make cannot take them)
        recipe = Path(entry.path)
        inputs += [recipe / "type", recipe / "package-version.txt", recipe / "requirements.txt",
                   recipe / "checksums.ini"]
        inputs += [Path(file.path) for file in _entries(recipe) if file.name.startswith("dependencies")]
    return any((_mtime_ns(path) or 0) > generated for path in inputs)


def _entries(directory: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return None


def _mtime_ns(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):
        return None


def _hash_will_change(layout: Layout, pkg: Package, reconfigured: bool) -> bool:
    """Whether hashes/<name> will be newer than now when make looks at the stamp: configure (when the
    top-level Makefile runs it) and sage-recipe-hash (when a recipe file is newer than
    hashes/<name>.checked) write it when the recipe's content differs from it."""
    from sage_build.configure.makefile import newest_recipe_mtime_ns  # makefile imports this module

    try:
        stored = (layout.hashes_dir / pkg.name).read_text().strip()
    except FileNotFoundError:
        return True  # make takes a missing prerequisite as new
    if stored == pkg.content_hash:
        return False
    if reconfigured:
        return True
    checked = _mtime_ns(layout.hashes_dir / f"{pkg.name}.checked")
    newest = newest_recipe_mtime_ns(pkg.path)
    return checked is None or (newest is not None and newest > checked)


def rebuild_reason(layout: Layout, graph: Graph, name: str, built: set[str], rebuilding: set[str] = frozenset(),
                   enabled: Iterable[str] | None = None, reconfigured: bool = False) -> str | None:
    """Why make would run sage-spkg for ``name`` now, or None if its stamp is up to date.

    ``reconfigured``: the top-level Makefile runs configure before make decides (see build_state).
    """
    pkg = graph.packages[name]
    stamp = layout.stamp(name, pkg.stamp_version)
    stamp_time = _mtime(stamp)
    if stamp_time is None:
        others = [p.name[len(name) + 1:] for p in layout.installed_stamps(name)]
        if others:
            return f"version changed ({', '.join(others)} -> {pkg.stamp_version})"
        return "not installed"
    if _hash_will_change(layout, pkg, reconfigured):
        return "recipe changed"
    hash_time = _mtime(layout.hashes_dir / name)
    if hash_time is not None and hash_time > stamp_time:
        return "recipe changed"
    normal, _ = graph.dependencies(name, enabled=enabled)
    for dep in normal:
        if dep in rebuilding:
            return f"a build dependency will be rebuilt ({dep})"
        if dep == PYTHON_PSEUDO or dep not in built:
            continue
        dep_time = _mtime(layout.stamp(dep, graph.packages[dep].stamp_version))
        if dep_time is not None and dep_time > stamp_time:
            return f"a build dependency was rebuilt ({dep})"
    return None


def make_plan(layout: Layout, graph: Graph, targets: Iterable[str], built: set[str], *,
              forced: Iterable[str] = (), enabled: Iterable[str] | None = None,
              durations: dict[str, float] | None = None, reconfigured: bool = False) -> list[PlanItem]:
    """The packages a build of ``targets`` runs, in dependency order, each with its reason."""
    durations = durations if durations is not None else learned_durations(layout)
    forced = set(forced)
    wanted = [n for n in graph.topological_order(graph.closure(targets)) if n in built]
    rebuilding: set[str] = set()
    plan = []
    for name in wanted:
        reason = "forced (./sage -f)" if name in forced else rebuild_reason(
            layout, graph, name, built, rebuilding, enabled, reconfigured)
        if reason is None:
            continue
        rebuilding.add(name)
        plan.append(PlanItem(name, graph.packages[name].stamp_version, reason, durations.get(name)))
    return plan


def learned_durations(layout: Layout) -> dict[str, float]:
    """Median wall time of each package's successful builds (all phases), from past events."""
    runs: dict[tuple[str, str | None], float] = {}
    per_package: dict[str, list[float]] = {}
    for event in events.read_events(layout.events_file):
        if event.get("event") != events.END or event.get("outcome") != events.OK:
            continue
        key = (event.get("package"), event.get("run"))
        runs[key] = runs.get(key, 0.0) + float(event.get("duration", 0.0))
    for (package, _), total in runs.items():
        per_package.setdefault(package, []).append(total)
    return {name: statistics.median(values) for name, values in per_package.items()}


def priorities(graph: Graph, names: Iterable[str], durations: dict[str, float]) -> dict[str, float]:
    """Longest remaining chain through each package (its own duration plus its slowest dependent chain).

    Started first, the packages with the highest priority keep the critical path busy.
    """
    names = set(names)
    dependents: dict[str, list[str]] = {n: [] for n in names}
    for name in names:
        for dep in graph.all_dependencies(name):
            if dep in dependents:
                dependents[dep].append(name)
    default = statistics.median(durations.values()) if durations else DEFAULT_DURATION
    result: dict[str, float] = {}
    for name in reversed(graph.topological_order(names)):
        own = durations.get(name, default)
        result[name] = own + max((result[d] for d in dependents[name]), default=0.0)
    return result
