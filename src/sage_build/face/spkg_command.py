"""sage-spkg's command line: its arguments, its environment, its messages and exit codes.

The phases themselves are :class:`sage_build.pipeline.spkg.Spkg`, which takes what is read
here as a :class:`~sage_build.pipeline.spkg.SpkgSettings`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import ContextManager, Mapping

from sage_build.base.errors import SageBuildError
from sage_build.base.layout import Layout
from sage_build.base.lock import locked
from sage_build.base.makeflags import make_dry_run
from sage_build.configure.config import Config, load_config
from sage_build.face import settings
from sage_build.face.settings import cache_settings
from sage_build.pipeline.spkg import PhaseFailed, Spkg, SpkgSettings
from sage_build.recipes.recipe import PYTHON_PSEUDO, Package, load_package


def spkg_settings(environ: Mapping[str, str], *, keep_build: bool = False, check: bool = False,
                  config: Config | None = None, worker: int = 0) -> SpkgSettings:
    """What a sage-spkg run is told: its options (-s, -c) and the environment (make's, sage-progress's)."""
    quiet = environ.get(settings.QUIET) in ("1", settings.QUIET_BUT_WARNINGS)
    sage_check = environ.get("SAGE_CHECK")
    plan_file = environ.get(settings.PLAN)
    pull_ahead = environ.get(settings.PULL_AHEAD)
    return SpkgSettings(
        environ=environ,
        keep_build=keep_build or environ.get("SAGE_KEEP_BUILT_SPKGS") == "yes",
        check="warn" if sage_check == "warn" else "yes" if check or sage_check == "yes" else "",
        session=environ.get(settings.SESSION, ""),
        plan_file=Path(plan_file) if plan_file else None,
        quiet=quiet,
        echo=False if quiet else settings.echo_to_terminal(environ),
        echo_warnings=environ.get(settings.QUIET) == settings.QUIET_BUT_WARNINGS,
        bytecode_levels=environ.get("SAGE_BYTECODE_LEVELS", "0"),
        collisions=settings.collisions(environ),
        cache=cache_settings(environ, config),
        worker=worker,
        pull_ahead=Path(pull_ahead) if pull_ahead else None,
        output=sys.stdout,  # None when make's output is closed: the lines go to the log only
        terminal=sys.stdout is not None and sys.stdout.isatty(),
        progress=sys.stderr is not None and sys.stderr.isatty(),
    )


def package_lock(layout: Layout, name: str) -> ContextManager[bool]:
    """One sage-spkg per package and prefix at a time (two `make build` in one tree); yields
    whether it had to wait. Different packages never wait for each other."""
    def say() -> None:
        print(f"[{name}] another run is building {name}; waiting for it", flush=True)

    return locked(layout.package_lock(name), on_wait=say)


def main(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ, *, worker: int = 0) -> int:
    """sage-spkg; ``worker``: the process id of the session worker this runs in (a fork of it), if any."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0] and not argv[0].startswith("-"):
        # make's call: one package name and no option.  argparse (with gettext and locale) is
        # not worth its import for that, once a package (issue #19); help and options use it.
        args = make_call_arguments(argv[0])
    else:
        args = parse_arguments(argv)
    dry_run = make_dry_run(environ)
    if dry_run:
        print(f"sage-spkg {args.package}  (make -{dry_run}: not run"
              + ("; nothing is marked installed" if dry_run == "t" else "") + ")")
        return 0
    settings.configure_writes(environ)
    try:
        config = load_config(settings.sage_root(environ))
        layout = settings.layout_of(config, args.destdir, environ)
        pkg = _package(args.package, config, layout)
        spkg_options = spkg_settings(environ, keep_build=args.keep_build, check=args.check, config=config,
                                     worker=worker)
        if pkg.name in settings.forced(environ):  # ./sage -f: rebuilt from source, whatever a cache holds
            spkg_options = spkg_options._replace(cache=spkg_options.cache._replace(urls=()))
        spkg = Spkg(config, layout, pkg, spkg_options, build_only=args.build_only)
    except OSError as error:
        print(f"sage-spkg: error: {args.package}: {error.strerror or error}: {error.filename or ''}",
              file=sys.stderr)
        return 1
    except SageBuildError as error:
        if args.debug or environ.get("V") == "1":
            raise
        print(f"sage-spkg: error: {error}", file=sys.stderr)
        return 1
    started = time.time()
    try:
        with package_lock(layout, pkg.name) as waited:
            if _built_meanwhile(layout, pkg, waited, started, environ):
                print(f"[{spkg.tag}] built meanwhile by another run; nothing to do", flush=True)
                spkg.log.close()
                return 0
            return _run_locked(spkg, args, started)
    except OSError as error:  # e.g. a prefix this user may not write to
        if args.debug:
            raise
        print(f"sage-spkg: error: {pkg.name}: {error.strerror or error}: {error.filename or ''};"
              f" check that you may write to {layout.local}", file=sys.stderr)
        return 1


def remember_tree(environ: Mapping[str, str]) -> None:
    """In a session's worker, once per tree: load what each package of a tree that uses a binary
    cache would otherwise read whole for its key (the recipe graph), so that the worker's children
    inherit it (recipes.graph.load_graph_remembered checks that it is still the tree's)."""
    if not os.path.isabs(environ.get("SAGE_ROOT", "")):
        return
    from sage_build.recipes.graph import load_graph_remembered

    try:
        config = load_config(settings.sage_root(environ))
        if cache_settings(environ, config).used:
            load_graph_remembered(settings.layout_of(config, None, environ).pkgs_dir)
    except (SageBuildError, OSError):
        pass  # the package's own run says what is wrong


def parse_arguments(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser(
        prog="sage-spkg",
        description="Build and install one package of the distribution: fetch, unpack, build,"
                    " uninstall the old version, install, record. Normally run by make.",
        epilog="Under make, from a session's second package on, `sage-spkg PKG` hands the package to the"
               " session's worker (one process that has loaded sage-build once and forks a child per"
               " package; it ends with make). SAGE_SPKG_WORKER=no runs every package in its own process.",
    )
    parser.add_argument("package", help="the package name (a directory of build/pkgs)")
    parser.add_argument("-s", "--keep-build", action="store_true", help="keep the build directory")
    parser.add_argument("-c", "--check", action="store_true", help="run spkg-check (as SAGE_CHECK=yes)")
    parser.add_argument("--destdir", help="install into this staging root (as make's DESTDIR)")
    parser.add_argument("--build-only", metavar="DIR", type=Path,
                        help="only build: put the package's wheel(s) into DIR; install nothing")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def make_call_arguments(package: str) -> SimpleNamespace:
    """What parse_arguments returns for ``[package]``."""
    return SimpleNamespace(package=package, keep_build=False, check=False, destdir=None, build_only=None,
                           debug=False)


def _package(name: str, config: Config, layout: Layout) -> Package:
    if name == PYTHON_PSEUDO:
        return Package(name=PYTHON_PSEUDO, path=layout.pkgs_dir, type="base",
                       version=config.python_version, tarball_pattern=None)
    path = layout.pkgs_dir / name
    if not (path / "type").is_file():
        raise SageBuildError(f"there is no package '{name}' in {layout.pkgs_dir}")
    return load_package(path)


def _built_meanwhile(layout: Layout, pkg: Package, waited: bool, started: float, environ: Mapping[str, str]) -> bool:
    """Whether another run (a second `make build`, `./sage -i`) installed this version after our
    make decided to build it: its stamp is newer than our make's start (make runs a package's
    rule once a run, so a newer stamp is somebody else's).  Without that start time, only a run
    we waited for counts.  A forced package (./sage -f) is always built."""
    if pkg.name in environ.get("SAGE_FORCE", "").split():
        return False
    try:
        stamp_time = layout.stamp(pkg.name, pkg.stamp_version).stat().st_mtime
    except FileNotFoundError:
        return False
    try:
        return stamp_time >= float(environ["SAGE_MAKE_STARTED"])
    except (KeyError, ValueError):  # not run by our Makefile, or no sub-second clock (date +%N)
        return waited and stamp_time >= started


def _run_locked(spkg: Spkg, args, started: float) -> int:
    quiet = spkg.settings.quiet
    if not quiet and not spkg.log.echo and spkg.settings.terminal:
        print(f"[{spkg.tag}] building (log: {spkg.log_path})", flush=True)
    try:
        stamp = spkg.run()
    except PhaseFailed as failure:
        if args.debug:
            raise
        if not quiet:  # under sage-progress the summary after the build shows it
            print(spkg.failure_report(failure), file=sys.stderr)
        return 1
    except SageBuildError as error:
        print(f"sage-spkg: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n[{spkg.tag}] interrupted; no stamp was written", file=sys.stderr)
        return 130
    if not quiet and stamp is not None:  # None: a pull ahead had nothing to pull
        done = "built" if args.build_only else "pulled ahead of the build order and installed" \
            if spkg.settings.pull_ahead else "installed"
        print(f"[{spkg.tag}] {done} in {time.time() - started:.1f}s", flush=True)
    return 0
