"""The tool's own wheels: the pin file with hashes and the copy ``make download`` keeps.

``build/tool-requirements.txt`` pins every package of the tool environment (pyproject.toml's
dependencies, its test extra and its build backend) with the sha256 of each wheel allowed;
:mod:`sage_build.bootstrap` installs exactly those, from ``upstream/tool-wheels/`` when they
are stored there. Standard library only: this runs with whatever Python ``make`` finds.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
from pathlib import Path

from sage_build.base.atomic import write_atomic
from sage_build.base.errors import FetchError, SageBuildError

_HEADER = """\
# The tool's own dependencies (pyproject.toml's, its test extra's, its build backend's),
# pinned by hash: src/sage_build/bootstrap.py installs exactly these, from
# upstream/tool-wheels/ when `make download` stored them there.
# Refresh after editing pyproject.toml: build/bin/sage-tool-wheels lock
# (run it on each platform or Python the lock should serve: it adds their wheels' hashes).
"""
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def download(python: Path, lock: Path, dest: Path) -> None:
    """Store the wheels ``lock`` pins in ``dest``, each checked against its pinned hash
    (a stored file with other bytes is downloaded again)."""
    command = [str(python), "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--require-hashes", "--only-binary", ":all:", "--no-deps", "-r", str(lock), "-d", str(dest)]
    if subprocess.run(command).returncode != 0:
        raise FetchError(f"could not download the tool's wheels pinned in {lock} into {dest}"
                         " (pip said why above)")


def read_pins(text: str) -> dict[tuple[str, str], set[str]]:
    """``(name, version) -> sha256 digests`` of a pin file (continuation lines joined)."""
    pins: dict[tuple[str, str], set[str]] = {}
    for line in text.replace("\\\n", " ").splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins.setdefault((match.group(1), match.group(2)), set()).update(_HASH.findall(line))
    return pins


def render_pins(pins: dict[tuple[str, str], set[str]]) -> str:
    lines = [_HEADER]
    for (name, version), digests in sorted(pins.items()):
        hashes = " \\\n".join(f"    --hash=sha256:{digest}" for digest in sorted(digests))
        lines.append(f"{name}=={version} \\\n{hashes}\n")
    return "".join(lines)


def _wanted(pyproject: Path) -> list[str]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise SageBuildError("refreshing the pins needs Python 3.11 or later (tomllib)") from None
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    extras = project.get("optional-dependencies", {})
    return [*data["build-system"]["requires"], *project["dependencies"], *extras.get("test", []),
            *extras.get("speed", [])]


def refresh_lock(pyproject: Path, lock: Path) -> dict[tuple[str, str], set[str]]:
    """Resolve pyproject.toml's requirements with pip (its configured index) for the running
    Python and write their pins to ``lock``; hashes already pinned for the same versions are
    kept, so that refreshing on another platform adds its wheels."""
    import venv

    with tempfile.TemporaryDirectory() as tmp:
        # a fresh environment's pip: the tool environment may be the thing that is out of date
        venv.EnvBuilder(with_pip=True).create(Path(tmp, "venv"))
        command = [str(Path(tmp, "venv", "bin", "python")), "-m", "pip", "download", "--quiet",
                   "--disable-pip-version-check", "--only-binary", ":all:", "-d", tmp, *_wanted(pyproject)]
        if subprocess.run(command).returncode != 0:
            raise FetchError(f"pip could not resolve the tool's requirements of {pyproject} (see above)")
        resolved: dict[tuple[str, str], set[str]] = {}
        for wheel in sorted(Path(tmp).glob("*.whl")):
            # a wheel's file name starts name-version, the name already normalised with '_'
            name, version = wheel.name.split("-")[:2]
            key = (name.lower().replace("_", "-"), version)
            resolved.setdefault(key, set()).add(hashlib.sha256(wheel.read_bytes()).hexdigest())
    old = read_pins(lock.read_text()) if lock.exists() else {}
    for key, digests in resolved.items():
        digests |= old.get(key, set())
    write_atomic(lock, render_pins(resolved).encode())
    return resolved
