"""The environment, read once: what make, sage-progress and the user tell the commands.

Library code takes parameters and never reads the environment (``tests/test_architecture.py``
checks it); the commands of the face read it here, once, and pass what they found on.
Kept light (standard library and ``base`` only): sage-progress imports it for every build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from sage_build.base.atomic import power_loss_safe_asked, set_power_loss_safe
from sage_build.base.errors import SageBuildError
from sage_build.base.layout import Layout, tool_root

if TYPE_CHECKING:
    from sage_build.configure.config import Config

# The sage-progress -> sage-spkg contract: written by face.progress, read by face.spkg_command.
SESSION = "SAGE_BUILD_SESSION"  # the build session the events of a sage-spkg run belong to
PLAN = "SAGE_BUILD_PLAN"  # a JSON file {package: the plan's reason to build it}
# Set by the generated Makefile's pull-ahead rules (#20): the file that tells make a package was
# pulled from a binary cache ahead of the build order; such a run builds nothing.
PULL_AHEAD = "SAGE_SPKG_PULL_AHEAD"
QUIET = "SAGE_BUILD_QUIET"  # "1": the progress display replaces sage-spkg's own lines;
# "warnings": so do sage-progress's lines (off a terminal, V=0), but warnings are still shown
QUIET_BUT_WARNINGS = "warnings"



def sage_root(environ: Mapping[str, str] = os.environ) -> Path:
    """The distribution tree: $SAGE_ROOT (make exports it), else the tool's own checkout."""
    root = environ.get("SAGE_ROOT")
    return Path(root).resolve() if root else tool_root()


def verbose(environ: Mapping[str, str] = os.environ) -> bool:
    """``V=1`` (make's and Sage's way to ask for everything)."""
    return environ.get("V", "") not in ("", "0")


def forced(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The packages ``./sage -f`` rebuilds although they are installed (SAGE_FORCE, as make sees it)."""
    return environ.get("SAGE_FORCE", "").split()


def echo_to_terminal(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether build output goes to the terminal as well as to the log: with ``V=1``, or when
    standard output is not a terminal."""
    return verbose(environ) or sys.stdout is None or not sys.stdout.isatty()


def collisions(environ: Mapping[str, str] = os.environ) -> str:
    """What an install does with a file another package installed: SAGE_INSTALL_COLLISIONS,
    'error' (the default) or 'warn' (keep the existing file, say so); install_wheel checks it."""
    return environ.get("SAGE_INSTALL_COLLISIONS", "error")


def configure_writes(environ: Mapping[str, str] = os.environ) -> None:
    """SAGE_INSTALL_FSYNC=yes: this process's atomic writes survive a power loss too
    (:func:`sage_build.base.atomic.set_power_loss_safe`). Every command that installs calls it once."""
    set_power_loss_safe(power_loss_safe_asked(environ))


def layout_of(config: Config, destdir: str | os.PathLike[str] | None = None,
              environ: Mapping[str, str] = os.environ) -> Layout:
    """The configuration's layout as this process sees it: staged under ``destdir`` (else
    $DESTDIR), packages built in $SAGE_BUILD_DIR if set (as in Sage)."""
    build_dir = environ.get("SAGE_BUILD_DIR")
    return config.layout(destdir or environ.get("DESTDIR") or None,
                         build_dir=Path(build_dir) if build_dir else None)


def cache_settings(environ: Mapping[str, str], config=None):
    """The binary-cache settings of the environment (SAGE_BINARY_CACHE and its family), else of the
    configuration (configure's --with-binary-cache...); a bad value is an error naming the variable."""
    from sage_build.cache.settings import MODES, CacheSettings

    mode = environ.get("SAGE_BINARY_CACHE_MODE", "") or "auto"
    if mode not in MODES:
        raise SageBuildError(f"SAGE_BINARY_CACHE_MODE={mode!r}: use one of {', '.join(MODES)}")
    trust_value = environ.get("SAGE_BINARY_CACHE_TRUST", "")
    if trust_value not in ("", "signed", "unsigned"):
        raise SageBuildError(f"SAGE_BINARY_CACHE_TRUST={trust_value!r}: use 'unsigned' (take unsigned entries,"
                             " for a cache of your own) or leave it unset")
    signing, signing_key = environ.get("SAGE_BINARY_CACHE_SIGNING_KEY", ""), ""
    if signing:  # the entries' module, for a build that signs what it pushes: a build without loads none
        from sage_build.cache.entry import read_signing_key

        signing_key = read_signing_key(signing)
    return CacheSettings(
        urls=tuple(environ["SAGE_BINARY_CACHE"].split() if "SAGE_BINARY_CACHE" in environ
                   else getattr(config, "binary_cache", []) or []),
        mode=mode,
        push=environ.get("SAGE_BINARY_CACHE_PUSH", "").strip(),
        unsigned=trust_value == "unsigned",
        trusted_keys=tuple(environ["SAGE_BINARY_CACHE_TRUSTED_KEYS"].split()
                           if "SAGE_BINARY_CACHE_TRUSTED_KEYS" in environ
                           else getattr(config, "binary_cache_trusted_keys", []) or []),
        signing_key=signing_key,
    )
