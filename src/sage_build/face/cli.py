"""The command line: ./sage (its --package subcommand is face.package_commands), sage-spkg-uninstall,
sage-recipe-hash, sage-reconfigure, sage-print-system-package-command."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from sage_build.configure.config import load_config
from sage_build.base.errors import SageBuildError
from sage_build.base.lock import locked
from sage_build.recipes.names import resolve, unknown_package_message
from sage_build.recipes.graph import Graph
from sage_build.base.layout import TreeLayout, tool_root
from sage_build.face import settings
from sage_build.install.manifest import installed_versions
from sage_build.recipes.recipe import Package, bad_name_reason, load_packages

USAGE = """\
usage: ./sage -i [-s] [-c] PKG...     install packages (and what they need)
       ./sage -f [-s] [-c] PKG...     force: rebuild and reinstall packages
       ./sage --uninstall [--force] [-k] PKG...
                                      uninstall packages (-k: drop only the stamp)
       ./sage --package COMMAND ...   recipe metadata and downloads (./sage --package --help)
       ./sage --python [ARGS...]      run the prefix's Python
       ./sage -sh                     a shell with the prefix's environment

       ./sage --plan [PKG...]         what `make build` (or make PKG) would build, in order, and why
       ./sage --timeline              the path of the last build's timeline picture
       ./sage --cache COMMAND ...     the binary cache: key, push, keygen, gc (./sage --cache --help)

Options for -i and -f:
  -s   keep the build directory (as SAGE_KEEP_BUILT_SPKGS=yes)
  -c   run the package's spkg-check (as SAGE_CHECK=yes)
  -k, --keep-going   build everything that does not depend on a failure
  -y, --yes          install experimental packages without asking
Optional packages that configure did not enable can be installed with -i;
they then stay installed across `make build` (their default is if_installed).
"""


def _error(message: str) -> int:
    print(f"sage: error: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    try:
        status = _main(argv)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # the reader went away (`./sage --package list | head`): stop quietly, as a process
        # killed by SIGPIPE would, and keep Python from reporting it again at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13


def _main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command in ("-i", "-f"):
            return install_command(rest, force=command == "-f")
        if command == "--uninstall":
            return uninstall_main(rest)
        if command == "--package":
            from sage_build.face.package_commands import package_main

            return package_main(rest)
        if command == "--plan":
            return plan_main(rest)
        if command == "--cache":
            from sage_build.face.cache_command import cache_main

            return cache_main(rest)
        if command == "--timeline":
            path = settings.layout_of(load_config(settings.sage_root())).timeline_file
            if not path.exists():
                return _error(f"{path} does not exist yet: it is written after each `make build`")
            print(path)
            return 0
        if command == "--python":
            return _exec_in_prefix(["python3", *rest])
        if command in ("-sh", "--sh"):
            return _exec_in_prefix([os.environ.get("SHELL", "bash"), *rest])
    except SageBuildError as error:
        if os.environ.get("V") == "1" or "--debug" in argv:
            raise
        return _error(str(error))
    return _error(f"unknown command {command!r}\n{USAGE}")


def _make(targets: list[str], extra: list[str] = ()) -> int:
    root = settings.sage_root()
    jobs = os.environ.get("SAGE_NUM_THREADS") or str(os.cpu_count() or 1)
    command = [os.environ.get("MAKE", "make")]
    # The top-level Makefile configures first; another distribution tree is driven directly.
    command += ["-C", str(root)] if root == tool_root() else ["-f", str(TreeLayout(root).makefile)]
    if "MAKEFLAGS" not in os.environ:
        command.append(f"-j{jobs}")
    return subprocess.run(command + list(extra) + targets).returncode


def install_command(args: list[str], *, force: bool) -> int:
    env_updates = {}
    names = []
    for arg in args:
        if arg == "-s":
            env_updates["SAGE_KEEP_BUILT_SPKGS"] = "yes"
        elif arg == "-c":
            env_updates["SAGE_CHECK"] = "yes"
        elif arg in ("-y", "--yes"):
            env_updates["SAGE_EXPERIMENTAL_OK"] = "yes"
        elif arg in ("-k", "--keep-going"):
            env_updates["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " -k").strip()
        elif arg.startswith("-"):
            return _error(f"unknown option {arg!r} for {'-f' if force else '-i'}")
        else:
            names.append(arg)
    if not names:
        return _error("name the packages to install, e.g. ./sage -i six")
    pkgs_dir = TreeLayout(settings.sage_root()).pkgs_dir
    packages = load_packages(pkgs_dir)
    for index, given in enumerate(names):
        name = resolve(given, packages)
        if name is None:
            if bad_name_reason(given) and (pkgs_dir / given / "type").is_file():
                return _error(f"{pkgs_dir / given}: {bad_name_reason(given)}; rename the directory")
            return _error(unknown_package_message(given, packages, str(pkgs_dir)))
        names[index] = name
        if packages[name].type == "experimental" and "SAGE_EXPERIMENTAL_OK" not in env_updates \
                and os.environ.get("SAGE_EXPERIMENTAL_OK") != "yes":
            return _error(f"{name} is experimental: it may not build or work. Install it anyway with"
                        f" ./sage -i -y {name}")
        if packages[name].type in ("optional", "experimental"):
            print(f"sage: {name} is {packages[name].type}; installing it as asked."
                  " It stays installed across `make build` (if_installed).")
    os.environ.update(env_updates)
    # A variable, not make's -W: -W is not passed down to the sub-makes of the top-level Makefile.
    extra = [f"SAGE_FORCE={' '.join(names)}"] if force else []
    return _make(names, extra)


PLAN_HELP = """usage: ./sage --plan [PKG...]

What `make build` (or `make PKG...`) would do now, in order: each package it would build, why
(not installed, version or recipe changed, a dependency rebuilt, forced), and how long it took
before. Decided from the recipes as they are now, as make will decide; writes nothing."""


def plan_main(targets: list[str]) -> int:
    from sage_build.configure.build_plan import build_state, make_plan

    if any(t in ("-h", "--help") for t in targets):
        print(PLAN_HELP)
        return 0
    options = [t for t in targets if t.startswith("-")]
    if options:
        return _error(f"./sage --plan takes package names only, not {options[0]!r} (./sage --plan --help)")
    config = load_config(settings.sage_root())
    layout = settings.layout_of(config)
    # from the recipes as they are now, as make will see them (after its reconfigure, if any)
    state = build_state(config)
    targets = [resolve(t, state.graph.packages) or t for t in targets]
    unknown = [t for t in targets if t not in state.graph.packages]
    if unknown:
        return _error(unknown_package_message(unknown[0], state.graph.packages, "build/pkgs"))
    plan = make_plan(layout, state.graph, targets or sorted(state.enabled), state.built, enabled=state.enabled,
                     reconfigured=state.reconfigured)
    if not plan:
        print("nothing to build: everything is up to date")
        return 0
    cached = _in_binary_cache(config, [p.name for p in plan])
    width = max(len(f"{p.name}-{p.version}") for p in plan)
    for index, item in enumerate(plan, start=1):
        estimate = f"~{item.estimate:.0f}s" if item.estimate is not None else "?"
        source = "" if cached is None else ("from cache" if item.name in cached else "build") + ": "
        print(f"{index:4d}. {f'{item.name}-{item.version}'.ljust(width)}  {estimate:>7}  {source}{item.reason}")
    known = [p.estimate for p in plan if p.estimate is not None]
    print(f"{len(plan)} package(s) to build; {sum(known):.0f}s of build time known from past builds"
          + (f" ({len(plan) - len(known)} never built here)" if len(known) < len(plan) else ""))
    return 0


def _in_binary_cache(config, names: list[str]) -> set[str] | None:
    """Which of ``names`` a binary cache of SAGE_BINARY_CACHE has (a lookup of their keys, no
    signature checked); None when no cache is used. An unreachable cache is a warning."""
    from sage_build.base.errors import CacheError
    from sage_build.cache.key import tree_keys
    from sage_build.cache.store import has_key
    from sage_build.face.cache_command import cache_settings

    cache = cache_settings(os.environ, config)
    if not cache.pulls:
        return None
    keys = tree_keys(config, os.environ, names=names)
    found = set()
    for url in cache.urls:
        try:
            found |= {name for name in names if name in keys and name not in found and has_key(url, keys[name].key)}
        except CacheError as error:
            print(f"sage: warning: {error}", file=sys.stderr)
    return found


def _exec_in_prefix(command: list[str]) -> int:
    config = load_config(settings.sage_root())
    layout = settings.layout_of(config)
    env = dict(os.environ, SAGE_ROOT=str(layout.sage_root), SAGE_LOCAL=str(layout.prefix),
               VIRTUAL_ENV=str(layout.local),
               PATH=f"{layout.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    if not layout.python.exists():
        raise SageBuildError(f"{layout.local} has no Python yet: run `make build` (or `make python3-venv`)")
    os.execvpe(command[0], command, env)
    return 0  # not reached


def uninstall_main(argv: list[str] | None = None) -> int:
    from sage_build.install.uninstall import uninstall

    parser = argparse.ArgumentParser(prog="sage-spkg-uninstall", description="Uninstall packages, in Sage's order.")
    parser.add_argument("packages", nargs="+", metavar="PKG")
    parser.add_argument("-k", "--keep-files", action="store_true", help="remove only the stamp")
    parser.add_argument("--force", action="store_true", help="uninstall even if installed packages depend on it")
    parser.add_argument("--if-installed", action="store_true", help="no error for packages not installed")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from sage_build.base.makeflags import make_dry_run

    dry_run = make_dry_run(os.environ)
    if dry_run:
        print(f"sage-spkg-uninstall {' '.join(args.packages)}  (make -{dry_run}: not run)")
        return 0
    try:
        config = load_config(settings.sage_root())
        layout = settings.layout_of(config)
        packages = load_packages(layout.pkgs_dir)
        graph = Graph(packages=packages)
        installed = installed_versions(layout, packages)
        args.packages = [resolve(name, packages) or name for name in args.packages]
        for name in args.packages:
            if name not in packages and not layout.installed_stamps(name) and not layout.removal_journal(name):
                raise SageBuildError(unknown_package_message(name, packages, "build/pkgs") + "; nothing of it is installed")
            dependents = sorted(d for d in graph.dependents(name) if d in installed and d not in args.packages)
            if dependents and not args.force and not args.keep_files:
                raise SageBuildError(
                    f"{name} is needed by installed packages: {', '.join(dependents)};"
                    " uninstall them first, or pass --force"
                )
        for name in args.packages:
            # The package's lock, as sage-spkg holds it: never remove what a build is installing.
            with locked(layout.package_lock(name),
                        on_wait=lambda: print(f"[{name}] a build of {name} is running; waiting for it", flush=True)):
                removed = uninstall(layout, name, stamp_only=args.keep_files)
                if removed:
                    print(f"sage-spkg-uninstall: {name} uninstalled")
                elif not args.keep_files and name in packages and _legacy_uninstall(layout, packages[name]):
                    print(f"sage-spkg-uninstall: {name}: no stamp; ran its spkg-legacy-uninstall")
                elif not args.if_installed:
                    raise SageBuildError(f"{name} is not installed")
    except SageBuildError as error:
        print(f"sage-spkg-uninstall: error: {error}", file=sys.stderr)
        return 1
    return 0


def _legacy_uninstall(layout, pkg: Package) -> bool:
    """Sage's old-style removal: a package with no stamp may still have files of an install from
    before stamps, which its recipe's ``spkg-legacy-uninstall`` removes. False if it has none."""
    script = pkg.script_path("spkg-legacy-uninstall")
    if script is None:
        return False
    helpers = tool_root() / "build" / "bin" / "sage-dist-helpers"
    env = dict(os.environ, SAGE_ROOT=str(layout.sage_root), SAGE_LOCAL=str(layout.prefix),
               SAGE_INST_LOCAL=str(layout.local), SAGE_VENV=str(layout.prefix),
               SAGE_SHARE=str(layout.prefix / "share"), PKG_NAME=pkg.name, PKG_BASE=pkg.name,
               PKG_VER=pkg.stamp_version, SAGE_DESTDIR="")
    result = subprocess.run(["bash", "-c", 'set -e; . "$1"; . "$2"', "spkg-legacy-uninstall",
                             str(helpers), str(script)], cwd=pkg.path, env=env)
    if result.returncode != 0:
        raise SageBuildError(f"{pkg.name}: {script} failed (exit {result.returncode})")
    return True


def reconfigure_main(argv: list[str] | None = None) -> int:
    """Repeat the last ./configure.py call (extra arguments are appended)."""
    from sage_build.face.configure_command import main as configure_main

    argv = sys.argv[1:] if argv is None else argv
    config = load_config(settings.sage_root())
    return configure_main(config.argv + argv)


def system_package_command_main(argv: list[str] | None = None) -> int:
    from sage_build.recipes import distros
    parser = argparse.ArgumentParser(
        prog="sage-print-system-package-command",
        description="Print the command that installs the system equivalents of packages, from their"
                    " distros/SYSTEM.txt files.")
    parser.add_argument("system", help=f"one of {', '.join(sorted(distros.INSTALL_COMMANDS))}")
    parser.add_argument("packages", nargs="+", metavar="PKG")
    parser.add_argument("--install", action="store_true", help="the install command (the default)")
    parser.add_argument("--sudo", action="store_true", help="prefix sudo where the system needs root")
    parser.add_argument("--yes", action="store_true", help="answer yes to the package manager")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.system in distros.NAMES_ONLY:
        print(f"# {distros.NAMES_ONLY[args.system]}")
        return 0
    if args.system not in distros.INSTALL_COMMANDS:
        known = sorted([*distros.INSTALL_COMMANDS, *distros.NAMES_ONLY])
        return _error(f"unknown system {args.system!r}; known: {', '.join(known)}")
    packages = load_packages(TreeLayout(settings.sage_root()).pkgs_dir)
    unknown = [p for p in args.packages if p not in packages]
    if unknown:
        return _error(f"no such package: {', '.join(unknown)}")
    names = distros.system_package_names([packages[p] for p in args.packages], args.system)
    if not names:
        print(f"# no {args.system} package is known for {', '.join(args.packages)}")
        return 0
    print(distros.install_command(args.system, names, sudo=args.sudo, yes=args.yes))
    return 0


def recipe_hash_main(argv: list[str] | None = None) -> int:
    from sage_build.configure.makefile import update_recipe_hash

    argv = sys.argv[1:] if argv is None else argv
    tree = TreeLayout(settings.sage_root())
    for name in argv:
        update_recipe_hash(tree.hashes_dir, name, tree.pkgs_dir / name)
    return 0
