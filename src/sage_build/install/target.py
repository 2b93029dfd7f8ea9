"""The target Python: the interpreter of the prefix, described once by asking it.

Nothing in sage-build asks the tool's own interpreter about the target: tags,
markers, sysconfig paths and installed distributions all come from here.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import packaging

from sage_build.base.atomic import write_atomic
from sage_build.base.errors import ConfigureError
from sage_build.base.commands import inherited_environment, output_of
from sage_build.base.layout import source_root

# Run by the target interpreter. It borrows the tool's `packaging` (pure Python)
# only to compute tags and markers the way installers do, and our bytecode module.
_QUERY = r"""
import json, sys, sysconfig, platform
sys.path[:0] = sys.argv[1:3]
from packaging.tags import sys_tags
from packaging.markers import default_environment
from sage_build.install.bytecode import fingerprint
print(json.dumps({
    "executable": sys.executable,
    "version": platform.python_version(),
    "version_info": list(sys.version_info[:3]),
    "implementation": sys.implementation.name,
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "paths": sysconfig.get_paths(),
    "tags": [str(t) for t in sys_tags()],
    "markers": default_environment(),
    "bytecode": fingerprint(),
}))
"""


# A wheel file name that PEP 427 and packaging take without a doubt: a name without "__", a plain
# release version (N.N...[aN|bN|rcN][.postN][.devN]), an optional build tag, three tag sets.
_SIMPLE_WHEEL_NAME = re.compile(
    r"(?!.*__)[A-Za-z0-9_.]+-\d+(?:\.\d+)*(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?"
    r"(?:-\d[A-Za-z0-9_.]*)?" + r"-(\w+(?:\.\w+)*)" * 3 + r"\.whl", re.ASCII)
_NAME_SEPARATORS = re.compile(r"[-_.]+")  # PEP 503: a run of them is one '-'
_SYSTEM_SITE_PACKAGES_LINE = re.compile(r"^(\s*include-system-site-packages\s*=\s*)(\S*)[ \t]*$", re.MULTILINE)


class TargetPython(NamedTuple):
    executable: str
    version: str
    version_info: list[int]
    implementation: str
    prefix: str
    base_prefix: str
    paths: dict[str, str]
    tags: list[str]
    markers: dict[str, str]
    bytecode: str = ""  # what determines its byte-code (bytecode.fingerprint); "" if not known

    @property
    def short_version(self) -> str:
        return f"{self.version_info[0]}.{self.version_info[1]}"

    @property
    def site_packages(self) -> Path:
        return Path(self.paths["purelib"])

    def supports_wheel(self, filename: str) -> bool:
        """Whether a wheel file name's tags fit this interpreter."""
        simple = _SIMPLE_WHEEL_NAME.fullmatch(filename)
        if simple:
            # packaging's parser (what answers otherwise) costs its tags, logging, platform and
            # version modules: a sixth of a wheel-kind package's sage-spkg (issue #19).  A name
            # this pattern takes, packaging takes too, with these tags.
            supported = set(self.tags)
            python, abi, platform = (simple[i].lower().split(".") for i in (1, 2, 3))
            return any(f"{p}-{a}-{t}" in supported for p in python for a in abi for t in platform)
        from packaging.utils import InvalidWheelFilename, parse_wheel_filename
        from packaging.version import InvalidVersion

        from sage_build.base.errors import BuildError

        try:
            _, _, _, tags = parse_wheel_filename(filename)
        except (InvalidWheelFilename, InvalidVersion) as error:
            raise BuildError(f"{filename} is not a valid wheel file name: {error}") from None
        supported = set(self.tags)
        return any(str(tag) in supported for tag in tags)

    def save(self, path: Path) -> None:
        write_atomic(path, (json.dumps(self._asdict(), indent=1) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> "TargetPython":
        return cls(**json.loads(path.read_text()))

    def compiles_like_us(self) -> bool:
        """Whether its byte-code is the very byte-code this interpreter writes (same build)."""
        from sage_build.install.bytecode import fingerprint

        return bool(self.bytecode) and self.bytecode == fingerprint()


def canonical_name(name: str) -> str:
    """PEP 503's normal form of a distribution name (packaging.utils.canonicalize_name's rule,
    without importing packaging's module on a wheel-kind package's path: see #19)."""
    return _NAME_SEPARATORS.sub("-", name).lower()


def dist_infos(site_dirs: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[Path, str, str]]:
    """(site directory, name as written, version) of every ``NAME-VERSION.dist-info`` directory
    in ``site_dirs``, each site directory once; one that does not exist (yet) has none.

    Every build asks this with every installed distribution beside it, so it reads names and
    makes paths of the site directories only."""
    for site in dict.fromkeys(site_dirs):
        try:
            with os.scandir(site) as entries:
                names = sorted(entry.name for entry in entries if entry.name.endswith(".dist-info"))
        except OSError:
            continue
        directory = Path(site)
        for entry in names:
            name, dash, version = entry[: -len(".dist-info")].rpartition("-")
            if dash:
                yield directory, name, version


def query_python(executable: str | os.PathLike[str]) -> TargetPython:
    """Describe an interpreter by running it once."""
    packaging_parent = str(Path(packaging.__file__).resolve().parent.parent)
    output = output_of(
        [str(executable), "-c", _QUERY, packaging_parent, str(source_root())], timeout=60,
        env=inherited_environment(PYTHONNOUSERSITE="1"),
        error=lambda why: ConfigureError(f"cannot run the Python interpreter {executable} ({why});"
                                         " pass --with-python=PATH to a Python >= 3.10"))
    info = TargetPython(**json.loads(output))
    if tuple(info.version_info[:2]) < (3, 10):
        raise ConfigureError(f"{executable} is Python {info.version}; sage-build needs Python >= 3.10")
    return info


def set_system_site_packages(venv: Path, on: bool) -> bool:
    """Make the venv see its base Python's site-packages or not, as ``venv
    --system-site-packages`` would have made it (its pyvenv.cfg; Python reads it at each start).
    configure's --enable-system-site-packages may change after the venv was made; the packages
    it takes from the system must be visible there. Returns whether the file changed."""
    config = venv / "pyvenv.cfg"
    try:
        text = config.read_text()
    except FileNotFoundError:
        return False
    value = "true" if on else "false"
    line = _SYSTEM_SITE_PACKAGES_LINE
    new = line.sub(lambda m: m.group(1) + value, text) if line.search(text) else \
        text + ("" if text.endswith("\n") or not text else "\n") + f"include-system-site-packages = {value}\n"
    if new == text:
        return False
    write_atomic(config, new.encode())
    return True
