"""The architecture of docs/ARCHITECTURE.md, enforced: the layers' import rules (import-linter),
what runs under the target Python with the standard library only, and the modules a wheel
install may load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_wheel

SRC = ROOT / "src"
# Another interpreter than the tool's (Debian's, where the tool runs on another build).
OTHER_PYTHON = next((p for p in ("/usr/bin/python3", shutil.which("python3") or "")
                     if p and os.path.realpath(p) != os.path.realpath(sys.executable) and os.path.exists(p)), None)


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(SRC)))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_every_layer_named_in_the_architecture_document_exists():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    packages = sorted(p.name for p in (SRC / "sage_build").iterdir() if (p / "__init__.py").exists())
    assert packages == ["base", "configure", "face", "install", "pipeline", "recipes"]
    for package in packages:
        assert f"`{package}/`" in text
        for module in (SRC / "sage_build" / package).glob("*.py"):
            if module.stem != "__init__":
                assert f"`{module.stem}`" in text, f"docs/ARCHITECTURE.md does not place {package}/{module.name}"
    # The README points at the design inside the repository, nothing outside it.
    readme = (ROOT / "README.md").read_text()
    assert "docs/ARCHITECTURE.md" in readme and "../shared" not in readme


def test_packages_init_files_are_empty():
    # The target Python imports sage_build.install.bytecode through these: they must import nothing.
    for init in (SRC / "sage_build").rglob("__init__.py"):
        code = [line for line in init.read_text().splitlines() if line.strip() and not line.startswith(("#", '"'))]
        assert all(not line.startswith(("import", "from")) for line in code), init


@pytest.mark.skipif(OTHER_PYTHON is None, reason="needs a second Python interpreter")
def test_bytecode_compiler_runs_isolated_under_another_python(tmp_path):
    module = tmp_path / "site" / "mod.py"
    module.parent.mkdir()
    module.write_text("VALUE = 1\n")
    request = json.dumps({"levels": [0], "owner": os.getpid(), "files": [[str(module), str(module)]]})
    script = f"import sys; sys.path.insert(0, {str(SRC)!r}); from sage_build.install.bytecode import main; main()"
    result = subprocess.run([OTHER_PYTHON, "-I", "-S", "-c", script], input=request, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    [[(pyc, _digest, size)]] = json.loads(result.stdout)
    assert Path(pyc).is_file() and Path(pyc).stat().st_size == size
    leaked = subprocess.run([OTHER_PYTHON, "-I", "-S", "-c", script.replace("main()", "print(sorted(sys.modules))")],
                            input=request, capture_output=True, text=True)
    assert "installer" not in leaked.stdout and "jinja2" not in leaked.stdout, leaked.stdout


def test_a_wheel_install_loads_no_more_than_its_budget(tmp_path):
    from sage_build.install.target import query_python

    prefix = tmp_path / "prefix"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    query_python(prefix / "bin" / "python3").save(prefix / "var/lib/sage/target-python.json")
    wheel = make_wheel(tmp_path / "w", "tiny", "1.0", {"tiny/__init__.py": b"T = 1\n"})
    code = (
        "import sys, runpy; sys.argv = ['install', '--prefix', sys.argv[1], '--bytecode', 'none', sys.argv[2]];"
        "from sage_build.install.__main__ import main; code = main();"
        "print(sorted(m for m in sys.modules if m.startswith('sage_build'))); print(len(sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(prefix), str(wheel)], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(SRC)))
    assert result.returncode == 0, result.stderr
    ours, count = result.stdout.splitlines()[-2:]
    layers = {name.split(".")[1] for name in eval(ours) if name.count(".") >= 1}
    assert layers <= {"base", "install"}, ours  # installing a wheel needs no recipe, decision or face
    for heavy in ("jinja2", "yaml", "tqdm", "pyproject_hooks"):
        assert heavy not in result.stdout
    assert int(count) < 220, f"a wheel install loaded {count} modules"
