"""The recipe readers give the values the tree's own sage_bootstrap gives (`properties`), as
bench/sage_tree_properties.py checks on a real tree (#16): one fixture per difference found."""

from __future__ import annotations

from conftest import add_recipe
from sage_build.recipes.recipe import load_package
from sage_build.recipes.spkg_rst import title


def _checksums(recipe, text):
    (recipe / "checksums.ini").write_text(text)
    return load_package(recipe)


def test_version_variables_in_tarball_and_upstream_url(tmp_path):
    """sage_bootstrap substitutes ${VERSION}, VERSION_MAJOR/_MINOR/_MICRO, braced or not (4ti2)."""
    recipe = add_recipe(tmp_path, "fourti2", version="1.6.15.p1")
    pkg = _checksums(recipe, "tarball=4ti2-${VERSION}.tar.gz\nsha256=" + "0" * 64 + "\n"
                     "upstream_url=https://h/Release_${VERSION_MAJOR}_${VERSION_MINOR}_${VERSION_MICRO}/4ti2-${VERSION}.tar.gz\n")
    assert pkg.tarball == "4ti2-1.6.15.tar.gz"
    assert pkg.upstream_url == "https://h/Release_1_6_15/4ti2-1.6.15.tar.gz"
    pkg = _checksums(recipe, "tarball=x-VERSION_MAJOR.VERSION_MINOR-VERSION.tar.gz\nsha256=" + "0" * 64 + "\n")
    assert pkg.tarball == "x-1.6-1.6.15.tar.gz"
