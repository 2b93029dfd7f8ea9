"""System package names (``distros/<system>.txt``) and the commands that install them."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Iterable, Mapping

from sage_build.recipes.recipe import Package

#: How each system installs packages: (command, sudo needed).
INSTALL_COMMANDS: dict[str, tuple[str, bool]] = {
    "debian": ("apt-get install", True),
    "fedora": ("dnf install", True),
    "arch": ("pacman -S --needed", True),
    "gentoo": ("emerge --noreplace", True),
    "opensuse": ("zypper install", True),
    "homebrew": ("brew install", False),
    "conda": ("conda install", False),
    "nix": ("nix-env --install --attr", False),
    "void": ("xbps-install", True),
    "macports": ("port install", True),
    "freebsd": ("pkg install", True),
    "cygwin": ("apt-cyg install", False),
    "slackware": ("slackpkg install", True),
    "alpine": ("apk add", True),
    "mingw": ("pacman -S --needed", False),   # MSYS2's pacman, no sudo there
    "openbsd": ("pkg_add", True),
    "cpan": ("cpan -i", False),               # Perl modules
}

#: Systems of ``distros/*.txt`` that name packages but have no install command; what they are.
NAMES_ONLY: dict[str, str] = {
    "repology": "repology names cross-distribution projects (repology.org), to find each system's"
                " own package; there is nothing to install by these names",
    "pyodide": "pyodide names packages that Pyodide loads in the browser (micropip, loadPackage);"
               " there is no system command",
}

_OS_RELEASE_IDS = {
    "debian": "debian", "ubuntu": "debian", "linuxmint": "debian", "raspbian": "debian",
    "fedora": "fedora", "rhel": "fedora", "centos": "fedora", "rocky": "fedora", "almalinux": "fedora",
    "arch": "arch", "manjaro": "arch", "gentoo": "gentoo", "opensuse": "opensuse",
    "opensuse-leap": "opensuse", "opensuse-tumbleweed": "opensuse", "suse": "opensuse",
    "void": "void", "alpine": "alpine", "slackware": "slackware", "nixos": "nix",
}


def guess_package_system(environ: Mapping[str, str], os_release: Path = Path("/etc/os-release")) -> str:
    """The package system of this machine, in the names of ``distros/*.txt``; 'unknown' if none.
    ``environ``: the process's environment (a conda environment is active: 'conda')."""
    if environ.get("CONDA_PREFIX"):
        return "conda"
    try:
        fields = dict(
            line.split("=", 1) for line in os_release.read_text().splitlines() if "=" in line
        )
    except OSError:
        fields = {}
    ids = [fields.get("ID", "").strip('"')] + fields.get("ID_LIKE", "").strip('"').split()
    for candidate in ids:
        if candidate in _OS_RELEASE_IDS:
            return _OS_RELEASE_IDS[candidate]
    for program, system in (("brew", "homebrew"), ("port", "macports"), ("pkg", "freebsd")):
        if shutil.which(program):
            return system
    return "unknown"


def system_package_names(packages: Iterable[Package], system: str) -> list[str]:
    """The system package names that provide ``packages``, in order, without repeats."""
    names: dict[str, None] = {}
    for pkg in packages:
        for name in pkg.distros.get(system, ()):
            names.setdefault(name, None)
    return list(names)


#: How each system refreshes its package lists (Sage's ``update`` command); the others have none.
UPDATE_COMMANDS: dict[str, str] = {
    "debian": "apt-get update", "arch": "pacman -Sy", "opensuse": "zypper refresh",
    "homebrew": "brew update", "alpine": "apk update", "void": "xbps-install -S",
    "freebsd": "pkg update", "macports": "port selfupdate", "mingw": "pacman -Sy",
}


def install_command(system: str, names: list[str], *, sudo: bool = False, yes: bool = False,
                    no_install_recommends: bool = False) -> str:
    """The shell command that installs ``names`` on ``system`` (names shell-quoted)."""
    if system not in INSTALL_COMMANDS:
        raise KeyError(system)
    command, needs_root = INSTALL_COMMANDS[system]
    if yes and system in ("debian", "fedora", "opensuse", "void"):
        command += " -y"
    if no_install_recommends and system == "debian":
        command += " --no-install-recommends"
    prefix = "sudo " if sudo and needs_root else ""
    return f"{prefix}{command} {' '.join(shlex.quote(name) for name in names)}"


def update_command(system: str, *, sudo: bool = False) -> str | None:
    """The shell command that refreshes ``system``'s package lists; None where there is none."""
    if system not in UPDATE_COMMANDS:
        return None
    needs_root = INSTALL_COMMANDS.get(system, ("", False))[1]
    return ("sudo " if sudo and needs_root else "") + UPDATE_COMMANDS[system]
