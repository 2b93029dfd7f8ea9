"""Fixtures of what building passagemath's Python recipes needed (#18): a checksums.ini with a
wheel per platform (clarabel, cylp, rpds_py...), Sage's meta packages that install nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from packaging.tags import sys_tags

from conftest import add_recipe, make_sdist, make_wheel, sha256
from sage_build.base.errors import RecipeError
from sage_build.recipes.recipe import load_package

# tags as packaging.tags.sys_tags orders them (most preferred first)
LINUX = ["cp311-cp311-manylinux_2_17_x86_64", "cp311-abi3-manylinux_2_17_x86_64", "cp39-abi3-manylinux_2_17_x86_64",
         "py3-none-manylinux_2_17_x86_64", "py3-none-any"]
MAC = ["cp312-cp312-macosx_11_0_arm64", "cp312-abi3-macosx_11_0_arm64", "py3-none-any"]


def sectioned(recipe: Path, files: dict[str, str]) -> None:
    """A checksums.ini of sections, one per file name (value: its sha256), in the order given."""
    text = "".join(f"[{name}]\ntarball={name}\nsha256={digest}\nupstream_url=https://example.invalid/{name}\n\n"
                   for name, digest in files.items())
    (recipe / "checksums.ini").write_text(text)


def platform_recipe(root: Path, names: list[str]) -> Path:
    recipe = add_recipe(root, "rpds_py", version="2.0", install_requires="rpds-py")
    sectioned(recipe, {name: f"{n:064x}" for n, name in enumerate(names, start=1)})
    return recipe


WHEELS = ["rpds_py-2.0-cp311-cp311-macosx_10_12_x86_64.whl",
          "rpds_py-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
          "rpds_py-2.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
          "rpds_py-2.0-cp312-cp312-macosx_11_0_arm64.whl",
          "rpds_py-2.0-cp311-cp311-win_amd64.whl"]


def test_the_wheel_this_platform_supports_best_is_chosen(tmp_path):
    pkg = load_package(platform_recipe(tmp_path, WHEELS))
    assert pkg.tarball == WHEELS[0]          # before a choice: the first section, as sage_bootstrap
    linux = pkg.for_target(LINUX)
    # the exact cp311 wheel ranks above the abi3 one, which the target also supports
    assert linux.tarball == WHEELS[1]
    assert linux.checksums == {"sha256": f"{2:064x}"}
    assert linux.upstream_url == f"https://example.invalid/{WHEELS[1]}"
    assert pkg.for_target(LINUX[2:]).tarball == WHEELS[2]
    assert pkg.for_target(MAC).tarball == WHEELS[3]


def test_no_fitting_wheel_falls_back_to_the_sdist_section(tmp_path):
    recipe = platform_recipe(tmp_path, WHEELS[3:] + ["rpds_py-2.0.tar.gz"])
    chosen = load_package(recipe).for_target(LINUX)
    assert chosen.tarball == "rpds_py-2.0.tar.gz"
    assert chosen.kind.value == "normal"     # built from the sdist


def test_no_fitting_wheel_and_no_sdist_names_the_recipe(tmp_path):
    pkg = load_package(platform_recipe(tmp_path, WHEELS[3:]))
    with pytest.raises(RecipeError) as error:
        pkg.for_target(LINUX)
    message = str(error.value)
    assert "'rpds_py'" in message and "checksums.ini" in message and "cp311-cp311-manylinux_2_17_x86_64" in message
    assert "sdist" in message


@pytest.mark.parametrize("text, expected", [
    ("[a-1.0-py3-none-any.whl]\nsha256=" + "0" * 64 + "\n[b-1.0-py3-none-any.whl]\ntarball=b-1.0-py3-none-any.whl\n"
     "sha256=" + "0" * 64 + "\n", "without a 'tarball=' line"),
    ("[a-1.0-py3-none-any.whl]\ntarball=a-1.0-py3-none-any.whl\nsha256=" + "0" * 64 + "\n"
     "[b.whl]\ntarball=../b.whl\nsha256=" + "0" * 64 + "\n", "not a plain file name"),
    ("[a-1.0-py3-none-any.whl]\ntarball=a-1.0-py3-none-any.whl\nsha256=" + "0" * 64 + "\n"
     "[b-1.0-py3-none-any.whl]\ntarball=b-1.0-py3-none-any.whl\nsha256=xyz\n", "64-digit"),
    ("[a-1.0-py3-none-any.whl]\ntarball=a-1.0-py3-none-any.whl\nsha256=" + "0" * 64 + "\n"
     "[b-1.0-py3-none-any.whl]\ntarball=b-1.0-py3-none-any.whl\n", "no checksum"),
])
def test_every_section_is_checked_with_its_name(tmp_path, text, expected):
    recipe = add_recipe(tmp_path, "a", version="1.0")
    (recipe / "checksums.ini").write_text(text)
    with pytest.raises(RecipeError) as error:
        load_package(recipe)
    assert expected in str(error.value) and "checksums.ini [" in str(error.value)


def test_a_bad_wheel_name_in_a_section_is_a_recipe_error(tmp_path):
    recipe = platform_recipe(tmp_path, ["rpds_py-2.0-cp311.whl", WHEELS[1]])
    with pytest.raises(RecipeError, match="not a valid wheel file name"):
        load_package(recipe).for_target(LINUX)


def _this_platform_wheel(directory: Path, name: str, version: str, body: str) -> Path:
    """A wheel whose file name carries this interpreter's most specific platform tag."""
    tag = next(t for t in sys_tags() if t.platform != "any")
    wheel = make_wheel(directory / "made", name, version, {f"{name}/__init__.py": body.encode()})
    target = directory / f"{name}-{version}-py3-none-{tag.platform}.whl"
    shutil.move(wheel, target)
    return target


def test_make_installs_this_platforms_wheel_not_the_first_section(tree):
    upstream = tree.root / "upstream"
    mine = _this_platform_wheel(upstream, "plat", "1.0", "WHERE = 'here'\n")
    other = make_wheel(upstream / "made", "plat", "1.0", {"plat/__init__.py": b"WHERE = 'mac'\n"})
    mac = upstream / "plat-1.0-py3-none-macosx_11_0_arm64.whl"
    shutil.move(other, mac)
    recipe = add_recipe(tree.root, "plat", version="1.0", install_requires="plat")
    sectioned(recipe, {mac.name: sha256(mac), mine.name: sha256(mine)})
    tree.configure()
    tree.make("build")
    assert tree.python("import plat; print(plat.WHERE)").stdout.strip() == "here"
    assert (tree.prefix / "var/lib/sage/wheels" / mine.name).is_file()


def test_make_builds_the_sdist_section_when_no_wheel_fits(tree):
    upstream = tree.root / "upstream"
    sdist = make_sdist(upstream, "plat", "1.0", {"plat/__init__.py": "WHERE = 'sdist'\n"})
    mac = make_wheel(upstream / "made", "plat", "1.0", {"plat/__init__.py": b"WHERE = 'mac'\n"})
    shutil.move(mac, upstream / "plat-1.0-py3-none-macosx_11_0_arm64.whl")
    mac = upstream / "plat-1.0-py3-none-macosx_11_0_arm64.whl"
    recipe = add_recipe(tree.root, "plat", version="1.0", install_requires="plat")
    sectioned(recipe, {mac.name: sha256(mac), sdist.name: sha256(sdist)})
    tree.configure()
    tree.make("build")
    assert tree.python("import plat; print(plat.WHERE)").stdout.strip() == "sdist"


def test_make_without_a_fitting_file_fails_naming_the_recipe(tree):
    upstream = tree.root / "upstream"
    mac = make_wheel(upstream / "made", "plat", "1.0", {"plat/__init__.py": b"WHERE = 'mac'\n"})
    shutil.move(mac, upstream / "plat-1.0-py3-none-macosx_11_0_arm64.whl")
    mac = upstream / "plat-1.0-py3-none-macosx_11_0_arm64.whl"
    recipe = add_recipe(tree.root, "plat", version="1.0", install_requires="plat")
    sectioned(recipe, {mac.name: sha256(mac)} | {"plat-1.0-py3-none-win_amd64.whl": "0" * 64})
    tree.configure()
    result = tree.make("build", check=False)
    assert result.returncode != 0
    assert "package 'plat': none of the 2 wheels" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not tree.stamp("plat", "1.0").exists()


def test_a_meta_package_without_a_version_may_install_nothing(tree):
    """Sage's _bootstrap, _recommended...: no package-version.txt, spkg-install 'Nothing to do'."""
    add_recipe(tree.root, "_meta", deps="$(PYTHON)", files={"spkg-install": "#! /usr/bin/env bash\n# Nothing to do\n"})
    (tree.root / "build/pkgs/_meta/spkg-install").chmod(0o755)
    add_recipe(tree.root, "lazy", version="1.0", deps="| _meta", files={"spkg-install.in": "echo did nothing\n"})
    tree.configure()
    tree.make("_meta")
    assert tree.stamp("_meta", "none").exists()
    # a recipe with a version that installs nothing is still an error (test_pipeline has the full case)
    result = tree.make("lazy", check=False)
    assert result.returncode != 0 and "installed nothing" in result.stderr


def test_recipes_can_call_sage_bootstrap_python(tree):
    """appnope's and openblas's spkg-install ask Sage's sage-bootstrap-python small questions;
    it is a Python from outside the prefix."""
    add_recipe(tree.root, "probe", version="1.0", files={"spkg-install.in": (
        'where=$(sage-bootstrap-python -c "import sys; print(sys.prefix)")\n'
        'test "$where" != "$SAGE_LOCAL" || exit 3\n'
        'sage-bootstrap-python -c "import sys; sys.exit(0 if sys.platform == \'nowhere\' else 1)" && exit 4\n'
        'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share" && echo "$where" > "$SAGE_DESTDIR$SAGE_LOCAL/share/probe"\n')})
    tree.configure()
    tree.make("probe")
    assert (tree.prefix / "share/probe").read_text().strip() not in ("", str(tree.prefix))


def test_scripts_see_sages_wheel_defaults(tree):
    """passagemath's sagemath_* spkg-install builds only when SAGE_WHEELS=yes (Sage's configure
    default, exported by its sage-build-env); SAGE_EDITABLE defaults to no."""
    add_recipe(tree.root, "wheely", version="1.0", files={"spkg-install.in": (
        'if [ "$SAGE_WHEELS" = yes ] && [ "$SAGE_EDITABLE" = no ]; then\n'
        '  mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share" && echo built > "$SAGE_DESTDIR$SAGE_LOCAL/share/wheely"\n'
        'fi\n')})
    tree.configure()
    tree.make("wheely")
    assert (tree.prefix / "share/wheely").read_text() == "built\n"


def test_a_python_recipe_whose_spkg_install_skips_this_platform_is_installed_empty(tree):
    """Sage's appnope: 'Only install this package on OS X'; ipykernel depends on it everywhere."""
    sdist = make_sdist(tree.root / "upstream", "maconly", "1.0", {"maconly/__init__.py": ""})
    add_recipe(tree.root, "maconly", version="1.0", tarball=sdist, install_requires="maconly",
               files={"spkg-install.in": 'cd src\nif [ "$(uname)" = Nowhere ]; then sdh_pip_install .; '
                                         'else echo "skipping"; fi\n'})
    add_recipe(tree.root, "user", version="1.0", deps="maconly", files={"spkg-install.in": (
        'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share" && echo ok > "$SAGE_DESTDIR$SAGE_LOCAL/share/user"\n')})
    tree.configure()
    tree.make("user")
    assert tree.stamp("maconly", "1.0").exists() and (tree.prefix / "share/user").is_file()
    assert tree.python("import maconly").returncode != 0


def test_a_python_recipe_that_stages_files_but_no_wheel_still_fails(tree):
    # installed empty only when nothing at all was made: files without a wheel are a broken build
    sdist = make_sdist(tree.root / "upstream", "half", "1.0", {"half/__init__.py": ""})
    add_recipe(tree.root, "half", version="1.0", tarball=sdist, install_requires="half",
               files={"spkg-install.in": 'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share"; echo x > "$SAGE_DESTDIR$SAGE_LOCAL/share/half"\n'})
    tree.configure()
    result = tree.make("half", check=False)
    assert result.returncode != 0 and "produced no wheel" in result.stderr
    assert not tree.stamp("half", "1.0").exists()


def test_a_script_recipes_src_links_out_of_it_still_lead_there_in_the_build(tree):
    """passagemath: build/pkgs/sagemath_environment/src -> ../../../pkgs/sagemath-environment, whose
    sage -> ../../src/sage; copied as they are, such links dangle in the build directory."""
    library = tree.root / "src" / "sage"
    library.mkdir(parents=True)
    (library / "env.py").write_text("X = 1\n")
    dist = tree.root / "pkgs" / "sagemath-environment"
    (dist / "inner").mkdir(parents=True)
    (dist / "sage").symlink_to("../../src/sage")
    (dist / "inner" / "own").write_text("own\n")
    (dist / "inner" / "near").symlink_to("own")              # stays inside: kept relative
    add_recipe(tree.root, "sagemath_environment", version="1.0", files={"spkg-install.in": (
        'cd src && test -f sage/env.py && test "$(readlink inner/near)" = own || exit 7\n'
        'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share" && cat sage/env.py > "$SAGE_DESTDIR$SAGE_LOCAL/share/env"\n')})
    (tree.root / "build/pkgs/sagemath_environment/src").symlink_to("../../../pkgs/sagemath-environment")
    tree.configure()
    tree.make("sagemath_environment")
    assert (tree.prefix / "share/env").read_text() == "X = 1\n"
    assert (dist / "sage").readlink() == Path("../../src/sage")   # the tree is left as it was


def test_download_fetches_the_section_the_build_chooses(tree):
    """#18: `make download` / `./sage --package download` took the first section of a sectioned
    checksums.ini (a macOS wheel), not this platform's, which the build then fetched again."""
    upstream = tree.root / "upstream"
    mine = _this_platform_wheel(upstream, "plat", "1.0", "WHERE = 'here'\n")
    mac_name = "plat-1.0-py3-none-macosx_11_0_arm64.whl"   # listed first, nowhere to be had
    recipe = add_recipe(tree.root, "plat", version="1.0", install_requires="plat")
    sectioned(recipe, {mac_name: "1" * 64, mine.name: sha256(mine)})
    tree.configure()
    result = tree.sage("--package", "download", "plat", check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"plat: {mine}"
    assert not (upstream / mac_name).exists()
    # a section that no platform here fits is still a clear error naming the recipe
    sectioned(recipe, {mac_name: "1" * 64, "plat-1.0-py3-none-win_amd64.whl": "2" * 64})
    result = tree.sage("--package", "download", "plat", check=False)
    assert result.returncode == 1 and "plat" in result.stderr and "fits the target Python" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_normal_recipes_files_are_beside_its_spkg_install(tree):
    """#18: passagemath's matplotlib runs `python3 make-setup-config.py`, a file of its recipe:
    Sage copies the recipe directory into the build directory (cp -RLp), sage-build did not, and
    the build failed ("can't open file .../make-setup-config.py")."""
    upstream = tree.root / "upstream"
    sdist = make_sdist(upstream, "helped", "1.0", {"helped/__init__.py": "CONFIG = open(__file__[:-11] + 'setup.cfg').read().strip()\n"})
    recipe = add_recipe(tree.root, "helped", version="1.0", tarball=sdist, install_requires="helped",
                        files={"make-setup-config.py": "open('src/pkg/helped/setup.cfg', 'w').write('written by the recipe')\n",
                               "data/more.txt": "a file in a directory of the recipe\n",
                               "spkg-install.in": "python3 make-setup-config.py\ntest -f data/more.txt\ncd src\nsdh_pip_install .\n"})
    (recipe / "linked.py").symlink_to(recipe / "make-setup-config.py")   # cp -L: copied as a file
    tree.configure()
    tree.make("helped")
    assert tree.python("import helped; print(helped.CONFIG)").stdout.strip() == "written by the recipe"
    # a link in the recipe that leads nowhere is a clear error naming it
    (recipe / "linked.py").unlink()
    (recipe / "linked.py").symlink_to(recipe / "sbnope-missing.py")
    result = tree.sage("-f", "helped", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "linked.py" in output and "cannot copy it" in output
    assert "Traceback" not in output


def test_sdh_pip_install_hands_config_settings_to_the_backend(tree):
    """#18: passagemath's matplotlib runs `sdh_pip_install -C setup-args=-Dsystem-freetype=true ...`
    (use the system's freetype and qhull): the settings were dropped, and meson went to download
    freetype. pip's forms: `-C K=V`, `-CK=V`, `--config-settings K=V`, `--config-settings=K=V`;
    a key given twice is a list, as pip gives it."""
    upstream = tree.root / "upstream"
    sdist = make_sdist(upstream, "configured", "1.0", {"configured/__init__.py": ""})
    add_recipe(tree.root, "configured", version="1.0", tarball=sdist, install_requires="configured", files={
        "spkg-install.in": "cd src\nsdh_pip_install --no-build-isolation -C setup-args=\"-Dsystem-freetype=true\""
                           " -Csetup-args=-Dsystem-qhull=true --config-settings other=1 --config-settings=dashed=-x .\n"})
    tree.configure()
    tree.make("configured")
    found = tree.python("import json, sysconfig, pathlib; print((pathlib.Path(sysconfig.get_paths()['purelib'])"
                        " / 'tiny_config_settings_configured.json').read_text())").stdout
    assert json.loads(found) == {"setup-args": ["-Dsystem-freetype=true", "-Dsystem-qhull=true"], "other": "1",
                                 "dashed": "-x"}
