"""The one definition of a package's build inputs (#20 item 1): make's recipe hash and the binary
cache's key change with every input and stay with every non-input."""

from __future__ import annotations

import pytest

from conftest import add_recipe
from sage_build.recipes.recipe import recipe_hash


def _recipe(tmp_path):
    return add_recipe(tmp_path, "alpha", version="1.0", files={
        "checksums.ini": "tarball=alpha-VERSION.tar.gz\nsha256=" + "a" * 64 + "\n",
        "spkg-install.in": "sdh_make_install\n",
        "patches/fix.patch": "--- a\n+++ b\n",
        "SPKG.rst": "alpha\n=====\n",
        "distros/debian.txt": "libalpha-dev\n",
        "spkg-configure.m4": "SAGE_SPKG_CONFIGURE([alpha], [])\n",
    })


@pytest.mark.parametrize("rel, text", [
    ("package-version.txt", "1.1\n"),
    ("checksums.ini", "tarball=alpha-VERSION.tar.gz\nsha256=" + "b" * 64 + "\n"),
    ("spkg-install.in", "sdh_make_install -j1\n"),
    ("patches/fix.patch", "--- a\n+++ c\n"),
    ("patches/new.patch", "--- x\n"),
    ("dependencies", "$(PYTHON) zlib\n"),
    ("dependencies_order_only", "gmp\n"),
    ("install-requires.txt", "alpha >=1.1\n"),
    ("a-file-nobody-knows", "x\n"),  # unknown files count: a rebuild too many beats a stale cache
])
def test_an_input_changes_the_recipe_hash(tmp_path, rel, text):
    recipe = _recipe(tmp_path)
    before = recipe_hash(recipe)
    (recipe / rel).parent.mkdir(parents=True, exist_ok=True)
    (recipe / rel).write_text(text)
    assert recipe_hash(recipe) != before


@pytest.mark.parametrize("rel, text", [
    ("SPKG.rst", "alpha\n=====\n\nRewritten.\n"),
    ("distros/fedora.txt", "alpha-devel\n"),
    ("distros/debian.txt", "libalpha2-dev\n"),
    ("spkg-configure.m4", "SAGE_SPKG_CONFIGURE([alpha], [sage_spkg_install_alpha=yes])\n"),
    ("type", "optional\n"),
    ("dependencies", "$(PYTHON)\n\n----------\nAll lines of this file are ignored except the first.\n"),
])
def test_a_non_input_leaves_the_recipe_hash(tmp_path, rel, text):
    recipe = _recipe(tmp_path)
    before = recipe_hash(recipe)
    (recipe / rel).parent.mkdir(parents=True, exist_ok=True)
    (recipe / rel).write_text(text)
    assert recipe_hash(recipe) == before
