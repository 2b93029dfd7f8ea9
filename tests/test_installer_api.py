"""sage-build uses installer's public API only, so any installer in pyproject.toml's range works:
no private name of installer (``obj._x``, ``from installer... import _x``, ``installer._core``)
anywhere in src/, and our source and destination subclass only installer's abstract classes."""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

import installer
import pytest

from conftest import ROOT, make_wheel

SRC = ROOT / "src"
# Private names of the installer versions in the range that the scan of the installed one may not
# show (0.7.0's members that 1.x renamed or dropped).
KNOWN_PRIVATE = {"_zipfile", "_path_with_destdir", "_dist_info_dir", "_compile_bytecode", "_core"}


def _installer_private_names() -> set[str]:
    """Every private name the installed installer defines: modules, functions, classes, attributes."""
    names = set(KNOWN_PRIVATE)
    for module in Path(installer.__file__).parent.rglob("*.py"):
        names.update(p for p in module.relative_to(Path(installer.__file__).parent).with_suffix("").parts
                     if p.startswith("_") and not p.startswith("__"))
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.endswith("__")}


def _defined_here(tree: ast.AST) -> set[str]:
    """The names a module of ours defines itself (its own private helpers may share a name)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def private_installer_uses(source: str, private: set[str]) -> list[str]:
    """Uses of installer's private names in a module's source (empty if it does not import installer)."""
    tree = ast.parse(source)
    found = []
    imports_installer = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "installer":
            imports_installer = True
            parts = node.module.split(".") + [alias.name for alias in node.names]
            if any(part.startswith("_") and not part.endswith("__") for part in parts):
                found.append(f"line {node.lineno}: from {node.module} import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "installer":
                    imports_installer = True
                    if any(p.startswith("_") for p in alias.name.split(".")):
                        found.append(f"line {node.lineno}: import {alias.name}")
    if not imports_installer:
        return found
    ours = _defined_here(tree)
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Attribute) and node.attr in private and node.attr not in ours:
            name = node.attr
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in private
              and node.value not in ours):  # getattr(source, "_zipfile")
            name = node.value
        if name:
            found.append(f"line {node.lineno}: {name}")
    return found


def test_src_uses_no_private_name_of_installer():
    private = _installer_private_names()
    assert {"_zipfile", "_path_with_destdir"} <= private
    offences = {}
    for module in sorted(SRC.rglob("*.py")):
        uses = private_installer_uses(module.read_text(), private)
        if uses:
            offences[str(module.relative_to(ROOT))] = uses
    assert offences == {}, f"installer's private names pin its version (issue 15): {offences}"


@pytest.mark.parametrize("source", [
    "from installer.sources import WheelFile\nclass W(WheelFile):\n    def f(self):\n        return self._zipfile\n",
    "from installer.destinations import SchemeDictionaryDestination as S\nS._path_with_destdir(d, 's', 'p')\n",
    "from installer._core import _determine_scheme\n",
    "import installer._core\n",
    "from installer.utils import _current_umask\n",
    "import installer\nx = getattr(source, '_zipfile')\n",
])
def test_the_scan_finds_private_uses(source):
    assert private_installer_uses(source, _installer_private_names())


def test_the_scan_lets_our_own_private_names_be():
    source = "from installer.sources import WheelSource\nclass W(WheelSource):\n" \
             "    def __init__(self):\n        self._zipfile = 1\n    def f(self):\n        return self._zipfile\n"
    assert private_installer_uses(source, _installer_private_names()) == []


def test_our_source_and_destination_subclass_only_installers_abstract_classes():
    from installer.destinations import WheelDestination
    from installer.sources import WheelSource

    from sage_build.install.wheel import AtomicDestination, CheckedWheelFile

    def installer_bases(cls):
        return [c for c in cls.__mro__ if c.__module__.split(".")[0] == "installer"]

    assert installer_bases(CheckedWheelFile) == [WheelSource]
    assert installer_bases(AtomicDestination) == [WheelDestination]


def test_the_wheel_source_reads_and_validates(tmp_path):
    from sage_build.install.wheel import CheckedWheelFile

    good = make_wheel(tmp_path / "good", "Some_Pkg", "1.0", {"some_pkg/__init__.py": b"x = 1\n"},
                      scripts="run = some_pkg:main")
    with CheckedWheelFile.open(good) as source:
        assert source.dist_info_dir == "Some_Pkg-1.0.dist-info"
        assert sorted(source.dist_info_filenames) == ["METADATA", "RECORD", "WHEEL", "entry_points.txt"]
        assert source.read_dist_info("METADATA").startswith("Metadata-Version")
        source.validate_record()
        contents = {record[0]: stream.read() for record, stream, _ in source.get_contents()}
        assert contents["some_pkg/__init__.py"] == b"x = 1\n"
    bad = make_wheel(tmp_path / "bad", "bad", "1.0", {"bad/z.py": b"evil\n"}, tamper="bad/z.py")
    with CheckedWheelFile.open(bad) as source, pytest.raises(ValueError, match="bad/z.py does not match"):
        source.validate_record()


def test_a_wheel_whose_dist_info_names_another_project_is_refused(tmp_path):
    from sage_build.install.wheel import CheckedWheelFile

    wheel = make_wheel(tmp_path, "impostor", "1.0", {"impostor/__init__.py": b""})
    renamed = wheel.with_name("victim-1.0-py3-none-any.whl")
    wheel.rename(renamed)
    with CheckedWheelFile.open(renamed) as source, pytest.raises(ValueError, match="doesn't match wheel filename"):
        source.dist_info_dir
    two = tmp_path / "two-1.0-py3-none-any.whl"
    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("two-1.0.dist-info/METADATA", "")
        archive.writestr("other-1.0.dist-info/METADATA", "")
    with CheckedWheelFile.open(two) as source, pytest.raises(ValueError, match="exactly one .dist-info"):
        source.dist_info_dir
