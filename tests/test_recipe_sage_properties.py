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


def test_requirement_lines_keep_url_fragments_and_name_the_distribution(tmp_path):
    """pip's rule, which sage_bootstrap's PURL follows: '#' starts a comment at a line's start or
    after a blank, not inside a URL (sagenb_export's ``git+https://...git#egg=sagenb_export``)."""
    url = "git+https://github.com/vbraun/exportsagenb.git#egg=sagenb_export"
    recipe = add_recipe(tmp_path, "sagenb_export", files={"requirements.txt": f"# a comment\n{url}  # why\n"})
    pkg = load_package(recipe)
    assert pkg.requirements == (url,)
    assert pkg.purl == "pkg:pypi/git+https://github.com/vbraun/exportsagenb.git#egg=sagenb-export"
    assert pkg.distribution_name == "sagenb_export"


def test_distribution_name_of_pip_and_unspaced_requirements(tmp_path):
    """sage_bootstrap's distribution_name reads requirements.txt first, then
    version_requirements.txt; ours is the PEP 508 name of the same line."""
    pkg = load_package(add_recipe(tmp_path, "abelfunctions", files={"requirements.txt": "abelfunctions\n"}))
    assert pkg.distribution_name == "abelfunctions"
    pkg = load_package(add_recipe(tmp_path, "hypothesis", version="6.123.0",
                                  files={"version_requirements.txt": "hypothesis>=6.123.0\n"}))
    assert pkg.distribution_name == "hypothesis" and pkg.sage_distribution == "hypothesis>=6.123.0"
    # a version PEP 440 does not accept (a git commit): the name still counts
    pkg = load_package(add_recipe(tmp_path, "pandoc_attributes", version="8bc82f6d",
                                  files={"version_requirements.txt": "pandoc_attributes >=8bc82f6d\n"}))
    assert pkg.distribution_name == "pandoc_attributes"
    pkg = load_package(add_recipe(tmp_path, "byurl", files={"requirements.txt": "git+https://h/x.git\n"}))
    assert pkg.distribution_name is None


def test_title_description_as_sage_bootstrap_reads_it():
    """The first line (the second under an overline) is ``name: description``; the description is
    the rest of that line as written (primesieve's ends in a blank); any other first line: none."""
    assert title("primesieve: CLI program for primes \n=================\n") == ("primesieve", "CLI program for primes ")
    assert title("=====\ngmp: Library\n=====\n") == ("gmp", "Library")
    assert title("\ngmp: Library\n====\n") == (None, None)   # sage_bootstrap reads the first line only
    assert title("a:b: c\n") == (None, None)                 # its name holds no ':'


def test_uses_python_package_check(tmp_path):
    """sage_bootstrap's uses_python_package_check: spkg-configure.m4 calls SAGE_PYTHON_PACKAGE_CHECK."""
    checked = add_recipe(tmp_path, "checked", files={"spkg-configure.m4": "SAGE_SPKG_CONFIGURE([checked], [\n"
                                                     "  SAGE_PYTHON_PACKAGE_CHECK([checked])\n])\n"})
    plain = add_recipe(tmp_path, "plain", files={"spkg-configure.m4": "SAGE_SPKG_CONFIGURE([plain], [])\n"})
    assert load_package(checked).uses_python_package_check is True
    assert load_package(plain).uses_python_package_check is False
    assert load_package(add_recipe(tmp_path, "none")).uses_python_package_check is False
