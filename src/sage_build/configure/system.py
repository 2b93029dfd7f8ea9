"""Detecting packages the system already provides (configure's --with-system-PKG).

Python packages: a distribution in the target interpreter that satisfies the
recipe's install-requires.txt.  Other packages: the declarative checks of the
recipe's ``spkg-configure.yaml``::

    executable: cmake >= 3.20     # a program on PATH, its `--version` output
    pkgconfig: yaml-0.1 >= 0.2.5  # a pkg-config module
    header: yaml.h                # found in the compiler's include directories
    library: yaml                 # libyaml.so / libyaml.a in the library directories

Each key takes one value or a list; every check must pass.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from sage_build.base.errors import RecipeError
from sage_build.recipes.recipe import Package

CHECK_FILE = "spkg-configure.yaml"
_CHECK_KEYS = ("executable", "pkgconfig", "header", "library")
_SPEC = re.compile(r"^\s*([^\s<>=!~]+)\s*(?:(>=|<=|==|!=|>|<)\s*(\S+))?\s*$")
_VERSION_IN_OUTPUT = re.compile(r"(\d+(?:\.\d+)+)")


@dataclass(frozen=True)
class Detection:
    found: bool
    reason: str   # what was found, or why not


def has_system_check(pkg: Package) -> bool:
    return bool(pkg.install_requires) or (pkg.path / CHECK_FILE).is_file()


def load_checks(pkg: Package) -> dict[str, list[str]]:
    import yaml

    path = pkg.path / CHECK_FILE
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping with keys {', '.join(_CHECK_KEYS)}")
    checks: dict[str, list[str]] = {}
    for key, value in data.items():
        if key not in _CHECK_KEYS:
            raise RecipeError(f"{path}: unknown key {key!r}; expected {', '.join(_CHECK_KEYS)}")
        values = value if isinstance(value, list) else [value]
        checks[key] = [str(v) for v in values]
    return checks


def _compare(found: str, op: str | None, wanted: str | None) -> bool:
    if op is None or wanted is None:
        return True
    try:
        a, b = Version(found), Version(wanted)
    except InvalidVersion:
        return False
    return {">=": a >= b, "<=": a <= b, "==": a == b, "!=": a != b, ">": a > b, "<": a < b}[op]


def _parse_spec(text: str, path: Path) -> tuple[str, str | None, str | None]:
    match = _SPEC.match(text)
    if not match:
        raise RecipeError(f"{path}: cannot read {text!r}; write 'name' or 'name >= version'")
    return match.group(1), match.group(2), match.group(3)


def _check_executable(spec: str, path: Path) -> Detection:
    name, op, wanted = _parse_spec(spec, path)
    program = shutil.which(name)
    if program is None:
        return Detection(False, f"no program '{name}' on PATH")
    if op is None:
        return Detection(True, program)
    try:
        output = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Detection(False, f"{program} --version failed: {error}")
    match = _VERSION_IN_OUTPUT.search(output.stdout + output.stderr)
    if not match:
        return Detection(False, f"{program} --version printed no version")
    found = match.group(1)
    if _compare(found, op, wanted):
        return Detection(True, f"{name} {found}")
    return Detection(False, f"{name} {found} is too old (need {op} {wanted})")


def _check_pkgconfig(spec: str, path: Path) -> Detection:
    module, op, wanted = _parse_spec(spec, path)
    if shutil.which("pkg-config") is None:
        return Detection(False, "pkg-config is not installed")
    result = subprocess.run(["pkg-config", "--modversion", module], capture_output=True, text=True)
    if result.returncode != 0:
        return Detection(False, f"pkg-config module '{module}' not found")
    found = result.stdout.strip()
    if _compare(found, op, wanted):
        return Detection(True, f"{module} {found}")
    return Detection(False, f"{module} {found} is too old (need {op} {wanted})")


def _include_dirs() -> list[Path]:
    dirs = [Path(d) for d in os.environ.get("CPATH", "").split(":") if d]
    dirs += [Path("/usr/local/include"), Path("/usr/include")]
    machine = _multiarch()
    if machine:
        dirs.append(Path("/usr/include") / machine)
    return dirs


def _library_dirs() -> list[Path]:
    dirs = [Path(d) for d in os.environ.get("LIBRARY_PATH", "").split(":") if d]
    machine = _multiarch()
    for base in ("/usr/local/lib", "/usr/lib", "/lib"):
        if machine:
            dirs.append(Path(base) / machine)
        dirs.append(Path(base))
    dirs += [Path("/usr/lib64"), Path("/lib64")]
    return dirs


def _multiarch() -> str | None:
    try:
        result = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def _check_header(name: str, path: Path) -> Detection:
    for directory in _include_dirs():
        if (directory / name).is_file():
            return Detection(True, str(directory / name))
    return Detection(False, f"header {name} not found")


def _check_library(name: str, path: Path) -> Detection:
    for directory in _library_dirs():
        for filename in (f"lib{name}.so", f"lib{name}.a", f"lib{name}.dylib"):
            if (directory / filename).exists():
                return Detection(True, str(directory / filename))
    return Detection(False, f"library lib{name} not found")


_CHECKERS = {
    "executable": _check_executable,
    "pkgconfig": _check_pkgconfig,
    "header": _check_header,
    "library": _check_library,
}


def detect_declared(pkg: Package) -> Detection:
    """Run the checks of the recipe's spkg-configure.yaml."""
    path = pkg.path / CHECK_FILE
    checks = load_checks(pkg)
    if not checks:
        return Detection(False, f"{path} declares no check")
    found = []
    for key, specs in checks.items():
        for spec in specs:
            result = _CHECKERS[key](spec, path)
            if not result.found:
                return result
            found.append(result.reason)
    return Detection(True, "; ".join(found))


_PYTHON_QUERY = r"""
import json, sys
from importlib import metadata
result = {}
for name in json.loads(sys.argv[1]):
    try:
        result[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        result[name] = None
print(json.dumps(result))
"""


def detect_python(packages: Iterable[Package], python: str) -> dict[str, Detection]:
    """Check, in one run of the target interpreter, which Python packages it already has."""
    wanted: dict[str, Requirement] = {}
    for pkg in packages:
        for line in pkg.install_requires:
            try:
                wanted[pkg.name] = Requirement(line)
            except InvalidRequirement as error:
                raise RecipeError(f"{pkg.path}/install-requires.txt: {line!r} is not a PEP 508 requirement ({error})") from None
            break
    if not wanted:
        return {}
    names = sorted({req.name for req in wanted.values()})
    result = subprocess.run(
        [python, "-c", _PYTHON_QUERY, json.dumps(names)], capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        raise RecipeError(f"cannot list the distributions of {python}: {result.stderr.strip()[-500:]}")
    versions = json.loads(result.stdout)
    detections = {}
    for pkg_name, req in wanted.items():
        version = versions.get(req.name)
        if version is None:
            detections[pkg_name] = Detection(False, f"{req.name} is not installed in {python}")
        elif req.specifier and not req.specifier.contains(version, prereleases=True):
            detections[pkg_name] = Detection(False, f"{req.name} {version} does not satisfy {req}")
        else:
            detections[pkg_name] = Detection(True, f"{req.name} {version}")
    return detections
