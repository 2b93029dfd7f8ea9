"""The tool's own virtual environment (``.venv``), made on first use.

Standard library only: this runs before the tool's dependencies exist.
Every entry point (configure.py, sage, build/bin/*) calls
:func:`ensure_tool_python` first, so a fresh clone needs no manual step.
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


def _wanted_stamp() -> str:
    return hashlib.sha256((SAGE_ROOT / "pyproject.toml").read_bytes()).hexdigest()


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
    command = [str(_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "-e", f"{SAGE_ROOT}[test]"]
    result = subprocess.run(command)
    if result.returncode != 0:
        sys.exit(f"sage-build: could not install the tool's dependencies into {TOOL_ENV}"
                 f" (command: {' '.join(command)}); check the network or pip's configuration")
    # The sources are installed editable, so pip compiled none of them: every sage-spkg
    # start would compile them again where PYTHONDONTWRITEBYTECODE is set.
    subprocess.run([str(_python()), "-m", "compileall", "-q", str(SAGE_ROOT / "src")], check=False)
    _STAMP.write_text(wanted + "\n")
    return _python()


def ensure_tool_python() -> None:
    """Re-run the current script with the tool environment's interpreter unless already in it."""
    if Path(sys.prefix).resolve() == TOOL_ENV.resolve():
        return
    python = ensure_tool_env()
    os.execv(str(python), [str(python), sys.argv[0], *sys.argv[1:]])


if __name__ == "__main__":
    ensure_tool_env()
