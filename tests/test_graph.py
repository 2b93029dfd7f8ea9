"""The dependency graph: make variables, unknown packages, cycles, order."""

from __future__ import annotations

import pytest

from conftest import add_recipe
from sage_build.base.errors import RecipeError
from sage_build.recipes.graph import PYTHON_PSEUDO, Graph, load_graph
from sage_build.recipes.recipe import Kind, load_packages


def _graph(root):
    return Graph.build(load_packages(root / "build" / "pkgs"))


def _wheel_recipe(root, name, deps="$(PYTHON)"):
    wheel = root / f"{name}-1.0-py3-none-any.whl"
    wheel.write_bytes(b"w")
    add_recipe(root, name, version="1.0", tarball=wheel, deps=deps)


def test_variables_expand(tmp_path):
    _wheel_recipe(tmp_path, "setuptools")
    _wheel_recipe(tmp_path, "wheel", deps="$(PYTHON) | $(PYTHON_TOOLCHAIN)")
    add_recipe(tmp_path, "gmp")
    add_recipe(tmp_path, "app", deps="$(PYTHON) $(MP_LIBRARY) $(BLAS) | $(PYTHON_TOOLCHAIN)")
    graph = _graph(tmp_path)
    assert graph.toolchain == ("setuptools", "wheel")
    assert graph.dependencies("app") == ([PYTHON_PSEUDO, "gmp"], ["setuptools", "wheel"])
    # a toolchain member does not depend on the toolchain: no cycle among build backends
    assert graph.dependencies("wheel") == ([PYTHON_PSEUDO], [])


def test_unknown_variable_is_a_warning(tmp_path):
    add_recipe(tmp_path, "app", deps="$(PYTHON) $(SAGE_MAXIMA)")
    graph = _graph(tmp_path)
    assert any("$(SAGE_MAXIMA)" in w for w in graph.warnings)


def test_unknown_dependency_names_both(tmp_path):
    add_recipe(tmp_path, "app", deps="$(PYTHON) ghost")
    with pytest.raises(RecipeError) as info:
        _graph(tmp_path)
    assert "package 'app'" in str(info.value) and "'ghost'" in str(info.value)
    assert "dependencies" in str(info.value)


def test_cycle_is_printed_as_a_path(tmp_path):
    add_recipe(tmp_path, "a", deps="b")
    add_recipe(tmp_path, "b", deps="c")
    add_recipe(tmp_path, "c", deps="| a")
    add_recipe(tmp_path, "d", deps="a")
    with pytest.raises(RecipeError) as info:
        _graph(tmp_path)
    assert "dependency cycle: a -> b -> c -> a" in str(info.value)


def test_self_dependency_is_a_cycle(tmp_path):
    add_recipe(tmp_path, "a", deps="a")
    with pytest.raises(RecipeError, match="a -> a"):
        _graph(tmp_path)


def test_topological_order_and_closure(tmp_path):
    add_recipe(tmp_path, "base")
    add_recipe(tmp_path, "mid", deps="base")
    add_recipe(tmp_path, "top", deps="mid | base")
    add_recipe(tmp_path, "other")
    graph = _graph(tmp_path)
    order = graph.topological_order(["top", "other", "base", "mid"])
    assert order.index("base") < order.index("mid") < order.index("top")
    assert graph.closure(["top"]) == {"top", "mid", "base"}
    assert graph.dependents("base") == {"mid", "top"}


# -- #16: Sage's dependency rules, the distribution's make variables, every token, every bad recipe ----

def _sdist_recipe(root, name, deps=None, **files):
    """A Python recipe built from an sdist (a distribution name, a non-wheel tarball)."""
    tarball = root / f"{name}-1.0.tar.gz"
    tarball.write_bytes(b"s")
    recipe = add_recipe(root, name, version="1.0", tarball=tarball, deps=deps or "",
                        files={"version_requirements.txt": f"{name}\n", **files})
    if deps is None:
        (recipe / "dependencies").unlink()
    return recipe


def test_make_variables_come_from_the_trees_makefile_in(tmp_path):
    for name in ("setuptools", "pip", "flit_core"):
        _wheel_recipe(tmp_path, name)
    for name in ("sagelib", "ipython", "pexpect", "openblas", "gmp"):
        add_recipe(tmp_path, name)
    add_recipe(tmp_path, "app", deps="$(SAGERUNTIME) $(BLAS) $(PCFILES) $(SCRIPTS) | $(PYTHON_TOOLCHAIN)")
    (tmp_path / "build" / "make").mkdir(parents=True)
    (tmp_path / "build" / "make" / "Makefile.in").write_text(
        "PCFILES = @SAGE_SYSTEM_FACADE_PC_FILES@\nBLAS = openblas\n"
        "ifeq ($(X),y)\nPYTHON_TOOLCHAIN = flit_core\nendif\n"
        "PYTHON_TOOLCHAIN = setuptools \\\n\tpip\n"
        "SAGERUNTIME = sagelib $(inst_ipython) $(inst_pexpect)\n"
        "define templ\nBLAS = gmp\nendef\n"
        "all:\n\tBLAS = gmp\n")
    graph = load_graph(tmp_path / "build" / "pkgs")
    assert graph.toolchain == ("setuptools", "pip")
    # $(SCRIPTS), which the tree does not define, is make's to expand (as in Sage's Makefile)
    assert graph.dependencies("app") == (["sagelib", "ipython", "pexpect", "openblas", "$(SCRIPTS)"],
                                         ["setuptools", "pip"])
    assert graph.warnings == []


def test_make_variables_from_our_file_without_makefile_in(tmp_path):
    _wheel_recipe(tmp_path, "flit_core")
    _wheel_recipe(tmp_path, "setuptools")
    add_recipe(tmp_path, "app", deps="| $(PYTHON_TOOLCHAIN)")
    (tmp_path / "build" / "variables.mk").write_text("# ours\nPYTHON_TOOLCHAIN = flit_core\n")
    graph = load_graph(tmp_path / "build" / "pkgs")
    assert graph.dependencies("app") == ([], ["flit_core"])


def test_sage_default_dependencies_of_python_recipes(tmp_path):
    """build/sage_bootstrap/package.py: every Python recipe gets order-only $(PYTHON) plus pip (a
    wheel) or $(PYTHON_TOOLCHAIN) (the rest), also without a dependencies file; pip gets neither."""
    _wheel_recipe(tmp_path, "pip", deps="")
    (tmp_path / "build/pkgs/pip/version_requirements.txt").write_text("pip\n")
    _wheel_recipe(tmp_path, "setuptools", deps="")
    (tmp_path / "build/pkgs/setuptools/version_requirements.txt").write_text("setuptools\n")
    _sdist_recipe(tmp_path, "sdist")
    add_recipe(tmp_path, "zlib", deps="")
    graph = _graph(tmp_path)
    assert graph.dependencies("pip") == ([], [PYTHON_PSEUDO])
    assert graph.dependencies("setuptools") == ([], [PYTHON_PSEUDO, "pip"])
    assert graph.dependencies("sdist") == ([], [PYTHON_PSEUDO, "setuptools"])
    assert graph.dependencies("zlib") == ([], [])


def test_dependencies_build_replaces_the_build_dependencies(tmp_path):
    for name in ("a", "b", "c", "d", "e"):
        add_recipe(tmp_path, name, deps="")
    recipe = _sdist_recipe(tmp_path, "pkg", deps="a | b", dependencies_build="c | d",
                           dependencies_order_only="e")
    assert recipe.is_dir()
    graph = _graph(tmp_path)
    # runtime a, build c (not a's line), order-only d (not b) + e + $(PYTHON)
    assert graph.dependencies("pkg") == (["a", "c"], ["d", PYTHON_PSEUDO, "e"])


def test_pyproject_toml_m4_lists(tmp_path):
    for name in ("sage_conf", "cython", "numpy", "pytest", "meson"):
        add_recipe(tmp_path, name, deps="")
    (tmp_path / "build/pkgs/numpy/version_requirements.txt").write_text("numpy\n")
    _sdist_recipe(tmp_path, "sagemath_x", deps="", **{
        "src/pyproject.toml.m4": "[build-system]\nrequires = [\n    SPKG_INSTALL_REQUIRES_sage_conf\n"
                                  "    SPKG_INSTALL_REQUIRES_cython\n]\n[project]\ndependencies = [\n"
                                  '    "numpy",\n]\n[project.optional-dependencies]\ntest = [\n'
                                  '    "pkg:generic/pytest",\n]\n',
        "src/MANIFEST.in": "include *\n"})
    graph = _graph(tmp_path)
    normal, order_only = graph.dependencies("sagemath_x")
    assert normal == ["numpy", "$(SAGE_ROOT)/build/pkgs/sagemath_x/src/pyproject.toml",
                      "$(SAGE_ROOT)/build/pkgs/sagemath_x/src/MANIFEST.in", "cython"]
    assert order_only == [PYTHON_PSEUDO, "sage_conf"]   # sage_bootstrap's ORDER_ONLY_PACKAGES
    assert graph.check_dependencies("sagemath_x") == ["pytest"]


def test_every_sage_token_keeps_its_meaning(tmp_path):
    add_recipe(tmp_path, "isl", deps="")
    add_recipe(tmp_path, "xz", deps="", version="5.2")
    add_recipe(tmp_path, "pytest", deps="")
    add_recipe(tmp_path, "gcc", deps="$(findstring isl,$(SAGE_BUILT_PACKAGES)) ../sage_conf/src/setup.py"
                                       " $(SAGE_ROOT)/pkgs/x/*.py FORCE"
                                       " | $(SAGE_LOCAL)/$(SPKG_INST_RELDIR)/xz-$(vers_xz) $(if $(filter yes,$(X)),isl xz)",
               files={"dependencies_check": "pytest\n"})
    graph = _graph(tmp_path)
    assert graph.dependencies("gcc") == (
        ["$(findstring isl,$(SAGE_BUILT_PACKAGES))", "../sage_conf/src/setup.py", "$(SAGE_ROOT)/pkgs/x/*.py", "FORCE"],
        ["$(SAGE_LOCAL)/$(SPKG_INST_RELDIR)/xz-$(vers_xz)", "$(if $(filter yes,$(X)),isl xz)"])
    assert graph.check_dependencies("gcc") == ["pytest"]


@pytest.mark.parametrize("line, message", [
    ("$(PYTHON) ok $(broken", "'$(broken' is neither a package name nor a make variable"),
    ("a:b", "'a:b' is neither"),
    ("x;y", "'x;y' is neither"),
    ("$X", "'$X' is neither"),
    ("a=b", "'a=b' is neither"),
])
def test_malformed_tokens_are_errors_naming_file_and_line(tmp_path, line, message):
    add_recipe(tmp_path, "app", deps=line)
    with pytest.raises(RecipeError) as info:
        _graph(tmp_path)
    assert message in str(info.value) and "app/dependencies, line 1" in str(info.value)


def test_every_broken_recipe_is_reported_in_one_run(tmp_path):
    add_recipe(tmp_path, "good")
    add_recipe(tmp_path, "bad1", deps="a:b")
    add_recipe(tmp_path, "bad2", files={"checksums.ini": "nonsense\n"})
    add_recipe(tmp_path, "bad3", deps="ghost")
    add_recipe(tmp_path, "opt", type_="optional", deps="x;y")
    with pytest.raises(RecipeError) as info:
        load_graph(tmp_path / "build" / "pkgs")
    text = str(info.value)
    assert "4 recipes cannot be used" in text
    assert "bad1/dependencies, line 1" in text and "bad2/checksums.ini, line 1" in text
    assert "package 'bad3'" in text and "'ghost'" in text and "opt/dependencies, line 1" in text


def test_a_broken_optional_recipe_is_left_out_with_a_warning(tmp_path):
    add_recipe(tmp_path, "good")
    add_recipe(tmp_path, "opt", type_="optional", deps="x;y")
    add_recipe(tmp_path, "user", type_="experimental", deps="opt")   # left out with it
    warnings: list[str] = []
    graph = load_graph(tmp_path / "build" / "pkgs", warnings)
    assert sorted(graph.packages) == ["good"]
    assert any("opt/dependencies, line 1" in w and "left out" in w for w in warnings), warnings
    assert any("package 'user'" in w and "cannot be used (see 'opt')" in w for w in warnings), warnings


def test_a_standard_recipe_needing_a_broken_optional_one_fails(tmp_path):
    add_recipe(tmp_path, "opt", type_="optional", deps="x;y")
    add_recipe(tmp_path, "std", deps="opt")
    with pytest.raises(RecipeError) as info:
        load_graph(tmp_path / "build" / "pkgs")
    assert "package 'std'" in str(info.value) and "cannot be used (see 'opt')" in str(info.value)


def test_checksums_ini_sections(tmp_path):
    recipe = add_recipe(tmp_path, "pythran", version="0.18", files={
        "checksums.ini": "[pythran-0.18-py3-none-any.whl]\ntarball=pythran-0.18-py3-none-any.whl\nsha256="
                         + "a" * 64 + "\n\n[other.whl]\ntarball=other.whl\nsha256=" + "b" * 64 + "\n"})
    from sage_build.recipes.recipe import load_package
    pkg = load_package(recipe)
    assert pkg.kind is Kind.WHEEL and pkg.tarball == "pythran-0.18-py3-none-any.whl"


def test_a_makefile_in_without_python_toolchain_keeps_our_default(tmp_path):
    # An older or trimmed tree's Makefile.in that defines other variables but not PYTHON_TOOLCHAIN:
    # the toolchain falls back to the wheel recipes present (it was a KeyError in configure).
    _wheel_recipe(tmp_path, "setuptools")
    add_recipe(tmp_path, "app", deps="| $(PYTHON_TOOLCHAIN)")
    (tmp_path / "build" / "make").mkdir(parents=True)
    (tmp_path / "build" / "make" / "Makefile.in").write_text("BLAS = openblas\n")
    graph = load_graph(tmp_path / "build" / "pkgs")
    assert graph.toolchain == ("setuptools",)
    assert graph.dependencies("app") == ([], ["setuptools"])


def test_a_remembered_graph_is_read_again_whenever_the_recipes_change(tmp_path):
    """A session's worker keeps a tree's graph for the binary cache's keys (#19); any change to what
    load_graph reads must be seen: an edit of the same size, a new file, a new recipe, a file behind
    a link, the make variables."""
    import os
    import time

    from sage_build.recipes.graph import load_graph_remembered

    root = tmp_path / "tree"
    pkgs = root / "build" / "pkgs"
    add_recipe(root, "alpha", version="1.0", deps="")
    add_recipe(root, "beta", version="1.0", deps="alpha")
    outside = tmp_path / "shared-patch"
    outside.write_text("one\n")
    (pkgs / "beta" / "patches").mkdir()
    os.symlink(outside, pkgs / "beta" / "patches" / "fix.patch")
    first = load_graph_remembered(pkgs)
    assert load_graph_remembered(pkgs) is first  # unchanged: no read

    def changed(edit) -> None:
        before = load_graph_remembered(pkgs)
        time.sleep(0.02)  # the kernel's timestamps are coarse (jiffies): make could not tell either
        edit()
        after = load_graph_remembered(pkgs)
        assert after is not before
        assert load_graph_remembered(pkgs) is after

    version = pkgs / "alpha" / "package-version.txt"
    changed(lambda: version.write_text("2.0\n"))  # same size as "1.0\n"
    assert load_graph_remembered(pkgs).packages["alpha"].version == "2.0"
    changed(lambda: (pkgs / "alpha" / "spkg-check").write_text("true\n"))
    changed(lambda: add_recipe(root, "gamma", version="1.0", deps="beta"))
    assert "gamma" in load_graph_remembered(pkgs).packages
    hash_before = load_graph_remembered(pkgs).packages["beta"].content_hash
    changed(lambda: outside.write_text("two\n"))
    assert load_graph_remembered(pkgs).packages["beta"].content_hash != hash_before
    changed(lambda: (root / "build" / "variables.mk").write_text("BLAS = openblas\n"))
    changed(lambda: (pkgs / "gamma" / "type").unlink())
    assert "gamma" not in load_graph_remembered(pkgs).packages
