"""Real system checks for spkg-configure.m4 (``recipes.spkg_configure_m4``), and running a check.

Headers are compiled and libraries linked with the configured compiler ($CC, else cc, with
$CPPFLAGS, $CFLAGS, $LDFLAGS and $LIBS split into fields as the shell splits an unquoted
expansion: :func:`fields`); a Fortran program is compiled as autoconf's Fortran tests do
(``$FC -c $FCFLAGS conftest.f``, fields too; $FC is the check's, as AC_PROG_FC sets it, or
configure's environment's). pkg-config is asked for a module's version, one of its
variables or a module list's --cflags and --libs, programs are found on $PATH and run for their
versions or output. Every answer is cached in
``build/make/config.cache`` (as autoconf's config.cache), keyed by the environment that could
change it, so a reconfigure asks the system nothing new.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from sage_build.base.atomic import write_atomic
from sage_build.base.errors import ConfigureError
from sage_build.recipes.spkg_configure_m4 import Check, Probe, Step, Word

CACHE_FILE = "config.cache"
CACHE_FORMAT = 1
_ENV_KEYS = ("CC", "CXX", "CPPFLAGS", "CFLAGS", "CXXFLAGS", "LDFLAGS", "LIBS", "PATH", "PKG_CONFIG", "PKG_CONFIG_PATH",
             "PKG_CONFIG_LIBDIR", "PKG_CONFIG_SYSROOT_DIR", "CPATH", "LIBRARY_PATH", "FC", "FCFLAGS")
# a check may change them; FC too: the Fortran compiler is the one the check finds (AC_PROG_FC),
# where C's is configure's $CC
BUILD_VARIABLES = ("CPPFLAGS", "CFLAGS", "CXXFLAGS", "LDFLAGS", "LIBS", "FC", "FCFLAGS")
_VERSION = re.compile(r"(\d+(?:\.\d+)+)")


def _in(lang: str) -> str:
    """A cache key's language part: none for C (the keys of caches written before C++ probes)."""
    return "" if lang in ("", "C") else f" in {lang}"


class Probes:
    """The system's answers, asked once and cached."""

    def __init__(self, environ: Mapping[str, str], cache_path: Path | None = None):
        self.environ = dict(environ)
        self.cache_path = cache_path
        self.asked = 0            # questions the system was really asked (not from the cache)
        fingerprint = json.dumps([CACHE_FORMAT] + [self.environ.get(k, "") for k in _ENV_KEYS])
        self.key = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
        self.answers: dict[str, object] = {}
        self.changed = False
        if cache_path is not None:
            try:
                data = json.loads(cache_path.read_text())
                if data.get("key") == self.key:
                    self.answers = dict(data.get("answers", {}))
            except (OSError, ValueError, AttributeError):
                pass  # no cache or an unreadable one: ask again

    def cache_text(self) -> str | None:
        """The cache file's new text, None when nothing new was learnt."""
        if not self.changed:
            return None
        return json.dumps({"key": self.key, "answers": self.answers}, indent=0, sort_keys=True) + "\n"

    def save(self) -> None:
        text = self.cache_text()
        if text is not None and self.cache_path is not None:
            write_atomic(self.cache_path, text.encode())

    def _ask(self, question: str, compute: Callable[[], object]) -> object:
        if question not in self.answers:
            self.asked += 1
            self.answers[question] = compute()
            self.changed = True
        return self.answers[question]

    def ask_checked(self, question: str, compute: Callable[[], object], fresh: Callable[[object], bool]) -> object:
        """An answer that depends on files the environment does not name (a Python's
        site-packages): a cached one is used only while ``fresh(answer)`` holds."""
        if question in self.answers and not fresh(self.answers[question]):
            del self.answers[question]
        return self._ask(question, compute)

    # -- the questions --------------------------------------------------------------------

    def _run(self, command: list[str], cwd: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess | None:
        try:
            # errors="replace": a program's output that is not UTF-8 is text to compare, not a crash
            return subprocess.run(command, capture_output=True, text=True, errors="replace", cwd=cwd, timeout=timeout,
                                  env=self.environ)
        except (OSError, subprocess.TimeoutExpired):
            return None

    def _flags(self, flags: Mapping[str, str] | None) -> tuple[dict[str, str], str]:
        """The build variables (the environment's, or the check's own) and the words they add
        to a question (none when they are the environment's)."""
        env = {k: self.environ.get(k, "") for k in BUILD_VARIABLES}
        own = {k: v for k, v in (flags or {}).items() if k in env and v != env[k]}
        return {**env, **own}, (" " + json.dumps(own, sort_keys=True) if own else "")

    def _build(self, source: str, extra: list[str], link: bool, flags: Mapping[str, str], lang: str = "C",
               execute: bool = False) -> bool:
        cxx = lang == "C++"
        with tempfile.TemporaryDirectory(prefix="sage-build-probe-") as tmp:
            name = "conftest.cpp" if cxx else "conftest.c"
            Path(tmp, name).write_text(source)
            # autoconf's $CC, $CXX, $CPPFLAGS, $CFLAGS, $LDFLAGS and $LIBS are unquoted expansions: their fields
            compiler = fields(self.environ.get("CXX" if cxx else "CC") or "") or ["c++" if cxx else "cc"]
            command = compiler + fields(flags["CPPFLAGS"]) + fields(flags["CXXFLAGS" if cxx else "CFLAGS"])
            if link:
                command += fields(flags["LDFLAGS"]) + [name, "-o", "conftest"] + extra + fields(flags["LIBS"])
            else:
                command += ["-c", name, "-o", "conftest.o"]
            result = self._run(command, cwd=tmp)
            if not execute or result is None or result.returncode != 0:
                return result is not None and result.returncode == 0
            ran = self._run([str(Path(tmp, "conftest"))], cwd=tmp, timeout=30)
            return ran is not None and ran.returncode == 0

    def _compile_fortran(self, source: str, flags: Mapping[str, str]) -> bool:
        """autoconf's Fortran compile test (AC_LANG(Fortran), _AC_COMPILE_IFELSE): the source in
        conftest.f (its extension without AC_FC_SRCEXT, which Sage's configure does not call), then
        ``$FC -c $FCFLAGS conftest.f`` (fields; no shell); it succeeds when the compiler exits
        with 0 and leaves a conftest.o that is not empty (autoconf's ``test -s conftest.$ac_objext``:
        ``ls -c conftest.f`` exits with 0 and is no compiler). No FC: the test fails."""
        compiler = fields(flags.get("FC", ""))
        if not compiler:
            return False
        with tempfile.TemporaryDirectory(prefix="sage-build-probe-") as tmp:
            Path(tmp, "conftest.f").write_text(source)
            result = self._run(compiler + ["-c"] + fields(flags.get("FCFLAGS", "")) + ["conftest.f"], cwd=tmp)
            obj = Path(tmp, "conftest.o")
            return result is not None and result.returncode == 0 and obj.is_file() and obj.stat().st_size > 0

    def header(self, name: str, flags: Mapping[str, str] | None = None, lang: str = "C") -> bool:
        """Whether ``#include <name>`` compiles in ``lang`` (C or C++: autoconf's current language)."""
        build, words = self._flags(flags)
        return bool(self._ask(f"header {name}{_in(lang)}{words}", lambda: self._build(
            f"#include <{name}>\nint main(void) {{ return 0; }}\n", [], link=False, flags=build, lang=lang)))

    def library(self, function: str, lib: str, other: str = "", flags: Mapping[str, str] | None = None,
                lang: str = "C") -> bool:
        """Whether a program calling ``function`` links (with ``-l lib`` when lib is not '')."""
        source = f"#ifdef __cplusplus\nextern \"C\"\n#endif\nchar {function} (void);\nint main(void) {{ return {function} (); }}\n"
        extra = ([f"-l{lib}"] if lib else []) + fields(other)
        build, words = self._flags(flags)
        return bool(self._ask(f"link {function} {' '.join(extra)}{_in(lang)}{words}",
                              lambda: self._build(source, extra, link=True, flags=build, lang=lang)))

    def program_builds(self, source: str, lang: str, link: bool, flags: Mapping[str, str] | None = None,
                       execute: bool = False) -> bool:
        """Whether a program compiles (or links, or links and runs with exit status 0) in ``lang``
        (C or C++): AC_COMPILE_IFELSE, AC_LINK_IFELSE, AC_RUN_IFELSE. A Fortran program is only
        compiled (:meth:`_compile_fortran`)."""
        build, words = self._flags(flags)
        digest = hashlib.sha256(source.encode()).hexdigest()[:16]
        kind = "run" if execute else "link" if link else "compile"
        if lang == "Fortran":
            if kind != "compile":
                raise ConfigureError(f"a Fortran program is only compiled by configure's checks, not asked to {kind}")
            return bool(self._ask(f"compile Fortran program {digest}{words}", lambda: self._compile_fortran(source, build)))
        return bool(self._ask(f"{kind} {lang} program {digest}{words}",
                              lambda: self._build(source, [], link=link or execute, flags=build, lang=lang, execute=execute)))

    def command(self, argv: list[str]) -> bool:
        """Whether a command (a program configure found, with its arguments) exits with 0."""
        def compute():
            result = self._run(argv, timeout=60)
            return result is not None and result.returncode == 0
        return bool(self._ask("run " + json.dumps(argv), compute))

    def output(self, argv: list[str]) -> str:
        """A command's standard output as the shell's backquotes give it (trailing newlines
        dropped; '' when it cannot run), whatever its exit status: ``V="`$FC -dumpversion`"``."""
        def compute():
            result = self._run(argv, timeout=60)
            return "" if result is None else result.stdout.rstrip("\n")
        return self._ask("output " + json.dumps(argv), compute)  # type: ignore[return-value]

    def host(self) -> str:
        """autoconf's $host, as config.guess spells it (cpu-vendor-os)."""
        system = platform.system().lower()
        machine = platform.machine() or "unknown"
        if system == "darwin":
            return f"{machine}-apple-darwin{platform.release()}"
        return f"{machine}-pc-{system}-gnu" if system == "linux" else f"{machine}-unknown-{system}"

    def pkg_config_program(self) -> str | None:
        """The pkg-config the checks use, as Sage's configure.ac finds it (PKG_PROG_PKG_CONFIG):
        ``$PKG_CONFIG`` when set (a path, or a name looked up on PATH), else pkg-config on PATH."""
        name = self.environ.get("PKG_CONFIG") or "pkg-config"
        if "/" in name:
            return name if os.access(name, os.X_OK) and not os.path.isdir(name) else None
        return self.program(name)

    def _pkg_config(self, *args: str) -> str | None:
        """pkg-config's output for its arguments (no shell), None when pkg-config is missing or fails."""
        program = self.pkg_config_program()
        if program is None:
            return None
        result = self._run([program, *args])
        return result.stdout if result is not None and result.returncode == 0 else None

    def pkgconfig(self, module: str) -> str | None:
        """The module's version, None when pkg-config (or the module) is missing."""
        def compute():
            output = self._pkg_config("--modversion", module)
            return None if output is None else output.strip()
        return self._ask(f"pkg-config {module}", compute)  # type: ignore[return-value]

    def pkgconfig_output(self, option: str, modules: str) -> str | None:
        """``pkg-config OPTION MODULES`` (``--variable=NAME`` for PKG_CHECK_VAR, ``--cflags`` or
        ``--libs`` for PKG_CHECK_MODULES's flags; the module list in one argument, as pkg.m4 gives
        it) as the shell's backquotes give its output (trailing newlines dropped); None when
        pkg-config (or a module) is missing or fails."""
        def compute():
            output = self._pkg_config(option, modules)
            return None if output is None else output.rstrip("\n")
        return self._ask(f"pkg-config {modules} {option}", compute)  # type: ignore[return-value]

    def program(self, name: str) -> str | None:
        return self._ask(f"program {name}", lambda: shutil.which(name, path=self.environ.get("PATH")))  # type: ignore[return-value]

    def version(self, program: str, option: str = "--version") -> str:
        def compute():
            result = self._run([program, option], timeout=30)
            if result is None:
                return ""
            match = _VERSION.search(result.stdout + result.stderr)
            return match.group(1) if match else ""
        key = f"version {program}" if option == "--version" else f"version {program} {option}"
        return self._ask(key, compute)  # type: ignore[return-value]


def version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:6])


_OP_SIGNS = {"lt": "<", "le": "<=", "eq": "=", "ne": "!=", "gt": ">", "ge": ">="}


def compare_versions(found: str, op: str, wanted: str) -> bool:
    a, b = version_key(found), version_key(wanted)
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return {"lt": a < b, "le": a <= b, "eq": a == b, "ne": a != b, "gt": a > b, "ge": a >= b,
            "<": a < b, "<=": a <= b, "=": a == b, "==": a == b, "!=": a != b, ">": a > b, ">=": a >= b}[op]


_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_IFS = re.compile(r"[ \t\n]+")   # the shell's default IFS: space, tab, newline


def fields(value: str) -> list[str]:
    """The fields of an unquoted ``$VAR`` whose value is ``value``, as the shell splits it: at
    blanks, empty fields dropped; quotes and backslashes in the value are text (no pathname
    expansion here: a flag with ``*`` or ``?`` stays one field)."""
    return [field for field in _IFS.split(value) if field]


def expand(word: Word, get: Callable[[str], str]) -> list[str]:
    """A shell word's fields: variables replaced, unquoted ones split at blanks, and fields
    empty without quotes dropped (the shell's expansion)."""
    fields: list[list] = [["", False]]   # text, kept (quoted or not empty)
    for quoted, kind, text in word:
        value = text if kind == "lit" else get(text)
        if quoted or kind == "lit":
            fields[-1][0] += value
            fields[-1][1] = fields[-1][1] or quoted or bool(value)
            continue
        pieces = _IFS.split(value)
        fields[-1][0] += pieces[0]
        fields[-1][1] = fields[-1][1] or bool(pieces[0])
        fields += [[piece, bool(piece)] for piece in pieces[1:]]
    return [text for text, kept in fields if kept]


def _file_test(check: Callable[[Path], bool]) -> Callable[[Path], bool]:
    def test(path: Path) -> bool:
        try:
            return check(path)
        except OSError:
            return False
    return test


_FILE_TESTS = {
    "-f": _file_test(Path.is_file), "-d": _file_test(Path.is_dir), "-e": _file_test(Path.exists),
    "-r": _file_test(lambda p: os.access(p, os.R_OK)), "-x": _file_test(lambda p: os.access(p, os.X_OK)),
    "-s": _file_test(lambda p: p.stat().st_size > 0),
}


def shell_test(args: list[str]) -> bool:
    """``test ARGS`` succeeds (POSIX's rules by the number of arguments, XSI's -a and -o);
    a malformed test fails, as test's status 2 does in an ``if``."""
    n = len(args)
    if n == 0:
        return False
    if n == 1:
        return args[0] != ""
    if n == 2:
        if args[0] == "!":
            return not shell_test(args[1:])
        if args[0] in _FILE_TESTS:
            return _FILE_TESTS[args[0]](Path(args[1])) if args[1] else False
        return {"-z": args[1] == "", "-n": args[1] != ""}.get(args[0], False)
    if n == 3 and args[1] in ("=", "!="):
        return (args[0] == args[2]) == (args[1] == "=")
    if n == 3 and args[1] in ("-a", "-o"):
        left, right = shell_test(args[:1]), shell_test(args[2:])
        return left and right if args[1] == "-a" else left or right
    if n in (3, 4) and args[0] == "!":
        return not shell_test(args[1:])
    if n in (3, 4) and args[0] == "(" and args[-1] == ")":
        return shell_test(args[1:-1])
    for joiner in ("-o", "-a"):
        if joiner in args[1:-1]:
            at = args.index(joiner, 1)
            left, right = shell_test(args[:at]), shell_test(args[at + 1:])
            return left or right if joiner == "-o" else left and right
    return False


@dataclass
class Outcome:
    install: bool           # Sage's sage_spkg_install_PKG: build from source
    notes: list[str] = field(default_factory=list)   # what was found and what was not
    not_understood: str = ""   # the statement the check reached and this reader does not understand
    # what the system has in a version the check refused ("fplll 5.4.4 (pkg-config); the tree
    # needs >= 5.5.0"): configure's hint says so instead of naming it as if it were missing
    refused: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(self.notes[-3:]) or ("the check sets sage_spkg_install" if self.install else "the checks passed")


class _Break(Exception):
    pass


class _Unknown(Exception):
    pass


def run_check(check: Check, probes: Probes, *, dependency_built: Callable[[str], bool],
              python_check: Callable[[str], tuple[bool, str]], use_system: bool = True,
              context: Mapping[str, Callable[[], str]] | None = None) -> Outcome:
    """Run a check as Sage's configure would; ``dependency_built(dep)`` says whether a
    SAGE_SPKG_DEPCHECK dependency is built from source, ``python_check(pkg)`` runs
    SAGE_PYTHON_PACKAGE_CHECK (found, why). The REQUIRED-CHECK runs first: a package it finds
    not required is not installed (Sage's ``sage_require_PKG=no``); then, unless ``use_system``
    is False (``--with-system-PKG=no``), the check. ``context`` gives configure's own variables
    (``PYTHON_FOR_VENV``, ...); ``host`` and ``PKG_CONFIG`` are known here."""
    install_var = f"sage_spkg_install_{check.package}"
    require_var = f"sage_require_{check.package}"
    variables: dict[str, str] = {install_var: "no", require_var: "yes"}
    notes: list[str] = []
    refused: list[str] = []
    version_of: dict[str, str] = {}   # a variable holding a program's version -> that program
    known: dict[str, Callable[[], str]] = {
        "host": probes.host,
        # set by Sage's configure.ac before the checks (PKG_PROG_PKG_CONFIG; pkgconf's check reads it)
        "PKG_CONFIG": lambda: probes.pkg_config_program() or "",
        **(context or {}),
    }

    def get(var: str) -> str:
        other = var.removeprefix("sage_spkg_install_")
        if var not in variables and other != var:   # another package's decision (AC_REQUIRE'd)
            return "yes" if dependency_built(other) else "no"
        if var not in variables and var in BUILD_VARIABLES:
            return probes.environ.get(var, "")
        if var not in variables and var in known:
            variables[var] = known[var]()
        return variables.get(var, "")

    def flags() -> dict[str, str]:
        return {k: get(k) for k in BUILD_VARIABLES}

    def holds(cond: tuple) -> bool:
        if cond[0] == "test":
            return shell_test([field for word in cond[1] for field in expand(word, get)])
        if cond[0] == "match":
            value = " ".join(expand(cond[1], get))
            return any(fnmatch.fnmatchcase(value, pattern) for pattern in cond[2])
        if cond[0] == "run":
            argv = [field for word in cond[1] for field in expand(word, get)]
            ok = bool(argv) and probes.command(argv)
            notes.append(f"{' '.join(argv)[:60]} {'succeeds' if ok else 'fails'}")
            return ok
        if cond[0] == "not":
            return not holds(cond[1])
        return holds(cond[1]) and holds(cond[2]) if cond[0] == "and" else holds(cond[1]) or holds(cond[2])

    def run(steps: tuple[Step, ...]) -> None:
        for step in steps:
            one(step)

    def branch(ok: bool, step: Step) -> None:
        run(step.found if ok else step.missing)

    def one(step: Step) -> None:
        if step.op == "set":
            variables[step.var] = _VAR_REF.sub(lambda m: get(m.group(1)), step.value)
        elif step.op == "break":
            raise _Break
        elif step.op == "unknown":
            raise _Unknown(step.value)
        elif step.op == "loop":
            try:
                run(step.found)
            except _Break:
                pass
        elif step.op == "if":
            branch(holds(step.cond), step)
        elif step.op == "compare":
            op, var, wanted = step.cond
            found = variables.get(var, "")
            ok = bool(found) and compare_versions(found, op, wanted)
            if found and not ok:
                refused.append(f"{version_of.get(var, var)} {found}, the tree needs {_OP_SIGNS.get(op, op)} {wanted}")
            branch(ok, step)
        elif step.op == "version":
            program = variables.get(step.value, "")
            variables[step.var] = probes.version(program, *step.cond[:1]) if program else ""
            version_of[step.var] = program
        elif step.op == "output":   # var="`command`": the command's words expanded as the shell does
            argv = [field for word in step.cond for field in expand(word, get)]
            variables[step.var] = probes.output(argv) if argv else ""
            command = " ".join(argv)
            command = command if len(command) <= 60 else "..." + command[-57:]
            notes.append(f"{command}: {' '.join(variables[step.var].split())[:40] or 'no output'}")
        elif step.op == "depcheck":
            built = [d for d in step.deps if dependency_built(d)]
            if built:
                notes.append(f"its dependency {built[0]} is built from source")
                variables[install_var] = "yes"
            else:
                run(step.found)
        elif step.op == "python":
            ok, why = python_check(step.value)
            notes.append(why)
            if not ok:
                variables[f"sage_spkg_install_{step.value}"] = "yes"
        elif step.op == "probe":
            probe(step.probe, step)
        else:  # the reader makes no other step
            raise AssertionError(step.op)

    def probe(p: Probe, step: Step) -> None:
        if p.kind == "header":
            ok = probes.header(p.subject, flags(), p.lang or "C")
            notes.append(f"header {p.subject} {'found' if ok else 'not found'}")
            branch(ok, step)
        elif p.kind == "library":
            lib = next((lib for lib in p.libs if probes.library(p.subject, lib, p.other_libs, flags(), p.lang or "C")), None)
            where = "" if lib in (None, "") else f" in -l{lib}"
            if lib and p.var == "LIBS":   # AC_SEARCH_LIBS, AC_CHECK_LIB's default action: LIBS="-llib $LIBS"
                variables["LIBS"] = f"-l{lib} {get('LIBS')}"
            notes.append(f"{p.subject}{where} {'links' if lib is not None else 'does not link'}")
            branch(lib is not None, step)
        elif p.kind in ("compile", "link", "run"):
            ok = probes.program_builds(p.subject, p.lang, p.kind == "link", flags(), execute=p.kind == "run")
            first = next((line.strip() for line in p.subject.splitlines() if line.strip()), "")
            verb = {"compile": ("builds", "does not build"), "link": ("links", "does not link"),
                    "run": ("runs and succeeds", "does not build, run or succeed")}[p.kind][0 if ok else 1]
            compiler = " with " + (" ".join(fields(get("FC")) + fields(get("FCFLAGS"))) or "no compiler") if p.lang == "Fortran" else ""
            notes.append(f"a {p.lang} program ({first[:40]}) {verb}{compiler}")
            branch(ok, step)
        elif p.kind == "pkgconfig":
            version = probes.pkgconfig(p.subject)
            ok = version is not None and all(compare_versions(version, op, v) for op, v in p.spec)
            wanted = ", ".join(f"{op} {v}" for op, v in p.spec)
            if version is not None and not ok:
                refused.append(f"{p.subject} {version} (pkg-config), the tree needs {wanted}")
            notes.append(f"pkg-config {p.subject} {version or 'not found'}" + (f" (need {wanted})" if wanted and version else ""))
            branch(ok, step)
        elif p.kind == "pkgvar":
            # PKG_CHECK_VAR: a value the check gave the variable before is kept (pkg.m4's _PKG_CONFIG)
            # '' when pkg-config (or the module) is missing, as pkg.m4's
            value = variables.get(p.var) or probes.pkgconfig_output(f"--variable={p.pc_variable}", p.subject) or ""
            variables[p.var] = value
            notes.append(f"pkg-config {p.subject} {p.pc_variable}: {value or 'not found'}")
            branch(bool(value), step)
        elif p.kind == "pkgflags":
            # PKG_CHECK_MODULES's PREFIX_CFLAGS and PREFIX_LIBS (pkg.m4's _PKG_CONFIG): a value the
            # check gave one before is kept; the environment's is not read (as for PKG_CHECK_VAR);
            # set only when both are found
            values = {f"{p.var}_{suffix}": variables.get(f"{p.var}_{suffix}") or probes.pkgconfig_output(option, p.subject)
                      for suffix, option in (("CFLAGS", "--cflags"), ("LIBS", "--libs"))}
            ok = all(value is not None for value in values.values())
            if ok:
                variables.update(values)  # type: ignore[arg-type]
            else:
                notes.append(f"pkg-config --cflags/--libs {p.subject} fails")
            branch(ok, step)
        elif p.kind == "program":
            feature = p.libs == ("feature",)
            for name in p.subject.split():
                path = probes.program(name)
                if path is None:
                    continue
                variables[p.var] = path
                if not feature:
                    # AC_PATH_PROG(S) keep the path in ac_cv_path_VAR too, AC_CHECK_PROG(S) in ac_cv_prog_VAR
                    variables[("ac_cv_path_" if "PATH" in p.libs[0] else "ac_cv_prog_") + p.var] = path
                    notes.append(f"{name}: {path}")
                    run(step.found)
                    return
                run(step.found)
                if variables.get(p.var + "_found"):
                    notes.append(f"{name}: {path} passes")
                    return
                notes.append(f"{name}: {path} fails its test")
            if not feature:
                notes.append(f"no {p.subject} on PATH")
                variables[p.var] = ""
            run(step.missing)

    try:
        try:
            run(check.required)
        except _Break:
            pass
        if variables.get(require_var) == "no":
            return Outcome(install=False, notes=notes + ["not required on this system (its REQUIRED-CHECK)"])
        if not use_system:
            return Outcome(install=True, notes=notes)
        try:
            run(check.steps)
        except _Break:
            pass
    except _Unknown as unknown:   # Sage's configure would run it; we cannot say what it decides
        return Outcome(install=True, notes=notes, not_understood=str(unknown))
    install = variables.get(install_var) == "yes"
    return Outcome(install=install, notes=notes, refused=refused if install else [])
