"""The whole pipeline on tiny packages: sage-spkg through the generated Makefile."""

from __future__ import annotations

import json

from conftest import add_recipe, python_recipe


def test_build_installs_wheels_and_records_only_the_wheel(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": "VALUE = 'alpha'\n"}, script="alpha-hello=alpha:main")
    python_recipe(tree.root, "beta", "2.0", {"beta/__init__.py": "from alpha import VALUE\n"},
                  deps="$(PYTHON) alpha | $(PYTHON_TOOLCHAIN)", requires="alpha")
    tree.configure()
    tree.make("build")
    result = tree.python("import beta; print(beta.VALUE)")
    assert result.stdout.strip() == "alpha", result.stderr
    manifest = json.loads(tree.stamp("beta", "2.0").read_text())
    assert manifest["package_name"] == "beta"
    assert manifest["package_version"] == "2.0"
    assert manifest["files"] == ["var/lib/sage/wheels/beta-2.0-py3-none-any.whl"]
    assert (tree.prefix / manifest["files"][0]).is_file()
    piprm = tree.prefix / "var/lib/sage/scripts/beta/spkg-piprm"
    assert piprm.is_file() and piprm.stat().st_mode & 0o111
    installer = next(tree.site_packages().glob("beta-2.0.dist-info")) / "INSTALLER"
    assert installer.read_text() == "sage-build\n"
    # A second run is a no-op.
    again = tree.make("build")
    assert "sage-spkg" not in again.stdout
