"""Detecting packages the system already provides (configure's --with-system-PKG).

Python packages (:func:`detect_python`): a distribution that a venv made from the target
interpreter with its system site packages sees, in the range of the recipe's
version_requirements.txt (install-requires.txt), as Sage's SAGE_PYTHON_PACKAGE_CHECK decides.
Other packages: the declarative checks of the
recipe's ``spkg-configure.yaml``::

    executable: cmake >= 3.20     # a program on PATH, its `--version` output (through configure.probes, cached)
    pkgconfig: yaml-0.1 >= 0.2.5  # a pkg-config module (asked through configure.probes, cached)
    header: yaml.h                # found in the compiler's include directories
    library: yaml                 # libyaml.so / libyaml.a in the library directories

Each key takes one value or a list; every check must pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from sage_build.base.errors import RecipeError
from sage_build.configure.probes import Probes
from sage_build.recipes.recipe import Package
from sage_build.recipes.spkg_configure_m4 import PC_MODULE

CHECK_FILE = "spkg-configure.yaml"
_CHECK_KEYS = ("executable", "pkgconfig", "header", "library")
_SPEC = re.compile(r"^\s*([^\s<>=!~]+)\s*(?:(>=|<=|==|!=|>|<)\s*(\S+))?\s*$")


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


def _check_executable(spec: str, path: Path, probes: Probes) -> Detection:
    """Asked through ``probes`` as spkg-configure.m4's program checks: configure's PATH, the
    answers cached in config.cache."""
    name, op, wanted = _parse_spec(spec, path)
    program = probes.program(name)
    if program is None:
        return Detection(False, f"no program '{name}' on PATH")
    if op is None:
        return Detection(True, program)
    found = probes.version(program)
    if not found:
        return Detection(False, f"{program} --version failed or printed no version")
    if _compare(found, op, wanted):
        return Detection(True, f"{name} {found}")
    return Detection(False, f"{name} {found} is too old (need {op} {wanted})")


def _check_pkgconfig(spec: str, path: Path, probes: Probes) -> Detection:
    """Asked through ``probes`` as spkg-configure.m4's PKG_CHECK_MODULES: the pkg-config of
    configure's environment (PATH, PKG_CONFIG_PATH), the answer cached in config.cache."""
    module, op, wanted = _parse_spec(spec, path)
    if not PC_MODULE.fullmatch(module):   # an option (-foo) would be read by pkg-config as one
        raise RecipeError(f"{path}: {module!r} is not a pkg-config module name")
    if probes.pkg_config_program() is None:
        return Detection(False, "pkg-config is not installed")
    found = probes.pkgconfig(module)
    if found is None:
        return Detection(False, f"pkg-config module '{module}' not found")
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


def _check_header(name: str, path: Path, probes: Probes) -> Detection:
    for directory in _include_dirs():
        if (directory / name).is_file():
            return Detection(True, str(directory / name))
    return Detection(False, f"header {name} not found")


def _check_library(name: str, path: Path, probes: Probes) -> Detection:
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


def detect_declared(pkg: Package, probes: Probes) -> Detection:
    """Run the checks of the recipe's spkg-configure.yaml (``pkgconfig`` through ``probes``)."""
    path = pkg.path / CHECK_FILE
    checks = load_checks(pkg)
    if not checks:
        return Detection(False, f"{path} declares no check")
    found = []
    for key, specs in checks.items():
        for spec in specs:
            result = _CHECKERS[key](spec, path, probes)
            if not result.found:
                return result
            found.append(result.reason)
    return Detection(True, "; ".join(found))


# Run by the throw-away venv's interpreter (standard library only, as SAGE_PYTHON_PACKAGE_CHECK's
# snippet): the directories it sees (with their mtimes, taken first: a package installed or
# removed there changes its directory), and each distribution's version and top-level modules.
_SITE_QUERY = r"""
import json, os, sys
from importlib import metadata, util
names, venv = json.loads(sys.argv[1]), os.path.realpath(sys.argv[2])
dirs = {}
for entry in sys.path:
    real = os.path.realpath(entry) if entry else ""
    if real and os.path.isdir(real) and not (real + os.sep).startswith(venv + os.sep):
        dirs[real] = os.stat(real).st_mtime_ns
found = {}
for name in names:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        found[name] = None
        continue
    # top-level names only: finding a dotted name would import (run) its parent package
    top = list(dict.fromkeys(t.split(".")[0] for t in (dist.read_text("top_level.txt") or "").split()))
    if not top:
        for path in dist.files or ():
            first = path.parts[0] if path.parts else ""
            if first.endswith((".dist-info", ".egg-info", ".data", ".pth")) or first in ("..", "__pycache__"):
                continue
            module = first.split(".")[0]
            if module.isidentifier() and module not in top:
                top.append(module)
    modules = {}
    for module in top:
        try:
            modules[module] = util.find_spec(module) is not None
        except Exception:
            modules[module] = False
    found[name] = {"version": dist.version, "modules": modules}
print(json.dumps({"dirs": dirs, "found": found}))
"""

# The environment variables that would let the check see what the prefix's venv does not:
# sage-spkg drops them from every build too (pipeline.build).
_PYTHON_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH", "PYTHONUSERBASE")


def _scan_site(python: str, names: list[str], environ: Mapping[str, str]) -> dict:
    """What a venv made from ``python`` with its system site packages sees, as Sage's
    SAGE_PYTHON_PACKAGE_CHECK runs it: a throw-away venv, the user's site (``pip install --user``,
    PYTHONUSERBASE) made harmless."""
    with tempfile.TemporaryDirectory(prefix="sage-build-site-check-") as tmp:
        venv = Path(tmp) / "config.venv"
        env = {k: v for k, v in environ.items() if k not in _PYTHON_VARIABLES}
        # Sage poisons PYTHONUSERBASE (sage-env does the same at run time); -I and
        # PYTHONNOUSERSITE keep the user's site out as well, as sage-spkg's builds do.
        env.update(PYTHONUSERBASE=str(Path(tmp) / "no-user-base"), PYTHONNOUSERSITE="1")
        try:
            made = subprocess.run([python, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
                                  capture_output=True, text=True, timeout=300, env=env, cwd=tmp)
        except (OSError, subprocess.TimeoutExpired) as error:
            return {"error": f"cannot make a venv with {python}: {error}"}
        if made.returncode != 0:
            return {"error": f"cannot make a venv with {python}: {made.stderr.strip()[-300:]}"}
        try:
            ran = subprocess.run([str(venv / "bin" / "python3"), "-I", "-c", _SITE_QUERY, json.dumps(names), str(venv)],
                                 capture_output=True, text=True, timeout=300, env=env, cwd=tmp)
        except (OSError, subprocess.TimeoutExpired) as error:
            return {"error": f"the venv of {python} does not run: {error}"}
        if ran.returncode != 0:
            return {"error": f"cannot list the distributions {python} provides: {ran.stderr.strip()[-300:]}"}
        return json.loads(ran.stdout)


def _still_fresh(answer: object) -> bool:
    """A cached scan holds while no directory it saw has changed (a failure is asked again)."""
    if not isinstance(answer, dict) or "dirs" not in answer:
        return False
    try:
        return all(os.stat(d).st_mtime_ns == mtime for d, mtime in answer["dirs"].items())
    except OSError:
        return False


def _requirements_file(pkg: Package) -> Path:
    for name in ("install-requires.txt", "version_requirements.txt"):   # the order recipes.recipe reads them
        if (pkg.path / name).is_file():
            return pkg.path / name
    return pkg.path / "version_requirements.txt"


def detect_python(packages: Iterable[Package], python: str, probes: Probes,
                  markers: Mapping[str, str] | None = None) -> dict[str, Detection]:
    """Which Python packages the system provides to a venv made from ``python`` with its system
    site packages (``--enable-system-site-packages``), as Sage's SAGE_PYTHON_PACKAGE_CHECK
    decides: every line of the recipe's version_requirements.txt (install-requires.txt) whose
    marker holds for ``markers`` (the target's) is installed in a version of its range, and
    its modules can be found. Asked once in a throw-away venv; cached in ``probes``."""
    wanted: dict[str, list[Requirement]] = {}
    detections: dict[str, Detection] = {}
    for pkg in packages:
        requirements = []
        for line in pkg.install_requires:
            try:
                requirements.append(Requirement(line))
            except InvalidRequirement as error:
                why = str(error).splitlines()[0] if str(error) else "invalid"   # packaging adds a caret line
                detections[pkg.name] = Detection(False, f"{_requirements_file(pkg)}: {line!r} is not a PEP 508"
                                                        f" requirement ({why}); fix the line")
                break
        else:
            if requirements:
                wanted[pkg.name] = requirements
            else:
                detections[pkg.name] = Detection(False, f"{pkg.path} has no version_requirements.txt to check against")
    if not wanted:
        return detections
    names = sorted({canonicalize_name(r.name) for reqs in wanted.values() for r in reqs})
    try:
        real = os.path.realpath(python)
        info = os.stat(real)
    except OSError as error:
        return {**detections, **{n: Detection(False, f"{python}: {error.strerror}") for n in wanted}}
    digest = hashlib.sha256(json.dumps(names).encode()).hexdigest()[:16]
    scan = probes.ask_checked(f"python site-packages {real} {info.st_mtime_ns} {info.st_size} {digest}",
                              lambda: _scan_site(python, names, probes.environ), _still_fresh)
    assert isinstance(scan, dict)
    if "error" in scan:
        return {**detections, **{n: Detection(False, scan["error"]) for n in wanted}}
    for pkg_name, requirements in wanted.items():
        detections[pkg_name] = _judge(requirements, scan["found"], python, markers)
    return detections


def _judge(requirements: list[Requirement], found: Mapping[str, dict | None], python: str,
           markers: Mapping[str, str] | None) -> Detection:
    seen = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate(dict(markers) if markers else None):
            continue
        dist = found.get(canonicalize_name(req.name))
        if dist is None:
            return Detection(False, f"{req.name} is not installed among the system site packages of {python}")
        version = dist["version"]
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            return Detection(False, f"{req.name} {version} does not satisfy {req}")
        modules = dist["modules"]
        if modules and not any(modules.values()):
            return Detection(False, f"{req.name} {version} is installed but its module"
                                    f" {', '.join(sorted(modules))} cannot be imported")
        seen.append(f"{req.name} {version}")
    return Detection(True, ", ".join(seen) or "no requirement applies to this Python")
