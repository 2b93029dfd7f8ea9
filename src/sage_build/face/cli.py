"""The command line: ./sage (its --package subcommand is face.package_commands), sage-spkg-uninstall,
sage-recipe-hash, sage-reconfigure, sage-print-system-package-command."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

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
       ./sage --ci generate github|gitlab [PKG...] [--cache URL] [-o FILE]
                                      a CI pipeline that builds what the binary cache lacks
                                      (./sage --ci --help)

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
        if command == "--ci":
            from sage_build.face.ci_command import ci_main

            return ci_main(rest)
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
    return run_make(targets, extra)


def run_make(targets: list[str], extra: list[str] = (), *, env: dict[str, str] | None = None) -> int:
    """make TARGETS in the tree, as `make` there would (``env``: the environment make gets)."""
    root = settings.sage_root()
    jobs = os.environ.get("SAGE_NUM_THREADS") or str(os.cpu_count() or 1)
    command = [os.environ.get("MAKE", "make")]
    # The top-level Makefile configures first; another distribution tree is driven directly.
    command += ["-C", str(root)] if root == tool_root() else ["-f", str(TreeLayout(root).makefile)]
    if "MAKEFLAGS" not in (os.environ if env is None else env):
        command.append(f"-j{jobs}")
    return subprocess.run(command + list(extra) + targets, env=env).returncode


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
    # Sage: an explicit request installs the package even when configure takes it from the
    # system (the system check is for `make build`); make's PKG-from-source goal builds it.
    try:
        from_system = set(load_config(settings.sage_root()).from_system)
        for name in names:
            if name in from_system:
                print(f"sage: {name} is taken from the system; building it from source as asked")
    except SageBuildError:
        # not configured yet: make configures first (a Makefile with these goals), and may take them from the system
        from_system = set(names)
    targets = [f"{name}-from-source" if name in from_system else name for name in names]
    os.environ.update(env_updates)
    # A variable, not make's -W: -W is not passed down to the sub-makes of the top-level Makefile.
    extra = [f"SAGE_FORCE={' '.join(names)}"] if force else []
    return _make(targets, extra)


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
    from sage_build.face.settings import cache_settings

    cache = cache_settings(os.environ, config)
    if not cache.pulls:
        return None
    if os.environ.get("SAGE_CHECK") == "yes" and cache.mode != "only":
        # sage-spkg builds a package with a test suite, so that it runs (pipeline.spkg)
        from sage_build.recipes.recipe import load_packages

        packages = load_packages(config.layout().pkgs_dir)
        names = [name for name in names if name not in packages or not packages[name].script_path("spkg-check")]
    keys = tree_keys(config, os.environ, names=names)
    found = set()
    for url in cache.urls:
        try:
            found |= {name for name in names if name in keys and name not in found
                      and any(has_key(url, key) for key in keys[name].candidates)}
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
                    raise SageBuildError(f"{name} is not installed" + _foreign_hint(layout, packages.get(name)))
    except SageBuildError as error:
        print(f"sage-spkg-uninstall: error: {error}", file=sys.stderr)
        return 1
    return 0


def _foreign_hint(layout, pkg: Package | None) -> str:
    """The way out when another installer put the package's distribution in the prefix: sage-build
    has no record of it, so its uninstall cannot remove it."""
    from sage_build.install.target import TargetPython
    from sage_build.install.uninstall import foreign_distributions

    if pkg is None or pkg.distribution_name is None:
        return ""
    try:
        target = TargetPython.load(layout.target_file)
    except (OSError, ValueError):
        return ""
    sites = [Path(target.paths[key]) for key in ("purelib", "platlib")]
    found = foreign_distributions(sites, pkg.distribution_name)
    if not found:
        return ""
    dist = found[0]
    return (f" by sage-build, but {dist.name} {dist.version} is in the prefix, installed by {dist.installer}:"
            f" remove it with `{layout.python} -m pip uninstall {dist.name}`, or let sage-build take it over"
            f" with `./sage -i {pkg.name}` (it replaces that installation, as pip would)")


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


#: The command words of Sage's sage-print-system-package-command that we carry out.
_SYSTEM_COMMAND_WORDS = ("install", "update")
#: Sage's other command words: recognised, so they get an error and not "no such package".
_SYSTEM_COMMAND_WORDS_NOT_DONE = ("remove", "setup-build-env", "list")


def system_package_command_main(argv: list[str] | None = None) -> int:
    """Two forms. Sage's: ``SYSTEM [options] install|update NAMES...`` with system package names
    (recipe names with --spkg); and ours: ``SYSTEM [options] PKG...`` with recipe names."""
    from sage_build.recipes import distros
    parser = argparse.ArgumentParser(
        prog="sage-print-system-package-command",
        usage="%(prog)s SYSTEM [options] [install|update] NAMES...",
        description="Print the command that installs system packages. As in Sage: with the word"
                    " 'install' the names are the system's own package names (recipe names with"
                    " --spkg), 'update' prints the command that refreshes the package lists. Without"
                    " a command word the names are recipes, looked up in their distros/SYSTEM.txt.")
    parser.add_argument("system", help=f"'auto' (this machine's) or one of"
                                       f" {', '.join(sorted(distros.INSTALL_COMMANDS))}")
    parser.add_argument("words", nargs="*", metavar="NAMES")
    parser.add_argument("--install", action="store_true", help="the install command (the default)")
    parser.add_argument("--spkg", action="store_true", help="the names are recipe names (Sage's form)")
    parser.add_argument("--sudo", action="store_true", help="prefix sudo where the system needs root")
    parser.add_argument("--yes", action="store_true", help="answer yes to the package manager")
    parser.add_argument("--no-install-recommends", action="store_true", help="apt-get's option")
    parser.add_argument("--ignore-missing", action="store_true",
                        help="say nothing of recipes that have no package on SYSTEM")
    parser.add_argument("--prompt", metavar="=PROMPT", default="", help="print PROMPT ('$ ') first")
    parser.add_argument("--verbose", metavar="=COMMENT", default=None,
                        help="say what the command is for, on a line starting with COMMENT ('# ')")
    parser.add_argument("--wrap", metavar="=WIDTH", type=int, default=None,
                        help="wrap a long command at WIDTH (78)")
    # As in Sage, these options take a value only after '=': alone, they mean their default.
    bare = {"--prompt": "--prompt=$ ", "--verbose": "--verbose=# ", "--wrap": "--wrap=78"}
    args = parser.parse_intermixed_args([bare.get(a, a) for a in (sys.argv[1:] if argv is None else argv)])
    system = distros.guess_package_system(os.environ) if args.system == "auto" else args.system
    if system == "unknown":
        return _error("unknown package system on this machine; name one, e.g. debian or fedora")
    if system in distros.NAMES_ONLY:
        print(f"# {distros.NAMES_ONLY[system]}")
        return 0
    if system not in distros.INSTALL_COMMANDS:
        known = sorted([*distros.INSTALL_COMMANDS, *distros.NAMES_ONLY])
        return _error(f"unknown system {system!r}; known: {', '.join(known)}")
    words = list(args.words)
    command_word = words.pop(0) if words and words[0] in (*_SYSTEM_COMMAND_WORDS,
                                                          *_SYSTEM_COMMAND_WORDS_NOT_DONE) else None
    if command_word in _SYSTEM_COMMAND_WORDS_NOT_DONE:
        return _error(f"the command {command_word!r} is not supported; use one of"
                      f" {', '.join(_SYSTEM_COMMAND_WORDS)}")
    if command_word == "update":
        line = distros.update_command(system, sudo=args.sudo)
        if line is None:
            print(f"# {system} needs no update of its package lists")
        else:
            _print_shell_line(line, args, "refresh the package lists")
        return 0
    if not words:
        return _error("name the packages to install")
    if command_word == "install" and not args.spkg:
        names = words
    else:
        packages = load_packages(TreeLayout(settings.sage_root()).pkgs_dir)
        recipes = []
        for word in words:
            recipe = resolve(word, packages)
            if recipe is None:
                return _error(unknown_package_message(word, packages, "build/pkgs"))
            recipes.append(packages[recipe])
        names = distros.system_package_names(recipes, system)
        missing = [pkg.name for pkg in recipes if not pkg.distros.get(system)]
        if missing and not args.ignore_missing:
            print(f"# no {system} package is known for {', '.join(missing)}")
        if not names:
            return 0
    line = distros.install_command(system, names, sudo=args.sudo, yes=args.yes,
                                   no_install_recommends=args.no_install_recommends)
    _print_shell_line(line, args, "install the packages")
    return 0


def _print_shell_line(line: str, args: argparse.Namespace, purpose: str) -> None:
    if args.verbose is not None:
        print(f"{args.verbose}To {purpose}, run:")
    if args.wrap and len(line) > args.wrap:
        import textwrap
        wrapped = textwrap.wrap(line, args.wrap, initial_indent=args.prompt,
                                subsequent_indent=" " * max(len(args.prompt), 4),
                                break_long_words=False, break_on_hyphens=False)
        print(" \\\n".join(wrapped))
    else:
        print(f"{args.prompt}{line}")


def recipe_hash_main(argv: list[str] | None = None) -> int:
    from sage_build.configure.makefile import update_recipe_hash

    argv = sys.argv[1:] if argv is None else argv
    tree = TreeLayout(settings.sage_root())
    for name in argv:
        update_recipe_hash(tree.hashes_dir, name, tree.pkgs_dir / name)
    return 0
