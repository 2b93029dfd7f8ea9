"""Sage's rules of configure that tiny trees can show (#17 item 2): --enable-system-site-packages
runs SAGE_PYTHON_PACKAGE_CHECK as Sage runs it (a throw-away venv of the target Python with its
system site packages, the user's site made harmless, version_requirements.txt's range), a
package installed in the prefix stays built from source, ./sage -i builds a package the
system provides, configure ends with the command that installs the missing system packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, add_fake_distribution, add_recipe, fake_system_python, python_recipe

PY_CHECK = "SAGE_SPKG_CONFIGURE([{0}], [SAGE_PYTHON_PACKAGE_CHECK([{0}])])\n"
SHORT = f"python{sys.version_info.major}.{sys.version_info.minor}"


def py_check_recipe(tree, name: str, *requirements: str) -> None:
    add_recipe(tree.root, name, version="1.0", files={
        "spkg-configure.m4": PY_CHECK.format(name), "version_requirements.txt": "\n".join(requirements) + "\n",
        "spkg-install.in": "true\n"})


def config(tree) -> dict:
    return json.loads((tree.root / "build" / "make" / "config.json").read_text())


@pytest.fixture
def system(tmp_path, monkeypatch):
    """A "system" Python with sbsat 1.5, sbold 1.0 and sbnomod (metadata, no module); sbuser only
    in the user's site (PYTHONUSERBASE), which must not count."""
    python, site = fake_system_python(tmp_path / "system", {"sbsat": "1.5", "sbold": "1.0"})
    add_fake_distribution(site, "sbnomod", "1.0", module=False)
    user_base = tmp_path / "userbase"
    add_fake_distribution(user_base / "lib" / SHORT / "site-packages", "sbuser", "1.0")
    monkeypatch.setenv("PYTHONUSERBASE", str(user_base))
    monkeypatch.delenv("PYTHONNOUSERSITE", raising=False)
    # The fixture can catch a leak: a venv of this Python with system site packages, run as a
    # user runs it, does see the user's sbuser.
    venv = tmp_path / "plain-venv"
    subprocess.run([str(python), "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    seen = subprocess.run([str(venv / "bin" / "python3"), "-c", "import sbuser, sbsat"], capture_output=True, text=True)
    assert seen.returncode == 0, seen.stderr
    return python, site


def recipes(tree) -> None:
    py_check_recipe(tree, "sbsat", "sbsat >=1.0, <2")
    py_check_recipe(tree, "sbold", "sbold >=2")
    py_check_recipe(tree, "sbuser", "sbuser")
    py_check_recipe(tree, "sbnomod", "sbnomod")
    # the second line's marker does not hold: Sage skips it
    py_check_recipe(tree, "sbmark", "sbsat >=1", "sbnowhere ; python_version < '3'")
    py_check_recipe(tree, "sbbad", "sbsat >=>= 1")


def test_python_packages_come_from_the_system_only_with_the_option_in_range_and_importable(tree, system):
    python, _ = system
    recipes(tree)
    tree.configure(f"--with-python={python}")
    without = config(tree)
    assert without["from_system"] == [] and without["system_site_packages"] is False
    assert all(without["system_detection"][n][0] == "source" and "--enable-system-site-packages" in
               without["system_detection"][n][1] for n in ("sbsat", "sbold", "sbmark")), without["system_detection"]

    tree.configure(f"--with-python={python}", "--enable-system-site-packages")
    with_option = config(tree)
    detection = with_option["system_detection"]
    assert with_option["from_system"] == ["sbmark", "sbsat"], detection
    assert with_option["system_site_packages"] is True
    assert detection["sbsat"] == ["system", "sbsat 1.5"]
    assert "sbold 1.0 does not satisfy sbold>=2" in detection["sbold"][1]
    assert detection["sbuser"][0] == "source" and "sbuser is not installed" in detection["sbuser"][1]
    assert detection["sbnomod"][0] == "source" and "module sbnomod cannot be imported" in detection["sbnomod"][1]
    assert detection["sbbad"][0] == "source" and "version_requirements.txt: 'sbsat >=>= 1' is not a PEP 508" \
        in detection["sbbad"][1]
    makefile = (tree.root / "build" / "make" / "Makefile").read_text()
    assert "\ninst_sbsat := \n" in makefile and "\ninst_sbold := $(INST)/sbold-1.0\n" in makefile


def test_force_without_the_option_is_an_error_naming_the_package(tree, system):
    python, _ = system
    recipes(tree)
    result = tree.configure(f"--with-python={python}", "--with-system-sbsat=force", check=False)
    assert result.returncode == 1
    assert "sbsat: a Python package: configure without --enable-system-site-packages builds it" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_check_is_cached_until_the_system_site_packages_change(tree, system, monkeypatch):
    from sage_build.configure.configure import configure, decide

    python, site = system
    recipes(tree)
    argv = [f"--prefix={tree.prefix}", f"--with-python={python}", "--enable-system-site-packages"]
    first = configure(argv, tree.root)
    assert first.system["sbold"].status == "source"
    cache = (tree.root / "build" / "make" / "config.cache").read_text()
    assert "python site-packages" in cache
    again = decide(argv, tree.root)
    assert again.probe_cache is None   # nothing asked anew: no venv was made
    assert again.system["sbsat"].status == "system"
    # the system's sbold is upgraded: its site-packages directory changes, the check runs again
    (site / "sbold-1.0.dist-info" / "METADATA").unlink()
    (site / "sbold-1.0.dist-info" / "top_level.txt").unlink()
    (site / "sbold-1.0.dist-info").rmdir()
    add_fake_distribution(site, "sbold", "2.5")
    after = decide(argv, tree.root)
    assert after.probe_cache is not None
    assert after.system["sbold"].status == "system" and after.system["sbold"].reason == "sbold 2.5"


@pytest.mark.slow
def test_the_prefix_venv_sees_the_system_packages_it_takes(tree, system):
    python, _ = system
    py_check_recipe(tree, "sbsat", "sbsat >=1.0, <2")
    python_recipe(tree.root, "sbuses", "1.0", {"sbuses/__init__.py": "import sbsat\nVERSION = sbsat.__version__\n"},
                  deps="$(PYTHON) sbsat")
    # the venv is made first without the option, as a tree configured before would have it
    tree.configure(f"--with-python={python}")
    tree.make("python3-venv")
    assert "include-system-site-packages = false" in (tree.prefix / "pyvenv.cfg").read_text()
    for n in range(4):   # builds at once: each sets pyvenv.cfg's line, none may break the file
        python_recipe(tree.root, f"sbpar{n}", "1.0", {f"sbpar{n}/__init__.py": ""})
    tree.configure(f"--with-python={python}", "--enable-system-site-packages")
    tree.make("build", jobs=4)
    cfg = (tree.prefix / "pyvenv.cfg").read_text().splitlines()
    assert sum(line.startswith("include-system-site-packages") for line in cfg) == 1
    assert any(line.startswith("home = ") for line in cfg) and any(line.startswith("version") for line in cfg)
    assert not list((tree.prefix / "var/lib/sage/installed").glob("sbsat-*"))   # taken from the system
    assert "include-system-site-packages = true" in (tree.prefix / "pyvenv.cfg").read_text()
    result = tree.python("import sbuses; print(sbuses.VERSION)")
    assert result.stdout.strip() == "1.5", result.stderr


SEES_SH = "SAGE_SPKG_CONFIGURE([{0}], [AC_PATH_PROG([SBSH], [{1}])\nAS_IF([test -z \"$SBSH\"], [sage_spkg_install_{0}=yes])])\n"


def test_a_package_installed_in_the_prefix_stays_built_from_source(tree, tmp_path):
    from sage_build.configure.configure import decide

    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("sbkeep", "sbfresh"):
        python_recipe(tree.root, name, "1.0", {f"{name}/__init__.py": ""})
        (tree.root / "build/pkgs" / name / "spkg-configure.m4").write_text(SEES_SH.format(name, "sbkeeptool"))
    tree.configure()
    assert config(tree)["system_detection"]["sbkeep"][0] == "source"   # no sbkeeptool yet
    tree.make("sbkeep")
    assert tree.stamp("sbkeep", "1.0").exists()
    # the system gets the tool: sbfresh comes from it, sbkeep stays as sage-build installed it
    (tools / "sbkeeptool").write_text("#!/bin/sh\n")
    (tools / "sbkeeptool").chmod(0o755)
    env = dict(tree.env, PATH=f"{tools}{os.pathsep}{os.environ['PATH']}")
    result = decide([f"--prefix={tree.prefix}"], tree.root, environ=env)
    assert result.system["sbfresh"].status == "system" and result.decisions["sbfresh"].from_system
    assert result.system["sbkeep"].status == "installed" and not result.decisions["sbkeep"].from_system
    assert "it stays so" in result.decisions["sbkeep"].reason
    assert "\ninst_sbkeep := $(INST)/sbkeep-1.0\n" in result.makefile
    assert "sbkeep" not in result.need_system   # nothing to hint: it stays


def test_sage_i_builds_a_package_the_system_provides(tree):
    python_recipe(tree.root, "sbsys", "1.0", {"sbsys/__init__.py": "X = 1\n"})
    python_recipe(tree.root, "sbdep", "1.0", {"sbdep/__init__.py": ""}, deps="$(PYTHON) sbsys")
    (tree.root / "build/pkgs/sbsys/spkg-configure.m4").write_text(SEES_SH.format("sbsys", "sh"))
    tree.configure()
    assert config(tree)["from_system"] == ["sbsys"]
    assert "nothing to build" in tree.make("sbsys").stdout   # make alone takes it from the system
    assert not tree.stamp("sbsys", "1.0").exists()
    result = tree.sage("-i", "sbsys")
    assert "sbsys is taken from the system; building it from source as asked" in result.stdout
    assert tree.stamp("sbsys", "1.0").exists()
    assert tree.python("import sbsys; print(sbsys.X)").stdout.strip() == "1"
    assert not tree.stamp("sbdep", "1.0").exists()   # -i builds what it names, not its dependents
    # the next configure keeps it (Sage: installed by sage-build, it stays so)
    tree.configure()
    assert config(tree)["system_detection"]["sbsys"][0] == "installed" and config(tree)["from_system"] == []
    # ./sage -f of a package the system provides builds it too
    python_recipe(tree.root, "sbsys2", "1.0", {"sbsys2/__init__.py": ""})
    (tree.root / "build/pkgs/sbsys2/spkg-configure.m4").write_text(SEES_SH.format("sbsys2", "sh"))
    tree.configure()
    assert config(tree)["from_system"] == ["sbsys2"]
    tree.sage("-f", "sbsys2")
    assert tree.stamp("sbsys2", "1.0").exists()


HINT_MISSING = "SAGE_SPKG_CONFIGURE([{0}], [AC_PATH_PROG([SBT], [sbnope_{0}])\nAS_IF([test -z \"$SBT\"], [sage_spkg_install_{0}=yes])])\n"


def test_configure_ends_with_the_command_that_installs_the_missing_system_packages(tree, tmp_path):
    def recipe(name, m4, type_="standard"):
        add_recipe(tree.root, name, version="1.0", type_=type_, files={
            **({"spkg-configure.m4": m4} if m4 else {}), "spkg-install.in": "true\n",
            "distros/conda.txt": f"conda-{name}\n", "distros/debian.txt": f"lib{name}-dev\n"})

    recipe("sbmissing", HINT_MISSING.format("sbmissing"))          # could come from the system: hinted
    recipe("sbfound", SEES_SH.format("sbfound", "sh"))            # comes from the system
    recipe("sbnocheck", None)                                      # no spkg-configure.m4: always built
    recipe("sbno", HINT_MISSING.format("sbno"))                    # --without-system-sbno
    recipe("sbopt", HINT_MISSING.format("sbopt"), type_="optional")
    recipe("sbpython", PY_CHECK.format("sbpython"))                # no --enable-system-site-packages
    recipe("sbodd", "SAGE_SPKG_CONFIGURE([sbodd], [AC_RUN_IFELSE([x])])\n")   # not understood
    env = dict(tree.env, CONDA_PREFIX=str(tmp_path / "conda"))     # forces the package system: conda
    result = subprocess.run([sys.executable, str(ROOT / "configure.py"), f"--prefix={tree.prefix}", "--without-system-sbno"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "notice: the following SPKGs did not find equivalent system packages:\n  sbmissing sbopt\n" in out
    recommended = out.index("is recommended and may avoid having to build them")
    assert out[recommended:].splitlines()[1].strip() == "conda install conda-sbmissing"
    optional = out.index("may provide additional optional features")
    assert out[optional:].splitlines()[1].strip() == "conda install conda-sbopt"
    assert "make reconfigure" in out[optional:]
    for name in ("sbfound", "sbnocheck", "sbno", "sbpython", "sbodd"):
        assert f"conda-{name}" not in out, name


def test_set_system_site_packages_edits_only_its_line(tmp_path):
    from sage_build.install.target import set_system_site_packages

    assert set_system_site_packages(tmp_path / "missing", True) is False   # no venv: nothing written
    (tmp_path / "pyvenv.cfg").write_text("home = /x\ninclude-system-site-packages = false\nversion = 3.11.7\n")
    assert set_system_site_packages(tmp_path, True) is True
    assert (tmp_path / "pyvenv.cfg").read_text() == "home = /x\ninclude-system-site-packages = true\nversion = 3.11.7\n"
    assert set_system_site_packages(tmp_path, True) is False                # already so: untouched
    (tmp_path / "pyvenv.cfg").write_text("home = /x")                       # no such line, no newline
    assert set_system_site_packages(tmp_path, False) is True
    assert (tmp_path / "pyvenv.cfg").read_text() == "home = /x\ninclude-system-site-packages = false\n"


def test_a_python_that_cannot_make_a_venv_builds_every_python_package_and_says_why(tree, system, tmp_path):
    python, _ = system
    wrapper = tmp_path / "novenv" / "python3"
    wrapper.parent.mkdir()
    # answers everything but `-m venv`, as a distribution's python3 without its venv package
    wrapper.write_text(f'#!/bin/sh\ncase " $* " in *" venv "*) echo "No module named venv" >&2; exit 1;; esac\n'
                       f'exec {python} "$@"\n')
    wrapper.chmod(0o755)
    recipes(tree)
    result = tree.configure(f"--with-python={wrapper}", "--enable-system-site-packages", check=False)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    detection = config(tree)["system_detection"]
    assert config(tree)["from_system"] == []
    assert detection["sbsat"][0] == "source" and "cannot make a venv with" in detection["sbsat"][1] \
        and "No module named venv" in detection["sbsat"][1], detection["sbsat"]


def test_with_python_a_bare_name_is_found_on_path(tree, system, monkeypatch):
    python, _ = system
    monkeypatch.setenv("PATH", f"{python.parent}{os.pathsep}{os.environ['PATH']}")
    py_check_recipe(tree, "sbsat", "sbsat >=1.0, <2")
    tree.configure("--with-python=python3", "--enable-system-site-packages")
    assert config(tree)["python"] == str(python)   # what makes the prefix's venv, not ./python3
    assert config(tree)["from_system"] == ["sbsat"]


def test_make_pkg_from_source_through_the_top_level_makefile_is_planned(tree):
    run = tree.top_level()
    python_recipe(tree.root, "sbsys", "1.0", {"sbsys/__init__.py": ""})
    (tree.root / "build/pkgs/sbsys/spkg-configure.m4").write_text(SEES_SH.format("sbsys", "sh"))
    tree.configure()
    result = run("sbsys-from-source")
    assert result.returncode == 0, result.stderr
    # the progress display counts it: the venv and sbsys, 2 of 2
    assert "sbsys-1.0: built in" in result.stdout and "(2/2)" in result.stdout, result.stdout
    assert tree.stamp("sbsys", "1.0").exists()


def test_the_check_finds_modules_without_running_them(tree, system, tmp_path):
    python, site = system
    ran = tmp_path / "it-ran"
    add_fake_distribution(site, "sbevil", "1.0", module=False)
    (site / "sbevil-1.0.dist-info" / "top_level.txt").write_text("sbevil.sub\n")   # a dotted name, hostile
    (site / "sbevil").mkdir()
    (site / "sbevil" / "__init__.py").write_text(f"open({str(ran)!r}, 'w').write('imported')\n")
    py_check_recipe(tree, "sbevil", "sbevil ==1.0")
    tree.configure(f"--with-python={python}", "--enable-system-site-packages")
    assert config(tree)["from_system"] == ["sbevil"]
    assert not ran.exists()   # found, never imported
