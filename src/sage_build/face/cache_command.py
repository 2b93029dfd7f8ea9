"""``./sage --cache``: the binary cache's commands (#20): key, push, keygen, gc."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping

from sage_build.base.errors import SageBuildError
from sage_build.configure.config import load_config
from sage_build.face import settings
from sage_build.face.settings import cache_settings
from sage_build.recipes.names import resolve, unknown_package_message
from sage_build.recipes.recipe import load_packages

USAGE = """\
usage: ./sage --cache key PKG... [--explain]   the binary-cache key of packages (--explain: its inputs)
       ./sage --cache push [PKG...]            publish built packages to $SAGE_BINARY_CACHE_PUSH
                                               (default: every installed package built here)
       ./sage --cache index URL                a pip index (PEP 503/691/658) of the cache's wheels,
                                               one per configuration, written into the cache
       ./sage --cache keygen NAME DIR          make a signing key pair DIR/NAME.secret, DIR/NAME.public
       ./sage --cache gc URL --keep KEYS --grace DAYS
                                               delete what no kept entry references (KEYS: a file of
                                               keys, one a line: ./sage --cache key --all > KEYS)
"""


def cache_main(argv: list[str], environ: Mapping[str, str] = os.environ) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "key":
        return key_command(rest, environ)
    if command == "index":
        from sage_build.face.ci_command import cache_index_main

        return cache_index_main(rest)
    if command == "keygen":
        return keygen_command(rest)
    if command == "push":
        return push_command(rest, environ)
    if command == "gc":
        return gc_command(rest)
    raise SageBuildError(f"unknown ./sage --cache command {command!r}\n{USAGE}")


def key_command(argv: list[str], environ: Mapping[str, str]) -> int:
    from sage_build.cache.key import explain, tree_keys

    parser = argparse.ArgumentParser(prog="./sage --cache key")
    parser.add_argument("packages", nargs="*", metavar="PKG")
    parser.add_argument("--explain", action="store_true", help="list the inputs the key is made of")
    parser.add_argument("--all", action="store_true", help="every package built from source")
    args = parser.parse_args(argv)
    if not args.packages and not args.all:
        parser.error("name the packages (or --all)")
    config = load_config(settings.sage_root(environ))
    keys = tree_keys(config, environ)
    packages = load_packages(config.layout().pkgs_dir)
    names = sorted(keys) if args.all else []
    for given in args.packages:
        name = resolve(given, packages) or given
        if name in config.from_system:
            raise SageBuildError(f"{name} is taken from the system (configure decided so): it has no key")
        if name not in keys:
            raise SageBuildError(unknown_package_message(given, packages, "build/pkgs"))
        names.append(name)
    for name in names:
        print(explain(keys[name]) if args.explain else f"{name} {keys[name].key}")
        if args.explain and keys[name].prefix_key:
            print(_relocation(config, environ, packages[name]))
    return 0


def _relocation(config, environ: Mapping[str, str], pkg) -> str:
    """Whether a staged package's installed files relocate, for --explain."""
    from sage_build.cache.entry import relocation_problems

    problems = relocation_problems(settings.layout_of(config, environ=environ), pkg)
    if problems is None:
        return "  relocation: decided when it is pushed (it is not installed here)"
    if not problems:
        return "  relocation: its installed files relocate; its entry goes under the key"
    return ("  relocation: keyed on the prefix, as its installed files cannot all be relocated"
            " (its entry goes under the prefix key):\n" + "\n".join(f"    {problem}" for problem in problems))


def keygen_command(argv: list[str]) -> int:
    from sage_build.base.atomic import write_atomic
    from sage_build.cache.trust import generate_key

    if len(argv) != 2 or argv[0].startswith("-"):
        raise SageBuildError("usage: ./sage --cache keygen NAME DIR")
    name, directory = argv[0], Path(argv[1])
    secret, public = generate_key(name)
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / f"{name}.secret").exists():
        raise SageBuildError(f"{directory / (name + '.secret')} exists already; choose another name or directory")
    write_atomic(directory / f"{name}.secret", (secret + "\n").encode(), mode=0o600)
    write_atomic(directory / f"{name}.public", (public + "\n").encode())
    print(f"secret key: {directory / (name + '.secret')} (SAGE_BINARY_CACHE_SIGNING_KEY of the pushing machine)")
    print(f"public key: {public}\n  (SAGE_BINARY_CACHE_TRUSTED_KEYS of the machines that pull)")
    return 0


def push_command(argv: list[str], environ: Mapping[str, str]) -> int:
    """Publish installed packages under the keys recorded when they were built."""
    from sage_build.base.errors import CacheError
    from sage_build.cache.entry import push_installed

    names = [a for a in argv if not a.startswith("-")]
    if len(names) != len(argv):
        raise SageBuildError(f"./sage --cache push takes package names only, not {next(a for a in argv if a.startswith('-'))!r}")
    config = load_config(settings.sage_root(environ))
    cache = cache_settings(environ, config)
    if not cache.push:
        raise SageBuildError("set SAGE_BINARY_CACHE_PUSH to the cache to push to (file:///dir, s3://bucket/prefix)")
    layout = settings.layout_of(config, environ=environ)
    packages = load_packages(layout.pkgs_dir)
    chosen = []
    for given in names:
        name = resolve(given, packages)
        if name is None:
            raise SageBuildError(unknown_package_message(given, packages, "build/pkgs"))
        chosen.append(name)
    if not names:  # every installed package whose build recorded a key
        chosen = sorted(n for n, pkg in packages.items() if layout.cache_record(n, pkg.stamp_version).is_file()
                        and layout.stamp(n, pkg.stamp_version).is_file())
    failed = 0
    for name in chosen:
        try:
            print(f"{name}: {push_installed(layout, packages[name], cache)}")
        except CacheError as error:
            failed += 1
            print(f"sage: {name}: {error}", file=sys.stderr)
    return 1 if failed else 0


def gc_command(argv: list[str]) -> int:
    from sage_build.cache.gc import collect_garbage, read_roots
    from sage_build.cache.store import open_store

    parser = argparse.ArgumentParser(prog="./sage --cache gc",
                                     description="Delete the entries of a binary cache that no kept key names,"
                                                 " and the artifacts no remaining entry names, once older than"
                                                 " the grace period.")
    parser.add_argument("url")
    parser.add_argument("--keep", action="append", required=True, metavar="KEYS",
                        help="a file of the keys to keep (./sage --cache key --all > KEYS, one per"
                             " configuration); '-' reads them from standard input; may be repeated")
    parser.add_argument("--grace", type=float, required=True, metavar="DAYS",
                        help="delete nothing younger than this (a push running now is younger)")
    parser.add_argument("-n", "--dry-run", action="store_true", help="say what would go, delete nothing")
    args = parser.parse_args(argv)
    if args.grace < 0:
        raise SageBuildError(f"--grace {args.grace}: a number of days, 0 or more")
    keep: set[str] = set()
    for name in args.keep:
        try:
            keep |= read_roots(sys.stdin.read() if name == "-" else Path(name).read_text())
        except OSError as error:
            raise SageBuildError(f"--keep {name}: cannot read it ({error.strerror})") from None
    if not keep:
        raise SageBuildError(f"--keep {' '.join(args.keep)}: no key in it; refusing to delete every entry"
                             " (write the keys with ./sage --cache key --all)")
    store = open_store(args.url)
    result = collect_garbage(store, keep, args.grace, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{store.url}: kept {result.kept} entries; {verb} {len(result.entries)} entries,"
          f" {len(result.artifacts)} artifacts, {len(result.other)} temporaries")
    return 0
