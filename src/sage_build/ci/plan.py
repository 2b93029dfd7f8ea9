"""What a CI pipeline builds: the packages whose key the binary cache lacks, in waves.

The plan is pruned here, once, when the pipeline is generated (Spack users complain about
pipelines that start hundreds of jobs only to find the cache full).  Whether a package is cached
is a question asked of a callable, so the plan is computed (and tested) without a cache.

A missing package *needs* the missing packages it reaches through its dependencies, going on
through cached ones (a cached dependency is pulled, but whatever missing package lies below it
must have been built first).  Needs are transitively reduced: a job waits for ``gmp`` through
``mpfr`` without naming it, which keeps most jobs under GitLab's 50 needs.  A package's wave is
one more than the highest wave among its needs (wave 1: needs nothing).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable

from sage_build.base.errors import RecipeError
from sage_build.recipes.graph import Graph


@dataclass(frozen=True)
class PlannedPackage:
    name: str
    wave: int                      # 1 for a package that needs nothing of the pipeline
    needs: tuple[str, ...]         # the missing packages it waits for, transitively reduced, sorted


@dataclass(frozen=True)
class Plan:
    """The packages to build, in an order where each comes after what it needs."""

    missing: tuple[PlannedPackage, ...]
    cached: tuple[str, ...]        # packages of the closure found in the cache
    considered: int                # packages of the closure (built here, not taken from the system)

    @property
    def wave_count(self) -> int:
        return max((p.wave for p in self.missing), default=0)

    def waves(self) -> list[list[str]]:
        """The package names of each wave, wave 1 first, names sorted."""
        waves: list[list[str]] = [[] for _ in range(self.wave_count)]
        for package in self.missing:
            waves[package.wave - 1].append(package.name)
        return [sorted(wave) for wave in waves]


def dependencies_of(graph: Graph, name: str, enabled: set[str] | None) -> list[str]:
    """Everything ``name`` needs installed before it builds (normal and order-only), as make has it."""
    normal, order_only = graph.dependencies(name, enabled=enabled)
    return [d for d in normal + order_only if d in graph.packages]


def closure(graph: Graph, targets: Iterable[str], enabled: set[str] | None) -> list[str]:
    """``targets`` and all they depend on, each after its dependencies (by :func:`dependencies_of`,
    which counts the enabled optional dependencies: the graph's own order does not)."""
    order: list[str] = []
    state: dict[str, int] = {}   # 1: on the path, 2: placed
    for root in sorted(set(targets)):
        if root not in graph.packages or root in state:
            continue
        state[root] = 1
        path = [root]
        stack = [iter(sorted(dependencies_of(graph, root, enabled)))]
        while stack:
            for dep in stack[-1]:
                if state.get(dep) == 1:
                    cycle = path[path.index(dep):] + [dep]
                    raise RecipeError("dependency cycle (with the enabled optional dependencies): "
                                      + " -> ".join(cycle) + "; disable one of these packages or break the cycle")
                if dep not in state:
                    state[dep] = 1
                    path.append(dep)
                    stack.append(iter(sorted(dependencies_of(graph, dep, enabled))))
                    break
            else:
                stack.pop()
                done = path.pop()
                state[done] = 2
                order.append(done)
    return order


def make_plan(graph: Graph, targets: Iterable[str], is_cached: Callable[[str], bool], *,
              enabled: set[str] | None = None, built: set[str] | None = None) -> Plan:
    """The plan for ``targets`` and their dependencies.

    ``built``: the packages this configuration builds (the others come from the system and are
    neither jobs nor needs); all when None.  ``is_cached(name)`` is asked once per package built.
    """
    order = [n for n in closure(graph, targets, enabled) if built is None or n in built]
    considered = set(order)
    missing = {name for name in order if not is_cached(name)}
    # frontier[n]: the missing packages n reaches through cached packages (n itself if missing)
    frontier: dict[str, frozenset[str]] = {}
    # below[n]: every missing package a missing n waits for, directly or not
    below: dict[str, frozenset[str]] = {}
    planned: list[PlannedPackage] = []
    wave: dict[str, int] = {}
    for name in order:   # dependencies come first
        reached: set[str] = set()
        for dep in dependencies_of(graph, name, enabled):
            if dep in considered:
                reached |= frontier[dep]
        if name not in missing:
            frontier[name] = frozenset(reached)
            continue
        frontier[name] = frozenset((name,))
        below[name] = frozenset(reached.union(*(below[r] for r in reached)))
        indirect = set().union(*(below[r] for r in reached))
        needs = tuple(sorted(reached - indirect))
        wave[name] = 1 + max((wave[n] for n in needs), default=0)
        planned.append(PlannedPackage(name, wave[name], needs))
    cached = tuple(sorted(considered - missing))
    return Plan(missing=tuple(planned), cached=cached, considered=len(order))


def short_name(name: str, limit: int = 63) -> str:
    """``name`` kept under ``limit`` characters, unique: a long name is cut and given a digest."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:limit - 9]}-{digest}"
