"""End to end: the default distribution of build/pkgs, built with make -j2 into a temporary tree.

Uses the repository's upstream/ as download cache, and the package index (and Debian's
source archive for libyaml) for what is missing; skips with the reason when they cannot
be reached.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, Tree
from sage_build.recipes.recipe import Kind, load_packages

pytestmark = [pytest.mark.slow, pytest.mark.network]


def _missing_sources(upstream):
    packages = load_packages(ROOT / "build" / "pkgs")
    return [p.tarball for p in packages.values() if p.tarball and not (upstream / p.tarball).exists()]


def _index_reachable() -> str | None:
    from sage_build.pipeline import fetch
    try:
        index = fetch.IndexConfig.from_pip()
        if not fetch.list_project_files("six", index, timeout=20):
            return "the package index lists no files for 'six'"
    except Exception as error:  # any failure to reach it is a reason to skip
        return f"the package index cannot be reached: {error}"
    return None


def test_default_distribution_builds_and_imports(tmp_path):
    upstream = ROOT / "upstream"
    upstream.mkdir(exist_ok=True)
    if _missing_sources(upstream):
        reason = _index_reachable()
        if reason:
            pytest.skip(reason)
    tree = Tree(tmp_path / "root")
    shutil.copytree(ROOT / "build" / "pkgs", tree.root / "build" / "pkgs", dirs_exist_ok=True)
    tree.configure(f"--upstream-dir={upstream}", "--enable-tabulate")
    result = tree.make("build", jobs=2, check=False)
    if result.returncode != 0:
        text = result.stdout[-3000:] + result.stderr[-6000:]
        if "could not be fetched" in text or "every place tried" in text.lower():
            pytest.skip(f"a source could not be downloaded:\n{text[-1500:]}")
        raise AssertionError(text)
    packages = load_packages(tree.root / "build" / "pkgs")
    site = tree.site_packages()
    # every Python package's top-level modules import (C extensions included)
    modules = set()
    for record in site.glob("*.dist-info/RECORD"):
        for line in record.read_text().splitlines():
            path = line.split(",")[0]
            if path.startswith("..") or ".dist-info/" in path or "__pycache__" in path:
                continue
            top = path.split("/")[0]
            if top.endswith(".py"):
                modules.add(top[:-3])
            elif "/" in path and path.split("/")[1] == "__init__.py":
                modules.add(top)
    modules -= {"_distutils_hack", "setup"}
    # setuptools first: it refuses to come after something that imported the stdlib's distutils
    ordered = sorted(modules, key=lambda m: (m != "setuptools", m))
    check = tree.python("import importlib, sys\nfailed = []\n"
                        f"for m in {ordered!r}:\n"
                        "    try: importlib.import_module(m)\n"
                        "    except Exception as e: failed.append(f'{m}: {e}')\n"
                        "print('\\n'.join(failed))")
    assert check.returncode == 0 and check.stdout.strip() == "", check.stdout + check.stderr
    assert {"yaml", "markupsafe", "jinja2", "requests", "six", "pip"} <= modules
    c_ext = tree.python("import yaml, yaml._yaml, markupsafe._speedups; print(yaml.__with_libyaml__)")
    assert c_ext.stdout.strip() == "True", c_ext.stderr
    ldd = subprocess.run(["ldd", str(next(site.glob("yaml/_yaml*.so")))], capture_output=True, text=True).stdout
    # our libyaml, not the system's (found through the $ORIGIN-relative RUNPATH: #20's relocation)
    found = [line.split("=>")[1].split("(")[0].strip() for line in ldd.splitlines() if "libyaml" in line and "=>" in line]
    assert [os.path.realpath(f) for f in found] == [os.path.realpath(tree.prefix / "lib" / "libyaml.so")], ldd
    # pip in the prefix lists exactly the installed packages with their versions
    listed = json.loads(tree.python("import runpy, sys; sys.argv = ['pip', 'list', '--format', 'json'];"
                                    "runpy.run_module('pip', run_name='__main__')").stdout)
    listed = {item["name"].lower().replace("-", "_"): item["version"] for item in listed}
    expected = {}
    for name, pkg in packages.items():
        if pkg.kind is Kind.PIP:
            for line in pkg.requirements:
                dist, _, version = line.partition("==")
                expected[dist.strip().lower().replace("-", "_")] = version.strip()
        elif pkg.is_python and tree.stamp(name, pkg.stamp_version).exists():
            expected[(pkg.distribution_name or name).lower().replace("-", "_")] = pkg.version
    assert listed == expected
    assert tree.python("import runpy, sys; sys.argv = ['pip', 'check'];"
                       "runpy.run_module('pip', run_name='__main__')").returncode == 0
    # the manifest of a Python package lists only its wheel
    manifest = json.loads(tree.stamp("six", packages["six"].version).read_text())
    assert manifest["files"] == [f"var/lib/sage/wheels/six-{packages['six'].version}-py2.py3-none-any.whl"]
    # self-hosting: the prefix's python has everything sage-build itself imports (#16)
    tool = tree.python("import packaging, wheel, installer, jinja2, yaml, tqdm, pyproject_hooks;"
                       "import installer.sources, pyproject_hooks._impl; print('ok')")
    assert tool.stdout.strip() == "ok", tool.stderr
    runs = subprocess.run([str(tree.prefix / "bin" / "python3"), "-c",
                           "import sys; sys.path.insert(0, sys.argv[1]);"
                           "from sage_build.recipes.recipe import load_packages;"
                           "print(len(load_packages(__import__('pathlib').Path(sys.argv[2]))))",
                           str(ROOT / "src"), str(tree.root / "build" / "pkgs")], capture_output=True, text=True)
    assert runs.stdout.strip() == str(len(packages)), runs.stderr
    # a second make build is a no-op
    assert "sage-spkg" not in tree.make("build", jobs=2).stdout
