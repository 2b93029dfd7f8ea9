"""``./sage --cache``: the binary cache's commands (#20): key, push, keygen, gc."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping

from sage_build.base.errors import SageBuildError
from sage_build.configure.config import load_config
from sage_build.face import settings
from sage_build.recipes.names import resolve, unknown_package_message
from sage_build.recipes.recipe import load_packages

USAGE = """\
usage: ./sage --cache key PKG... [--explain]   the binary-cache key of packages (--explain: its inputs)
       ./sage --cache push [PKG...]            publish built packages to $SAGE_BINARY_CACHE_PUSH
                                               (default: every installed package built here)
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
    return 0
