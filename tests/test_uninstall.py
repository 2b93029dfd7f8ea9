"""Uninstall and upgrade through spkg-piprm, keeping what other packages share."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import python_recipe


def _snapshot(tree):
    """The prefix's files outside sage-build's own records."""
    return sorted(str(p.relative_to(tree.prefix)) for p in tree.prefix.rglob("*")
                  if not str(p.relative_to(tree.prefix)).startswith("var"))


SHARED = {"ns/__init__.py": "# namespace\n", "ns/shared/common.txt": "common\n"}


def _two_sharing(tree):
    python_recipe(tree.root, "a", "1.0", {**SHARED, "ns/a/__init__.py": "A = 1\n"})
    python_recipe(tree.root, "b", "1.0", {**SHARED, "ns/b/__init__.py": "B = 1\n"})


def test_shared_files_survive_until_the_last_owner_goes(tree):
    _two_sharing(tree)
    tree.configure()
    tree.make("python3-venv")
    before = _snapshot(tree)
    tree.make("build")
    site = tree.site_packages()
    assert (site / "ns/__pycache__").is_dir()
    tree.make("a-uninstall")
    assert tree.python("import ns.b; print(ns.b.B)").stdout.strip() == "1"
    assert (site / "ns/__init__.py").read_text() == "# namespace\n"
    assert (site / "ns/shared/common.txt").exists()
    assert not (site / "ns/a").exists()
    assert not tree.stamp("a", "1.0").exists()
    assert not (tree.prefix / "var/lib/sage/scripts/a").exists()
    tree.sage("--uninstall", "b")
    assert not (site / "ns").exists()
    assert _snapshot(tree) == before
    # pip sees no ghost
    ghosts = [p.name for p in site.glob("*.dist-info")]
    assert ghosts == []


def test_downgrade_leaves_no_trace(tree):
    python_recipe(tree.root, "a", "1.0", {"a/__init__.py": "V = 1\n", "a/one.py": ""})
    tree.configure()
    tree.make("build")
    snapshot_v1 = _snapshot(tree)
    python_recipe(tree.root, "a", "2.0", {"a/__init__.py": "V = 2\n", "a/two.py": ""})
    tree.configure()
    tree.make("build")
    assert tree.python("import a, a.two; print(a.V)").stdout.strip() == "2"
    python_recipe(tree.root, "a", "1.0", {"a/__init__.py": "V = 1\n", "a/one.py": ""})
    shutil.rmtree(tree.root / "build/pkgs/a")
    python_recipe(tree.root, "a", "1.0", {"a/__init__.py": "V = 1\n", "a/one.py": ""})
    tree.configure()
    tree.make("build")
    assert tree.python("import a; print(a.V)").stdout.strip() == "1"
    assert _snapshot(tree) == snapshot_v1
    installed = sorted(p.name for p in tree.stamp("a", "1.0").parent.iterdir())
    assert "a-2.0" not in installed and "a-1.0" in installed
    assert not list((tree.prefix / "var/lib/sage/wheels").glob("a-2.0-*"))


def test_dependents_refuse_unless_forced(tree):
    python_recipe(tree.root, "a", "1.0", {"a/__init__.py": ""})
    python_recipe(tree.root, "b", "1.0", {"b/__init__.py": ""}, deps="$(PYTHON) a")
    tree.configure()
    tree.make("build")
    result = tree.sage("--uninstall", "a", check=False)
    assert result.returncode == 1
    assert "a is needed by installed packages: b" in result.stderr
    assert tree.python("import a").returncode == 0
    tree.sage("--uninstall", "--force", "a")
    assert tree.python("import a").returncode != 0


def test_keep_files_drops_only_the_stamp(tree):
    python_recipe(tree.root, "a", "1.0", {"a/__init__.py": ""})
    tree.configure()
    tree.make("build")
    tree.sage("--uninstall", "-k", "a")
    assert not tree.stamp("a", "1.0").exists()
    assert tree.python("import a").returncode == 0


def test_spkg_piprm_runs_alone_with_an_empty_environment(tree):
    _two_sharing(tree)
    tree.configure()
    tree.make("build")
    piprm = tree.prefix / "var/lib/sage/scripts/a/spkg-piprm"
    result = subprocess.run(["env", "-i", str(piprm)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "removed" in result.stdout
    assert tree.python("import ns.a").returncode != 0
    assert tree.python("import ns.b").returncode == 0


def test_missing_record_is_a_clear_error_and_removes_nothing(tree):
    python_recipe(tree.root, "a", "1.0", {"a/__init__.py": "", "a/x.py": ""})
    tree.configure()
    tree.make("build")
    record = next(tree.site_packages().glob("a-1.0.dist-info")) / "RECORD"
    record.unlink()
    before = _snapshot(tree)
    result = tree.sage("--uninstall", "a", check=False)
    assert result.returncode == 1
    assert "cannot read" in result.stderr and "RECORD" in result.stderr
    assert "--force" in result.stderr
    assert _snapshot(tree) == before
    assert tree.stamp("a", "1.0").exists()
    piprm = tree.prefix / "var/lib/sage/scripts/a/spkg-piprm"
    assert subprocess.run([str(piprm), "--force"], capture_output=True).returncode == 0
    assert not list(tree.site_packages().glob("a-1.0.dist-info"))


def test_disabled_package_is_uninstalled_by_the_next_build(tree):
    python_recipe(tree.root, "opt", "1.0", {"opt/__init__.py": ""}, type_="optional")
    tree.configure()
    tree.sage("-i", "opt")
    tree.configure()  # if_installed keeps it
    tree.make("build")
    assert tree.stamp("opt", "1.0").exists()
    tree.configure("--disable-opt")
    tree.make("build")
    assert not tree.stamp("opt", "1.0").exists()
    assert tree.python("import opt").returncode != 0


def test_pip_uninstall_behind_our_back_is_reported_and_repaired(tree):
    python_recipe(tree.root, "a", "1.0", {"a/__init__.py": ""})
    python_recipe(tree.root, "pip", "1.0", {"pip/__init__.py": ""})  # placeholder, not used
    shutil.rmtree(tree.root / "build/pkgs/pip")
    tree.configure()
    tree.make("build")
    # what `pip uninstall a` does: remove the RECORD's files
    site = tree.site_packages()
    shutil.rmtree(site / "a")
    shutil.rmtree(next(site.glob("a-1.0.dist-info")))
    result = tree.sage("--package", "list", ":installed:")
    assert "manifest of a is stale" in result.stderr and "./sage -f a" in result.stderr
    tree.sage("-f", "a")
    assert tree.python("import a").returncode == 0
    assert "stale" not in tree.sage("--package", "list", ":installed:").stderr


@pytest.mark.slow
def test_uninstall_racing_installs_under_make_j(tree):
    for i in range(6):
        python_recipe(tree.root, f"p{i}", "1.0", {**SHARED, f"ns/p{i}/__init__.py": f"V = {i}\n"})
    tree.configure()
    tree.make("build", jobs=2)
    for round_ in range(3):
        # reinstall p3..p5 while p0..p2 are uninstalled, all at once
        targets = [f"p{i}-uninstall" for i in range(3)]
        for i in range(3, 6):
            # a recipe file that is a build input (SPKG.rst is not: #20)
            (tree.root / f"build/pkgs/p{i}/spkg-check").write_text(f"true {round_}\n")
        targets += [f"p{i}" for i in range(3, 6)]
        tree.make(*targets, jobs=6, extra_env={"SAGE_NUM_THREADS": "6"})
        code = "; ".join(f"import ns.p{i}" for i in range(3, 6))
        assert tree.python(code).returncode == 0
        site = tree.site_packages()
        assert (site / "ns/__init__.py").read_text() == "# namespace\n"
        assert (site / "ns/shared/common.txt").read_text() == "common\n"
        tree.make("build", jobs=6)  # and back
        assert tree.python("; ".join(f"import ns.p{i}" for i in range(6))).returncode == 0
