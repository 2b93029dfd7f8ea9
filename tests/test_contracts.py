"""The on-disk contracts, against golden files taken before the code was rearranged.

A tree that was built by an earlier sage-build is updated with `git pull && make`: its
generated Makefile, its installed spkg-piprm scripts, its manifests, its events log, its
temporary-file names and its lock paths must keep meaning what they meant.  A change here is
a format change: update the golden file (SAGE_UPDATE_GOLDEN=1) only together with a format
version and a migration.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from pathlib import Path

import pytest

from conftest import ROOT, python_recipe

GOLDEN = Path(__file__).parent / "golden"


def _normalise(text: str, tree) -> str:
    text = text.replace(str(tree.root), "@SAGE_ROOT@").replace(str(ROOT), "@SAGE_BUILD@")
    text = text.replace(sys.executable, "@PYTHON@").replace(os.path.realpath(sys.executable), "@PYTHON@")
    text = text.replace(platform.python_version(), "@PYTHON_VERSION@")
    return re.sub(r"python3\.\d+", "python3.X", text)


def _check(name: str, text: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("SAGE_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.read_text() == text, f"{name} changed: an on-disk contract (see this module's docstring)"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from conftest import Tree

    tree = Tree(tmp_path_factory.mktemp("contracts") / "root")
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": "A = 1\n"})
    python_recipe(tree.root, "beta", "2.0", {"beta/__init__.py": "B = 1\n"}, deps="$(PYTHON) alpha")
    tree.configure()
    tree.make("build")
    return tree


def test_generated_makefile(built):
    _check("Makefile", _normalise((built.root / "build/make/Makefile").read_text(), built))


def test_installed_spkg_piprm(built):
    text = (built.prefix / "var/lib/sage/scripts/beta/spkg-piprm").read_text()
    _check("spkg-piprm", _normalise(text, built))


def test_manifest(built):
    manifest = json.loads(built.stamp("beta", "2.0").read_text())
    manifest["install_date"] = manifest["system_uname"] = manifest["sage_version"] = "@VARIES@"
    _check("manifest.json", json.dumps(manifest, indent=4, sort_keys=True) + "\n")


def test_events_schema(built):
    events = [json.loads(line) for line in (built.root / "logs/events.jsonl").read_text().splitlines()]
    # fields that only some runs have: `cache` (pulled from a binary cache), `worker` (run by the
    # session's worker, when it was ready in time)
    optional = {"cache", "worker"}
    shapes = sorted({json.dumps([e.get("event"), e.get("phase"), sorted(set(e) - optional)])
                     for e in events if e.get("package") == "beta"})
    _check("events-schema.txt", "\n".join(shapes) + "\n")


def test_temporaries_and_locks(built):
    from sage_build.base.atomic import TMP_MARK, tmp_name

    var = built.prefix / "var/lib/sage"
    paths = {
        "prefix lock": (var / "prefix.lock").is_file(),
        "package lock": (var / "locks" / "beta.lock").is_file(),
        "owner locks": (var / "locks" / "owners").is_dir(),
        "removal journal": (var / "installed" / ".removing").is_dir(),
    }
    name = os.path.basename(tmp_name("/x/file.py"))
    shape = re.sub(r"\d+", "N", name)
    _check("temporaries-and-locks.txt", f"TMP_MARK={TMP_MARK}\ntemporary={shape}\n"
           + "".join(f"{key}: {present}\n" for key, present in paths.items()))
