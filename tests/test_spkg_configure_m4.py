"""The reader of Sage's spkg-configure.m4 (recipes.spkg_configure_m4): one test per form."""

from __future__ import annotations

from sage_build.recipes.spkg_configure_m4 import Probe, Step, read_check, split_args, tokenize, unquote

INSTALL = Step("set", var="sage_spkg_install_foo", value="yes")


def check(body: str, rest: str = ""):
    return read_check(f"SAGE_SPKG_CONFIGURE([foo], [{body}]{rest})\n", "foo")


def test_quotes_commas_and_nested_parentheses():
    args, end = split_args("X([a, (b)], f(c, d), [[e]]) tail", 1)
    assert [unquote(a) for a in args] == ["a, (b)", "f(c, d)", "[e]"]
    items = tokenize("AC_MSG_RESULT([a (b])\nfoo=1")
    assert items[0] == ("macro", ("AC_MSG_RESULT", ["a (b"]))


def test_python_package_check():
    result = read_check("SAGE_SPKG_CONFIGURE([foo], [SAGE_PYTHON_PACKAGE_CHECK([foo])])", "foo")
    assert result.understood and result.python_check
    assert result.steps == (Step("python", value="foo"),)


def test_check_header_with_dnl_and_unquoted_name():
    result = check("dnl a comment, with (parens]\n  AC_CHECK_HEADER(foo.h, [], [sage_spkg_install_foo=yes])")
    assert result.understood, result.not_understood
    # C++: Sage's configure.ac says AC_LANG(C++) before the packages' checks
    assert result.steps == (Step("probe", Probe("header", "foo.h", lang="C++"), missing=(INSTALL,)),)


def test_check_headers_with_break():
    result = check("AC_CHECK_HEADERS([ffi/ffi.h ffi.h], [sage_spkg_install_foo=no; break], [sage_spkg_install_foo=yes])")
    assert result.understood
    (loop,) = result.steps
    assert [s.probe.subject for s in loop.found] == ["ffi/ffi.h", "ffi.h"]
    assert loop.found[0].found[-1] == Step("break")


def test_search_libs_and_check_lib():
    result = check("AC_SEARCH_LIBS([foo_init], [foo foo2], [], [sage_spkg_install_foo=yes])\n"
                   "AC_CHECK_LIB([z], [inflate], [], [sage_spkg_install_foo=yes])")
    assert result.understood
    assert result.steps[0].probe == Probe("library", "foo_init", libs=("", "foo", "foo2"), var="LIBS", lang="C++")
    assert result.steps[1].probe == Probe("library", "inflate", libs=("z",), var="LIBS", lang="C++")   # LIBS="-lz $LIBS"
    assert check("AC_CHECK_LIB([z], [inflate], [z=1])").steps[0].probe.var == ""


def test_pkg_check_modules_with_versions_and_pushdef():
    result = check("m4_pushdef([MIN], [1.2])\n"
                   "PKG_CHECK_MODULES([FOO], [foo >= ]MIN[ foo < 2], [], [sage_spkg_install_foo=yes])\n"
                   "m4_popdef([MIN])")
    assert result.understood, result.not_understood
    assert result.steps[0].probe == Probe("pkgconfig", "foo", spec=((">=", "1.2"), ("<", "2")))


def test_path_prog_and_as_if():
    result = check("AC_PATH_PROG([FOO], [foo])\nAS_IF([test x$FOO = x], [sage_spkg_install_foo=yes])")
    assert result.understood
    assert result.steps[0].probe.kind == "program"
    x_foo, equals, x = ((False, "lit", "x"), (False, "var", "FOO")), ((False, "lit", "="),), ((False, "lit", "x"),)
    assert result.steps[1] == Step("if", cond=("test", (x_foo, equals, x)), found=(INSTALL,))


def test_path_progs_feature_check_with_version():
    result = check("""AC_CACHE_CHECK([for foo >= 1.2], [ac_cv_path_FOO], [
        AC_PATH_PROGS_FEATURE_CHECK([FOO], [foo], [
            foo_version=`$ac_path_FOO --version 2>&1 \\
                | $SED -n -e 's/x/\\1/p'`
            AS_IF([test -n "$foo_version"], [
                AX_COMPARE_VERSION([$foo_version], [ge], [1.2], [
                    ac_cv_path_FOO="$ac_path_FOO"
                    ac_path_FOO_found=:
                ])
            ])
        ])
    ])
    AS_IF([test -z "$ac_cv_path_FOO"], [sage_spkg_install_foo=yes])""")
    assert result.understood, result.not_understood
    feature = result.steps[0]
    assert feature.probe.var == "ac_path_FOO"
    assert feature.found[0] == Step("version", var="foo_version", value="ac_path_FOO")


def test_depcheck_records_the_order():
    result = check("SAGE_SPKG_DEPCHECK([gmp mpfr], [AC_CHECK_HEADER([foo.h], [], [sage_spkg_install_foo=yes])])")
    assert result.understood
    assert result.requires == ("gmp", "mpfr")
    assert result.steps[0].op == "depcheck" and result.steps[0].deps == ("gmp", "mpfr")


def test_post_is_ignored_and_unknown_macros_are_not_understood():
    assert check("AC_CHECK_HEADER([foo.h])", ", [], [], [AC_SUBST([X], [y])]").understood
    result = check("AC_RUN_IFELSE([AC_LANG_PROGRAM([], [])], [], [sage_spkg_install_foo=yes])\nAC_FOO([x])")
    assert not result.understood and "AC_FOO" in result.unknown[0]
    assert result.runnable and result.steps[-1] == Step("unknown", value="AC_FOO(...)")   # reached or not: run time
    assert not check("if test x = y; then foo; fi").understood   # foo: a command
    assert not read_check("AC_MSG_NOTICE([X])\nSAGE_SPKG_CONFIGURE([foo], [])", "foo").understood


def test_unbalanced_quotes_are_not_understood():
    assert not read_check("SAGE_SPKG_CONFIGURE([foo], [AC_CHECK_HEADER([foo.h])", "foo").understood


def test_shell_if_then_else_fi_holding_macros_and_elif():
    result = check("""AC_CHECK_LIB([z], [inflateEnd], [zlib_cv_libz=yes], [zlib_cv_libz=no])
    if test "$zlib_cv_libz" = "yes" && test "x$X" != xno; then
        AC_CHECK_HEADER([zlib.h], [], [sage_spkg_install_foo=yes])
    elif test -z "$Y"
    then sage_spkg_install_foo=yes
    else
        sage_spkg_install_foo=no
    fi""")
    assert result.understood, result.not_understood
    step = result.steps[1]
    assert step.op == "if" and step.cond[0] == "and" and step.found[0].probe == Probe("header", "zlib.h", lang="C++")
    inner = step.missing[0]
    assert inner.op == "if" and inner.found == (INSTALL,) and inner.missing[0].value == "no"
    assert not check("if test x = x; then\nsage_spkg_install_foo=yes").understood   # no fi
    assert not check("fi").understood


def test_test_forms_inside_as_if():
    for cond in ('test "x$A" = xno', "test ! -n $A", "test x$A != x -a x$B != x", "test x$A = x || test -z $B",
                 "! test x$A = x", 'test x"$A" != x"none required"'):
        assert check(f"AS_IF([{cond}], [sage_spkg_install_foo=yes])").understood, cond
    for cond in ("test -L /etc/x", "test $A -eq 1", "test $A == 1", "grep -q x y", "test `uname` = Linux",
                 "test x$sage_spkg_install_bar = xno"):   # bar is not AC_REQUIRE'd
        assert not check(f"AS_IF([{cond}], [sage_spkg_install_foo=yes])").understood, cond
    assert check("AC_REQUIRE([SAGE_SPKG_CONFIGURE_BAR])\n"
                 "AS_IF([test x$sage_spkg_install_bar = xyes], [sage_spkg_install_foo=yes])").understood


def test_assignments_expand_variables():
    result = check('SAVE="$LIBS"\nLIBS="${LIBS} -lfoo"\nA=$B')
    assert result.understood, result.not_understood
    assert [s.value for s in result.steps] == ["${LIBS}", "${LIBS} -lfoo", "${B}"]
    assert not check("A='$B'").understood and not check("A=`b`").understood and not check('A="$(b)"').understood


def test_compile_and_link_a_program_in_the_language_of_the_text():
    result = check("""AC_LANG_PUSH([C])
        AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[#include <gmp.h>
        #if X < 6
        # error old
        #endif]])], [], [sage_spkg_install_foo=yes])
        AC_LANG_PUSH([C++])
        LIBS="$LIBS -lfoo"
        AC_LINK_IFELSE([AC_LANG_PROGRAM([#include <foo.h>], [[int a@<:@2@:>@; f(a);]])], [], [sage_spkg_install_foo=yes])
        AC_LANG_POP([C++])
        AC_LANG_POP([C])""")
    assert result.understood, result.not_understood
    compile_, _, link = result.steps
    assert compile_.probe.kind == "compile" and compile_.probe.lang == "C"
    assert compile_.probe.subject == "#include <gmp.h>\n        #if X < 6\n        # error old\n        #endif\nint\nmain (void)\n{\n\n  ;\n  return 0;\n}\n"
    assert link.probe.kind == "link" and link.probe.lang == "C++" and "int a[2]; f(a);" in link.probe.subject
    assert "main ()" in link.probe.subject
    for body in ("AC_RUN_IFELSE([AC_LANG_PROGRAM([], [])], [], [], [], [])", "AC_LINK_IFELSE([AC_LANG_PROGRAM([AC_FOO], [])])",
                 "AC_LANG_PUSH([Fortran])\nAC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])])", "AC_LANG_POP([C++])",
                 "AC_COMPILE_IFELSE([int main;])"):
        assert not check(body).understood, body



def test_headers_and_libraries_are_probed_in_the_language_of_the_text():
    """gmp's AC_CHECK_HEADER(gmpxx.h) only compiles as C++, which is what Sage's configure runs."""
    result = check("AC_CHECK_HEADER([gmpxx.h], [], [sage_spkg_install_foo=yes])\n"
                   "AC_LANG_PUSH([C])\nAC_CHECK_HEADER([gmp.h], [], [sage_spkg_install_foo=yes])\n"
                   "AC_SEARCH_LIBS([f], [m], [], [sage_spkg_install_foo=yes])\nAC_LANG_POP([C])\n"
                   "AC_CHECK_LIB([m], [g])\n")
    assert result.understood, result.not_understood
    assert [s.probe.lang for s in result.steps] == ["C++", "C", "C", "C++"]

def test_known_macros_of_the_trees_m4_become_probes():
    openssl = check("""AX_CHECK_OPENSSL([
        AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[#include <openssl/ssl.h>]], [[SSL_new(0);]])], [], [sage_spkg_install_foo=yes])
      ], [sage_spkg_install_foo=yes])""")
    assert openssl.understood, openssl.not_understood
    (header,) = openssl.steps
    assert header.probe == Probe("header", "openssl/ssl.h", lang="C++") and header.missing == (INSTALL,)
    (link,) = header.found
    assert link.probe.subject == "SSL_new" and link.probe.libs == ("ssl",) and link.probe.other_libs == "-lcrypto"
    assert link.found[0].probe.kind == "compile" and link.missing == (INSTALL,)
    iconv = check("AM_ICONV\nif test x\"$am_cv_func_iconv\" != xyes; then sage_spkg_install_foo=yes; fi")
    assert iconv.understood and iconv.steps[0].found[0].probe.libs == ("", "iconv")


def test_as_case_patterns_and_the_macro_names_of_sage_spkg_configure():
    result = read_check("""SAGE_SPKG_CONFIGURE([foo], [], [
        AS_CASE([$host], [*-*-linux*|*-*-darwin*], [], [*-cygwin], [AS_VAR_SET([SPKG_INSTALL], [yes])],
                [AS_VAR_SET([SPKG_REQUIRE], [no])])])""", "foo")
    assert result.understood, result.not_understood
    (case,) = result.required
    assert case.cond[0] == "match" and case.cond[2] == ("*-*-linux*", "*-*-darwin*") and case.found == ()
    cygwin = case.missing[0]
    assert cygwin.found == (INSTALL,) and cygwin.missing == (Step("set", var="sage_require_foo", value="no"),)
    assert not check("AS_CASE([$a $b], [x], [])").understood   # two words


def test_commands_and_chains():
    result = check('AS_IF(["$PY" -c "import sys; sys.exit(1)" 2>& AS_MESSAGE_LOG_FD], [A=1])\n'
                   "$P --version >/dev/null 2>/dev/null &&\n   B=2 &&\n   C=3")
    assert result.understood, result.not_understood
    first, chain = result.steps
    assert first.cond[0] == "run" and [w[-1][2] for w in first.cond[1]] == ["PY", "-c", "import sys; sys.exit(1)"]
    assert chain.cond == ("run", (((False, "var", "P"),), ((False, "lit", "--version"),)))
    assert [s.var for s in chain.found] == ["B", "C"]
    for body in ("$P x && rm -rf y", "rm -rf y && A=1", "A=1 && B=2", "$P `x`"):
        assert not check(body).understood, body


def test_check_headers_with_includes_and_an_unquoted_pushdef_name():
    result = check("""m4_pushdef(SB_MAJOR, [10])
        AC_CHECK_HEADERS([a/x.h] [a/y.h], [], [sage_spkg_install_foo=yes],
            [[#ifndef SB_GUARD
              #include <a/setoper.h>
              #endif]])
        AC_CHECK_HEADER([a/z.h], [], [], [@%:@include <a/w.h> /* SB_MAJOR */])""")
    assert result.understood, result.not_understood
    loop, single = result.steps
    assert [s.probe.kind for s in loop.found] == ["compile", "compile"]
    assert loop.found[1].probe.subject.startswith("#ifndef SB_GUARD") and "#include <a/y.h>" in loop.found[1].probe.subject
    assert single.probe.subject.startswith("#include <a/w.h> /* 10 */")
    assert not check("AC_CHECK_HEADER([a.h], [], [], [AC_INCLUDES_DEFAULT])").understood   # a macro in the includes


def test_a_program_named_after_a_found_one():
    result = check("${ac_path_CURL}-config --checkfor 7.22 >/dev/null 2>/dev/null && ac_path_CURL_found=:")
    assert result.understood, result.not_understood
    assert result.steps[0].cond[1][0] == ((False, "var", "ac_path_CURL"), (False, "lit", "-config"))
    assert not check("x${ac_path_CURL} --version && A=1").understood   # a literal program name


def test_recursive_and_exploding_macros_end():
    # without the reader's bound the second and third would expand 3**20 and 8**20 times
    for defun in ("AC_DEFUN([SAGE_X], [SAGE_X])", "AC_DEFUN([SAGE_X], [SAGE_X\nSAGE_X\nSAGE_X])",
                  "AC_DEFUN([SAGE_X], [m4_foreach([i], [1, 2, 3, 4, 5, 6, 7, 8], [SAGE_X])])"):
        result = read_check(f"{defun}\nSAGE_SPKG_CONFIGURE([foo], [SAGE_X])", "foo")
        assert not result.understood and "SAGE_X" in " ".join(result.unknown + result.not_understood)


def test_pkg_check_var_in_gsls_openblass_and_ntls_forms():
    """pkg.m4's PKG_CHECK_VAR([VARIABLE], [MODULE], [CONFIG-VARIABLE], [found], [missing]): a probe
    that sets VARIABLE to the module's pkg-config variable (found when not empty)."""
    gsl_form = check("""PKG_CHECK_MODULES([GSL], [foo >= 2.4], [
        PKG_CHECK_VAR([GSLPCDIR], [foo], [pcfiledir], [
          GSL_PC="$GSLPCDIR"/foo.pc
          AC_SUBST([SB_FACADE_PC_FILES])
        ], [
        AC_MSG_WARN([Unable to locate the directory of foo.pc. This should not happen!])
       sage_spkg_install_foo=yes
       ])
      ], [sage_spkg_install_foo=yes])""")
    assert gsl_form.understood, gsl_form.unknown + gsl_form.not_understood
    pcdir = Step("probe", Probe("pkgvar", "foo", var="GSLPCDIR", pc_variable="pcfiledir"),
                 found=(Step("set", var="GSL_PC", value="${GSLPCDIR}/foo.pc"),), missing=(INSTALL,))
    flags = Step("probe", Probe("pkgflags", "foo >= 2.4", var="GSL"), found=(pcdir,), missing=(INSTALL,))   # GSL_CFLAGS, GSL_LIBS
    assert gsl_form.steps == (Step("probe", Probe("pkgconfig", "foo", spec=((">=", "2.4"),)), found=(flags,), missing=(INSTALL,)),)

    openblas_form = check("""PKG_CHECK_VAR([OPENBLASPCDIR], [openblas], [pcfiledir], [dnl
        sage_install_blas_pc=yes
      ], [dnl
        AC_MSG_WARN([Unable to locate the directory of openblas.pc. This should not happen!])
        sage_spkg_install_foo=yes
      ])""")
    assert openblas_form.understood, openblas_form.unknown + openblas_form.not_understood
    assert openblas_form.steps == (Step("probe", Probe("pkgvar", "openblas", var="OPENBLASPCDIR", pc_variable="pcfiledir"),
                                        found=(Step("set", var="sage_install_blas_pc", value="yes"),), missing=(INSTALL,)),)

    ntl_form = check("""PKG_CHECK_VAR([ntl_includedir], [ntl], [includedir])
        AS_IF([test "x$ntl_includedir" = x], [sage_spkg_install_foo=yes])""")
    assert ntl_form.understood, ntl_form.unknown + ntl_form.not_understood
    x_dir = ((True, "lit", "x"), (True, "var", "ntl_includedir"))
    assert ntl_form.steps == (Step("probe", Probe("pkgvar", "ntl", var="ntl_includedir", pc_variable="includedir")),
                              Step("if", cond=("test", (x_dir, ((False, "lit", "="),), ((False, "lit", "x"),))), found=(INSTALL,)))


def test_a_pkg_check_var_with_a_hostile_name_or_module_is_not_understood():
    assert check("PKG_CHECK_VAR([FOODIR], [foo-1.0+], [pc.dir], [], [sage_spkg_install_foo=yes])").understood   # names
    for args in ("[FOO-DIR], [foo], [pcfiledir]", "[$(touch sbpwned)], [foo], [pcfiledir]", "[FOO;ls], [foo], [pcfiledir]",
                 "[FOODIR], [foo;touch sbpwned], [pcfiledir]", "[FOODIR], [foo $(touch sbpwned)], [pcfiledir]",
                 "[FOODIR], [`touch sbpwned`], [pcfiledir]", "[FOODIR], [foo|sh], [pcfiledir]",
                 "[FOODIR], [--list-all], [pcfiledir]",   # an option, not a module
                 "[FOODIR], [foo >= 1], [pcfiledir]",                         # one module, by name
                 "[FOODIR], [foo], [pcfiledir;ls]", "[FOODIR], [foo], [$(ls)]", "[FOODIR], [foo]", "[], [foo], [pcfiledir]"):
        result = check(f"PKG_CHECK_VAR({args}, [], [sage_spkg_install_foo=yes])")
        assert not result.understood and result.runnable, args
        assert len(result.steps) == 1 and result.steps[0].op == "unknown", args
        assert result.steps[0].value.startswith("PKG_CHECK_VAR("), args


def test_a_pkg_check_modules_or_exists_with_an_option_or_a_shell_word_is_not_understood():
    """A word of the module list is a module or a version (no option to pkg-config, no shell);
    versions m4 left quoted (``"3.5"``, ``$"2.4"`` after a pushdef) are read as versions."""
    assert check("PKG_CHECK_MODULES([FOO], [foo-1.0+ >= 1.2 bar_2 foo-1.0+ < 2], [], [sage_spkg_install_foo=yes])").understood
    quoted = check('PKG_CHECK_MODULES([FOO], [foo >= $"2.4" bar >= "20250627"], [], [sage_spkg_install_foo=yes])')
    assert [s.probe.spec for s in (quoted.steps[0], quoted.steps[0].found[0])] == [((">=", "2.4"),), ((">=", "20250627"),)]
    for macro in ("PKG_CHECK_MODULES([FOO], ", "PKG_CHECK_EXISTS("):
        for modules in ("--define-variable=prefix=/x", "-foo", "foo -bar", "--static foo", "foo >= -1", "foo >= $(touch)",
                        "foo >= `touch`", "foo;touch sbpwned", "foo >= 1;touch", "foo >="):
            result = check(f"{macro}[{modules}], [], [sage_spkg_install_foo=yes])")
            assert not result.understood and result.runnable, (macro, modules)
            assert len(result.steps) == 1 and result.steps[0].op == "unknown", (macro, modules)
            assert result.steps[0].value.startswith(macro[:macro.index("(")]), result.steps[0].value


def test_pkg_check_modules_sets_prefix_cflags_and_libs_when_found():
    """After the modules' versions, a pkgflags probe asks pkg-config for --cflags and --libs of
    the module list (PREFIX_CFLAGS, PREFIX_LIBS); PKG_CHECK_EXISTS sets nothing."""
    result = check("PKG_CHECK_MODULES([FOO], [foo >= 1.2 foo < 2 bar], [found=yes], [sage_spkg_install_foo=yes])")
    assert result.understood, result.unknown
    flags = Step("probe", Probe("pkgflags", "foo >= 1.2 foo < 2 bar", var="FOO"),
                 found=(Step("set", var="found", value="yes"),), missing=(INSTALL,))
    bar = Step("probe", Probe("pkgconfig", "bar"), found=(flags,), missing=(INSTALL,))
    assert result.steps == (Step("probe", Probe("pkgconfig", "foo", spec=((">=", "1.2"), ("<", "2"))), found=(bar,), missing=(INSTALL,)),)
    exists = check("PKG_CHECK_EXISTS([foo], [found=yes], [sage_spkg_install_foo=yes])")
    assert exists.steps == (Step("probe", Probe("pkgconfig", "foo"), found=(Step("set", var="found", value="yes"),), missing=(INSTALL,)),)
    for prefix in ("FOO-X", "$(touch sbpwned)", "`touch sbpwned`", "FOO;ls", ""):
        result = check(f"PKG_CHECK_MODULES([{prefix}], [foo], [], [sage_spkg_install_foo=yes])")
        assert not result.understood and result.runnable, prefix
        assert len(result.steps) == 1 and result.steps[0].op == "unknown", prefix


GSL_FILE = r"""SAGE_SPKG_CONFIGURE([gsl], [
    m4_pushdef([SAGE_GSL_MINVER],["2.4"])
    SAGE_SPKG_DEPCHECK([openblas], [
      PKG_CHECK_MODULES([GSL], [gsl >= $SAGE_GSL_MINVER], [
        PKG_CHECK_VAR([GSLPCDIR], [gsl], [pcfiledir], [
          GSL_PC="$GSLPCDIR"/gsl.pc
          AC_SUBST([SAGE_SYSTEM_FACADE_PC_FILES])
          AS_VAR_APPEND([SAGE_SYSTEM_FACADE_PC_FILES], [" \$(SAGE_PKGCONFIG)/gsl.pc"])
          AC_SUBST([SAGE_GSL_PC_COMMAND],["\$(SED) -e 's/\$\${GSL_CBLAS_LIB}//' \"$GSL_PC\" > \"\$(@)\""])
        ], [
        AC_MSG_WARN([Unable to locate the directory of gsl.pc. This should not happen!])
       sage_spkg_install_gsl=yes
       ])
      ], [sage_spkg_install_gsl=yes])
    ])
    m4_popdef([SAGE_GSL_MINVER])
])
"""


def test_as_var_append_appends_one_word_and_reads_an_escaped_dollar_as_text():
    """m4sh's AS_VAR_APPEND([var], [text]) is ``as_fn_append var text``: var's value, then the
    one shell word text is; ``\\$`` in double quotes is a ``$`` (text for make)."""
    result = check(r"""V=a
        AS_VAR_APPEND([V], [" \$(SAGE_PKGCONFIG)/gsl.pc"])
        AS_VAR_APPEND([V], ["$W "])
        AS_VAR_APPEND([V], [b"\\"])
        AS_VAR_APPEND([V], [])""")
    assert result.understood, result.unknown + result.not_understood
    assert result.steps == (Step("set", var="V", value="a"), Step("set", var="V", value="${V} $(SAGE_PKGCONFIG)/gsl.pc"),
                            Step("set", var="V", value="${V}${W} "), Step("set", var="V", value="${V}b\\"),
                            Step("set", var="V", value="${V}"))
    gsl = read_check(GSL_FILE, "gsl")
    assert gsl.understood, gsl.unknown + gsl.not_understood


def test_openblas_forms_of_as_var_append_are_understood():
    result = check(r"""AS_IF([test x$sage_spkg_install_foo != xyes], [dnl
        AC_SUBST([SAGE_OPENBLAS_PC_COMMAND], ["\$(LN) -sf \"$OPENBLASPCDIR/openblas.pc\" \"\$(@)\""])
        m4_foreach([blaslibnam], [blas, cblas, lapack], [dnl
          AS_IF([test x$sage_install_]blaslibnam[_pc = xyes], [dnl
             AS_VAR_APPEND([SAGE_SYSTEM_FACADE_PC_FILES], [" \$(SAGE_PKGCONFIG)/]blaslibnam[.pc"])
          ])
        ])
      ])
      AC_SEARCH_LIBS([openblas_get_config], [openblas cblas blas], [dnl
        AS_IF([test x"$ac_cv_search_openblas_get_config" != x"none required"], [dnl
          AS_VAR_APPEND([OPENBLAS_LIBS], ["$ac_cv_search_openblas_get_config "])
        ])
      ])
      m4_foreach([dgeqrf_mangled], [dgeqrf, DGEQRF_], [dnl
        AC_SEARCH_LIBS(dgeqrf_mangled, [openblas lapack], [dnl
          AS_VAR_SET([HAVE_DGEQRF], [yes])
          AS_IF([test x"$ac_cv_search_]dgeqrf_mangled[" != x"none required"], [dnl
            AS_VAR_APPEND([OPENBLAS_LIBS], ["$ac_cv_search_]dgeqrf_mangled[ "])
          ])
        ], [], [-lgfortran])
      ])""")
    assert result.understood, result.unknown + result.not_understood
    blas = result.steps[0].found[0]
    assert blas.found == (Step("set", var="SAGE_SYSTEM_FACADE_PC_FILES", value="${SAGE_SYSTEM_FACADE_PC_FILES} $(SAGE_PKGCONFIG)/blas.pc"),)
    assert result.steps[-1].found[1].found == (Step("set", var="OPENBLAS_LIBS", value="${OPENBLAS_LIBS}${ac_cv_search_DGEQRF_} "),)


def test_an_as_var_append_the_reader_cannot_model_is_not_understood():
    for args in ("[V-x], [a]", "[$(rm -rf /)], [a]", "[`rm -rf /`], [a]", "[V], [$(rm -rf /)]", '[V], ["$(rm -rf /)"]',
                 "[V], [`rm -rf /`]", '[V], ["`rm -rf /`"]', "[V], [a b]",   # two words: as_fn_append appends the first
                 "[V], [$W]",           # unquoted: split into words
                 r'[V], ["\${W}"]',     # a literal ${W}: a set value's ${name} is a variable
                 r'[V], ["a\"b"]', r"[V], [a\$b]", r'[V], ["\n"]', "[V], [a;rm -rf /]", "[V]", "[V], [a], [b]"):
        result = check(f"AS_VAR_APPEND({args})")
        assert not result.understood and result.runnable, args
        assert len(result.steps) == 1 and result.steps[0].op == "unknown", args
        assert result.steps[0].value.startswith("AS_VAR_APPEND("), (args, result.steps[0].value)
    # an assignment's literal ${name} is refused the same way; \$ alone is text
    assert not check(r'V="\${W}"').understood
    assert check(r'V="\$W"').steps == (Step("set", var="V", value="$W"),)


def test_gfortrans_stand_in_is_autoconfs_program_for_its_file():
    """AC_PROG_FC's search (unless $FC is set), AC_FC_FREEFORM's flags and program (as configure
    writes conftest.f), then the gcc and version rules; a file without one of the fragments the
    stand-in stands for is read, and not understood (gfortran is built)."""
    from conftest import GFORTRAN_FILE

    result = read_check(GFORTRAN_FILE, "gfortran")
    assert result.understood, result.unknown
    find_fc, _, _, loop, restore, failed, gcc = result.steps
    assert find_fc.cond == ("test", (((False, "lit", "-z"),), ((True, "var", "FC"),)))
    names, step = [], find_fc.found[0]
    while True:
        names.append(step.probe.subject)
        assert step.found == (Step("set", var="FC", value=step.probe.subject),)   # its name, as AC_CHECK_PROGS
        if not step.missing:
            break
        (step,) = step.missing
    assert names == ("gfortran g95 xlf95 f95 fort ifort ifc efc pgfortran pgf95 lf95 ftn nagfor xlf90 f90 pgf90 pghpf"
                     " epcf90 g77 xlf f77 frt pgf77 cf77 fort77 fl32 af77").split()
    probes = [s.probe for s in loop.found if s.op == "probe"]
    flags = [s.value.split("} ", 1)[1] for s in loop.found if s.op == "set"]
    assert flags == ["-ffree-form", "-FR", "-free", "-qfree", "-Mfree", "-Mfreeform", "-freeform", "-f free", "-8",
                     "+source=free", "-nfix", "--nfix", "-Free"]
    assert len(probes) == 14 and {(p.kind, p.lang) for p in probes} == {("compile", "Fortran")}
    assert probes[0].subject == ("\n  program freeform\n       ! FIXME: how to best confuse non-freeform compilers?\n"
                                 "       print *, 'Hello ', &\n          'world.'\n       end\n")
    assert restore == Step("set", var="FCFLAGS", value="${ac_fc_freeform_FCFLAGS_save}")
    assert failed.found == gcc.missing[0].found[1].found == (Step("set", var="sage_spkg_install_gfortran", value="yes"),)
    for changed in (GFORTRAN_FILE.replace("1[[7-9]]", "1[[8-9]]"), GFORTRAN_FILE.replace("AC_FC_FREEFORM", "AC_FC_FIXEDFORM"),
                    GFORTRAN_FILE.replace("[*gfortran*]", "[*gfortran*|*gcc*]")):
        assert not read_check(changed, "gfortran").understood
    assert not read_check(GFORTRAN_FILE.replace("[gfortran]", "[gfortran2]"), "gfortran2").understood   # only gfortran's
