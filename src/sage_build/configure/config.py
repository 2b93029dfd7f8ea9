"""The configuration that configure.py writes and every other tool reads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

from sage_build.base.atomic import write_atomic
from sage_build.base.errors import ConfigureError
from sage_build.base.layout import Layout, TreeLayout

ENABLE_VALUES = ("yes", "no", "if_installed")
SYSTEM_VALUES = ("yes", "no", "force")


class Config(NamedTuple):
    """build/make/config.json as read; its lists and mappings are shared when empty and never changed."""

    sage_root: str
    prefix: str
    python: str                      # the interpreter the prefix's venv is made from
    argv: list[str] = []             # configure's arguments, for `make reconfigure`
    upstream_dir: str | None = None
    mirrors: list[str] = []
    enable: dict[str, str] = {}      # explicit --enable/--disable
    with_system: dict[str, str] = {}
    from_system: list[str] = []      # packages taken from the system
    # spkg-configure.m4's decision per package: [status, why] (system, source, not understood, installed)
    system_detection: dict[str, list[str]] = {}
    system_site_packages: bool = False
    python_version: str = ""
    # the binary caches `make build` pulls from, and the keys it trusts (#20); the environment's
    # SAGE_BINARY_CACHE / SAGE_BINARY_CACHE_TRUSTED_KEYS replace them when set
    binary_cache: list[str] = []
    binary_cache_trusted_keys: list[str] = []

    def layout(self, destdir: str | os.PathLike[str] | None = None, build_dir: Path | None = None) -> Layout:
        """The paths of this configuration; staged under ``destdir`` if given (the face passes
        $DESTDIR: ``face.settings.layout_of``)."""
        return Layout(
            sage_root=Path(self.sage_root),
            prefix=Path(self.prefix),
            destdir=Path(destdir) if destdir else None,
            upstream_dir=Path(self.upstream_dir) if self.upstream_dir else None,
            build_dir=build_dir,
        )

    def write(self, path: Path) -> None:
        write_atomic(path, (json.dumps(self._asdict(), indent=1, sort_keys=True) + "\n").encode())


def config_path(sage_root: Path) -> Path:
    return TreeLayout(sage_root).config_file


def load_config(sage_root: Path) -> Config:
    """The configuration of this tree; a clear error when configure has not run."""
    path = config_path(sage_root)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigureError(f"{path} does not exist: run ./configure.py first (or `make build`, which runs it)") from None
    except (ValueError, OSError) as error:
        raise ConfigureError(f"{path} is unreadable ({error}): run ./configure.py again") from None
    known = set(Config._fields)
    return Config(**{k: v for k, v in data.items() if k in known})
