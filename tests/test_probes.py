"""configure.probes: real header/library/pkg-config/program checks, cached; force failures together."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import GFORTRAN_FILE

from sage_build.base.errors import ConfigureError
from sage_build.configure.probes import Probes, expand, run_check, shell_test
from sage_build.recipes.spkg_configure_m4 import Check, Step, read_check

needs_cc = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")


def run(body, probes, built=lambda d: False):
    check = read_check(f"SAGE_SPKG_CONFIGURE([foo], [{body}])", "foo")
    assert check.understood, check.not_understood
    return run_check(check, probes, dependency_built=built, python_check=lambda p: (False, "no site packages"))


@needs_cc
def test_a_header_the_test_writes_is_found_and_a_missing_one_is_not(tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc/sbfoo.h").write_text("int sbfoo;\n")
    probes = Probes({**os.environ, "CPPFLAGS": f"-I{tmp_path / 'inc'}"})
    assert not run("AC_CHECK_HEADER([sbfoo.h], [], [sage_spkg_install_foo=yes])", probes).install
    assert run("AC_CHECK_HEADER([sbnope_missing.h], [], [sage_spkg_install_foo=yes])", probes).install


@needs_cc
def test_library_links_or_not():
    probes = Probes(dict(os.environ))
    assert not run("AC_SEARCH_LIBS([cos], [m], [], [sage_spkg_install_foo=yes])", probes).install
    assert run("AC_CHECK_LIB([sbnope_missing], [f], [], [sage_spkg_install_foo=yes])", probes).install


def test_pkg_config(tmp_path):
    if shutil.which("pkg-config") is None:
        pytest.skip("pkg-config is not installed")
    (tmp_path / "sbfoo.pc").write_text("Name: sbfoo\nDescription: x\nVersion: 1.4.2\n")
    probes = Probes({**os.environ, "PKG_CONFIG_PATH": str(tmp_path)})
    ok = "PKG_CHECK_MODULES([FOO], [sbfoo >= 1.4 sbfoo < 2], [], [sage_spkg_install_foo=yes])"
    assert not run(ok, probes).install
    assert run("PKG_CHECK_MODULES([FOO], [sbfoo >= 1.5], [], [sage_spkg_install_foo=yes])", probes).install


def test_program_with_version(tmp_path):
    tool = tmp_path / "sbtool"
    tool.write_text("#!/bin/sh\necho 'sbtool version 2.5.1'\n")
    tool.chmod(0o755)
    probes = Probes({**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    body = """AC_PATH_PROGS_FEATURE_CHECK([T], [sbtool], [
        v=`$ac_path_T --version 2>&1 | $SED -n p`
        AX_COMPARE_VERSION([$v], [ge], [{}], [ac_cv_path_T="$ac_path_T"
            ac_path_T_found=:])])
        AS_IF([test -z "$ac_cv_path_T"], [sage_spkg_install_foo=yes])"""
    assert not run(body.format("2.0"), probes).install
    assert run(body.format("3.0"), probes).install
    assert run("AC_PATH_PROG([X], [sbnope_missing])\nAS_IF([test x$X = x], [sage_spkg_install_foo=yes])", probes).install


def test_depcheck_builds_when_a_dependency_is_built():
    probes = Probes(dict(os.environ))
    assert run("SAGE_SPKG_DEPCHECK([gmp], [])", probes, built=lambda d: True).install
    assert not run("SAGE_SPKG_DEPCHECK([gmp], [])", probes, built=lambda d: False).install


@needs_cc
def test_the_cache_answers_a_second_run(tmp_path):
    cache = tmp_path / "config.cache"
    first = Probes(dict(os.environ), cache)
    run("AC_CHECK_HEADER([stdio.h], [], [sage_spkg_install_foo=yes])", first)
    assert first.asked == 1
    first.save()
    second = Probes(dict(os.environ), cache)
    assert not run("AC_CHECK_HEADER([stdio.h], [], [sage_spkg_install_foo=yes])", second).install
    assert second.asked == 0 and second.cache_text() is None
    assert Probes({**os.environ, "CC": "other-cc"}, cache).answers == {}   # another compiler asks again


def test_force_failures_are_listed_together_and_not_understood_builds(tmp_path):
    from conftest import add_recipe

    from sage_build.base.errors import ConfigureError
    from sage_build.configure.configure import decide

    miss = "SAGE_SPKG_CONFIGURE([{0}], [AC_PATH_PROG([P], [sbnope_{0}])\nAS_IF([test x$P = x], [sage_spkg_install_{0}=yes])])\n"
    for name in ("sbone", "sbtwo"):
        add_recipe(tmp_path, name, deps="", files={"spkg-configure.m4": miss.format(name)})
    add_recipe(tmp_path, "sbodd", deps="", files={"spkg-configure.m4": "SAGE_SPKG_CONFIGURE([sbodd], [AC_RUN_IFELSE([x])])\n"})
    result = decide([], tmp_path, environ=dict(os.environ))
    assert result.system["sbodd"].status == "not understood" and not result.decisions["sbodd"].from_system
    assert result.system["sbone"].status == "source"
    with pytest.raises(ConfigureError) as error:
        decide(["--with-system-sbone=force", "--with-system-sbtwo=force"], tmp_path, environ=dict(os.environ))
    assert "sbone: no sbnope_sbone on PATH" in str(error.value) and "sbtwo: no sbnope_sbtwo on PATH" in str(error.value)


def test_force_takes_a_not_understood_package_from_the_system_unchecked(tmp_path):
    """passagemath's gcc, xz, openssl: the system has them, the reader cannot run their checks;
    --with-system-X=force is the user's word (with yes, it is still built)."""
    from conftest import add_recipe

    from sage_build.configure.configure import decide

    add_recipe(tmp_path, "sbodd", deps="", files={"spkg-configure.m4": "SAGE_SPKG_CONFIGURE([sbodd], [AC_RUN_IFELSE([x])])\n"})
    dep = "SAGE_SPKG_CONFIGURE([sbuser], [SAGE_SPKG_DEPCHECK([sbodd], [])])\n"
    add_recipe(tmp_path, "sbuser", deps="sbodd", files={"spkg-configure.m4": dep})
    result = decide(["--with-system-sbodd=force"], tmp_path, environ=dict(os.environ))
    assert result.system["sbodd"].status == "system" and result.decisions["sbodd"].from_system
    assert "not understood" in result.system["sbodd"].reason and "AC_RUN_IFELSE" in result.system["sbodd"].reason
    assert result.system["sbuser"].status == "system"     # its DEPCHECK sees sbodd from the system
    kept = decide(["--with-system-sbodd=yes"], tmp_path, environ=dict(os.environ))
    assert kept.system["sbodd"].status == "not understood" and not kept.decisions["sbodd"].from_system
    assert kept.system["sbuser"].status == "source"


def test_properties_say_what_spkg_configure_decided_and_why(tree):
    import json
    import subprocess
    import sys

    from conftest import ROOT, add_recipe

    add_recipe(tree.root, "sbhas", deps="", files={"spkg-configure.m4": "SAGE_SPKG_CONFIGURE([sbhas], [AC_PATH_PROG([SH], [sh])\n"
                                                       "AS_IF([test x$SH = x], [sage_spkg_install_sbhas=yes])])\n"})
    add_recipe(tree.root, "sbodd", deps="", files={"spkg-configure.m4": "SAGE_SPKG_CONFIGURE([sbodd], [AC_RUN_IFELSE([x])])\n"})
    add_recipe(tree.root, "plain", deps="")
    tree.configure()
    result = subprocess.run([sys.executable, str(ROOT / "sage"), "--package", "properties", "--format", "json",
                             "sbhas", "sbodd", "plain"], env=tree.env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    props = json.loads(result.stdout)
    assert props["sbhas"]["system_detection"]["status"] == "system"
    assert props["sbodd"]["system_detection"]["status"] == "not understood"
    assert "AC_RUN_IFELSE" in props["sbodd"]["system_detection"]["why"]
    assert props["plain"]["system_detection"] is None   # no spkg-configure.m4: built from source


def test_shell_test_and_expansion_follow_the_shell():
    get = {"E": "", "S": "a b", "X": "no"}.get
    word = lambda *parts: tuple(parts)  # noqa: E731
    assert expand(word((False, "var", "E")), get) == []                           # $E: no field
    assert expand(word((True, "var", "E")), get) == [""]                           # "$E": one empty field
    assert expand(word((False, "lit", "x"), (False, "var", "S")), get) == ["xa", "b"]
    assert shell_test(["-n"]) and not shell_test([]) and not shell_test(["=", "no"])   # `test -n $E` is true
    assert shell_test(["xno", "=", "xno"]) and shell_test(["!", "-z", "a"]) and not shell_test(["!", "a", "=", "a"])
    assert shell_test(["x", "!=", "x", "-o", "a", "=", "a"]) and not shell_test(["a", "-a", "", "-o", ""])


def test_shell_if_with_another_packages_decision_and_compound_tests():
    probes = Probes(dict(os.environ))
    body = """AC_REQUIRE([SAGE_SPKG_CONFIGURE_BAR])
        if test x$sage_spkg_install_bar = xyes; then
            sage_spkg_install_foo=yes
        else
            A=no
            AS_IF([test "x$A" = xno -a -n "$A" && ! test x$B != x], [B=set])
            AS_IF([test x$B = xset || test x = y], [], [sage_spkg_install_foo=yes])
        fi"""
    assert run(body, probes, built=lambda d: d == "bar").install
    assert not run(body, probes, built=lambda d: False).install
    assert run(body.replace("A=no", "A=yes"), probes).install


@needs_cc
def test_compile_and_link_programs_with_the_checks_flags(tmp_path):
    (tmp_path / "sbfoo.h").write_text("#define SBFOO_VERSION 3\n")
    probes = Probes({**os.environ, "CPPFLAGS": f"-I{tmp_path}"})
    body = """AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[#include <sbfoo.h>
        #if SBFOO_VERSION < {}
        # error too old
        #endif]], [])], [], [sage_spkg_install_foo=yes])"""
    assert not run(body.format(3), probes).install
    assert run(body.format(4), probes).install
    link = "AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <math.h>]], [[return (int) cos(argc);]])], [], [sage_spkg_install_foo=yes])"
    link = link.replace("argc", "0.5 * (double) SBFOO_VERSION").replace("<math.h>", "<math.h>\n#include <sbfoo.h>")
    assert not run('SAVE="$LIBS"\nLIBS="$LIBS -lm"\n' + link + '\nLIBS="$SAVE"', probes).install
    assert run('CPPFLAGS="-I/sbnope"\n' + link, probes).install   # the check's own CPPFLAGS: no sbfoo.h


def run_full(text, probes, **kwargs):
    """A whole spkg-configure.m4 (its REQUIRED-CHECK too), run."""
    check = read_check(text, "foo")
    assert check.understood, check.not_understood
    kwargs.setdefault("dependency_built", lambda d: False)
    return run_check(check, probes, python_check=lambda p: (False, "no site packages"), **kwargs)


@pytest.mark.parametrize("host, required", [("x86_64-pc-linux-gnu", True), ("aarch64-apple-darwin23.1.0", True),
                                            ("x86_64-unknown-freebsd14.0", False)])
def test_required_check_as_case_on_host_and_spkg_require(host, required):
    probes = Probes(dict(os.environ))
    probes.host = lambda: host   # type: ignore[method-assign]
    libuuid_form = """SAGE_SPKG_CONFIGURE([foo], [sage_spkg_install_foo=yes], [dnl REQUIRED-CHECK
      AS_CASE([$host],
        [*-*-linux*|*-*-darwin*], [],
        [AS_VAR_SET([SPKG_REQUIRE], [no])])
    ])"""
    outcome = run_full(libuuid_form, probes)
    assert outcome.install == required
    assert ("not required on this system (its REQUIRED-CHECK)" in outcome.notes) != required
    # appnope's form: not required unless on macOS; the REQUIRED-CHECK runs with --with-system-foo=no too
    appnope_form = """SAGE_SPKG_CONFIGURE([foo], [SAGE_PYTHON_PACKAGE_CHECK([foo])], [
      sage_require_foo=no
      AS_CASE([$host], [*-*-darwin*], [sage_require_foo=yes])])"""
    assert run_full(appnope_form, probes, use_system=False).install == ("darwin" in host)


def test_a_command_condition_runs_the_program_configure_found(tmp_path):
    import sys

    probes = Probes(dict(os.environ))
    importlib_form = """SAGE_SPKG_CONFIGURE([foo], [sage_spkg_install_foo=yes], [
      AS_IF([test -z "${PYTHON_FOR_VENV}"], [sage_require_foo="no"], [
        AS_IF(["${PYTHON_FOR_VENV}" -c "import sys; sys.exit(sys.version_info.minor < MINOR)" 2>& AS_MESSAGE_LOG_FD],
              [sage_require_foo="no"])])])"""
    here = sys.version_info.minor
    for minor, required in ((here, False), (here + 1, True)):
        outcome = run_full(importlib_form.replace("MINOR", str(minor)), probes, context={"PYTHON_FOR_VENV": lambda: sys.executable})
        assert outcome.install == required, outcome.notes
    assert not run_full(importlib_form, probes, context={"PYTHON_FOR_VENV": lambda: ""}).install   # our Python SPKG: not required
    # a literal command is not run (only a program configure found)
    assert not read_check("SAGE_SPKG_CONFIGURE([foo], [AS_IF([grep -q x /etc/passwd], [A=1])])", "foo").understood


def test_feature_check_with_a_chain_of_and(tmp_path):
    for name, status in (("sbgit", 0), ("sbbroken", 1)):
        tool = tmp_path / name
        tool.write_text(f"#!/bin/sh\necho {name} 2.0\nexit {status}\n")
        tool.chmod(0o755)
    probes = Probes({**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    git_form = """AC_CACHE_CHECK([for git], [ac_cv_path_GIT], [
                AC_PATH_PROGS_FEATURE_CHECK([GIT], [TOOL],
                [${ac_path_GIT} --version >/dev/null 2>/dev/null &&
                      ac_cv_path_GIT=${ac_path_GIT} &&
                      ac_path_GIT_found=:
                ],
                [sage_spkg_install_foo=yes; ac_cv_path_GIT=no])])"""
    assert not run(git_form.replace("TOOL", "sbgit"), probes).install
    assert run(git_form.replace("TOOL", "sbbroken"), probes).install
    assert run(git_form.replace("TOOL", "sbnope_missing"), probes).install


def test_path_prog_keeps_the_path_in_ac_cv_path(tmp_path):
    tool = tmp_path / "sbconvert"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    probes = Probes({**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    imagemagick_form = """AC_PATH_PROG([CONVERT], [TOOL])
       AS_IF([test -z "$ac_cv_path_CONVERT"], [sage_spkg_install_foo=yes])"""
    assert not run(imagemagick_form.replace("TOOL", "sbconvert"), probes).install
    assert run(imagemagick_form.replace("TOOL", "sbnope_missing"), probes).install


def test_pkg_config_variable_is_the_program_configure_found(tmp_path):
    pkgconf_form = "AS_IF([test -z \"$PKG_CONFIG\"], [sage_spkg_install_foo=yes])"
    (tmp_path / "pkg-config").write_text("#!/bin/sh\n")
    (tmp_path / "pkg-config").chmod(0o755)
    assert not run(pkgconf_form, Probes({**os.environ, "PATH": str(tmp_path)})).install
    assert run(pkgconf_form, Probes({**os.environ, "PATH": str(tmp_path / "empty")})).install


@needs_cc
def test_run_a_program_and_its_exit_status():
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler")
    probes = Probes(dict(os.environ))
    sqlite_form = """m4_pushdef([MIN_MAJOR], [3])
      m4_pushdef([MIN], [MIN_MAJOR.1])
      AC_MSG_CHECKING([foo >= ]MIN)
      AC_RUN_IFELSE([
        AC_LANG_PROGRAM([[#include <stdlib.h>]], [[
          if (VALUE < ]]MIN_MAJOR[[) exit(1); else exit(0);
        ]])],
        [AC_MSG_RESULT([yes])],
        [sage_spkg_install_foo=yes],
        [AC_MSG_RESULT([cross compiling. assume yes])])
      m4_popdef([MIN])"""
    assert not run(sqlite_form.replace("VALUE", "3"), probes).install
    assert run(sqlite_form.replace("VALUE", "2"), probes).install            # runs, exits 1
    assert run(sqlite_form.replace("VALUE", "sbnope"), probes).install       # does not build


@needs_cc
def test_am_iconv_finds_the_c_librarys_iconv():
    import platform

    if platform.system() != "Linux":
        pytest.skip("glibc's iconv")
    iconv_form = """AM_ICONV
    if test x"$am_cv_func_iconv" != xyes; then
       sage_spkg_install_foo=yes
    fi"""
    assert not run(iconv_form, Probes(dict(os.environ))).install
    assert run(iconv_form, Probes({**os.environ, "CPPFLAGS": "-DICONV_NOPE", "CXX": "sbnope-c++"})).install


@needs_cc
def test_gcc_stand_in_asks_both_compilers():
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler")
    gcc_file = """AC_DEFUN([SAGE_MUST_INSTALL_GCC], [sage_spkg_install_gcc=yes])
SAGE_SPKG_CONFIGURE_BASE([gcc], [
    AX_COMPILER_VENDOR()
    AX_CXX_COMPILE_STDCXX_17([], optional)
], , , [CRTI=`$CC -print-file-name=crti.o`])"""
    check = read_check(gcc_file, "gcc")
    assert check.understood and [s.probe.lang for s in check.steps] == ["C++", "C"]
    version = subprocess_version()
    keep = lambda probes: run_check(check, probes, dependency_built=lambda d: False,  # noqa: E731
                                    python_check=lambda p: (False, "")).install
    assert keep(Probes(dict(os.environ))) == (not version_in_range(version)), version
    assert keep(Probes({**os.environ, "CPPFLAGS": "-U__GNUC__"}))   # not a GNU-compatible compiler
    assert not read_check(gcc_file.replace("[gcc]", "[gcc2]"), "gcc2").understood   # only gcc's own file


def subprocess_version() -> tuple[int, int, bool]:
    import subprocess

    out = subprocess.run([os.environ.get("CC", "cc"), "-dM", "-E", "-"], input="", capture_output=True, text=True).stdout
    macros = dict(line.split()[1:3] for line in out.splitlines() if len(line.split()) >= 3)
    return int(macros.get("__GNUC__", 0)), int(macros.get("__GNUC_MINOR__", 0)), "__clang__" in out


def version_in_range(version: tuple[int, int, bool]) -> bool:
    major, minor, clang = version
    return major > 0 and (clang or (10, 3) <= (major, minor) < (17, 0))


def test_a_package_its_required_check_finds_not_required_is_not_built(tmp_path):
    from conftest import add_recipe

    from sage_build.configure.configure import decide

    not_needed = """SAGE_SPKG_CONFIGURE([sbback], [SAGE_PYTHON_PACKAGE_CHECK([sbback])],
        [AS_CASE([$host], [*-*-sbnope*], [], [AS_VAR_SET([SPKG_REQUIRE], [no])])])\n"""
    add_recipe(tmp_path, "sbdep", deps="")
    add_recipe(tmp_path, "sbback", deps="sbdep", files={"spkg-configure.m4": not_needed},
               install_requires="sbback >= 1")
    add_recipe(tmp_path, "sbneeded", deps="", install_requires="sbneeded >= 1",
               files={"spkg-configure.m4": not_needed.replace("sbback", "sbneeded").replace("*-*-sbnope*", "*")})
    result = decide([], tmp_path, environ=dict(os.environ))
    # without --enable-system-site-packages a Python package is built, unless it is not needed at all;
    # its dependency sbdep (built from source) does not change that: its file decides, as in Sage
    assert result.system["sbback"].status == "system" and result.decisions["sbback"].from_system
    assert "not required" in result.system["sbback"].reason
    assert result.system["sbneeded"].status == "source" and not result.decisions["sbneeded"].from_system


def test_python3_stand_in_asks_the_python_configure_uses(tmp_path):
    import sys

    here = sys.version_info[:2]
    python3_file = """SAGE_SPKG_CONFIGURE([python3], [
   m4_pushdef([MIN_VERSION],               [{low}])
   m4_pushdef([LT_VERSION],                [{high}])
   SAGE_CHECK_PYTHON_FOR_VENV([$ac_path_PYTHON3], MIN_VERSION, LT_VERSION, $check_modules, [])])"""
    inside = python3_file.format(low=f"{here[0]}.{here[1]}.0", high=f"{here[0]}.{here[1] + 1}.0")
    above = python3_file.format(low=f"{here[0]}.{here[1] + 1}.0", high=f"{here[0]}.{here[1] + 2}.0")
    probes = Probes(dict(os.environ))

    def install(text, python):
        check = read_check(text, "python3")
        assert check.understood
        return run_check(check, probes, dependency_built=lambda d: False, python_check=lambda p: (False, ""),
                         context={"SAGE_PYTHON_CANDIDATE": lambda: python}).install
    assert not install(inside, sys.executable)
    assert install(above, sys.executable)                 # too old for the tree
    assert install(inside, str(tmp_path / "sbnope-python"))   # no such program


def test_a_statement_not_understood_matters_only_when_the_check_reaches_it():
    probes = Probes(dict(os.environ))
    rpy2_form = """SAGE_SPKG_CONFIGURE([foo], [SAGE_PYTHON_PACKAGE_CHECK([foo])], [
      m4_pushdef([MINVER], ["3.5"])
      PKG_CHECK_MODULES([R], [RMOD >= MINVER], [
        AC_PATH_PROG([R_EXECUTABLE], [R])
        R_VERSION=$($R_EXECUTABLE --version | sed -n 's/^R version \\([[0-9.]]*\\).*/\\1/p')
        AS_VAR_SET([SPKG_REQUIRE], [yes])
      ], [AS_VAR_SET([SPKG_REQUIRE], [no])])])"""
    check = read_check(rpy2_form.replace("RMOD", "sbnope-libR"), "foo")
    assert check.runnable and not check.understood and "R_VERSION" in check.unknown[0]
    outcome = run_check(check, probes, dependency_built=lambda d: False, python_check=lambda p: (False, ""))
    assert not outcome.install and not outcome.not_understood   # no libR: not required, the unknown line not reached
    if shutil.which("pkg-config") is None:
        pytest.skip("pkg-config is not installed")
    reached = read_check(rpy2_form.replace("RMOD", "sbr").replace('"3.5"', "0"), "foo")
    env = os.environ.get("PKG_CONFIG_PATH", "")
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "sbr.pc"), "w") as pc:
            pc.write("Name: sbr\nDescription: x\nVersion: 4.1\n")
        probes = Probes({**os.environ, "PKG_CONFIG_PATH": f"{tmp}:{env}"})
        outcome = run_check(reached, probes, dependency_built=lambda d: False, python_check=lambda p: (False, ""))
    assert outcome.install and "R_VERSION" in outcome.not_understood


def test_macros_of_the_trees_m4_and_of_the_file(tmp_path):
    """SAGE_CHECK_PARI_DEP (the tree's m4/), a macro the file AC_DEFUNs with m4_foreach (nauty's
    form), nested m4_foreach with []-joined names (palp's form)."""
    from sage_build.recipes.spkg_configure_m4 import load_check

    (tmp_path / "m4").mkdir()
    (tmp_path / "m4/sage_check_pari_dep.m4").write_text("""AC_DEFUN([SAGE_CHECK_PARI_DEP],[
    AC_REQUIRE([SAGE_SPKG_CONFIGURE_PARI])
    if test x$sage_spkg_install_pari = xyes; then
        AC_MSG_RESULT([yes; install $1 as well])
        [sage_spkg_install_]$1=yes
    fi
])
""")
    recipe = tmp_path / "build/pkgs/pari_galdata"
    recipe.mkdir(parents=True)
    (recipe / "spkg-configure.m4").write_text("SAGE_SPKG_CONFIGURE([pari_galdata], [\n SAGE_CHECK_PARI_DEP([pari_galdata])\n])\n")
    check = load_check(recipe, "pari_galdata")
    assert check.understood and check.requires == ("pari",), check.unknown
    probes = Probes(dict(os.environ))
    for pari_built in (True, False):
        outcome = run_check(check, probes, dependency_built=lambda d: d == "pari" and pari_built, python_check=lambda p: (False, ""))
        assert outcome.install == pari_built
    assert not load_check(recipe, "pari_galdata") is None
    (tmp_path / "m4/sage_check_pari_dep.m4").write_text("dnl gone\n")   # the tree changed: read again
    assert not load_check(recipe, "pari_galdata").understood

    for name in ("sbgeng", "sbnau-sbgentreeg", "sbnau-sbgeng"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    nauty_form = """AC_DEFUN([SB_TEST_PROGS], [
    m4_foreach([nautyprog], [sbgeng, sbgentreeg], [
      AC_PATH_PROG([$2]nautyprog, [[$1]nautyprog])
      AS_IF([test x$[$2]nautyprog = x], [sage_spkg_install_foo=yes])
    ])
])
SAGE_SPKG_CONFIGURE([foo], [
  AC_PATH_PROG([GENGCHECK],[sbgeng])
  AS_IF([test x$GENGCHECK = x], [SB_TEST_PROGS(sbnau-,nau)], [SB_TEST_PROGS(,foo)])])"""
    check = read_check(nauty_form, "foo")
    assert check.understood, check.unknown
    probes = Probes({**os.environ, "PATH": str(tmp_path)})
    outcome = run_check(check, probes, dependency_built=lambda d: False, python_check=lambda p: (False, ""))
    assert outcome.install and "no sbgentreeg on PATH" in outcome.notes   # sbgeng found: the unprefixed ones
    (tmp_path / "sbgeng").unlink()
    outcome = run_check(check, Probes({**os.environ, "PATH": str(tmp_path)}), dependency_built=lambda d: False,
                        python_check=lambda p: (False, ""))
    assert not outcome.install, outcome.notes   # no sbgeng: the sbnau- ones, both there

    palp_form = """m4_foreach([palpprog], [[sbpoly], [sbclass]], [
       m4_foreach([suff], [4, 11], [
           AC_PATH_PROG(PALP[]palpprog[]suff, [palpprog[-]suff[d.x]])
           AS_IF([test "x$PALP[]palpprog[]suff" = "x"], [sage_spkg_install_foo=yes])
       ])])"""
    check = read_check(f"SAGE_SPKG_CONFIGURE([foo], [{palp_form}])", "foo")
    assert check.understood, check.unknown
    names = [s.probe.subject for s in check.steps if s.op == "probe"]
    assert names == ["sbpoly-4d.x", "sbpoly-11d.x", "sbclass-4d.x", "sbclass-11d.x"]
    assert [s.probe.var for s in check.steps if s.op == "probe"][0] == "PALPsbpoly4"


def test_file_tests_as_var_if_and_options_not_given(tmp_path):
    (tmp_path / "tex-chtml.js").write_text("x")
    (tmp_path / "empty").write_text("")
    probes = Probes(dict(os.environ))
    mathjax_form = 'AS_IF([test -f "DIR/tex-chtml.js"], [], [sage_spkg_install_foo=yes])'
    assert not run(mathjax_form.replace("DIR", str(tmp_path)), probes).install
    assert run(mathjax_form.replace("DIR", str(tmp_path / "nope")), probes).install
    assert shell_test(["-d", str(tmp_path)]) and not shell_test(["-f", str(tmp_path)]) and not shell_test(["-s", str(tmp_path / "empty")])
    assert not shell_test(["-e", ""]) and not shell_test(["-r", str(tmp_path / "nope")])
    debugpy_form = """SAGE_SPKG_CONFIGURE([foo], [sage_spkg_install_foo=yes], [
      AC_REQUIRE([SAGE_SPKG_CONFIGURE_IPYKERNEL])
      sage_require_foo=yes
      AS_VAR_IF([sage_spkg_install_ipykernel], [no], [sage_require_foo=no])])"""
    assert not run_full(debugpy_form, probes, dependency_built=lambda d: False).install   # system ipykernel: not needed
    assert run_full(debugpy_form, probes, dependency_built=lambda d: d == "ipykernel").install
    arg_with = """AC_ARG_WITH([sbfoo], [AS_HELP_STRING([--with-sbfoo], [x])], [A=given], [sage_spkg_install_foo=yes])"""
    assert run(arg_with, probes).install
    assert not read_check(f"SAGE_SPKG_CONFIGURE([foo], [AS_VAR_IF([X], [$Y], [])])", "foo").understood


@needs_cc
def test_a_cxx_only_header_is_found_in_cxx_only(tmp_path):
    """gmpxx.h includes <iosfwd>: the C compiler refuses it; Sage's checks run in C++."""
    import shutil

    if shutil.which(os.environ.get("CXX") or "c++") is None:
        pytest.skip("no C++ compiler")
    include = tmp_path / "include"
    include.mkdir()
    (include / "sbcxx.h").write_text("#include <iosfwd>\n")
    probes = Probes(dict(os.environ))
    flags = {"CPPFLAGS": f"-I{include}"}
    assert probes.header("sbcxx.h", flags, "C++")
    assert not probes.header("sbcxx.h", flags, "C")


def test_pkg_config_is_known_to_the_checks_as_configure_ac_sets_it(tmp_path):
    """pkgconf's check: AS_IF([test -z "$PKG_CONFIG"], [sage_spkg_install_pkgconf=yes])."""
    body = 'AS_IF([test -z "$PKG_CONFIG"], [sage_spkg_install_foo=yes])'
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "pkg-config").write_text("#!/bin/sh\necho 1.8.1\n")
    (fake / "pkg-config").chmod(0o755)
    assert not run(body, Probes({**os.environ, "PATH": str(fake)})).install
    assert not run(body, Probes({**os.environ, "PATH": str(tmp_path), "PKG_CONFIG": str(fake / "pkg-config")})).install
    # as PKG_PROG_PKG_CONFIG: a $PKG_CONFIG that does not run is none
    assert run(body, Probes({**os.environ, "PATH": str(tmp_path), "PKG_CONFIG": "/nonexistent/pc"})).install
    outcome = run(body, Probes({**os.environ, "PATH": str(tmp_path / "empty")}))
    assert outcome.install and outcome.reason != "the checks passed"


def test_a_backport_is_needed_when_the_venvs_python_is_older_than_python3s_check_wants(tmp_path):
    """#18: passagemath's python3 check wants >= 3.12; on 3.11 it says "build from source", where
    Sage's PYTHON_FOR_VENV is empty and importlib_metadata's REQUIRED-CHECK says "not needed". sage-build
    makes the venv from the configured Python whatever python3's check says, so the backport is
    needed by that venv (it was left out: "not reached"), and configure says the tree refuses it."""
    import sys

    from conftest import add_recipe

    from sage_build.configure.configure import decide

    here = sys.version_info[:2]
    add_recipe(tmp_path, "python3", deps="", files={"spkg-configure.m4": f"""SAGE_SPKG_CONFIGURE([python3], [
   m4_pushdef([MIN_VERSION], [{here[0]}.{here[1] + 1}.0])
   m4_pushdef([LT_VERSION], [{here[0]}.{here[1] + 3}.0])
   SAGE_CHECK_PYTHON_FOR_VENV([$ac_path_PYTHON3], MIN_VERSION, LT_VERSION, $check_modules, [])])"""})
    backport = """SAGE_SPKG_CONFIGURE([NAME], [SAGE_PYTHON_PACKAGE_CHECK([NAME])], [
      AS_IF([test -z "${PYTHON_FOR_VENV}"], [sage_require_NAME="no"], [
        AS_IF(["${PYTHON_FOR_VENV}" -c "import sys; sys.exit(sys.version_info.minor < MINOR)"],
              [sage_require_NAME="no"])])])"""
    add_recipe(tmp_path, "sbbackport", install_requires="sbbackport >= 1",
               files={"spkg-configure.m4": backport.replace("NAME", "sbbackport").replace("MINOR", str(here[1] + 1))})
    add_recipe(tmp_path, "sbinstdlib", install_requires="sbinstdlib >= 1",
               files={"spkg-configure.m4": backport.replace("NAME", "sbinstdlib").replace("MINOR", str(here[1]))})
    result = decide([f"--with-python={sys.executable}"], tmp_path, environ=dict(os.environ))
    assert result.system["python3"].status == "source"
    assert result.system["sbbackport"].status == "source", result.system["sbbackport"]
    assert result.decisions["sbbackport"].enabled and not result.decisions["sbbackport"].from_system
    # the same form with a Python new enough: not needed, as before
    assert result.system["sbinstdlib"].status == "system" and "not required" in result.system["sbinstdlib"].reason
    warning = next(w for w in result.warnings if "python3 check" in w)
    assert sys.executable in warning and "--with-python" in warning


def test_the_hint_says_which_packages_the_system_has_in_a_version_the_tree_refuses(tmp_path):
    """#18: configure's apt hint listed libfplll-dev and cmake, which were installed, only older
    than passagemath asks: the notice now says so, with the version found and the one needed."""
    import io
    import sys

    from conftest import add_recipe

    from sage_build.configure.configure import decide
    from sage_build.face.configure_command import print_system_hint

    if shutil.which("pkg-config") is None:
        pytest.skip("pkg-config is not installed")
    bin_dir, pc_dir = tmp_path / "bin", tmp_path / "pc"
    bin_dir.mkdir()
    pc_dir.mkdir()
    tool = bin_dir / "sbtool"
    tool.write_text("#!/bin/sh\necho 'sbtool version 3.25.1'\n")
    tool.chmod(0o755)
    (pc_dir / "sbold.pc").write_text("Name: sbold\nDescription: x\nVersion: 5.4.4\n")
    (pc_dir / "sbnew.pc").write_text("Name: sbnew\nDescription: x\nVersion: 6.0\n")
    pkg_form = """SAGE_SPKG_CONFIGURE([NAME], [PKG_CHECK_MODULES([X], [NAME >= 5.5.0], [], [sage_spkg_install_NAME=yes])])"""
    # cmake's form in passagemath: a feature check of every cmake on PATH, its version compared
    tool_form = """SAGE_SPKG_CONFIGURE([sbtool], [
        AC_CACHE_CHECK([for sbtool >= 3.30], [ac_cv_path_SBTOOL], [
            AC_PATH_PROGS_FEATURE_CHECK([SBTOOL], [sbtool], [
                sbtool_version=`$ac_path_SBTOOL --version 2>&1 \\
                    | $SED -n -e 's/sbtool version *\\([[0-9]]*\\.[[0-9]]*\\.[[0-9]]*\\)/\\1/p'`
                AS_IF([test -n "$sbtool_version"], [
                    AX_COMPARE_VERSION([$sbtool_version], [ge], [3.30], [
                        ac_cv_path_SBTOOL="$ac_path_SBTOOL"
                        ac_path_SBTOOL_found=:
                    ])
                ])
            ])
        ])
        AS_IF([test -z "$ac_cv_path_SBTOOL"], [sage_spkg_install_sbtool=yes])])"""
    for name, form in (("sbold", pkg_form), ("sbnew", pkg_form), ("sbabsent", pkg_form), ("sbtool", tool_form)):
        add_recipe(tmp_path, name, deps="", files={"spkg-configure.m4": form.replace("NAME", name),
                                                   "distros/debian.txt": f"lib{name}-dev\n"})
    environ = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PKG_CONFIG_PATH": str(pc_dir)}
    result = decide([f"--with-python={sys.executable}"], tmp_path, environ=environ)
    assert {n: result.system[n].status for n in ("sbold", "sbnew", "sbabsent", "sbtool")} == {
        "sbold": "source", "sbnew": "system", "sbabsent": "source", "sbtool": "source"}
    for system in ("debian", "sbnope-os"):   # said also where no install command is known
        out = io.StringIO()
        print_system_hint(result, system, out)
        text = out.getvalue()
        assert "sbold: installed, but sbold 5.4.4 (pkg-config), the tree needs >= 5.5.0" in text, text
        assert f"sbtool: installed, but {tool} 3.25.1, the tree needs >= 3.30" in text, text
        assert "sbabsent: installed" not in text and "sbnew" not in text


def test_xz_is_not_needed_when_the_bootstrap_python_has_lzma(tmp_path):
    """passagemath's xz/spkg-configure.m4 (Sage's #30948): xz is only a build-time unpacker, not
    needed at all when sage-bootstrap-python can `import lzma`; else its CHECK looks for an xz
    program >= 4.999.0."""
    import sys

    xz_form = """SAGE_SPKG_CONFIGURE([foo], [
        AC_CACHE_CHECK([for xz >= 4.999.0], [ac_cv_path_XZ], [
            AC_PATH_PROGS_FEATURE_CHECK([XZ], [sbxz], [
              xz_version=`$ac_path_XZ --version 2>&1 | cut -d' ' -f4 | $SED -n 1p`
              AS_IF([test -n "$xz_version"], [
                  AX_COMPARE_VERSION([$xz_version], [ge], [4.999.0], [
                      ac_cv_path_XZ="$ac_path_XZ"
                      ac_path_XZ_found=:
                  ])
              ])
            ])
            AS_IF([test -z "$ac_cv_path_XZ"], [sage_spkg_install_foo=yes])
        ])
], [dnl REQUIRED-CHECK
        AS_IF(["$SAGE_BOOTSTRAP_PYTHON" -c "import lzma" 2>& AS_MESSAGE_LOG_FD], [
             sage_require_foo=no
        ])
])"""
    no_lzma = tmp_path / "sbpython"
    no_lzma.write_text("#!/bin/sh\nexit 1\n")   # a Python built without lzma, as far as the check sees
    no_lzma.chmod(0o755)
    old_xz = tmp_path / "bin/sbxz"
    old_xz.parent.mkdir()
    old_xz.write_text("#!/bin/sh\necho 'xz (XZ Utils) 4.2.0'\n")
    old_xz.chmod(0o755)
    probes = Probes({**os.environ, "PATH": f"{old_xz.parent}:{os.environ['PATH']}"})
    with_lzma = run_full(xz_form, probes, context={"SAGE_BOOTSTRAP_PYTHON": lambda: sys.executable})
    assert not with_lzma.install and "not required on this system (its REQUIRED-CHECK)" in with_lzma.notes
    without = run_full(xz_form, probes, context={"SAGE_BOOTSTRAP_PYTHON": lambda: str(no_lzma)})
    assert without.install and without.refused == [f"{old_xz} 4.2.0, the tree needs >= 4.999.0"], without


@pytest.mark.parametrize("version, install", [("8.0.2", False), ("7.2.0", True)])
def test_a_version_from_a_command_substitution_with_its_option(tmp_path, version, install):
    """qhull's form in passagemath: qhull_ver=$($QHULL -V | cut ...), compared (it was "not
    understood"); the program is asked with the option the file gives (-V), not --version."""
    qhull = tmp_path / "sbqhull"
    qhull.write_text(f'#!/bin/sh\n[ "$1" = -V ] && echo "qhull_r {version} (2020.2.r 2020/08/31)" && exit 0\n'
                     'echo "usage: sbqhull 1.0"; exit 1\n')
    qhull.chmod(0o755)
    form = """SAGE_SPKG_CONFIGURE([foo], [
    m4_pushdef([SAGE_QHULL_MINVER],["8.0.2"])
    AC_PATH_PROG([QHULL], [sbqhull])
    AS_IF([test x$QHULL = x], [
           sage_spkg_install_foo=yes
    ], [
           AC_MSG_CHECKING([whether qhull's version is good enough])
           qhull_ver=$($QHULL -V | cut -d' ' -f2 2>& AS_MESSAGE_LOG_FD)
           AX_COMPARE_VERSION([$qhull_ver], [ge], [$SAGE_QHULL_MINVER], [
               AC_MSG_RESULT([yes])
           ], [
               sage_spkg_install_foo=yes
           ])
    ])
    m4_popdef([SAGE_QHULL_MINVER])
])"""
    probes = Probes({**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    outcome = run_full(form, probes)
    assert outcome.install == install, outcome
    assert outcome.refused == ([f"{qhull} {version}, the tree needs >= 8.0.2"] if install else [])


def fake_pkg_config(tmp_path):
    """A pkg-config on PATH that knows sbgsl (its pcfiledir, includedir, version, cflags and libs),
    sbempty (an empty pcfiledir) and sbbroken (a version, but --cflags and --libs fail), and logs
    its arguments one a line, ``|``-separated."""
    bin_dir, log = tmp_path / "bin", tmp_path / "pkg-config.log"
    bin_dir.mkdir()
    (bin_dir / "pkg-config").write_text(f"""#!/bin/sh
printf '%s|' "$@" >> '{log}'; echo >> '{log}'
case "$1 $2" in
  "--variable=pcfiledir sbgsl") echo /opt/sb/lib/pkgconfig ;;
  "--variable=includedir sbgsl") echo /opt/sb/include ;;
  "--variable=pcfiledir sbempty") echo ;;
  "--modversion sbgsl") echo 2.7.1 ;;
  "--modversion sbbroken") echo 1.0 ;;
  "--cflags sbgsl"|"--cflags sbgsl "*) echo "-I/opt/sb/include  -DSB_X='1 2'" ;;
  "--libs sbgsl"|"--libs sbgsl "*) echo "-L/opt/sb/lib -lsbgsl " ;;
  *) exit 1 ;;
esac
""")
    (bin_dir / "pkg-config").chmod(0o755)
    return Probes({**os.environ, "PATH": str(bin_dir)}), log


def test_pkg_check_var_sets_the_variable_and_runs_the_found_action(tmp_path):
    probes, log = fake_pkg_config(tmp_path)
    gsl_form = """PKG_CHECK_MODULES([GSL], [sbgsl >= 2.4], [
        PKG_CHECK_VAR([GSLPCDIR], [sbgsl], [pcfiledir], [
          GSL_PC="$GSLPCDIR"/gsl.pc
        ], [sage_spkg_install_foo=yes])
      ], [sage_spkg_install_foo=yes])
      AS_IF([test "x$GSL_PC" = x/opt/sb/lib/pkgconfig/gsl.pc], [], [sage_spkg_install_foo=yes])"""
    outcome = run(gsl_form, probes)
    assert not outcome.install, outcome.notes
    assert "pkg-config sbgsl pcfiledir: /opt/sb/lib/pkgconfig" in outcome.notes
    assert "--variable=pcfiledir|sbgsl|" in log.read_text().splitlines()   # one argument each, no shell


@pytest.mark.parametrize("module, path, install", [("sbgsl", "bin", False), ("sbempty", "bin", True),
                                                   ("sbnope", "bin", True), ("sbgsl", "empty", True)])
def test_pkg_check_var_runs_the_not_found_action_on_empty_output_or_a_missing_module(tmp_path, module, path, install):
    probes, _ = fake_pkg_config(tmp_path)
    probes.environ["PATH"] = str(tmp_path / path)   # empty: no pkg-config at all
    openblas_form = """PKG_CHECK_VAR([OPENBLASPCDIR], [MODULE], [pcfiledir], [dnl
        sage_install_blas_pc=yes
      ], [dnl
        AC_MSG_WARN([Unable to locate the directory of openblas.pc. This should not happen!])
        sage_spkg_install_foo=yes
      ])
      AS_IF([test x$sage_install_blas_pc = xyes], [], [sage_spkg_install_foo=yes])"""
    outcome = run(openblas_form.replace("MODULE", module), probes)
    assert outcome.install == install, outcome.notes
    assert (f"pkg-config {module} pcfiledir: not found" in outcome.notes) == install


def test_pkg_check_var_value_is_seen_by_a_later_test(tmp_path):
    probes, log = fake_pkg_config(tmp_path)
    ntl_form = """PKG_CHECK_VAR([ntl_includedir], [MODULE], [includedir])
        AS_IF([test "x$ntl_includedir" = x], [sage_spkg_install_foo=yes])"""
    assert not run(ntl_form.replace("MODULE", "sbgsl"), probes).install
    assert run(ntl_form.replace("MODULE", "sbnope"), probes).install
    assert not run("PKG_CHECK_VAR([D], [sbgsl], [includedir])\n"
                   "AS_IF([test x$D = x/opt/sb/include], [], [sage_spkg_install_foo=yes])", probes).install
    # pkg.m4 keeps a value the variable has already: pkg-config is not asked
    asked = log.read_text()
    assert not run("D=/mine\nPKG_CHECK_VAR([D], [sbnope], [includedir], [], [sage_spkg_install_foo=yes])\n"
                   "AS_IF([test x$D = x/mine], [], [sage_spkg_install_foo=yes])", probes).install
    assert log.read_text() == asked


def test_a_hostile_pkg_check_var_runs_nothing(tmp_path):
    probes, log = fake_pkg_config(tmp_path)
    for args in ("[D], [sbgsl;touch sbpwned], [pcfiledir]", "[D], [$(touch sbpwned)], [pcfiledir]",
                 "[D], [`touch sbpwned`], [pcfiledir]", "[D], [--list-all], [pcfiledir]", "[D], [-x], [pcfiledir]",
                 "[D-x], [sbgsl], [pcfiledir]", "[D], [sbgsl], [pcfiledir;touch sbpwned]"):
        check = read_check(f"SAGE_SPKG_CONFIGURE([foo], [PKG_CHECK_VAR({args}, [], [])])", "foo")
        assert not check.understood, args
        outcome = run_check(check, probes, dependency_built=lambda d: False, python_check=lambda p: (False, ""))
        assert outcome.install and outcome.not_understood.startswith("PKG_CHECK_VAR("), args
    assert not log.exists() and not list(tmp_path.rglob("sbpwned"))
    assert not run("PKG_CHECK_VAR([D], [sbgsl], [pcfiledir], [], [sage_spkg_install_foo=yes])", probes).install
    assert log.read_text() == "--variable=pcfiledir|sbgsl|\n"   # the names as they are: asked


def fake_compiler(tmp_path):
    """A C and C++ compiler that logs its arguments (not its name; a line a run, ``|`` after each) and
    succeeds only when one of them is ``-lsbgsl``."""
    cc, log = tmp_path / "sbcc", tmp_path / "sbcc.log"
    cc.write_text(f"""#!/bin/sh
printf '%s|' "$@" >> '{log}'; echo >> '{log}'
for a in "$@"; do [ "$a" = -lsbgsl ] && exit 0; done
exit 1
""")
    cc.chmod(0o755)
    return str(cc), log


def test_build_variables_are_split_as_the_shell_splits_an_unquoted_expansion(tmp_path):
    """autoconf's `$CC ... $CPPFLAGS $CFLAGS $LDFLAGS conftest.c $LIBS`: fields at blanks, quotes
    and backslashes in the values are text (an unbalanced quote is not an error)."""
    cc, log = fake_compiler(tmp_path)
    probes = Probes({**os.environ, "CC": cc, "CPPFLAGS": "-DA='x  y'", "CFLAGS": "", "LDFLAGS": "\t-L/sb lib",
                     "LIBS": "-lsbgsl -lb\\ x\n-l\"q"})
    assert probes.library("f", "", lang="C")
    argv = log.read_text().splitlines()[0].split("|")[:-1]
    assert argv == ["-DA='x", "y'", "-L/sb", "lib", "conftest.c", "-o", "conftest", "-lsbgsl", "-lb\\", "x", '-l"q']


def test_a_pkg_check_modules_or_exists_with_an_option_runs_nothing(tmp_path):
    probes, log = fake_pkg_config(tmp_path)
    for statement in ("PKG_CHECK_MODULES([SB], [--define-variable=prefix=/x sbgsl], [], [])",
                      "PKG_CHECK_MODULES([SB], [-foo], [], [])", "PKG_CHECK_EXISTS([sbgsl -foo], [], [])",
                      "PKG_CHECK_EXISTS([sbgsl >= $(touch sbpwned)], [], [])", "PKG_CHECK_EXISTS([--list-all], [], [])"):
        check = read_check(f"SAGE_SPKG_CONFIGURE([foo], [{statement}])", "foo")
        outcome = run_check(check, probes, dependency_built=lambda d: False, python_check=lambda p: (False, ""))
        assert outcome.install and outcome.not_understood.startswith("PKG_CHECK_"), statement
    assert not log.exists() and not list(tmp_path.rglob("sbpwned"))


def test_pkg_check_modules_gives_prefix_cflags_and_libs_to_a_later_link(tmp_path):
    """pkg.m4: PREFIX_CFLAGS and PREFIX_LIBS are pkg-config's --cflags and --libs of the module
    list when found; openblas's check puts them into CFLAGS and LIBS before AC_CHECK_FUNC. A
    PREFIX_LIBS in the environment is not read (the check sees the environment's build variables
    only, as PKG_CHECK_VAR's variable)."""
    probes, log = fake_pkg_config(tmp_path)
    cc, cc_log = fake_compiler(tmp_path)
    probes.environ.update(CC=cc, CXX=cc, CPPFLAGS="", CFLAGS="-O1", LDFLAGS="", LIBS="-lm", SB_LIBS="-lsbenv")
    openblas_form = """PKG_CHECK_MODULES([SB], [sbgsl >= 2.4], [
        LIBS="$SB_LIBS $LIBS"
        CFLAGS="$SB_CFLAGS $CFLAGS"
        AC_LANG_PUSH([C])
        AC_CHECK_FUNC([cblas_dgemm], [], [sage_spkg_install_foo=yes])
        AC_LANG_POP([C])
      ], [sage_spkg_install_foo=yes])"""
    outcome = run(openblas_form, probes)
    assert not outcome.install, outcome.notes   # the fake compiler links only with -lsbgsl
    argv = cc_log.read_text().splitlines()[-1].split("|")[:-1]
    assert argv == ["-I/opt/sb/include", "-DSB_X='1", "2'", "-O1", "conftest.c", "-o", "conftest",
                    "-L/opt/sb/lib", "-lsbgsl", "-lm"]
    asked = log.read_text().splitlines()
    assert "--cflags|sbgsl >= 2.4|" in asked and "--libs|sbgsl >= 2.4|" in asked   # the list as one argument, as pkg.m4


def test_pkg_check_modules_not_found_leaves_prefix_cflags_and_libs_empty(tmp_path):
    probes, log = fake_pkg_config(tmp_path)
    for modules in ("sbnope", "sbgsl >= 3", "sbbroken"):   # missing, too old, --cflags/--libs fail
        form = f"""PKG_CHECK_MODULES([SB], [{modules}], [], [missing=yes])
            AS_IF([test "x$SB_CFLAGS$SB_LIBS" = x -a x$missing = xyes], [], [sage_spkg_install_foo=yes])"""
        assert not run(form, probes).install, modules
    assert not [line for line in log.read_text().splitlines() if line.startswith("--cflags|sb") and "sbbroken" not in line]
    assert not run("PKG_CHECK_EXISTS([sbbroken], [], [sage_spkg_install_foo=yes])", probes).install   # no flags asked
    # a value the check gave PREFIX_LIBS before is kept (pkg.m4's _PKG_CONFIG): only --cflags is asked
    kept = """SB_LIBS=-lmine
        PKG_CHECK_MODULES([SB], [sbgsl], [], [sage_spkg_install_foo=yes])
        AS_IF([test "x$SB_LIBS" = x-lmine], [], [sage_spkg_install_foo=yes])
        AS_CASE(["$SB_CFLAGS"], [-I/opt/sb/include  -DSB_X=?1 2?], [], [sage_spkg_install_foo=yes])"""
    before = log.read_text()
    assert not run(kept, probes).install
    assert log.read_text()[len(before):].splitlines() == ["--cflags|sbgsl|"]   # its version: asked before



def test_as_var_append_appends_at_run_time_in_gsls_form(tmp_path):
    probes, _ = fake_pkg_config(tmp_path)
    gsl_form = r"""PKG_CHECK_MODULES([GSL], [sbgsl >= 2.4], [
        PKG_CHECK_VAR([GSLPCDIR], [sbgsl], [pcfiledir], [
          GSL_PC="$GSLPCDIR"/gsl.pc
          AC_SUBST([SAGE_SYSTEM_FACADE_PC_FILES])
          AS_VAR_APPEND([SAGE_SYSTEM_FACADE_PC_FILES], [" \$(SAGE_PKGCONFIG)/gsl.pc"])
          AS_VAR_APPEND([SAGE_SYSTEM_FACADE_PC_FILES], ["$GSLPCDIR "])
        ], [sage_spkg_install_foo=yes])
      ], [sage_spkg_install_foo=yes])
      AS_IF([test "$SAGE_SYSTEM_FACADE_PC_FILES" = " \$(SAGE_PKGCONFIG)/gsl.pc/opt/sb/lib/pkgconfig "], [],
            [sage_spkg_install_foo=yes])"""
    outcome = run(gsl_form, probes)
    assert not outcome.install, outcome.notes


def test_a_hostile_as_var_append_runs_nothing(tmp_path):
    probes, log = fake_pkg_config(tmp_path)
    for args in ("[V], [$(touch sbpwned)]", '[V], ["$(touch sbpwned)"]', "[V], [`touch sbpwned`]",
                 '[V], ["`touch sbpwned`"]', "[$(touch sbpwned)], [a]", "[V;touch sbpwned], [a]"):
        check = read_check(f"SAGE_SPKG_CONFIGURE([foo], [AS_VAR_APPEND({args})\nPKG_CHECK_EXISTS([sbgsl], [], [])])", "foo")
        assert not check.understood, args
        outcome = run_check(check, probes, dependency_built=lambda d: False, python_check=lambda p: (False, ""))
        assert outcome.install and outcome.not_understood.startswith("AS_VAR_APPEND("), args
    assert not log.exists() and not list(tmp_path.rglob("sbpwned"))


def _declared_detections(tree: Path, key: str, specs: dict[str, str], bin_dir: Path) -> dict:
    """configure's decisions for recipes whose spkg-configure.yaml says ``key: spec`` each
    (``sbnew`` asked with --with-system, the others =yes), with ``bin_dir`` first on configure's
    PATH (not this process's)."""
    import sys

    from conftest import add_recipe

    from sage_build.configure.configure import decide

    for name, spec in specs.items():
        add_recipe(tree, name, deps="", files={"spkg-configure.yaml": f"{key}: {spec}\n"})
    environ = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    options = [f"--with-system-{name}" + ("" if name == "sbnew" else "=yes") for name in specs]
    result = decide([f"--with-python={sys.executable}", *options], tree, environ=environ)
    return {name: result.detections[name] for name in specs}


def test_a_spkg_configure_yaml_pkgconfig_check_asks_through_the_one_helper(tmp_path):
    """spkg-configure.yaml's ``pkgconfig:`` is asked through Probes, as spkg-configure.m4's
    checks: pkg-config of configure's environment, each answer once (config.cache); a module
    that is an option is refused."""
    from conftest import add_recipe

    from sage_build.base.errors import RecipeError
    from sage_build.configure.system import Detection, detect_declared
    from sage_build.recipes.recipe import load_package

    _, log = fake_pkg_config(tmp_path)
    tree = tmp_path / "tree"
    environ = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    assert _declared_detections(tree, "pkgconfig", {"sbnew": "sbgsl >= 2.4", "sbold": "sbgsl >= 3", "sbabsent": "sbnope"},
                                tmp_path / "bin") == {
        "sbnew": Detection(True, "sbgsl 2.7.1"), "sbold": Detection(False, "sbgsl 2.7.1 is too old (need >= 3)"),
        "sbabsent": Detection(False, "pkg-config module 'sbnope' not found")}
    assert sorted(log.read_text().splitlines()) == ["--modversion|sbgsl|", "--modversion|sbnope|"]   # sbgsl asked once
    assert detect_declared(load_package(tree / "build/pkgs/sbabsent"), Probes({**os.environ, "PATH": ""})) == \
        Detection(False, "pkg-config is not installed")
    hostile = add_recipe(tree, "sbhostile", deps="", files={"spkg-configure.yaml": "pkgconfig: --static\n"})
    with pytest.raises(RecipeError, match="not a pkg-config module"):
        detect_declared(load_package(hostile), Probes(environ))
    assert "--static" not in log.read_text()


def test_a_tests_quoted_words_keep_their_blanks():
    probes = Probes(dict(os.environ))
    body = """A="a  b"
        AS_IF([test "x$A" = "xa  b"], [], [sage_spkg_install_foo=yes])"""
    assert not run(body, probes).install
    assert run(body.replace('"xa  b"', '"xa b"'), probes).install


def test_a_spkg_configure_yaml_executable_check_asks_through_probes(tmp_path):
    """spkg-configure.yaml's ``executable:`` finds programs on configure's PATH (not this
    process's) and reads their version through Probes, each program once (config.cache)."""
    from sage_build.configure.system import Detection

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "ran"
    tool = bin_dir / "sbtool"
    tool.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\necho 'sbtool version 3.21.4'\n")
    tool.chmod(0o755)
    specs = {"sbnew": "sbtool >= 3.20", "sbold": "sbtool >= 4", "sbabsent": "sbnope_tool"}
    assert _declared_detections(tmp_path / "tree", "executable", specs, bin_dir) == {
        "sbnew": Detection(True, "sbtool 3.21.4"), "sbold": Detection(False, "sbtool 3.21.4 is too old (need >= 4)"),
        "sbabsent": Detection(False, "no program 'sbnope_tool' on PATH")}
    assert log.read_text().splitlines() == ["--version"]   # asked once for both recipes


def test_pkg_config_from_the_environment_is_the_one_the_checks_run(tmp_path):
    """$PKG_CONFIG (a distro's pkgconf, a cross pkg-config) answers PKG_CHECK_MODULES and
    spkg-configure.yaml's pkgconfig, by path or by name on PATH; pkg-config on PATH does not."""
    from sage_build.configure.system import Detection, _check_pkgconfig

    log = tmp_path / "asked"
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for directory, name, version in ((ours, "sbpc", "2.7.1"), (theirs, "pkg-config", "1.0")):
        directory.mkdir()
        (directory / name).write_text(f"#!/bin/sh\necho {directory.name} \"$@\" >> {log}\necho {version}\n")
        (directory / name).chmod(0o755)
    body = "PKG_CHECK_MODULES([G], [sbgsl >= 2.4], [], [sage_spkg_install_foo=yes])"
    path = f"{ours}:{theirs}"
    for setting in (str(ours / "sbpc"), "sbpc"):
        log.write_text("")
        probes = Probes({**os.environ, "PATH": path, "PKG_CONFIG": setting})
        assert not run(body, probes).install
        assert _check_pkgconfig("sbgsl >= 2", tmp_path / "spkg-configure.yaml", probes) == Detection(True, "sbgsl 2.7.1")
        assert {line.split()[0] for line in log.read_text().splitlines()} == {"ours"}
    assert run(body, Probes({**os.environ, "PATH": path})).install   # theirs says 1.0


def test_a_compiler_variable_with_a_stray_quote_is_split_as_the_shell_splits_it(tmp_path):
    """$CC is an unquoted expansion in autoconf's tests: its fields, quotes being text; an odd
    quote in it is a compiler that fails, not a crash of configure."""
    log = tmp_path / "argv"
    cc = tmp_path / "sbcc"
    cc.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {log}\nexit 0\n")
    cc.chmod(0o755)
    assert Probes({**os.environ, "CC": f"{cc} -DX='a b\""}).header("stdio.h")
    assert log.read_text().splitlines()[:2] == ["-DX='a", 'b"']
    assert not Probes({**os.environ, "CC": 'sbnope_cc "'}).header("stdio.h")


def test_a_programs_output_that_is_not_utf8_is_text_not_a_crash(tmp_path):
    """A version (or a compiler's -dumpversion) that is not UTF-8: compared as text, as the
    shell would; it was a UnicodeDecodeError traceback out of configure."""
    program = tmp_path / "sbjunk"
    program.write_text("#!/bin/sh\nprintf '\\377 1.2.3\\n'\n")
    program.chmod(0o755)
    assert Probes({"PATH": str(tmp_path)}).version(str(program)) == "1.2.3"


def fake_fortran(bin_dir, name="gfortran", flag="-ffree-form", version="12"):
    """A Fortran compiler ``bin_dir/name`` that logs its arguments (a line a run, ``|`` after each),
    prints ``version`` for -dumpversion and compiles (leaves a conftest.o) only when ``flag`` is
    one of its arguments (``none``: always)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    fc, log = bin_dir / name, bin_dir / f"{name}.log"
    fc.write_text(f"""#!/bin/sh
printf '%s|' "$@" >> '{log}'; echo >> '{log}'
for a in "$@"; do [ "$a" = -dumpversion ] && printf '%s\\n' '{version}' && exit 0; done
[ '{flag}' = none ] && echo obj > conftest.o && exit 0
for a in "$@"; do [ "x$a" = 'x{flag}' ] && echo obj > conftest.o && exit 0; done
exit 1
""")
    fc.chmod(0o755)
    return fc, log


def test_a_fortran_program_is_only_compiled(tmp_path):
    fc, log = fake_fortran(tmp_path, flag="none")
    assert Probes({"PATH": str(tmp_path), "FC": str(fc)}).program_builds("      end\n", "Fortran", link=False)
    assert log.read_text() == "-c|conftest.f|\n"
    for link, execute in ((True, False), (False, True)):
        with pytest.raises(ConfigureError, match="only compiled"):
            Probes({"PATH": str(tmp_path), "FC": str(fc)}).program_builds("      end\n", "Fortran", link=link, execute=execute)



def test_an_output_step_runs_its_commands_fields_and_keeps_the_standard_output(tmp_path):
    """``V="`$FC -dumpversion`"``: $FC unquoted, so its fields (no shell); the output, trailing
    newline dropped, is the variable's value."""
    fc, log = fake_fortran(tmp_path, version="12")
    command = (((False, "var", "FC"),), ((False, "lit", "-dumpversion"),))
    check = Check("foo", steps=(Step("output", var="V", cond=command), Step("if", cond=(
        "match", ((True, "var", "V"),), ("12",)), missing=(Step("set", var="sage_spkg_install_foo", value="yes"),))))
    outcome = run_check(check, Probes({"PATH": str(tmp_path), "FC": f"{fc} -m64"}), dependency_built=lambda d: False,
                        python_check=lambda p: (False, ""))
    assert not outcome.install and outcome.notes[-1].endswith("gfortran -m64 -dumpversion: 12"), outcome.notes
    assert log.read_text() == "-m64|-dumpversion|\n"


def gfortran_outcome(environ, built=lambda d: False, cache=None):
    check = read_check(GFORTRAN_FILE, "gfortran")
    assert check.understood, check.unknown
    return run_check(check, Probes(environ, cache), dependency_built=built, python_check=lambda p: (False, ""))


def test_gfortran_a_free_form_fortran_compiler_on_path_is_the_systems(tmp_path):
    """AC_PROG_FC finds gfortran on PATH; AC_FC_FREEFORM compiles its program as autoconf does
    (conftest.f: without a flag first, then -ffree-form); gfortran 12 is in Sage's range."""
    _, log = fake_fortran(tmp_path / "bin")
    outcome = gfortran_outcome({"PATH": str(tmp_path / "bin"), "FCFLAGS": "-O1"})
    assert not outcome.install, outcome.notes
    assert log.read_text().splitlines() == ["-c|-O1|conftest.f|", "-c|-O1|-ffree-form|conftest.f|", "-dumpversion|"]
    assert "a Fortran program (program freeform) builds with gfortran -O1 -ffree-form" in outcome.notes


def test_gfortran_is_installed_when_no_compiler_takes_free_form_or_there_is_none(tmp_path):
    _, log = fake_fortran(tmp_path / "bin", flag="sbnever")
    assert gfortran_outcome({"PATH": str(tmp_path / "bin")}).install
    compiles = [line for line in log.read_text().splitlines() if line != "-dumpversion|"]
    assert len(compiles) == 14 and "-c|-f|free|conftest.f|" in compiles   # every flag; "-f free" is two fields
    (tmp_path / "empty").mkdir()
    none = gfortran_outcome({"PATH": str(tmp_path / "empty")})
    assert none.install and "no gfortran on PATH" in none.notes and "no af77 on PATH" in none.notes


def test_gfortran_a_compiler_that_exits_with_0_but_leaves_no_object_is_no_compiler(tmp_path):
    """autoconf's compile test asks for a conftest.o that is not empty: FC=ls exits with 0."""
    fc = tmp_path / "gfortran"
    fc.write_text("#!/bin/sh\nexit 0\n")
    fc.chmod(0o755)
    assert gfortran_outcome({"PATH": str(tmp_path)}).install
    assert gfortran_outcome({"PATH": os.environ["PATH"], "FC": "ls"}).install


@pytest.mark.parametrize("version, install", [("4.7", True), ("4.7.3", True), ("3", True), ("4.8", False), ("12", False),
                                              ("16.2.0", False), ("17", True), ("19.1", True)])
def test_gfortran_versions_sage_refuses_install_it(tmp_path, version, install):
    fake_fortran(tmp_path / "bin", version=version)
    assert gfortran_outcome({"PATH": str(tmp_path / "bin")}).install == install


def test_gfortran_a_compiler_not_named_gfortran_skips_the_version_rule(tmp_path):
    _, log = fake_fortran(tmp_path / "bin", name="f95", version="17")
    outcome = gfortran_outcome({"PATH": str(tmp_path / "bin")})
    assert not outcome.install, outcome.notes
    assert "f95: " + str(tmp_path / "bin/f95") in outcome.notes and "-dumpversion|" not in log.read_text()


def test_fc_from_the_environment_is_the_fortran_compiler(tmp_path):
    """AC_PROG_FC lets $FC override its search: gfortran on PATH is not asked. (The test's name
    keeps gfortran out of tmp_path: the version rule matches $FC's whole text, its directories too.)"""
    _, path_log = fake_fortran(tmp_path / "bin")
    fc, log = fake_fortran(tmp_path / "other", name="sbfc", version="17")
    assert not gfortran_outcome({"PATH": str(tmp_path / "bin"), "FC": str(fc)}).install   # not named gfortran
    assert not path_log.exists() and log.read_text().splitlines()[-1] == "-c|-ffree-form|conftest.f|"
    renamed, _ = fake_fortran(tmp_path / "other", name="sbgfortran-17", version="17")
    assert gfortran_outcome({"PATH": str(tmp_path / "bin"), "FC": str(renamed)}).install   # named so: too recent


def test_gfortran_comes_with_gcc_when_gcc_is_installed(tmp_path):
    (tmp_path / "empty").mkdir()
    fake_fortran(tmp_path / "bin", version="17")
    for path in (tmp_path / "empty", tmp_path / "bin"):
        assert not gfortran_outcome({"PATH": str(path)}, built=lambda d: d == "gcc").install
    assert gfortran_outcome({"PATH": str(tmp_path / "bin")}, built=lambda d: d != "gcc").install


def test_gfortran_a_hostile_fc_runs_no_shell(tmp_path):
    """$FC and $FCFLAGS are unquoted expansions in autoconf's tests: their fields, nothing a shell
    would do with ``;``, ``$(...)`` or backquotes. A path with a blank is two fields, as in Sage's
    configure: its first is run (here no program), so gfortran is installed."""
    pwned = tmp_path / "sbpwned"
    _, log = fake_fortran(tmp_path / "sb dir", name="gfortran")
    path = os.environ["PATH"]
    for fc in (str(tmp_path / "sb dir/gfortran"), f"gfortran;touch {pwned}", f"$(touch {pwned})", f"`touch {pwned}`"):
        assert gfortran_outcome({"PATH": path, "FC": fc}).install, fc
    assert not log.exists() and not pwned.exists()
    fc, log = fake_fortran(tmp_path / "bin", flag="-ffree-form;touch")
    assert not gfortran_outcome({"PATH": path, "FC": str(fc), "FCFLAGS": f"-ffree-form;touch $(touch {pwned})"}).install
    assert log.read_text().splitlines()[0] == f"-c|-ffree-form;touch|$(touch|{pwned})|conftest.f|" and not pwned.exists()
    junk = tmp_path / "bin/sbgfortran-junk"   # a -dumpversion that is not text: compared, not a crash
    junk.write_text("#!/bin/sh\n[ \"$1\" = -dumpversion ] && printf '\\377\\n' && exit 0\necho obj > conftest.o\n")
    junk.chmod(0o755)
    assert not gfortran_outcome({"PATH": path, "FC": str(junk)}).install


def test_gfortran_answers_are_cached_and_keyed_by_fc_and_fcflags(tmp_path):
    cache = tmp_path / "config.cache"
    fake_fortran(tmp_path / "bin")
    environ = {"PATH": str(tmp_path / "bin")}
    check = read_check(GFORTRAN_FILE, "gfortran")
    first = Probes(environ, cache)
    run_check(check, first, dependency_built=lambda d: False, python_check=lambda p: (False, ""))
    first.save()
    second = Probes(environ, cache)
    assert not run_check(check, second, dependency_built=lambda d: False, python_check=lambda p: (False, "")).install
    assert second.asked == 0
    assert Probes({**environ, "FC": "gfortran"}, cache).answers == {}
    assert Probes({**environ, "FCFLAGS": "-O2"}, cache).answers == {}


@pytest.mark.skipif(shutil.which("gfortran") is None, reason="no gfortran")
def test_gfortran_a_real_gfortran_needs_ffree_form_for_conftest_f():
    """As autoconf's AC_FC_FREEFORM finds on a machine with gfortran: conftest.f is fixed form to
    gfortran, so the program builds only with -ffree-form."""
    outcome = gfortran_outcome({"PATH": os.environ["PATH"]})
    builds = [note for note in outcome.notes if note.startswith("a Fortran program")]
    assert builds == ["a Fortran program (program freeform) does not build with gfortran",
                      "a Fortran program (program freeform) builds with gfortran -ffree-form"], outcome.notes
