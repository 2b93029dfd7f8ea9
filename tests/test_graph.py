"""The dependency graph: make variables, unknown packages, cycles, order."""

from __future__ import annotations

import pytest

from conftest import add_recipe
from sage_build.base.errors import RecipeError
from sage_build.recipes.graph import PYTHON_PSEUDO, Graph
from sage_build.recipes.recipe import load_packages


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
