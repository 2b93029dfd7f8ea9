"""What a build will do and why; durations learned from past builds.

The reasons are decided from the same files make decides from (stamps, the
recipe-hash files, the dependencies' stamps), so ``./sage --plan`` tells what
``make`` will run.  Durations come from the build events (``logs/events.jsonl``).
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .graph import PYTHON_PSEUDO, Graph
from .layout import Layout
from .log import previous_events

DEFAULT_DURATION = 20.0  # seconds, for a package never built here


@dataclass(frozen=True)
class PlanItem:
    name: str
    version: str
    reason: str
    estimate: float | None


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return None


def rebuild_reason(layout: Layout, graph: Graph, name: str, built: set[str], rebuilding: set[str] = frozenset(),
                   enabled: Iterable[str] | None = None) -> str | None:
    """Why make would run sage-spkg for ``name`` now, or None if its stamp is up to date."""
    pkg = graph.packages[name]
    stamp = layout.stamp(name, pkg.stamp_version)
    stamp_time = _mtime(stamp)
    if stamp_time is None:
        others = [p.name[len(name) + 1:] for p in layout.installed_stamps(name)]
        if others:
            return f"version changed ({', '.join(others)} -> {pkg.stamp_version})"
        return "not installed"
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
              durations: dict[str, float] | None = None) -> list[PlanItem]:
    """The packages a build of ``targets`` runs, in dependency order, each with its reason."""
    durations = durations if durations is not None else learned_durations(layout)
    forced = set(forced)
    wanted = [n for n in graph.topological_order(graph.closure(targets)) if n in built]
    rebuilding: set[str] = set()
    plan = []
    for name in wanted:
        reason = "forced (./sage -f)" if name in forced else rebuild_reason(
            layout, graph, name, built, rebuilding, enabled)
        if reason is None:
            continue
        rebuilding.add(name)
        plan.append(PlanItem(name, graph.packages[name].stamp_version, reason, durations.get(name)))
    return plan


def read_events(events_file: Path) -> list[dict]:
    """Every event of the build log and of its rotated predecessor; a torn or foreign line is skipped."""
    events = []
    for path in (previous_events(events_file), events_file):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    try:
                        events.append(json.loads(line))
                    except ValueError:
                        continue
        except FileNotFoundError:
            pass
    return events


def learned_durations(layout: Layout) -> dict[str, float]:
    """Median wall time of each package's successful builds (all phases), from past events."""
    runs: dict[tuple[str, str | None], float] = {}
    per_package: dict[str, list[float]] = {}
    for event in read_events(layout.sage_root / "logs" / "events.jsonl"):
        if event.get("event") != "end" or event.get("outcome") != "ok":
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
