"""install/target.py, in process: which wheels fit the target (the fast path against packaging's answer)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.tags import sys_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion

from sage_build.base.errors import BuildError
from sage_build.install.target import _SIMPLE_WHEEL_NAME, TargetPython

TAGS = [str(t) for t in sys_tags()]
TARGET = TargetPython(executable="/p/bin/python3", version="3.11.7", version_info=[3, 11, 7],
                      implementation="cpython", prefix="/p", base_prefix="/usr", paths={}, tags=TAGS, markers={})


def packaging_answer(filename: str) -> bool | str:
    """What supports_wheel answered before issue #19: packaging's parse, or its error."""
    try:
        _, _, _, tags = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion):
        return "invalid"
    return any(str(tag) in set(TAGS) for tag in tags)


def our_answer(filename: str) -> bool | str:
    try:
        return TARGET.supports_wheel(filename)
    except BuildError as error:
        assert filename in str(error) and "not a valid wheel file name" in str(error)
        return "invalid"


NAMES = [
    "six-1.17.0-py2.py3-none-any.whl", "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    "psutil-7.2.2-cp36-abi3-manylinux2010_x86_64.manylinux_2_12_x86_64.manylinux_2_28_x86_64.whl",
    "numpy-2.4.6-cp312-cp312-manylinux_2_28_x86_64.whl", "x-1.0-cp311-cp311-win_amd64.whl",
    "X-1.0-PY3-NONE-ANY.whl", "x-1.0-1-py3-none-any.whl", "x-1.0-1abc-py3-none-any.whl", "x-1.0-abc-py3-none-any.whl",
    "x-1.0rc1.post2.dev3-py3-none-any.whl", "x-1.0+local-py3-none-any.whl", "x-1!2.0-py3-none-any.whl",
    "x-notaversion-py3-none-any.whl", "a__b-1.0-py3-none-any.whl", "a-b-1.0-py3-none-any.whl", "x-1.0.whl",
    "x-1.0-py3-none-any.zip", "x-1.0-py3-none-any", "-1.0-py3-none-any.whl", "x--py3-none-any.whl",
    "x-1.0-py3-none-.whl", "x-1.0-py3..-none-any.whl", "é-1.0-py3-none-any.whl", "x-1.0-py3-none-any.whl\n",
    "x-1.0-1-2-py3-none-any.whl", "x-01.00-py3-none-any.whl", "x-1.0-py3-none-any.linux_x86_64.whl",
]


@pytest.mark.parametrize("filename", NAMES)
def test_supports_wheel_answers_as_packaging(filename):
    assert our_answer(filename) == packaging_answer(filename)


def test_the_fast_path_takes_the_usual_names():
    assert _SIMPLE_WHEEL_NAME.fullmatch(NAMES[0]) and _SIMPLE_WHEEL_NAME.fullmatch(NAMES[1])
    assert our_answer(NAMES[0]) is True and our_answer(NAMES[3]) is False


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["x", "X", "_", "__", ".", "-", "1", "0", "rc", "post", "dev", "+", "!",
                                 "py3", "cp311", "none", "abi3", "any", "linux_x86_64", "é", " "]),
                max_size=14).map(lambda parts: "".join(parts) + ".whl"))
def test_supports_wheel_answers_as_packaging_on_generated_names(filename):
    assert our_answer(filename) == packaging_answer(filename)


def test_canonical_name_follows_packaging_rule():
    from packaging.utils import canonicalize_name

    from sage_build.install.target import canonical_name

    for name in ("Foo", "foo_bar", "foo.bar", "Foo-._Bar", "zope.interface", "ruamel.yaml.clib", "A__B--C..D", "x"):
        assert canonical_name(name) == canonicalize_name(name), name


def test_dist_infos_lists_each_site_once_and_skips_what_is_not_a_dist_info(tmp_path):
    from sage_build.install.target import dist_infos

    first, second = tmp_path / "a", tmp_path / "b"
    for site, names in ((first, ("Foo_Bar-1.0.dist-info", "six-1.17.0.dist-info", "nodash.dist-info",
                                  "six-1.17.0.data", "pkg")), (second, ("zope.interface-6.0.dist-info",))):
        for name in names:
            (site / name).mkdir(parents=True)
    (first / "stray-2.0.dist-info.txt").write_text("")
    missing = tmp_path / "not-made-yet"
    found = list(dist_infos([first, missing, second, first]))
    assert found == [(first, "Foo_Bar", "1.0"), (first, "six", "1.17.0"), (second, "zope.interface", "6.0")]


def test_installed_distributions_and_foreign_ones_read_the_same_listing(tmp_path):
    from sage_build.install.uninstall import foreign_distributions
    from sage_build.pipeline.build import installed_distributions

    site = tmp_path / "site-packages"
    for name, installer in (("Foo_Bar-1.0", "pip"), ("six-1.17.0", "sage-build"), ("half-2.0", None)):
        (site / f"{name}.dist-info").mkdir(parents=True)
        if installer:
            (site / f"{name}.dist-info" / "INSTALLER").write_text(installer + "\n")
    assert installed_distributions(tmp_path / "no-python", [site]) == {"foo-bar": "1.0", "six": "1.17.0", "half": "2.0"}
    foreign = foreign_distributions([site], "foo.bar")
    assert [(d.name, d.version, d.installer, d.dist_info) for d in foreign] == [
        ("Foo_Bar", "1.0", "pip", site / "Foo_Bar-1.0.dist-info")]
    assert foreign_distributions([site], "six") == [] and foreign_distributions([site], "half") == []
