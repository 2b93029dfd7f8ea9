"""The dependency graph of a distribution: make variables, unknown names, cycles, order."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from sage_build.base.errors import RecipeError
from sage_build.recipes.recipe import Kind, Package

#: The pseudo-package that makes the prefix's virtual environment ($(PYTHON)).
PYTHON_PSEUDO = "python3-venv"

#: Build backends installed from upstream wheels; $(PYTHON_TOOLCHAIN) is those present.
TOOLCHAIN_CANDIDATES = (
    "setuptools", "wheel", "flit_core", "packaging", "setuptools_scm", "cython",
    "hatchling", "pathspec", "pluggy", "trove_classifiers", "hatch_vcs",
    "poetry_core", "pdm_backend", "scikit_build_core", "meson_python", "meson", "ninja",
)

#: Make variables of Sage recipes that name one package, if the tree has it.
_SINGLE_PACKAGE_VARIABLES = {"BLAS": "openblas", "MP_LIBRARY": "gmp", "SAGERUNTIME": "sagelib"}
_VARIABLE = re.compile(r"^\$\(([A-Za-z_][A-Za-z0-9_]*)\)$")


@dataclass
class Graph:
    """Packages with their dependencies expanded to package names."""

    packages: dict[str, Package]
    toolchain: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    _all: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, packages: dict[str, Package]) -> "Graph":
        toolchain = tuple(
            name for name in TOOLCHAIN_CANDIDATES
            if name in packages and packages[name].kind is Kind.WHEEL
        )
        graph = cls(packages=packages, toolchain=toolchain)
        graph.check()
        return graph

    def _expand(self, token: str, owner: str) -> list[str]:
        match = _VARIABLE.match(token)
        if not match:
            return [token]
        variable = match.group(1)
        if variable == "PYTHON":
            return [PYTHON_PSEUDO]
        if variable == "PYTHON_TOOLCHAIN":
            # Toolchain members are wheels that need no build backend: no cycles among them.
            return [] if owner in self.toolchain else list(self.toolchain)
        package = _SINGLE_PACKAGE_VARIABLES.get(variable)
        if package is not None:
            return [package] if package in self.packages else []
        message = f"package '{owner}': unknown make variable $({variable}) in dependencies, ignored"
        if message not in self.warnings:
            self.warnings.append(message)
        return []

    def dependencies(self, name: str, *, enabled: Iterable[str] | None = None) -> tuple[list[str], list[str]]:
        """(normal, order-only) dependencies of ``name`` as package names, pseudo-package included.

        Optional dependencies count as normal ones when they are in ``enabled``.
        """
        pkg = self.packages[name]
        deps = pkg.dependencies
        normal = _unique(n for token in deps.normal for n in self._expand(token, name))
        if enabled is not None:
            enabled_set = set(enabled)
            normal += [n for token in deps.optional for n in self._expand(token, name)
                       if n in enabled_set and n not in normal]
        order_only = [
            n for n in _unique(n for token in deps.order_only for n in self._expand(token, name))
            if n not in normal
        ]
        return normal, order_only

    def all_dependencies(self, name: str) -> list[str]:
        cached = self._all.get(name)
        if cached is None:
            normal, order_only = self.dependencies(name)
            cached = self._all[name] = [d for d in normal + order_only if d != PYTHON_PSEUDO]
        return cached

    def check(self) -> None:
        """Raise RecipeError on a dependency on an unknown package or a dependency cycle."""
        for name, pkg in self.packages.items():
            for dep in self.all_dependencies(name):
                if dep not in self.packages:
                    raise RecipeError(
                        f"package '{name}' ({pkg.path}/dependencies) depends on '{dep}',"
                        f" which has no recipe in {pkg.path.parent}; add build/pkgs/{dep}/ or remove"
                        f" '{dep}' from the dependency line"
                    )
        cycle = self.find_cycle()
        if cycle:
            raise RecipeError(
                "dependency cycle: " + " -> ".join(cycle)
                + "; break it by removing one of these dependencies from its recipe"
            )

    def find_cycle(self) -> list[str] | None:
        """A dependency cycle as a path ``[a, b, ..., a]``, or None."""
        WHITE, GREY, BLACK = 0, 1, 2
        color = dict.fromkeys(self.packages, WHITE)
        for root in sorted(self.packages):
            if color[root] != WHITE:
                continue
            path = [root]
            stack = [iter(self.all_dependencies(root))]
            color[root] = GREY
            while stack:
                for dep in stack[-1]:
                    if color.get(dep) == GREY:
                        return path[path.index(dep):] + [dep]
                    if color.get(dep) == WHITE:
                        color[dep] = GREY
                        path.append(dep)
                        stack.append(iter(self.all_dependencies(dep)))
                        break
                else:
                    color[path.pop()] = BLACK
                    stack.pop()
        return None

    def closure(self, names: Iterable[str]) -> set[str]:
        """``names`` and everything they depend on (pseudo-package excluded)."""
        seen: set[str] = set()
        todo = [n for n in names]
        while todo:
            name = todo.pop()
            if name in seen or name not in self.packages:
                continue
            seen.add(name)
            todo.extend(self.all_dependencies(name))
        return seen

    def dependents(self, name: str) -> set[str]:
        """Packages that depend on ``name`` directly."""
        return {other for other in self.packages if name in self.all_dependencies(other)}

    def topological_order(self, names: Iterable[str]) -> list[str]:
        """``names`` sorted so that every package comes after its dependencies."""
        wanted = set(names)
        order: list[str] = []
        placed: set[str] = set()

        def visit(name: str) -> None:
            stack = [(name, iter(sorted(self.all_dependencies(name))))]
            placed.add(name)
            while stack:
                current, deps = stack[-1]
                for dep in deps:
                    if dep in self.packages and dep not in placed:
                        placed.add(dep)
                        stack.append((dep, iter(sorted(self.all_dependencies(dep)))))
                        break
                else:
                    stack.pop()
                    if current in wanted:
                        order.append(current)

        for name in sorted(wanted):
            if name not in placed:
                visit(name)
        return order


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
