"""A package's build inputs and its binary-cache key: the one definition (#20 item 1).

The key is the sha256 of a canonical JSON document of everything that changes what a build
produces: the recipe's build inputs (the recipe hash make rebuilds on, which covers the version,
the scripts, patches and the upstream checksums), the target Python (version, implementation, its
most specific wheel tag: ABI and platform, glibc's version among them), the C, C++ and Fortran
compilers and the C library, the settings a build reads (flags, ``SAGE_FAT_BINARY``), the host CPU
where a build tunes for it (``-march=native`` in the flags, or a recipe that tunes unless
``SAGE_FAT_BINARY=yes``), what configure took from the system for a dependency, sage-build's own
build-relevant version, and the keys of every dependency. Not inputs: SPKG.rst and the other documentation of a recipe, ``-jN``, the build
directory, the time.

A Python package installs from a wheel, which names no prefix: its key names none. A staged
package (files installed into the prefix by a script) is relocated when it is pushed
(cache.relocate), so its key names no prefix either; when one of its files cannot be relocated, its
entry goes under its *prefix key* instead, the key of the same inputs with the prefix: shared by
trees of that prefix path only. A pull asks for the key, then the prefix key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from sage_build.base.layout import tool_bin_dir
from sage_build.configure.config import Config
from sage_build.install.target import TargetPython
from sage_build.recipes.graph import PYTHON_PSEUDO, Graph, is_verbatim

#: sage-build's own build-relevant version: raise it when a change of sage-build changes what a
#: build produces (the environment of build commands, wheel normalisation, ...), so that no cache
#: serves an artifact that the new sage-build would build differently.
BUILD_FORMAT = 1

#: The settings of the environment a build reads (compilers and their flags, Sage's switches).
#: ``MAKEFLAGS``/``SAGE_NUM_THREADS`` (the -jN) are not among them: they change how fast, not what.
BUILD_SETTINGS = ("CC", "CXX", "FC", "CPP", "CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "FCFLAGS", "FFLAGS",
                  "SAGE_FAT_BINARY", "SAGE_DEBUG", "SAGE_TUNE", "SAGE_BUILD_TYPE", "SOURCE_DATE_EPOCH")

#: A staged package's "prefix" input: none, its files are relocated when pushed (PackageKey.prefix_key
#: is the key of an entry whose files could not be).
RELOCATED = "none: relocated when pushed (else the prefix key)"

#: The compilers a build may run: the variable, and the program build systems take when it is unset
#: (autotools, meson, setuptools' C++ and numpy.distutils' Fortran look for these names).
COMPILERS = (("CC", "cc"), ("CXX", "c++"), ("FC", "gfortran"))

#: Flags that make a compiler tune for the machine it runs on.
_NATIVE_FLAG = re.compile(r"(?:^|\s)-m(?:arch|tune|cpu)=native(?:\s|$)")
_FLAG_SETTINGS = ("CFLAGS", "CXXFLAGS", "CPPFLAGS", "FCFLAGS", "FFLAGS", "LDFLAGS")

#: The recipes' build scripts (the ones that make the files; not spkg-check or the maintainer scripts).
_BUILD_SCRIPTS = ("spkg-install", "spkg-build")


@dataclass(frozen=True)
class PackageKey:
    """A package's key and the inputs it was computed from (``inputs`` is what ``--explain`` shows)."""

    name: str
    version: str
    key: str
    inputs: dict = field(default_factory=dict, compare=False)
    prefix_key: str = ""  # a staged package's entry when a file cannot be relocated ("" a wheel)

    @property
    def candidates(self) -> list[str]:
        """The keys an entry of this build may have, the one to prefer first."""
        return [self.key] + ([self.prefix_key] if self.prefix_key else [])

    def prefix_inputs(self, prefix: str) -> dict:
        """The inputs of the prefix key."""
        return {**self.inputs, "prefix": prefix}


def environment_inputs(config: Config, target: TargetPython, environ: Mapping[str, str]) -> dict:
    """The inputs every package of a configured tree shares: target Python, compiler, libc, settings."""
    return {
        "sage-build": BUILD_FORMAT,
        "dist-helpers": _file_sha256(tool_bin_dir() / "sage-dist-helpers"),
        "python": {"implementation": target.implementation, "version": target.version,
                   "tag": target.tags[0] if target.tags else ""},
        "machine": platform.machine(),
        "libc": " ".join(platform.libc_ver()).strip(),
        "compilers": compilers(environ),
        "settings": {name: environ[name] for name in BUILD_SETTINGS if environ.get(name)},
        "system-site-packages": config.system_site_packages,
        **({"cpu": {"host": host_cpu(), "because": "-m...=native in the flags"}} if native_flags(environ) else {}),
    }


def compilers(environ: Mapping[str, str]) -> dict[str, str]:
    """Each compiler's ``--version`` (first line), by its variable: the one the variable names, else
    the default program when it is on PATH; a compiler a build could not run is no input."""
    found = {}
    for variable, default in COMPILERS:
        command = environ.get(variable, "").strip()
        if not command and shutil.which(default, path=environ.get("PATH")):
            command = default
        if command:
            found[variable] = compiler_version(command) or f"{command}: no --version"
    return found


def native_flags(environ: Mapping[str, str]) -> bool:
    """Whether the flags make every build tune for the host (``-march=native`` and friends)."""
    return any(_NATIVE_FLAG.search(environ.get(name, "")) for name in _FLAG_SETTINGS)


def tunes_for_host(pkg, environ: Mapping[str, str]) -> bool:
    """Whether a recipe's build tunes for the host CPU: Sage's recipes that do (gmp's configure,
    ntl's NATIVE, openblas's TARGET, ecm, flint ...) are the ones whose build scripts read
    ``SAGE_FAT_BINARY`` to build for every CPU instead; unless it is ``yes``, they tune."""
    if environ.get("SAGE_FAT_BINARY") == "yes":
        return False
    for script in _BUILD_SCRIPTS:
        path = pkg.script_path(script) if script in pkg.scripts else None
        try:
            if path is not None and "SAGE_FAT_BINARY" in path.read_text(errors="replace"):
                return True
        except OSError:
            return True  # unreadable: assume it tunes (a key too specific only costs a rebuild)
    return False


@functools.lru_cache(maxsize=None)
def host_cpu() -> str:
    """The host CPU's microarchitecture as archspec (Spack's library) names it ("skylake", "zen3",
    "neoverse_n1"); without archspec, the machine and /proc/cpuinfo's model name."""
    try:
        import archspec.cpu
    except ImportError:
        model = ""
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                model = next((line.split(":", 1)[1].strip() for line in handle
                              if line.lower().startswith(("model name", "cpu model"))), "")
        except OSError:
            pass
        return f"{platform.machine()} {model}".strip()
    host = archspec.cpu.host()
    return f"{host.name} ({host.vendor})"


def tree_keys(config: Config, environ: Mapping[str, str], names: list[str] | None = None) -> dict[str, PackageKey]:
    """Every package's key in a configured tree, as ``make build`` would build it now (the recipes
    as they are, the enabled packages of the Makefile or of the configure make will run first).
    The public entry (the CI generator calls it); ``environ``: the environment make runs in."""
    from sage_build.configure.build_plan import build_state

    state = build_state(config)
    return package_keys(config, state.graph, target_of(config), environ, enabled=state.enabled, names=names)


def target_of(config: Config) -> TargetPython:
    """The target Python of a tree: the prefix's, described when its venv was made; before that,
    the interpreter configure chose (the venv is made from it: same version and tags)."""
    try:
        return TargetPython.load(config.layout().target_file)
    except FileNotFoundError:
        from sage_build.install.target import query_python

        return query_python(config.python)


def package_keys(config: Config, graph: Graph, target: TargetPython, environ: Mapping[str, str], *,
                 enabled: set[str] | None = None, names: list[str] | None = None) -> dict[str, PackageKey]:
    """The key of every package of ``names`` (default: every package built from source) and of
    what they depend on, in a configured tree. ``environ`` is the environment a build starts from."""
    shared = environment_inputs(config, target, environ)
    built = set(graph.packages) - set(config.from_system)
    keys: dict[str, PackageKey] = {}
    wanted = names if names is not None else sorted(built)
    for name in graph.topological_order(graph.closure(wanted)):
        if name in built:
            keys[name] = _package_key(config, graph, name, shared, keys, enabled)
    return keys


def _package_key(config: Config, graph: Graph, name: str, shared: dict, keys: dict[str, PackageKey],
                 enabled: set[str] | None) -> PackageKey:
    pkg = graph.packages[name]
    normal, order_only = graph.dependencies(name, enabled=enabled)
    dependencies = {}
    for dep in normal + order_only:
        if dep == PYTHON_PSEUDO:
            continue  # the target Python is an input of its own
        if is_verbatim(dep):
            dependencies[dep] = "verbatim"
        elif dep in keys:
            dependencies[dep] = keys[dep].key
        elif dep in config.from_system:
            # what configure found on the system, and why (its version where the check says one)
            dependencies[dep] = {"system": config.system_detection.get(dep, ["system", ""])}
        else:
            dependencies[dep] = "absent"
    inputs = {
        "package": name,
        "version": pkg.stamp_version,
        "recipe": pkg.content_hash,
        "upstream": dict(sorted(pkg.checksums.items())),
        "prefix": "none: a wheel" if pkg.is_python else RELOCATED,
        "environment": shared,
        "dependencies": dict(sorted(dependencies.items())),
    }
    if "cpu" not in shared and tunes_for_host(pkg, shared["settings"]):
        inputs["cpu"] = {"host": host_cpu(), "because": "its build tunes for the host CPU unless SAGE_FAT_BINARY=yes"}
    prefix_key = "" if pkg.is_python else key_of({**inputs, "prefix": config.prefix})
    return PackageKey(name, pkg.stamp_version, key_of(inputs), inputs, prefix_key)


def key_of(inputs: dict) -> str:
    """The key of a document of inputs: sha256 of its canonical JSON."""
    return hashlib.sha256(canonical_json(inputs)).hexdigest()


def canonical_json(document: object) -> bytes:
    """One byte string per document: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compiler_version(cc: str) -> str:
    """A compiler's first line of ``--version`` ("" when there is none); asked once per process and
    program: a session's worker asks once for its children, and the program that answers to the
    name may change meanwhile (a package installs its own compiler first on PATH, an upgrade)."""
    try:
        words = shlex.split(cc)
    except ValueError:
        words = []
    identity: tuple = ()
    for word in words:  # the program, and the one a wrapper runs ("ccache gcc")
        program = shutil.which(word) if not word.startswith("-") else None
        if program:
            try:
                info = os.stat(program)
            except OSError:
                continue
            identity += (os.path.realpath(program), info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
    return _compiler_version(cc, identity)


@functools.lru_cache(maxsize=None)
def _compiler_version(cc: str, identity: tuple) -> str:
    try:
        result = subprocess.run([*shlex.split(cc), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError, ValueError):
        return ""
    lines = result.stdout.splitlines()
    return lines[0].strip() if result.returncode == 0 and lines else ""


def _file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def explain(key: PackageKey) -> str:
    """The inputs of a key, one per line, for ``./sage --cache key PKG --explain``."""
    lines = [f"{key.name}-{key.version}: {key.key}"]

    def walk(value: object, path: str) -> None:
        if isinstance(value, dict) and value:
            for name in sorted(value):
                walk(value[name], f"{path}.{name}" if path else name)
        else:
            lines.append(f"  {path} = {json.dumps(value)}")

    walk(key.inputs, "")
    if key.prefix_key:
        lines.append(f"  prefix key (an entry whose files could not be relocated) = {key.prefix_key}")
    return "\n".join(lines)
