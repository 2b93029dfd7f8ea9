"""Package names as people type them: recipe names, PyPI spellings, renamed distributions, typos."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, add_recipe, python_recipe
from sage_build.recipes.names import closest, resolve
from sage_build.recipes.recipe import load_packages


def _packages(root):
    add_recipe(root, "pyyaml")
    add_recipe(root, "more_itertools")
    # Sage's renames: recipe python_build is PyPI's 'build'
    add_recipe(root, "python_build", files={"requirements.txt": "build\n"})
    add_recipe(root, "build_tools")  # a recipe whose PEP 503 form would also fit 'build-tools'
    return load_packages(root / "build" / "pkgs")


def test_resolve_accepts_recipe_names_pypi_spellings_and_renamed_distributions(tmp_path):
    packages = _packages(tmp_path)
    assert resolve("pyyaml", packages) == "pyyaml"
    assert resolve("PyYAML", packages) == "pyyaml"
    assert resolve("more-itertools", packages) == "more_itertools"
    assert resolve("More.Itertools", packages) == "more_itertools"
    assert resolve("build", packages) == "python_build"   # the declared distribution, not a new 'build'
    assert resolve("build-tools", packages) == "build_tools"
    assert resolve("pyyml", packages) is None
    assert closest("pyyml", packages)[0] == "pyyaml"


def test_sage_i_takes_pypi_spellings_and_suggests_on_a_typo(tree):
    python_recipe(tree.root, "more_itertools", "1.0", {"more_itertools/__init__.py": ""})
    tree.configure()
    typo = subprocess.run([sys.executable, str(ROOT / "sage"), "-i", "more_itertool"], env=tree.env,
                          capture_output=True, text=True)
    assert typo.returncode != 0 and "did you mean more_itertools?" in typo.stderr, typo.stderr
    assert "Traceback" not in typo.stderr
    tree.sage("-i", "More-Itertools")
    assert tree.python("import more_itertools").returncode == 0
    tree.sage("--uninstall", "more-itertools")
    assert tree.python("import more_itertools").returncode != 0


def test_configure_options_take_pypi_spellings(tree):
    python_recipe(tree.root, "more_itertools", "1.0", {"more_itertools/__init__.py": ""}, type_="optional")
    assert tree.configure("--enable-More-Itertools").returncode == 0
    wrong = tree.configure("--enable-more-itertool", check=False)
    assert wrong.returncode != 0 and "did you mean more_itertools?" in wrong.stderr + wrong.stdout
