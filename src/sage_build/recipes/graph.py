"""The dependency graph of a distribution: Sage's dependency rules, make variables, unknown names,
cycles, order.

A recipe's dependencies are computed as the tree's own sage_bootstrap computes them
(``build/sage_bootstrap/package.py``), so that make orders the tree as Sage does:

- build dependencies: ``dependencies_build`` before '|' when the recipe has one, else
  ``dependencies`` before '|'; plus, for a Python recipe, ``$(SAGE_ROOT)/build/pkgs/<name>/src/pyproject.toml``
  and ``.../src/MANIFEST.in`` when its ``src/`` has them; plus the ``requires``, ``build-requires``
  and ``host-requires`` lists of ``src/pyproject.toml.m4`` (``sage_conf`` there is order-only);
- order-only dependencies: the part after '|' of the same file, ``dependencies_order_only``, and for
  every Python recipe (one with a distribution name) ``$(PYTHON)`` plus ``pip`` for a wheel or
  ``$(PYTHON_TOOLCHAIN)`` for the rest (``pip`` itself gets neither);
- runtime dependencies: ``dependencies`` before '|' plus ``dependencies`` and ``host-requires`` of
  ``src/pyproject.toml.m4``;
- ``dependencies_optional``: normal ones when the named package is enabled;
- ``dependencies_check`` plus the ``test`` list: prerequisites when SAGE_CHECK asks for spkg-check.

A package's stamp depends on its runtime and build dependencies (normal prerequisites) and its
order-only ones after '|' (a name in both is a normal one, as in make).  Tokens expand with the
tree's make variables (``recipes.makevars``); make expressions, file paths and ``FORCE`` go to the
Makefile verbatim, for make to evaluate as Sage's Makefile does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from sage_build.base.errors import RecipeError
from sage_build.recipes.makevars import MakeVariables, read_make_variables
from sage_build.recipes.recipe import (  # noqa: F401  (PYTHON_PSEUDO: the graph's name for it too)
    PYTHON_PSEUDO, Kind, Package, RecipeProblem, load_packages, parse_dependency_line, recipes_state, settle_problems,
)

#: Build backends installed from upstream wheels; without a tree's own definition,
#: $(PYTHON_TOOLCHAIN) is those present.
TOOLCHAIN_CANDIDATES = (
    "setuptools", "wheel", "flit_core", "packaging", "setuptools_scm", "cython",
    "hatchling", "pathspec", "pluggy", "trove_classifiers", "hatch_vcs",
    "poetry_core", "pdm_backend", "scikit_build_core", "meson_python", "meson", "ninja",
)

#: Without a tree's own definitions: make variables of Sage recipes that name one package, if present.
_SINGLE_PACKAGE_VARIABLES = {"BLAS": "openblas", "MP_LIBRARY": "gmp", "SAGERUNTIME": "sagelib"}
_VARIABLE = re.compile(r"^\$\(([A-Za-z_][A-Za-z0-9_]*)\)$")
_INST_VARIABLE = re.compile(r"^inst_([a-z0-9_][a-z0-9_.]*)$")
#: sage_bootstrap's ORDER_ONLY_PACKAGES: a build requirement that is only order-only.
_ORDER_ONLY_PACKAGES = ("sage_conf",)
#: make's conventional always-out-of-date target; Sage's Makefile.in defines it.
FORCE = "FORCE"


def is_verbatim(token: str) -> bool:
    """Whether an expanded dependency goes to the Makefile as written (not a package's stamp)."""
    return token == FORCE or "$" in token or "/" in token


@dataclass
class SageDependencies:
    """One recipe's dependency lists in sage_bootstrap's terms, tokens not yet expanded."""

    build: list[str]
    order_only: list[str]
    runtime: list[str]
    optional: list[str]
    check: list[str]


@dataclass
class Graph:
    """Packages with their dependencies expanded to package names (and verbatim make text)."""

    packages: dict[str, Package]
    toolchain: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    variables: MakeVariables | None = None
    left_out: dict[str, str] = field(default_factory=dict)   # recipe name -> why it cannot be used
    _all: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _sage: dict[str, SageDependencies] = field(default_factory=dict, repr=False)
    _values: dict[tuple[str, bool], list[str]] = field(default_factory=dict, repr=False)
    _unresolved: dict[str, list[tuple[str, int]]] = field(default_factory=dict, repr=False)
    _by_purl: dict[str, str] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, packages: dict[str, Package], variables: MakeVariables | None = None, *,
              problems: list[RecipeProblem] | None = None, warnings: list[str] | None = None) -> "Graph":
        """The graph of ``packages``: a recipe whose dependencies cannot be resolved is left out
        and reported with the loader's ``problems`` (see ``recipes.recipe.settle_problems``:
        configure fails after naming them all when one is standard); a cycle is an error."""
        found = list(problems or ())
        left_out = {problem.name: problem.message for problem in found}
        packages = dict(packages)
        while True:
            graph = cls(packages=packages, variables=variables, left_out=left_out)
            graph.toolchain = graph._toolchain()
            new = graph.problems()
            if not new:
                break
            for problem in new:
                found.append(problem)
                left_out[problem.name] = problem.message
                packages.pop(problem.name, None)
        settle_problems(found, warnings)
        cycle = graph.find_cycle()
        if cycle:
            raise RecipeError(
                "dependency cycle: " + " -> ".join(cycle)
                + "; break it by removing one of these dependencies from its recipe"
            )
        return graph

    def _toolchain(self) -> tuple[str, ...]:
        if self.has_tree_variables and "PYTHON_TOOLCHAIN" in self.variables.values:
            return tuple(n for n in self._expand_variable("PYTHON_TOOLCHAIN", "", in_toolchain=False)
                         if n in self.packages)
        return tuple(
            name for name in TOOLCHAIN_CANDIDATES
            if name in self.packages and self.packages[name].kind is Kind.WHEEL
        )

    @property
    def has_tree_variables(self) -> bool:
        return self.variables is not None and self.variables.source is not None

    # -- expanding tokens -------------------------------------------------------------

    def _expand(self, token: str, owner: str) -> list[str]:
        match = _VARIABLE.match(token)
        if not match:
            return [token]
        variable = match.group(1)
        if variable == "PYTHON":
            return [PYTHON_PSEUDO]
        if variable == "PYTHON_TOOLCHAIN" and owner in self.toolchain:
            # Toolchain members are wheels that need no build backend: no cycles among them.
            return []
        if variable == "PYTHON_TOOLCHAIN" and not (self.has_tree_variables and variable in self.variables.values):
            return list(self.toolchain)   # the tree does not define it: our default (the wheel recipes)
        if self.has_tree_variables:
            assert self.variables is not None
            if variable in self.variables.values:
                return self._expand_variable(variable, owner, in_toolchain=owner in self.toolchain)
            inst = _INST_VARIABLE.match(variable)
            if inst and inst.group(1) in self.packages:
                return [inst.group(1)]
            return [token]   # not the tree's: make expands it (to nothing, or the environment's value)
        if variable == "PYTHON_TOOLCHAIN":
            return list(self.toolchain)
        package = _SINGLE_PACKAGE_VARIABLES.get(variable)
        if package is not None:
            return [package] if package in self.packages else []
        self._warn(f"package '{owner}': unknown make variable $({variable}) in dependencies, ignored")
        return []

    def _expand_variable(self, variable: str, owner: str, *, in_toolchain: bool) -> list[str]:
        """The tree's value of ``variable``, expanded: names of absent recipes left out (warned)."""
        key = (variable, in_toolchain)
        cached = self._values.get(key)
        if cached is not None:
            return cached
        self._values[key] = []   # a variable that refers to itself expands to nothing more
        assert self.variables is not None and self.variables.source is not None
        where = f"{self.variables.source}: {variable}"
        try:
            tokens = parse_dependency_line(self.variables.values[variable], where)[0]
        except RecipeError as error:
            self._warn(f"{error}; the variable is taken as empty")
            tokens = ()
        result: list[str] = []
        for token in tokens:
            match = _VARIABLE.match(token)
            if match and match.group(1) != "PYTHON" and match.group(1) in self.variables.values:
                result += self._expand_variable(match.group(1), owner, in_toolchain=in_toolchain)
            elif match:
                result += self._expand(token, owner if in_toolchain else "")
            elif is_verbatim(token) or token in self.packages:
                result.append(token)
            else:
                self._warn(f"{where} names '{token}', which has no recipe in this tree; left out of $({variable})")
        self._values[key] = result = _unique(result)
        return result

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def _expand_all(self, tokens: Iterable[str], owner: str) -> list[str]:
        return _unique(n for token in tokens for n in self._expand(token, owner))

    # -- Sage's rules --------------------------------------------------------------------

    def _resolve(self, entry: str) -> str | None:
        """A pyproject.toml.m4 entry (recipe name or PURL) as a recipe name, as sage_bootstrap's Package()."""
        if not entry.startswith(("pkg:", "pypi/", "generic/")):
            return entry if entry in self.packages else None
        purl = entry if entry.startswith("pkg:") else "pkg:" + entry
        purl = purl.replace("_", "-").lower()
        for prefix in ("pkg:generic/", "pkg:pypi/"):
            if purl.startswith(prefix):
                guess = self.packages.get(purl[len(prefix):].replace("-", "_"))
                if guess is not None and guess.purl == purl:
                    return guess.name
        if self._by_purl is None:  # the first recipe with a PURL wins, as in sage_bootstrap's scan
            self._by_purl = {}
            for pkg in self.packages.values():
                self._by_purl.setdefault(pkg.purl, pkg.name)
        return self._by_purl.get(purl)

    def sage_dependencies(self, name: str) -> SageDependencies:
        """``name``'s lists as sage_bootstrap computes them (see the module), tokens as written."""
        cached = self._sage.get(name)
        if cached is not None:
            return cached
        pkg = self.packages[name]
        deps = pkg.dependencies
        pyproject: dict[str, list[str]] = {}
        for key, entries in pkg.pyproject.items():
            for entry, line in entries:
                resolved = self._resolve(entry)
                if resolved is None:
                    self._unresolved.setdefault(name, []).append((entry, line))
                else:
                    pyproject.setdefault(key, []).append(resolved)
        requires = pyproject.get("requires", [])
        if deps.build is not None:
            base, base_order_only = list(deps.build), list(deps.build_order_only)
        else:
            base, base_order_only = list(deps.normal), list(deps.order_only)
        extras: list[str] = []
        source: list[str] = []
        if pkg.sage_distribution:
            source = [f"$(SAGE_ROOT)/build/pkgs/{name}/{file}" for file in pkg.src_build_files]
            extras.append("$(PYTHON)")
            if name == "pip":
                pass
            elif pkg.kind is Kind.WHEEL:
                if "pip" in self.packages:   # a tree without a pip recipe installs wheels without it
                    extras.append("pip")
            else:
                extras.append("$(PYTHON_TOOLCHAIN)")
        cached = self._sage[name] = SageDependencies(
            build=_unique(base + source + [r for r in requires if r not in _ORDER_ONLY_PACKAGES]
                          + pyproject.get("build-requires", []) + pyproject.get("host-requires", [])),
            order_only=_unique(base_order_only + extras + [r for r in requires if r in _ORDER_ONLY_PACKAGES]
                               + list(deps.order_only_file)),
            runtime=_unique(list(deps.normal) + pyproject.get("dependencies", [])
                            + pyproject.get("host-requires", [])),
            optional=list(deps.optional),
            check=_unique(list(deps.check) + pyproject.get("test", [])),
        )
        return cached

    def dependencies(self, name: str, *, enabled: Iterable[str] | None = None) -> tuple[list[str], list[str]]:
        """(normal, order-only) dependencies of ``name``: package names, the pseudo-package, and
        verbatim make text (:func:`is_verbatim`).

        Optional dependencies count as normal ones when they are in ``enabled``.
        """
        sage = self.sage_dependencies(name)
        normal = self._expand_all(sage.runtime + sage.build, name)
        if enabled is not None:
            enabled_set = set(enabled)
            normal += [n for n in self._expand_all(sage.optional, name) if n in enabled_set and n not in normal]
        order_only = [n for n in self._expand_all(sage.order_only, name) if n not in normal]
        return normal, order_only

    def check_dependencies(self, name: str) -> list[str]:
        """What spkg-check of ``name`` needs (``dependencies_check`` and the ``test`` list), expanded."""
        return self._expand_all(self.sage_dependencies(name).check, name)

    def problems(self) -> list[RecipeProblem]:
        """A problem for each recipe naming a package that has no (usable) recipe."""
        found = []
        for name, pkg in self.packages.items():
            sage = self.sage_dependencies(name)
            missing = [(dep, _file_of(pkg, dep)) for dep in _unique(
                n for tokens in (sage.build, sage.order_only, sage.runtime, sage.optional, sage.check)
                for n in self._expand_all(tokens, name))
                if dep != PYTHON_PSEUDO and not is_verbatim(dep) and dep not in self.packages]
            for entry, line in self._unresolved.get(name, ()):
                missing.append((entry, f"{pkg.path}/src/pyproject.toml.m4, line {line}"))
            missing = list(dict((dep, where) for dep, where in reversed(missing)).items())[::-1]
            if not missing:
                continue
            dep, where = missing[0]
            if dep in self.left_out:
                reason = f"whose recipe cannot be used (see '{dep}')"
            else:
                reason = f"which has no recipe in {pkg.path.parent}; add build/pkgs/{dep}/ or remove '{dep}' from it"
            found.append(RecipeProblem(
                name, pkg.type, f"package '{name}' ({where}) depends on '{dep}', {reason}"
                + (f" (and on {', '.join(repr(d) for d, _ in missing[1:])})" if len(missing) > 1 else "")))
        return found

    def all_dependencies(self, name: str) -> list[str]:
        cached = self._all.get(name)
        if cached is None:
            normal, order_only = self.dependencies(name)
            cached = self._all[name] = [d for d in normal + order_only if d in self.packages]
        return cached

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


def _file_of(pkg: Package, token: str) -> str:
    """The file of ``pkg`` that names ``token`` (for messages: file, line 1)."""
    deps = pkg.dependencies
    for file, tokens in (("dependencies", deps.normal + deps.order_only), ("dependencies_build", deps.build or ()),
                         ("dependencies_build", deps.build_order_only),
                         ("dependencies_order_only", deps.order_only_file),
                         ("dependencies_optional", deps.optional), ("dependencies_check", deps.check)):
        if token in tokens:
            return f"{pkg.path}/{file}, line 1"
    for entries in pkg.pyproject.values():
        for entry, line in entries:
            if entry == token or token in entry:
                return f"{pkg.path}/src/pyproject.toml.m4, line {line}"
    return f"{pkg.path}/dependencies"


_remembered: dict[Path, tuple[tuple, Graph]] = {}


def load_graph_remembered(pkgs_dir: Path) -> Graph:
    """:func:`load_graph`, remembered by this process for as long as the recipes and the make
    variables are unchanged (their :func:`~sage_build.recipes.recipe.recipes_state`: stats, no
    reads). A session's worker loads its tree once and every package's child reuses it, for the
    binary cache's key (#19: a whole tree read per package was 30 ms on 40 recipes, 360 ms on 625)."""
    from sage_build.recipes.makevars import SOURCES

    variables = []
    for relative in SOURCES:
        try:
            info = (pkgs_dir.parent / relative).stat()
            variables.append((relative, info.st_ino, info.st_size, info.st_mtime_ns))
        except OSError:
            pass
    state = (tuple(variables), recipes_state(pkgs_dir))
    remembered = _remembered.get(pkgs_dir)
    if remembered is not None and remembered[0] == state:
        return remembered[1]
    graph = load_graph(pkgs_dir)
    _remembered[pkgs_dir] = (state, graph)
    return graph


def load_graph(pkgs_dir: Path, warnings: list[str] | None = None) -> Graph:
    """Read a tree: its recipes (``build/pkgs``), its make variables, the graph.  Every broken
    recipe is reported in one go (see ``Graph.build``); warnings are appended to ``warnings``."""
    problems: list[RecipeProblem] = []
    packages = load_packages(pkgs_dir, problems=problems)
    graph = Graph.build(packages, read_make_variables(pkgs_dir.parent), problems=problems, warnings=warnings)
    return graph
