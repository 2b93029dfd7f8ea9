"""configure.py's command line: its help, its messages, the summary of what it decided.

The decisions and the files written are :func:`sage_build.configure.configure.configure`'s.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, TextIO

from sage_build.base.errors import SageBuildError
from sage_build.configure.configure import Result, configure, parse_options
from sage_build.face import settings
from sage_build.recipes import distros
from sage_build.recipes.graph import PYTHON_PSEUDO
from sage_build.recipes.recipe import Kind

HELP = """\
`configure.py' configures sage-build: it reads the package recipes in
build/pkgs and the system, and writes build/make/config.json and
build/make/Makefile.

Usage: ./configure.py [OPTION]...

Defaults for the options are specified in brackets.

Configuration:
  -h, --help              display this help and exit
  -q, --quiet             do not print the package table
  -v, --verbose           name the packages of the system detection table

Installation directories:
  --prefix=DIR            install everything into DIR, a virtual environment
                          of the target Python [./local]
  --upstream-dir=DIR      where downloaded tarballs are kept [./upstream]

Target Python:
  --with-python=PATH      the Python interpreter (>= 3.10) the prefix's virtual
                          environment is made from [the python3 running configure]

Optional packages:
  --enable-PKG[=ARG]      ARG is yes (build and install PKG), no (do not), or
                          if_installed (keep PKG if it is installed, the default
                          for optional and experimental packages) [yes]
  --disable-PKG           same as --enable-PKG=no; a next `make build`
                          uninstalls PKG if it is installed

System packages:
  --with-system-PKG[=ARG] ARG is yes (use the system's PKG when configure finds
                          a suitable one, else build it), no (always build it,
                          the default), or force (fail unless the system has it)
  --without-system-PKG    same as --with-system-PKG=no

  --enable-system-site-packages
                          let spkg-configure.m4's SAGE_PYTHON_PACKAGE_CHECK take
                          Python packages from the site-packages of the
                          --with-python interpreter when they meet the recipe's
                          version_requirements.txt (checked in a throw-away
                          venv; your user site does not count); the prefix's
                          venv then sees that site-packages [no]

Downloads:
  --mirror=URL            a mirror to try before the package index and upstream
                          URLs; repeat for several, tried in order

Binary cache (README, "Binary cache"; the environment's SAGE_BINARY_CACHE and
SAGE_BINARY_CACHE_TRUSTED_KEYS, when set, replace these):
  --with-binary-cache=URL a binary cache `make build` pulls from before it builds
                          (file:///dir, https://host/path, s3://bucket/prefix);
                          repeat for several, the first hit wins
  --with-binary-cache-trusted-key=NAME:BASE64
                          a public key whose signatures the pulls accept; repeat

PKG is a directory name under build/pkgs (e.g. six, libyaml); '-' and '_' are
interchangeable.  `make reconfigure' repeats the last call.
"""


def print_summary(result: Result, out: TextIO, environ: Mapping[str, str] = os.environ) -> None:
    """The package table, the prefix, the counts, the system packages that could replace builds."""
    packages, decisions = result.graph.packages, result.decisions
    rows = [("package", "kind", "version", "status")]
    for name in sorted(packages):
        pkg = packages[name]
        rows.append((name, pkg.kind.value, pkg.version or "-", decisions[name].reason))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3], file=out)
    built = [packages[n] for n, p in decisions.items() if p.enabled and not p.from_system]
    system = distros.guess_package_system(environ)
    print(f"\nprefix: {Path(result.config.prefix)} (a virtual environment of Python {result.config.python_version})",
          file=out)
    enabled_count = sum(p.enabled for p in decisions.values())
    wheels = sum(pkg.kind is Kind.WHEEL for pkg in built)
    # make's count (and the progress display's) has one more: the prefix's virtual environment
    print(f"{enabled_count} packages enabled (make builds {len(built) + 1}: these and the virtual environment"
          f" {PYTHON_PSEUDO}): {len(built) - wheels} to build from source, {wheels} wheels to install,"
          f" {sum(p.from_system for p in decisions.values())} from the system", file=out)
    names = distros.system_package_names([packages[n] for n in result.could_use_system], system)
    if names and system in distros.INSTALL_COMMANDS:
        print(f"\nTo use the system's packages instead of building them ({system}), install:\n  "
              + distros.install_command(system, names, sudo=os.geteuid() != 0)
              + "\nthen re-run configure with --with-system-PKG=yes for those packages.", file=out)
    print_system_table(result, out)
    print_system_hint(result, system, out)
    for warning in result.graph.warnings:
        print(f"configure: warning: {warning}", file=out)


def print_system_table(result: Result, out: TextIO, verbose: bool = False) -> None:
    """spkg-configure.m4's outcome: from the system / built from source / not understood."""
    if not result.system:
        return
    groups: dict[str, list[str]] = {"from the system": [], "built from source": [], "not understood": []}
    for name, status in sorted(result.system.items()):
        key = {"system": "from the system", "not understood": "not understood"}.get(status.status, "built from source")
        if key == "from the system" and not result.decisions[name].from_system:
            key = "built from source"   # a dependency is built from source
        groups[key].append(name)
    print("\nspkg-configure.m4 (system detection):", file=out)
    for key, names in groups.items():
        print(f"  {key:18} {len(names):4}" + (f"  {' '.join(names)}" if verbose and names else ""), file=out)


def print_system_hint(result: Result, system: str, out: TextIO) -> None:
    """Sage's last words (SAGE_SYSTEM_PACKAGE_NOTICE): the spkg-configure.m4 packages that found
    no system package, and the command that installs them on this system (their distros/*.txt)."""
    need, optional = result.need_system, result.need_system_optional
    if not need and not optional:
        return
    print("\nnotice: the following SPKGs did not find equivalent system packages:\n  "
          + " ".join(need + optional), file=out)
    too_old = [(n, result.system[n].refused) for n in need + optional if n in result.system and result.system[n].refused]
    if too_old:
        # installing these changes nothing: the system's version is the problem, not its absence
        print("note: of these, the system already has some in a version the tree's check refuses"
              " (installing them does not help; a newer release of the distribution may have them):\n"
              + "\n".join(f"  {name}: installed, but {'; '.join(why)}" for name, why in too_old), file=out)
    if system not in distros.INSTALL_COMMANDS:
        print(f"(the package system of this machine is {system}: no install command is known for it)", file=out)
        return
    hinted = False
    for names, why in ((need, "is recommended and may avoid having to build them (though some may have to be"
                              " built anyway)"),
                       (optional, "may provide additional optional features")):
        system_names = distros.system_package_names([result.graph.packages[n] for n in names], system)
        if system_names:
            hinted = True
            print(f"\nhint: installing the following system packages ({system}), if not already present, {why}:\n  "
                  + distros.install_command(system, system_names, sudo=os.geteuid() != 0), file=out)
    if hinted:
        print("\nhint: after installation, re-run configure using:\n  make reconfigure", file=out)
    else:
        print(f"No equivalent system packages for {system} are known to these recipes", file=out)


def main(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verbose = any(a in ("-v", "--verbose") for a in argv)
    argv = [a for a in argv if a not in ("-v", "--verbose")]
    try:
        options = parse_options(argv)
        if options.help:
            print(HELP, end="")
            return 0
        result = configure(argv, settings.sage_root(environ))
        if not options.quiet:
            print_summary(result, sys.stdout, environ)
            if verbose:
                print_system_table(result, sys.stdout, verbose=True)
        for warning in result.warnings:
            print(f"configure: warning: {warning}", file=sys.stderr)
    except SageBuildError as error:
        print(f"configure: error: {error}", file=sys.stderr)
        print("configure: nothing was written", file=sys.stderr)
        return 1
    if not options.quiet:
        # Run by `make build` (the first time, from the top-level Makefile), make goes on by itself.
        next_step = "make goes on with the build" if environ.get("MAKELEVEL") else "now run `make build`"
        print(f"configure: wrote build/make/config.json and build/make/Makefile; {next_step}")
    return 0
