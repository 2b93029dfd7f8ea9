"""Reading recipes: real Sage recipes, every file kind, the kind decision, malformed input."""

from __future__ import annotations

import os

import pytest

from conftest import EXAMPLES, add_recipe
from sage_build.base.errors import RecipeError
from sage_build.recipes.recipe import Kind, load_package, load_packages, package_dirs, parse_dependency_line

needs_examples = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"{EXAMPLES} is absent (shared/ not beside the repo)")


@needs_examples
def test_real_sage_recipes_load_unchanged():
    packages = load_packages(EXAMPLES)
    # _python3.11 has no type file: Sage does not count it as a package.
    assert "_python3.11" not in packages
    assert set(packages) >= {"_prereq", "cysignals", "furo", "gitpython", "gmp", "pip", "setuptools", "six", "zlib"}
    six = packages["six"]
    assert six.version == "1.16.0" and six.tarball == "six-1.16.0.tar.gz"
    assert six.checksums["sha1"] == "06fa0bb50f2a4e2917fd14c21e9d2d5508ce0163"
    assert six.checksums["cksum"] == "1693137720"
    assert six.dependencies.normal == ("$(PYTHON)",)
    assert six.dependencies.order_only == ("$(PYTHON_TOOLCHAIN)",)
    zlib = packages["zlib"]
    assert zlib.version == "1.2.11.p0" and zlib.upstream_version == "1.2.11"
    assert zlib.tarball == "zlib-1.2.11.tar.gz"
    assert zlib.dependencies.normal == ()  # "# no dependencies" is a comment
    assert packages["gmp"].upstream_url == "https://gmplib.org/download/gmp/gmp-6.2.1.tar.xz"
    assert packages["gmp"].distros["debian"] == ("libgmp-dev",)
    assert packages["cysignals"].dependencies.normal == ("$(PYTHON)", "cython", "pari")
    assert packages["_prereq"].kind is Kind.NONE and packages["_prereq"].version is None


@needs_examples
def test_kind_of_real_recipes():
    packages = load_packages(EXAMPLES)
    kinds = {name: pkg.kind for name, pkg in packages.items()}
    assert kinds["gitpython"] is Kind.PIP
    assert kinds["furo"] is Kind.WHEEL
    assert kinds["six"] is Kind.NORMAL and packages["six"].builds_wheel
    assert kinds["gmp"] is Kind.NORMAL  # no script in the example: the loader still calls it normal
    assert kinds["_prereq"] is Kind.NONE


def test_every_kind(tmp_path):
    root = tmp_path
    add_recipe(root, "pipper", deps="$(PYTHON)", files={"requirements.txt": "tomli_w==1.2.0\n"})
    wheel = tmp_path / "w-1.0-py3-none-any.whl"
    wheel.write_bytes(b"x")
    add_recipe(root, "w", version="1.0", tarball=wheel)
    tar = tmp_path / "lib-2.0.tar.gz"
    tar.write_bytes(b"y")
    add_recipe(root, "lib", version="2.0", tarball=tar, files={"spkg-install.in": "cd src\nsdh_make_install\n"})
    add_recipe(root, "pysrc", version="2.0", tarball=tar, files={"spkg-install.in": "cd src\nsdh_pip_install .\n"})
    add_recipe(root, "sdist", version="2.0", tarball=tar)
    add_recipe(root, "scripted", files={"spkg-install": "#!/bin/sh\necho hi\n"})
    add_recipe(root, "meta")
    packages = load_packages(root / "build" / "pkgs")
    assert packages["pipper"].kind is Kind.PIP and packages["pipper"].is_python
    assert packages["w"].kind is Kind.WHEEL and packages["w"].is_python
    assert packages["lib"].kind is Kind.NORMAL and not packages["lib"].is_python
    assert packages["pysrc"].kind is Kind.NORMAL and packages["pysrc"].builds_wheel
    assert packages["sdist"].builds_wheel  # no script at all: the PEP 517 default
    assert packages["scripted"].kind is Kind.SCRIPT
    assert packages["meta"].kind is Kind.NONE


def test_quirks_no_trailing_newline_comments_and_extra_dependency_files(tmp_path):
    recipe = tmp_path / "pkgs" / "quirky"
    recipe.mkdir(parents=True)
    (recipe / "type").write_text("optional")  # no newline
    (recipe / "package-version.txt").write_text("1.2.3.p4")
    (recipe / "checksums.ini").write_text("# comment\ntarball=quirky-VERSION.tar.bz2\n\nsha256=" + "a" * 64)
    (recipe / "dependencies").write_text("$(PYTHON) a b # trailing comment | not order-only\n\nignored | line")
    (recipe / "dependencies_order_only").write_text("c\n")
    (recipe / "dependencies_optional").write_text("d e\n")
    (recipe / "dependencies_check").write_text("pytest\n")
    (recipe / "version_requirements.txt").write_text("# pinned\nquirky >=1.2\n")
    (recipe / "patches").mkdir()
    (recipe / "src").mkdir()
    (recipe / "spkg-check.in").write_text("make check\n")
    pkg = load_package(recipe)
    assert pkg.type == "optional" and pkg.version == "1.2.3.p4"
    assert pkg.tarball == "quirky-1.2.3.tar.bz2"
    assert pkg.dependencies.normal == ("$(PYTHON)", "a", "b")
    assert pkg.dependencies.order_only == () and pkg.dependencies.order_only_file == ("c",)
    assert pkg.dependencies.optional == ("d", "e")
    assert pkg.dependencies.check == ("pytest",)
    assert pkg.install_requires == ("quirky >=1.2",)
    assert pkg.distribution_name == "quirky"
    assert pkg.has_patches and pkg.has_src and "spkg-check" in pkg.scripts


def test_src_link_recipe(tmp_path):
    elsewhere = tmp_path / "source-tree"
    elsewhere.mkdir()
    recipe = tmp_path / "pkgs" / "linked"
    recipe.mkdir(parents=True)
    (recipe / "type").write_text("standard\n")
    (recipe / "spkg-install.in").write_text("cd src\n")
    os.symlink(elsewhere, recipe / "src")
    pkg = load_package(recipe)
    assert pkg.has_src and pkg.kind is Kind.SCRIPT


def test_only_directories_with_type_are_packages(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "type").write_text("standard\n")
    (tmp_path / "b" / "distros").mkdir(parents=True)
    (tmp_path / "c.txt").write_text("not a dir")
    assert [p.name for p in package_dirs(tmp_path)] == ["a"]


BAD = [
    ({"type": "bogus\n"}, "unknown type 'bogus'"),
    ({"type": "\n"}, "unknown type ''"),
    ({"type": "standard\n", "package-version.txt": "\n"}, "package-version.txt is empty"),
    ({"type": "standard\n", "package-version.txt": "1 0\n"}, "is not a valid version"),
    ({"type": "standard\n", "package-version.txt": "1.0\n", "checksums.ini": "tarball=x-VERSION.tar.gz\n"},
     "has no checksum"),
    ({"type": "standard\n", "package-version.txt": "1.0\n", "checksums.ini": "tarball=x.tar.gz\nsha256 abc\n"},
     "line 2: expected 'key=value'"),
    ({"type": "standard\n", "package-version.txt": "1.0\n", "checksums.ini": "tarball=x.tar.gz\nsha256=abc\n"},
     "is not a 64-digit hexadecimal sha256"),
    ({"type": "standard\n", "package-version.txt": "1.0\n", "checksums.ini": "tarball=x.tar.gz\nsha1=\n"},
     "'sha1=' has no value"),
    ({"type": "standard\n", "package-version.txt": "1.0\n", "checksums.ini": "sha256=" + "a" * 64 + "\n"},
     "without a 'tarball=' line"),
    ({"type": "standard\n", "checksums.ini": "tarball=x-VERSION.tar.gz\nsha256=" + "a" * 64 + "\n"},
     "package-version.txt is missing"),
    ({"type": "standard\n", "package-version.txt": "1.0\n",
      "checksums.ini": "tarball=../x-VERSION.whl\nsha256=" + "a" * 64 + "\n"},
     "tarball='../x-VERSION.whl' is not a plain file name"),
    ({"type": "standard\n", "package-version.txt": "..\n", "checksums.ini": "tarball=VERSION\nsha256=" + "a" * 64 + "\n"},
     "tarball='VERSION' is not a plain file name"),
    ({"type": "standard\n", "dependencies": "a | b | c\n"}, "more than one '|'"),
    ({"type": "standard\n", "dependencies": "a $(PY\n"}, "neither a package name nor a make variable"),
    ({"type": "standard\n", "requirements.txt": "# nothing\n"}, "lists no requirement"),
]


@pytest.mark.parametrize("files,message", BAD, ids=[m for _, m in BAD])
def test_malformed_recipes_name_file_and_problem(tmp_path, files, message):
    recipe = tmp_path / "broken"
    recipe.mkdir()
    for name, text in files.items():
        (recipe / name).write_text(text)
    with pytest.raises(RecipeError) as info:
        load_package(recipe)
    text = str(info.value)
    assert message in text
    assert str(recipe) in text  # names the file


def test_missing_type_file(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(RecipeError, match="type is missing"):
        load_package(tmp_path / "x")


def test_dependency_line_only_first_line_counts():
    assert parse_dependency_line("a b | c\nd e\n", "f") == (("a", "b"), ("c",))
    assert parse_dependency_line("", "f") == ((), ())
    assert parse_dependency_line("# none\n", "f") == ((), ())


def test_upstream_version_drops_only_a_final_patch_level():
    from sage_build.recipes.recipe import upstream_version_of

    assert upstream_version_of("1.2.3.p4") == "1.2.3"
    assert upstream_version_of("1.2.3.p12") == "1.2.3"
    for kept in ("1.2.3", "1.2.p", "1.2.3.post1", "2.p1x", "1.p2.3", "1.2.3p4"):
        assert upstream_version_of(kept) == kept
