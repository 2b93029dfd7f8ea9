"""The tool's own virtual environment (``.venv``), made on first use.

Standard library only: this runs before the tool's dependencies exist.
Every entry point (configure.py, sage, build/bin/*) calls
:func:`ensure_tool_python` first, so a fresh clone needs no manual step.

Every package installed into it is pinned by hash in ``build/tool-requirements.txt``
(setuptools, the build backend of the editable install, too). When ``make download``
stored those wheels in ``upstream/tool-wheels/``, they are installed from there with no
index, so the environment can be made again offline (after ``make distclean``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

SAGE_ROOT = Path(__file__).resolve().parents[2]
TOOL_ENV = Path(os.environ.get("SAGE_BUILD_TOOL_ENV", SAGE_ROOT / ".venv"))
_STAMP = TOOL_ENV / ".sage-build-deps"
# the tool's dependencies pinned by hash (refreshed by `build/bin/sage-tool-wheels lock`)
LOCK = SAGE_ROOT / "build" / "tool-requirements.txt"
# where `make download` stores those wheels (upstream/ is the download cache distclean keeps)
TOOL_WHEELS = Path(os.environ.get("SAGE_BUILD_TOOL_WHEELS", SAGE_ROOT / "upstream" / "tool-wheels"))


def _wanted_stamp() -> str:
    digest = hashlib.sha256((SAGE_ROOT / "pyproject.toml").read_bytes())
    digest.update(LOCK.read_bytes())
    return digest.hexdigest()


def _python() -> Path:
    return TOOL_ENV / "bin" / "python"


def ensure_tool_env(quiet: bool = False) -> Path:
    """Make or refresh the tool environment; return its interpreter."""
    wanted = _wanted_stamp()
    try:
        if _STAMP.read_text().strip() == wanted and _python().exists():
            return _python()
    except FileNotFoundError:
        pass
    if not quiet:
        print(f"sage-build: setting up the tool environment in {TOOL_ENV} (once) ...", file=sys.stderr)
    if not _python().exists():
        import venv

        venv.EnvBuilder(with_pip=True, clear=False).create(TOOL_ENV)
    stored = TOOL_WHEELS.is_dir() and any(TOOL_WHEELS.glob("*.whl"))
    installed = stored and install_pinned(_python(), LOCK, SAGE_ROOT, wheels=TOOL_WHEELS)
    if stored and not installed:
        print(f"sage-build: the wheels in {TOOL_WHEELS} did not install (see above; `make download`"
              " stores them again); trying pip's index", file=sys.stderr)
    if not installed and not install_pinned(_python(), LOCK, SAGE_ROOT):
        sys.exit(f"sage-build: could not install the tool's dependencies into {TOOL_ENV}"
                 f" (pinned in {LOCK}); check the network or pip's configuration, or run"
                 " `make download` where the index is reachable")
    # The sources are installed editable, so pip compiled none of them: every sage-spkg
    # start would compile them again where PYTHONDONTWRITEBYTECODE is set.
    subprocess.run([str(_python()), "-m", "compileall", "-q", str(SAGE_ROOT / "src")], check=False)
    _STAMP.write_text(wanted + "\n")
    return _python()


def install_pinned(python: Path, lock: Path, project: Path, wheels: Path | None = None) -> bool:
    """Install the packages ``lock`` pins by hash, then ``project`` editable on top of them.

    With ``wheels``, from that directory alone (no index); otherwise from pip's index.
    Return whether every step succeeded (pip has said why not)."""
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    source = ["--no-index", "--find-links", str(wheels)] if wheels else []
    steps = [
        # hash-checking mode: every file pip installs, dependencies included, matches a pin
        [*pip, *source, "--require-hashes", "--only-binary", ":all:", "-r", str(lock)],
        # the project itself has no single file to hash: no dependencies of its own and
        # no isolated build, so the backend is the pinned setuptools just installed
        [*pip, *source, "--no-deps", "--no-build-isolation", "-e", str(project)],
        # a dependency pyproject.toml names but the pins lack is an error, not a silent gap
        [str(python), "-m", "pip", "check", "--quiet", "--disable-pip-version-check"],
    ]
    return all(subprocess.run(step).returncode == 0 for step in steps)


def ensure_tool_python() -> None:
    """Continue in the tool environment's interpreter: made or refreshed first (a fresh clone, a
    `git pull` that changed the pins), then re-executed, unless this already is it, up to date."""
    try:
        fresh = _STAMP.read_text().strip() == _wanted_stamp()
    except FileNotFoundError:
        fresh = False
    if fresh and Path(sys.prefix).resolve() == TOOL_ENV.resolve():
        return
    python = ensure_tool_env()
    os.execv(str(python), [str(python), sys.argv[0], *sys.argv[1:]])


if __name__ == "__main__":
    ensure_tool_env()
