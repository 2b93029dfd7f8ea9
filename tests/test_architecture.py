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
    assert packages == ["base", "cache", "ci", "configure", "face", "install", "pipeline", "recipes"]
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


# sage-spkg imports these for every package it runs in its own process (a lone `make PKG`, a
# session's first packages): a dataclass compiles its methods from generated source each time its
# module is imported, a frozen one with many fields costing what a NamedTuple costs ten times over.
SPKG_PATH = ("sage_build.bootstrap", "sage_build.face.spkg_client", "sage_build.base.quick_exit",
             "sage_build.face.spkg_command", "sage_build.install.wheel")


def test_the_records_sage_spkg_loads_are_not_dataclasses():
    code = (
        f"import dataclasses, sys; [__import__(m) for m in {SPKG_PATH!r}];"
        "ours = [(m, mod) for m, mod in list(sys.modules.items()) if m.startswith('sage_build')];"
        "print(len(ours)); print(sorted(f'{m}.{k}' for m, mod in ours for k, v in vars(mod).items()"
        " if isinstance(v, type) and v.__module__ == m and dataclasses.is_dataclass(v)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(SRC)))
    assert result.returncode == 0, result.stderr
    scanned, found = result.stdout.splitlines()
    assert int(scanned) > 20, "the scan no longer sees sage-spkg's modules"
    assert eval(found) == [], f"{found} on sage-spkg's path: make them NamedTuples (docs/ARCHITECTURE.md)"


# Below the face, library functions take parameters: reading the environment, parsing arguments
# and printing belong to face/ (docs/ARCHITECTURE.md). The exceptions, each with its reason:
COMMAND_LINE_ALLOWED = {
    "bootstrap.py": "runs before the tool environment exists, beside the layers: its own settings"
                    " (SAGE_BUILD_TOOL_ENV ...), its messages, and re-executing the entry with sys.argv",
    "base/killpoint.py": "SAGE_TEST_KILL_AT, the one test hook (tests/test_killpoints.py): read once at"
                         " import so that reach() costs nothing when no test asks",
    "base/commands.py": "inherited_environment(): hands the environment on to a child (pip, apt-get,"
                        " an interpreter) that reads its own variables; reads no setting of ours",
    "install/__main__.py": "`python -m sage_build.install`, the install layer's own entry: a wheel install"
                           " loads nothing of the face (test_a_wheel_install_loads_no_more_than_its_budget)",
    "install/bytecode.py": "main() is its own entry, run by the target's interpreter with the standard"
                           " library only; as py_compile, SOURCE_DATE_EPOCH asks for checked-hash byte-code",
    "configure/system.py": "CPATH and LIBRARY_PATH, where the compiler looks for a system package: to"
                           " become parameters when configure's decide path is reworked (issue 15, left)",
}
# Not scanned: install/templates/spkg-piprm.j2 renders a program of its own (standard library only,
# run by make or by hand, maybe after sage-build is gone): it reads DESTDIR and SAGE_TEST_KILL_AT,
# parses its arguments and prints, as any command does.


def _command_line_uses(path: Path) -> list[str]:
    """Where ``path`` reads the environment (os.environ, os.getenv), parses arguments (argparse,
    sys.argv) or prints, as "what (line N)"."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        what = None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and (node.value.id, node.attr) in (("os", "environ"), ("os", "getenv"), ("sys", "argv")):
            what = f"{node.value.id}.{node.attr}"
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "sys") \
                and {a.name for a in node.names} & {"environ", "getenv", "argv"}:
            what = f"from {node.module} import"
        elif isinstance(node, ast.Import) and "argparse" in [a.name for a in node.names] \
                or isinstance(node, ast.ImportFrom) and node.module == "argparse":
            what = "argparse"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            what = "print()"
        if what:
            found.append(f"{what} (line {node.lineno})")
    return found


def test_only_the_face_reads_the_environment_parses_arguments_and_prints():
    package = SRC / "sage_build"
    offenders = {}
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if relative.startswith("face/") or relative in COMMAND_LINE_ALLOWED:
            continue
        uses = _command_line_uses(path)
        if uses:
            offenders[relative] = uses
    assert not offenders, f"move these to face/ and pass parameters (or justify in COMMAND_LINE_ALLOWED): {offenders}"
    for relative in COMMAND_LINE_ALLOWED:  # the list stays exact: an entry that no longer needs it goes
        assert _command_line_uses(package / relative), f"{relative} needs no exception any more"
