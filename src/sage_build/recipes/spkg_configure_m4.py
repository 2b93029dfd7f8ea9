"""Reading a recipe's spkg-configure.m4 (Sage's system detection) without running m4.

The file calls ``SAGE_SPKG_CONFIGURE([pkg], [checks], [required-checks], [pre], [post])``.
Its checks are read into a small program (:class:`Check`): probes (a header compiles, a
library links, a program builds, links or runs, a pkg-config module has a version, a pkg-config
variable of a module is not empty (``PKG_CHECK_VAR``, which sets a shell variable to it),
pkg-config gives a module list's flags (``PKG_CHECK_MODULES``'s ``PREFIX_CFLAGS`` and
``PREFIX_LIBS``), a program is on PATH), each with an action when found and one when missing,
shell assignments (``sage_spkg_install_pkg=yes``, ``AS_VAR_SET``, ``AS_VAR_APPEND``),
``if``/``AS_IF``/``AS_CASE`` tests, commands of a program configure found
(``"$PYTHON_FOR_VENV" -c ...``), ``SAGE_SPKG_DEPCHECK`` and ``SAGE_PYTHON_PACKAGE_CHECK``. The REQUIRED-CHECK (and PRE) is read too: it may find the
package not needed here. configure runs the program with real probes (``configure.probes``).

A statement this reader does not understand becomes an ``unknown`` step (:attr:`Check.unknown`):
the package is "not understood", and built from source, only when its check reaches it, as the
shell runs only the branch taken. Text whose structure is not understood (quotes, an ``if``
without ``fi``) makes the whole file not understood (:attr:`Check.not_understood`).

m4's rules kept here: ``[...]`` quotes (nested; commas and parentheses inside are text),
one level of quotes removed from each macro argument and from text m4 writes out, unquoted
parentheses nested in an argument, leading whitespace of an argument dropped, ``dnl``
comments, ``m4_pushdef`` of a plain value, ``m4_foreach``, and macros the tree's ``m4/*.m4``
or the file itself AC_DEFUN (``$1``..``$9``, read again). gcc's, gfortran's and python3's files
are programs of their own (autoconf's compiler macros, a search for a Python): stand-ins say what
they decide (``_STAND_INS``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from sage_build.base.errors import RecipeError

M4_FILE = "spkg-configure.m4"


# --- the program ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    """A question to the system; its answer is found (True) or not.

    kind: ``header`` (subject: the header), ``library`` (subject: a function; libs: the
    libraries to try, '' meaning none), ``pkgconfig`` (subject: the module; spec: comparisons),
    ``pkgvar`` (subject: the module; sets ``var`` to pkg-config's value of its variable
    ``pc_variable``, found when not empty: PKG_CHECK_VAR), ``pkgflags`` (subject: a module
    list with its comparisons; sets ``var``_CFLAGS and ``var``_LIBS to pkg-config's --cflags and
    --libs of it, found when pkg-config gives both: PKG_CHECK_MODULES once its modules passed),
    ``program`` (subject: the program; sets ``var`` to its path), ``compile`` / ``link`` /
    ``run`` (subject: a program's source in ``lang``, C or C++; ``run`` also runs it and asks
    for exit status 0; a stand-in may compile in Fortran: ``$FC -c $FCFLAGS conftest.f``,
    compile only). Headers and libraries are tried in ``lang`` too (Sage's configure.ac
    sets C++ before the checks). A library probe with var ``LIBS`` adds
    the library it found to LIBS (AC_SEARCH_LIBS, AC_CHECK_LIB without an action)."""
    kind: str
    subject: str
    libs: tuple[str, ...] = ()
    other_libs: str = ""
    spec: tuple[tuple[str, str], ...] = ()   # pkg-config (op, version) pairs
    var: str = ""
    lang: str = ""
    pc_variable: str = ""   # pkgvar: the module's pkg-config variable (pcfiledir, includedir...)


@dataclass(frozen=True)
class Step:
    """One statement. op is one of: ``probe`` (probe, then found / missing), ``set`` (var =
    value, whose ``${name}`` are replaced by variables), ``if`` (cond, then found / missing;
    cond may run a command), ``depcheck``
    (deps, then found), ``python`` (subject: the package), ``loop`` (found, until ``break``), ``break``, ``version`` (var = the
    version printed by ``$program --version``, or the option in cond), ``output`` (var = the
    standard output of the command whose words are cond: ``V="`$FC -dumpversion`"``; a
    stand-in's, the reader makes none), ``compare`` (cond holds the comparison),
    ``unknown`` (value: the statement this reader does not understand)."""
    op: str
    probe: Probe | None = None
    var: str = ""
    value: str = ""
    cond: tuple = ()          # if: a condition (see :func:`read_condition`); compare: (op, var, version)
    found: tuple["Step", ...] = ()
    missing: tuple["Step", ...] = ()
    deps: tuple[str, ...] = ()


@dataclass
class Check:
    package: str
    steps: tuple[Step, ...] = ()
    required: tuple[Step, ...] = ()            # REQUIRED-CHECK: may set sage_require_PKG=no
    requires: tuple[str, ...] = ()             # AC_REQUIRE'd / DEPCHECK'd packages (order)
    python_check: bool = False
    not_understood: list[str] = field(default_factory=list)   # the text's structure: nothing runs
    unknown: list[str] = field(default_factory=list)          # statements: "not understood" if reached

    @property
    def understood(self) -> bool:
        """Every statement understood."""
        return not self.not_understood and not self.unknown

    @property
    def runnable(self) -> bool:
        """The structure understood: the check runs, and is not understood only if it reaches an
        ``unknown`` step."""
        return not self.not_understood


# --- m4 text --------------------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PC_MODULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")   # a pkg-config module (or version): no option, no shell
_PC_VARIABLE = re.compile(r"[A-Za-z0-9_.]+")              # a variable of a .pc file, as pkg-config reads them
_BRACKET = re.compile(r"[\[\]]")
_ARG_SPECIAL = re.compile(r"[\[\](),]")
_MACRO_PREFIXES = ("AC_", "AS_", "AX_", "AM_", "LT_", "PKG_", "SAGE_", "m4_", "WITH_SAGE_")


def strip_dnl(text: str) -> str:
    """Drop ``dnl`` and the rest of its line, newline included."""
    return re.sub(r"(?<![A-Za-z0-9_])dnl(?![A-Za-z0-9_])[^\n]*\n?", "", text)


def _is_macro(name: str) -> bool:
    return name.startswith(_MACRO_PREFIXES)


def unquote(text: str) -> str:
    """Remove one level of m4 quotes (every ``[``/``]`` at quote depth 0 and 1's brackets)."""
    out, depth, start = [], 0, 0
    for match in _BRACKET.finditer(text):   # jump from bracket to bracket: a reconfigure reads 348 files
        char, at = match.group(0), match.start()
        if char == "[":
            depth += 1
            if depth == 1:
                out.append(text[start:at])
                start = at + 1
        else:
            depth -= 1
            if depth == 0:
                out.append(text[start:at])
                start = at + 1
            if depth < 0:
                raise ValueError("unbalanced ']'")
    if depth:
        raise ValueError("unbalanced '['")
    out.append(text[start:])
    return "".join(out)


def _quote_depth_after(bracket: str, depth: int) -> int:
    """m4's quote depth after an opening or closing quote bracket."""
    return depth + 1 if bracket == "[" else depth - 1


def split_args(text: str, start: int) -> tuple[list[str], int]:
    """The raw arguments of a macro call whose '(' is at ``start``; and the index after ')'."""
    args, depth, quote, begin = [], 0, 0, start + 1
    for match in _ARG_SPECIAL.finditer(text, start + 1):
        char, at = match.group(0), match.start()
        if char in "[]":
            quote = _quote_depth_after(char, quote)
            if quote < 0:
                raise ValueError("unbalanced ']'")
        elif quote == 0:
            if char == "(":
                depth += 1
            elif char == ")":
                if depth == 0:
                    args.append(text[begin:at])
                    return [a.lstrip() for a in args], at + 1
                depth -= 1
            elif char == "," and depth == 0:
                args.append(text[begin:at])
                begin = at + 1
    raise ValueError("a macro call is not closed: ')' is missing")


def tokenize(text: str, macros: Mapping[str, str] | frozenset = frozenset()) -> list[tuple[str, object]]:
    """Top-level items: ("macro", (name, [unquoted args])) or ("text", str); a macro is a name
    of autoconf's or Sage's families (``AC_``, ``SAGE_``...) or one of ``macros``."""
    items: list[tuple[str, object]] = []
    i, buffer, quote = 0, [], 0
    while i < len(text):
        char = text[i]
        if char in "[]":
            quote = _quote_depth_after(char, quote)
        elif quote == 0 and char == "#" and (i == 0 or text[i - 1] in " \t\n;"):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif quote == 0 and (char.isalpha() or char == "_") and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_${")):
            match = _NAME.match(text, i)
            name = match.group(0)
            after = match.end()
            if _is_macro(name) or name in macros:
                if buffer:
                    items.append(("text", "".join(buffer)))
                    buffer = []
                if after < len(text) and text[after] == "(":
                    raw, i = split_args(text, after)
                    items.append(("macro", (name, [unquote(a).strip() for a in raw])))
                else:
                    items.append(("macro", (name, [])))
                    i = after
                continue
            buffer.append(name)
            i = after
            continue
        buffer.append(char)
        i += 1
    if buffer:
        items.append(("text", "".join(buffer)))
    return items


# --- shell words and `test` conditions -------------------------------------------------------

_VAR_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_SHELL_SPECIAL = set("`\\*?[]<>|&;(){}~#\"'$")
Word = tuple[tuple[bool, str, str], ...]   # parts: (quoted, "lit" | "var", text)


def shell_words(text: str) -> list[Word | str] | None:
    """The words of a simple shell command line: each a tuple of parts, or ``"&&"`` / ``"||"``.
    In double quotes ``\\$`` and ``\\\\`` are a literal ``$`` and ``\\``. None when the line has
    anything else (command substitution, globs, redirections, other escapes, a ``$`` that is not
    a plain variable)."""
    words: list[Word | str] = []
    parts: list[tuple[bool, str, str]] = []
    i, in_word = 0, False

    def add(quoted: bool, kind: str, value: str) -> None:
        if kind == "lit" and parts and parts[-1][:2] == (quoted, "lit"):
            parts[-1] = (quoted, "lit", parts[-1][2] + value)
        else:
            parts.append((quoted, kind, value))

    while i < len(text):
        char = text[i]
        if char in " \t\n":
            if in_word:
                words.append(tuple(parts))
                parts, in_word = [], False
            i += 1
            continue
        if not in_word and text.startswith(("&&", "||"), i):
            words.append(text[i:i + 2])
            i += 2
            continue
        in_word = True
        if char == "'":
            end = text.find("'", i + 1)
            if end < 0 or "$" in text[i + 1:end]:   # keep a ``set`` value's ``${name}`` unambiguous
                return None
            add(True, "lit", text[i + 1:end])
            i = end + 1
        elif char == '"':
            end = text.find('"', i + 1)
            if end < 0:
                return None
            inner, j = text[i + 1:end], 0
            add(True, "lit", "")
            while j < len(inner):
                if inner[j] == "\\" and inner[j + 1:j + 2] in ("$", "\\"):   # text ("\\$(SAGE_PKGCONFIG)": make's)
                    add(True, "lit", inner[j + 1])
                    j += 2
                    continue
                if inner[j] in "`\\":
                    return None
                if inner[j] == "$":
                    match = _VAR_REF.match(inner, j)
                    if not match:
                        return None
                    add(True, "var", match.group(1) or match.group(2))
                    j = match.end()
                else:
                    add(True, "lit", inner[j])
                    j += 1
            i = end + 1
        elif char == "$":
            match = _VAR_REF.match(text, i)
            if not match:
                return None
            add(False, "var", match.group(1) or match.group(2))
            i = match.end()
        elif char in _SHELL_SPECIAL:
            return None
        else:
            add(False, "lit", char)
            i += 1
    if in_word:
        words.append(tuple(parts))
    return words


def word_variables(word: Word) -> list[str]:
    return [text for _, kind, text in word if kind == "var"]


_TEST_OPERATORS = {"-z", "-n", "-a", "-o", "=", "!=", "!", "-f", "-d", "-e", "-r", "-x", "-s"}   # and files: read only


_REDIRECTION = re.compile(r"(?<!\S)\d?>&\s*\d(?!\S)|(?<!\S)\d?>\s*/dev/null(?!\S)")


def read_condition(text: str) -> tuple | None:
    """A shell condition made of ``test`` commands joined by ``&&`` / ``||``, each maybe
    negated by ``!``: ``("test", words)``, ``("not", c)``, ``("and", a, b)``, ``("or", a, b)``.
    ``test``'s own operators: ``=``, ``!=``, ``-z``, ``-n``, ``!``, ``-a``, ``-o``. A command
    whose program is a variable (a program configure found: ``"$PYTHON_FOR_VENV" -c "..."``,
    ``$ac_path_GIT --version``) is ``("run", words)``: it holds when the command exits with 0;
    its output redirections (to /dev/null, to the log's descriptor) are dropped. None for
    anything else (another command, another operator)."""
    words = shell_words(_REDIRECTION.sub(" ", text))  # blanks between words: shell_words; in quotes: text
    if not words:
        return None
    result, joiner, command = None, None, []
    for word in words + ["&&"]:
        if word not in ("&&", "||"):
            command.append(word)
            continue
        negate = command[:1] == [((False, "lit", "!"),)]
        if negate:
            command = command[1:]
        if command and [kind for _, kind, text in command[0] if kind == "var" or text][:1] == ["var"]:
            cond: tuple = ("run", tuple(command))
        elif not command or command[0] != ((False, "lit", "test"),):
            return None
        else:
            cond = ("test", tuple(command[1:]))
        args = cond[1] if cond[0] == "test" else ()
        for arg in args:
            if len(arg) == 1 and arg[0][1] == "lit" and not arg[0][0] and arg[0][2] in ("==", "<", ">", "-eq", "-ne") \
                    or len(arg) == 1 and arg[0][1] == "lit" and arg[0][2].startswith("-") and arg[0][2] not in _TEST_OPERATORS:
                return None   # a test this reader does not evaluate (files, numbers)
        if negate:
            cond = ("not", cond)
        result = cond if result is None else (joiner, result, cond)
        joiner, command = ("and" if word == "&&" else "or"), []
    return result


def condition_variables(cond: tuple) -> list[str]:
    if cond[0] in ("test", "run"):
        return [v for word in cond[1] for v in word_variables(word)]
    if cond[0] == "match":
        return word_variables(cond[1])
    return [v for part in cond[1:] for v in condition_variables(part)]


# --- statements -----------------------------------------------------------------------------

_IGNORED = {
    "AC_MSG_CHECKING", "AC_MSG_RESULT", "AC_MSG_NOTICE", "AC_MSG_WARN",
    "AC_SUBST", "AC_DEFINE", "AS_ECHO", "AC_LANG_ASSERT",
}
# VAR=`$PROG --version | ...` or VAR=$($PROG -V | ...) (qhull's): the version $PROG prints when
# asked with that option (the pipeline's cut/sed only pick it out of the text)
_VERSION_CMD = re.compile(r"""^([A-Za-z_][A-Za-z0-9_]*)=(?:`\s*"?\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?"?\s+(--version|-version|-V)\b[^`]*`"""
                          r"""|\$\(\s*"?\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?"?\s+(--version|-version|-V)\b[^()`]*\))$""")


_BRACED_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def _set_step(var: str, word: Word) -> Step | None:
    """``var=word`` as a ``set`` step, whose value says a variable as ``${name}``; None when the
    word's text would read as one too (a literal ``${name}``, from ``"\\${name}"``)."""
    value = "".join(text if kind == "lit" else "${" + text + "}" for _, kind, text in word)
    if len(_BRACED_REF.findall(value)) != sum(kind == "var" for _, kind, _ in word):
        return None
    return Step("set", var=var, value=value)


class _Reader:
    def __init__(self, package: str, where: str, macros: Mapping[str, str] | None = None):
        self.package = package
        self.where = where
        self.macros = dict(macros or {})   # AC_DEFUN'd in the tree's m4/ and in the file: name -> body
        self.depth = 0
        self.expansions = 0   # a bound on macro expansions: a hostile file cannot make the reader loop
        self.problems: list[str] = []
        self.unknown: list[str] = []
        self.requires: list[str] = []
        self.python = False
        # autoconf's language: m4 state, so the order of the text decides; Sage's configure.ac
        # says AC_LANG(C++) before the packages' checks
        self.langs = ["C++"]

    def fail(self, what: str) -> tuple[Step, ...]:
        """A statement this reader does not understand: an ``unknown`` step, which makes the
        package "not understood" only when the check reaches it (a branch Sage's configure does
        not take on this machine does not matter, as in the shell)."""
        what = " ".join(what.split())[:160]
        self.unknown.append(what)
        return (Step("unknown", value=what),)

    def broken(self, what: str) -> tuple[Step, ...]:
        """Text whose structure is not understood (quotes, an if without its fi): the whole
        check is not understood."""
        self.problems.append(" ".join(what.split())[:160])
        return ()

    def steps(self, text: str) -> tuple[Step, ...]:
        try:
            items = tokenize(strip_dnl(text), self.macros)
        except ValueError as error:
            return self.broken(f"m4 quoting: {error}")
        # shell lines and macro calls, in order: a shell `if` may hold macros
        seq: list[tuple[str, object]] = []
        for kind, value in items:
            if kind == "macro":
                seq.append(("macro", value))
                continue
            try:   # m4 writes text out without one level of quotes
                value = unquote(value)  # type: ignore[arg-type]
            except ValueError as error:
                return self.broken(f"m4 quoting: {error}")
            # a line ending in a backslash, && or || goes on on the next one
            value = re.sub(r"(&&|\|\|)[ \t]*\n\s*", r"\1 ", re.sub(r"\\\n\s*", " ", value))  # type: ignore[arg-type]
            for line in _split_commands(value):
                line = line.strip()
                keyword = re.match(r"(then|else)\s+(\S.*)", line)
                if keyword:   # `then cmd` / `else cmd`: the keyword, then the command
                    seq += [("line", keyword.group(1)), ("line", keyword.group(2))]
                elif line and line != ":":
                    seq.append(("line", line))
        steps, end = self.block(seq, 0, ())
        if end < len(seq):
            return self.broken(f"shell: {seq[end][1]} without its if")
        return steps

    def block(self, seq: list[tuple[str, object]], i: int, stops: tuple[str, ...]) -> tuple[tuple[Step, ...], int]:
        """Statements from ``seq[i]`` up to a line whose first word is in ``stops``."""
        out: list[Step] = []
        while i < len(seq):
            kind, value = seq[i]
            if kind == "macro":
                name, args = value  # type: ignore[misc]
                out += self.macro(name, args)
                i += 1
                continue
            first = str(value).split()[0]
            if first in stops:
                break
            if first in ("then", "else", "elif", "fi"):
                self.broken(f"shell: {value} without its if")
                return tuple(out), len(seq)
            if first == "if":
                step, i = self.shell_if(seq, i)
                out += step
                continue
            out += self.shell(str(value))
            i += 1
        return tuple(out), i

    def shell_if(self, seq: list[tuple[str, object]], i: int) -> tuple[tuple[Step, ...], int]:
        """``if COND; then ...; [elif COND; then ...;] [else ...;] fi`` from ``seq[i]``."""
        text = str(seq[i][1]).split(None, 1)[1] if len(str(seq[i][1]).split()) > 1 else ""
        cond = self.if_condition(text)
        if i + 1 >= len(seq) or seq[i + 1] != ("line", "then"):
            self.broken(f"shell: if {text} (then is missing)")
            return (), len(seq)
        found, j = self.block(seq, i + 2, ("else", "elif", "fi"))
        missing: tuple[Step, ...] = ()
        if j < len(seq) and str(seq[j][1]).split()[0] == "elif":
            missing, j = self.shell_if(seq, j)
            return self.if_step(cond, text, found, missing), j
        if j < len(seq) and seq[j] == ("line", "else"):
            missing, j = self.block(seq, j + 1, ("fi",))
        if j >= len(seq) or seq[j] != ("line", "fi"):
            self.broken(f"shell: if {text} (fi is missing)")
            return (), len(seq)
        return self.if_step(cond, text, found, missing), j + 1

    def if_step(self, cond: tuple | str, text: str, found: tuple[Step, ...], missing: tuple[Step, ...]) -> tuple[Step, ...]:
        if isinstance(cond, str):
            return self.fail(f"condition: {text}{cond}")
        return (Step("if", cond=cond, found=found, missing=missing),)

    def if_condition(self, text: str) -> tuple | str:
        """The condition of an ``if`` or ``AS_IF``; a string (why not) when it is not understood."""
        cond = read_condition(text)
        if cond is None:
            return ""
        for var in condition_variables(cond):
            other = var.removeprefix("sage_spkg_install_")
            if other != var and other != self.package and other not in self.requires:
                # Sage's variable of a package not AC_REQUIRE'd before: maybe not set yet
                return f" (reads {var} without AC_REQUIRE)"
        return cond

    def shell(self, line: str) -> list[Step]:
        if line == "break":
            return [Step("break")]
        chain = _split_and(line)
        if len(chain) > 1:   # `cmd && a=b && c=d`: each part runs when the one before succeeded
            first = read_condition(chain[0]) if not re.match(r"[A-Za-z_][A-Za-z0-9_]*=", chain[0]) else None
            if first is None or first[0] != "run":
                return list(self.fail(f"shell: {line}"))
            rest: list[Step] = []
            for part in chain[1:]:
                if not re.match(r"[A-Za-z_][A-Za-z0-9_]*=", part):
                    return list(self.fail(f"shell: {line}"))
                rest += self.shell(part)
            return [Step("if", cond=first, found=tuple(rest))]
        version = _VERSION_CMD.match(line)
        if version:
            program, option = (version.group(2), version.group(3)) if version.group(2) else (version.group(4), version.group(5))
            return [Step("version", var=version.group(1), value=program, cond=(option,) if option != "--version" else ())]
        assign = re.match(r"([A-Za-z_][A-Za-z0-9_]*)=(\S.*)?$", line)
        words = shell_words(assign.group(2) or "") if assign else None
        if assign and words is not None and len(words) <= 1 and "&&" not in words and "||" not in words:
            step = _set_step(assign.group(1), words[0] if words else ())  # type: ignore[arg-type]
            if step is not None:
                return [step]
        return list(self.fail(f"shell: {line}"))

    def var_append(self, args: list[str]) -> tuple[Step, ...]:
        """``AS_VAR_APPEND([var], [text])``: m4sh's ``as_fn_append var text``, which appends its
        second argument: text must be one shell word (or none), its variables in double quotes
        (an unquoted one would be split into more arguments); var a shell name."""
        words = shell_words(args[1]) if len(args) == 2 and _NAME.fullmatch(args[0]) else None
        if words is None or len(words) > 1 or any(isinstance(w, str) for w in words) \
                or any(kind == "var" and not quoted for quoted, kind, _ in (words[0] if words else ())):
            return self.fail(f"AS_VAR_APPEND({', '.join(args)[:60]})")
        step = _set_step(args[0], ((False, "var", args[0]),) + (words[0] if words else ()))  # type: ignore[operator]
        return (step,) if step is not None else self.fail(f"AS_VAR_APPEND({', '.join(args)[:60]})")

    def macro(self, name: str, args: list[str]) -> tuple[Step, ...]:
        arg = lambda n: args[n] if len(args) > n else ""  # noqa: E731
        if name in _IGNORED:
            return ()
        if name == "AC_REQUIRE":
            match = re.fullmatch(r"SAGE_SPKG_CONFIGURE_([A-Z0-9_]+)", arg(0))
            if match:
                self.requires.append(match.group(1).lower())
                return ()
            return self.fail(f"AC_REQUIRE([{arg(0)}])")
        if name == "SAGE_PYTHON_PACKAGE_CHECK":
            self.python = True
            return (Step("python", value=arg(0)),)
        if name == "SAGE_SPKG_DEPCHECK":
            deps = tuple(arg(0).split())
            self.requires += deps
            return (Step("depcheck", deps=deps, found=self.steps(arg(1))),)
        if name in ("AC_CHECK_HEADER", "AC_CHECK_HEADERS"):
            includes = self.program_text(arg(3)) if arg(3).strip() else ""
            headers = arg(0).split()
            if not headers or includes is None:
                return self.fail(f"{name}({arg(0)})")
            found, missing = self.steps(arg(1)), self.steps(arg(2))
            if name == "AC_CHECK_HEADER" and len(headers) != 1:
                return self.fail(f"{name}({arg(0)})")
            # with includes: they come first in the program that includes the header
            each = tuple(Step("probe", Probe("compile", f"{includes}\n#include <{h}>\nint main(void) {{ return 0; }}\n", lang=self.langs[-1])
                              if includes else Probe("header", h, lang=self.langs[-1]), found=found, missing=missing) for h in headers)
            return (Step("loop", found=each),) if name == "AC_CHECK_HEADERS" else each  # `break` ends the loop
        if name in ("AC_LANG_PUSH", "AC_LANG"):
            self.langs[-1:] = ([self.langs[-1]] if name == "AC_LANG_PUSH" else []) + [arg(0)]
            return ()
        if name == "AC_LANG_POP":
            if len(self.langs) < 2 or (arg(0) and arg(0) != self.langs[-1]):
                return self.broken(f"AC_LANG_POP({arg(0)}) without its AC_LANG_PUSH")
            self.langs.pop()
            return ()
        if name in ("AC_COMPILE_IFELSE", "AC_LINK_IFELSE", "AC_RUN_IFELSE"):
            source = self.lang_program(arg(0))
            # AC_RUN_IFELSE's 4th argument is for cross-compiling: not this machine's case
            if source is None or self.langs[-1] not in ("C", "C++") or len(args) > (4 if name == "AC_RUN_IFELSE" else 3):
                return self.fail(f"{name}(...) in {self.langs[-1]}")
            kind = {"AC_COMPILE_IFELSE": "compile", "AC_LINK_IFELSE": "link", "AC_RUN_IFELSE": "run"}[name]
            return (Step("probe", Probe(kind, source, lang=self.langs[-1]),
                         found=self.steps(arg(1)), missing=self.steps(arg(2))),)
        if name == "AC_SEARCH_LIBS":
            return (Step("probe", Probe("library", arg(0), libs=("",) + tuple(arg(1).split()), other_libs=arg(4), var="LIBS", lang=self.langs[-1]),
                         found=self.steps(arg(2)), missing=self.steps(arg(3))),)
        if name == "AC_CHECK_LIB":
            default = "LIBS" if not arg(2).strip() else ""   # the default action adds -llib to LIBS
            return (Step("probe", Probe("library", arg(1), libs=(arg(0),), other_libs=arg(4), var=default, lang=self.langs[-1]),
                         found=self.steps(arg(2)), missing=self.steps(arg(3))),)
        if name == "AC_CHECK_FUNC":
            return (Step("probe", Probe("library", arg(0), libs=("",), lang=self.langs[-1]),
                         found=self.steps(arg(1)), missing=self.steps(arg(2))),)
        if name == "PKG_CHECK_MODULES":
            if not _NAME.fullmatch(arg(0)):   # PREFIX names the variables PREFIX_CFLAGS and PREFIX_LIBS
                return self.fail(f"PKG_CHECK_MODULES([{arg(0)}], ...)")
            return self.pkg_check(name, arg(1), self.steps(arg(2)), self.steps(arg(3)) if len(args) > 3 else None, arg(0))
        if name == "PKG_CHECK_EXISTS":
            return self.pkg_check(name, arg(0), self.steps(arg(1)), self.steps(arg(2)))
        if name == "PKG_CHECK_VAR":
            return self.pkg_var(args)
        if name in ("AC_PATH_PROG", "AC_PATH_PROGS", "AC_CHECK_PROG", "AC_CHECK_PROGS"):
            if name == "AC_CHECK_PROG" or (len(args) > 3 and arg(3)):
                return self.fail(f"{name} with a value or a path")
            default = arg(2)
            progs = _plain(arg(1)).split()
            args = [_plain(args[0])] + args[1:]
            if not progs or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", arg(0)):
                return self.fail(f"{name}({', '.join(args)})")
            return (Step("probe", Probe("program", " ".join(progs), var=arg(0), libs=(name,)),
                         missing=(Step("set", var=arg(0), value=default),)),)
        if name == "AC_PATH_PROGS_FEATURE_CHECK":
            var = arg(0)
            return (Step("probe", Probe("program", arg(1), var="ac_path_" + var, libs=("feature",)),
                         found=self.steps(arg(2)), missing=self.steps(arg(3))),)
        if name in ("AC_CACHE_CHECK", "AC_CACHE_VAL"):
            return self.steps(arg(2) if name == "AC_CACHE_CHECK" else arg(1))
        if name == "WITH_SAGE_PYTHONUSERBASE":
            return self.steps(arg(0))
        if name == "AS_IF":
            return self.as_if(args)
        if name == "AS_VAR_IF":   # AS_VAR_IF([var], [value], [if equal], [if not])
            if not _NAME.fullmatch(arg(0)) or re.search(r"[\"'`$\\]", arg(1)):
                return self.fail(f"AS_VAR_IF([{arg(0)}], [{arg(1)}])")
            return self.if_step(self.if_condition(f'test "${{{arg(0)}}}" = "{arg(1)}"'), arg(0), self.steps(arg(2)), self.steps(arg(3)))
        if name in ("AC_ARG_WITH", "AC_ARG_ENABLE"):
            # our configure passes no such option to the checks: the action when it is not given
            return self.steps(arg(3))
        if name == "AS_CASE":
            return self.as_case(args)
        if name == "AM_ICONV":
            # gettext's macro: iconv_open links, from the C library or -liconv; it says so in
            # am_cv_func_iconv
            return (Step("probe", Probe("header", "iconv.h", lang=self.langs[-1]), found=(
                Step("probe", Probe("library", "iconv_open", libs=("", "iconv"), lang=self.langs[-1]),
                     found=(Step("set", var="am_cv_func_iconv", value="yes"),),
                     missing=(Step("set", var="am_cv_func_iconv", value="no"),)),),
                missing=(Step("set", var="am_cv_func_iconv", value="no"),)),)
        if name == "AX_CHECK_OPENSSL":
            # autoconf-archive's macro: a program calling SSL_new links with -lssl -lcrypto
            # (it asks pkg-config for the flags first; the default ones are the same here)
            return (Step("probe", Probe("header", "openssl/ssl.h", lang=self.langs[-1]), found=(
                Step("probe", Probe("library", "SSL_new", libs=("ssl",), other_libs="-lcrypto", lang=self.langs[-1]),
                     found=self.steps(arg(0)), missing=self.steps(arg(1))),),
                missing=self.steps(arg(1))),)
        if name == "AS_VAR_SET" and len(args) == 2 and _NAME.fullmatch(arg(0)):
            return tuple(self.shell(f"{arg(0)}={arg(1)}")) or ()
        if name == "AS_VAR_APPEND":
            return self.var_append(args)
        if name in ("AX_COMPARE_VERSION", "AS_VERSION_COMPARE"):
            return self.compare(name, args)
        if name in ("m4_foreach", "m4_foreach_w"):
            return self.foreach(name, args)
        if name in self.macros:
            return self.expand_macro(name, args)
        return self.fail(f"{name}(...)")

    def expand_macro(self, name: str, args: list[str]) -> tuple[Step, ...]:
        """A macro AC_DEFUN'd in the tree's m4/ or in the file (SAGE_CHECK_PARI_DEP...): its body
        with ``$1``..``$9`` replaced by the arguments, read again (m4's rescanning)."""
        body = self.macros[name]
        self.expansions += 1
        if re.search(r"\$[#@*]", body) or self.depth > 20 or self.expansions > 2000:
            return self.fail(f"{name}(...)")
        expanded = re.sub(r"\$([1-9])", lambda m: args[int(m.group(1)) - 1] if int(m.group(1)) <= len(args) else "", body)
        self.depth += 1
        try:
            return self.steps(expanded)
        finally:
            self.depth -= 1

    def foreach(self, name: str, args: list[str]) -> tuple[Step, ...]:
        """``m4_foreach([var], [a, b], [body])`` / ``m4_foreach_w([var], [a b], [body])``: the body
        once per item, the name replaced by the item (as the macro m4 defines for it)."""
        if len(args) != 3 or not _NAME.fullmatch(args[0]):
            return self.fail(f"{name}(...)")
        try:
            if name == "m4_foreach_w":
                items = unquote(args[1]).split()
            else:
                raw, _ = split_args("(" + args[1] + ")", 0) if args[1].strip() else ([], 0)
                items = [unquote(item).strip() for item in raw]
        except ValueError:
            return self.fail(f"{name}({args[0]}, ...)")
        word = re.compile(rf"(?<![A-Za-z0-9_$]){args[0]}(?![A-Za-z0-9_])")
        self.expansions += len(items)
        if self.expansions > 2000:
            return self.fail(f"{name}({args[0]}, ...)")
        return tuple(step for item in items for step in self.steps(word.sub(lambda _: item, args[2])))

    def lang_program(self, text: str) -> str | None:
        """The source of ``AC_LANG_PROGRAM([prologue], [body])`` or ``AC_LANG_SOURCE([text])``
        (autoconf's C and C++ program), None for anything else."""
        try:
            items = [item for item in tokenize(text) if item[0] == "macro" or str(item[1]).strip()]
        except ValueError:
            return None
        if len(items) != 1 or items[0][0] != "macro":
            return None
        name, args = items[0][1]  # type: ignore[misc]
        if name not in ("AC_LANG_PROGRAM", "AC_LANG_SOURCE") or len(args) > (2 if name == "AC_LANG_PROGRAM" else 1):
            return None
        texts = []
        for arg in args:
            text = self.program_text(arg)
            if text is None:
                return None
            texts.append(text)
        if name == "AC_LANG_SOURCE":
            return texts[0] + "\n" if texts else None
        prologue, body = (texts + ["", ""])[:2]
        main = "main ()" if self.langs[-1] == "C++" else "main (void)"
        return f"{prologue}\nint\n{main}\n{{\n{body}\n  ;\n  return 0;\n}}\n"

    @staticmethod
    def program_text(arg: str) -> str | None:
        """A program's text from a macro argument: m4 reads the expansion again, so macros would
        expand (None: not understood) and one level of quotes goes; then autoconf's quadrigraphs."""
        try:
            if any(kind == "macro" for kind, _ in tokenize(arg)):
                return None
            arg = unquote(arg)
        except ValueError:
            return None
        for quadrigraph, char in (("@<:@", "["), ("@:>@", "]"), ("@S|@", "$"), ("@%:@", "#"), ("@&t@", "")):
            arg = arg.replace(quadrigraph, char)
        return arg

    def pkg_check(self, macro: str, modules: str, found, missing, prefix: str = "") -> tuple[Step, ...]:
        """``PKG_CHECK_MODULES([PREFIX], [modules], [found], [missing])`` and
        ``PKG_CHECK_EXISTS([modules], [found], [missing])``: modules, each maybe followed by
        comparisons (``foo >= 1.2 foo < 2``). Every module and version is a word of
        ``PC_MODULE`` (no option to pkg-config, no shell); a version m4 left quoted
        (``"3.5"``, ``$"2.4"`` from a pushdef) is the version. A probe per module (its version);
        then, for PKG_CHECK_MODULES, a ``pkgflags`` probe: PREFIX_CFLAGS and PREFIX_LIBS."""
        words = modules.split()
        parsed: list[tuple[str, list[tuple[str, str]]]] = []
        i = 0
        while i < len(words):
            word = words[i]
            if not PC_MODULE.fullmatch(word):
                return self.fail(f"{macro} module {word!r}")
            if i + 1 < len(words) and words[i + 1] in (">=", "<=", "=", "<", ">", "!="):
                version = re.sub(r'^\$?"([0-9][0-9.]*)"$', r"\1", words[i + 2]) if i + 2 < len(words) else ""
                if not PC_MODULE.fullmatch(version):
                    return self.fail(f"{macro} {modules!r}")
                words[i + 2] = version
                if parsed and parsed[-1][0] == word:
                    parsed[-1][1].append((words[i + 1], version))
                else:
                    parsed.append((word, [(words[i + 1], version)]))
                i += 3
            else:
                parsed.append((word, []))
                i += 1
        if not parsed:
            return self.fail(f"{macro} without a module")
        if missing is None:  # autoconf's default: configure fails; Sage's files always give one
            return self.fail(f"{macro} without an action if not found")
        # all modules must pass: nest them, each missing one runs `missing`
        inner: tuple[Step, ...] = found
        if prefix:   # pkg.m4 asks for the flags of the list as it is written, in one argument
            inner = (Step("probe", Probe("pkgflags", " ".join(words), var=prefix), found=inner, missing=missing),)
        for module, spec in reversed(parsed):
            inner = (Step("probe", Probe("pkgconfig", module, spec=tuple(spec)), found=inner, missing=missing),)
        return inner

    def pkg_var(self, args: list[str]) -> tuple[Step, ...]:
        """``PKG_CHECK_VAR([VARIABLE], [MODULE], [CONFIG-VARIABLE], [found], [missing])`` (pkg.m4):
        VARIABLE is set to ``pkg-config --variable=CONFIG-VARIABLE MODULE``; found when it is not
        empty. One module, by name; a shell name for VARIABLE (else not understood)."""
        if not 3 <= len(args) <= 5 or not _NAME.fullmatch(args[0]) or not PC_MODULE.fullmatch(args[1]) \
                or not _PC_VARIABLE.fullmatch(args[2]):
            return self.fail(f"PKG_CHECK_VAR({', '.join(args)[:60]})")
        return (Step("probe", Probe("pkgvar", args[1], var=args[0], pc_variable=args[2]),
                     found=self.steps(args[3] if len(args) > 3 else ""),
                     missing=self.steps(args[4] if len(args) > 4 else "")),)

    def as_case(self, args: list[str]) -> tuple[Step, ...]:
        """``AS_CASE([word], [pattern], [then], ..., [default])``: shell patterns (``|`` between
        alternatives), the first that matches runs."""
        word = shell_words(args[0]) if args else None
        if not word or len(word) != 1 or isinstance(word[0], str):
            return self.fail(f"AS_CASE([{args[0] if args else ''}])")
        pairs, default = args[1:], ()
        if len(pairs) % 2:
            default = self.steps(pairs[-1])
            pairs = pairs[:-1]
        out: tuple[Step, ...] = default
        for pattern, then in reversed(list(zip(pairs[::2], pairs[1::2]))):
            out = (Step("if", cond=("match", word[0], tuple(pattern.split("|"))), found=self.steps(then), missing=out),)
        return out

    def as_if(self, args: list[str]) -> tuple[Step, ...]:
        if not args or len(args) > 3:
            return self.fail("AS_IF with more than one condition")
        try:   # the condition is written out: one more level of quotes goes
            text = unquote(args[0])
        except ValueError:
            return self.fail(f"condition: {args[0]}")
        return self.if_step(self.if_condition(text), text, self.steps(args[1] if len(args) > 1 else ""),
                            self.steps(args[2] if len(args) > 2 else ""))

    def compare(self, name: str, args: list[str]) -> tuple[Step, ...]:
        left = re.fullmatch(r'"?\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?"?', args[0] if args else "")
        if not left:
            return self.fail(f"{name}({', '.join(args)[:60]})")
        if name == "AX_COMPARE_VERSION":
            op, right = (args[1] if len(args) > 1 else ""), (args[2] if len(args) > 2 else "")
            right = re.sub(r'^\$?"([0-9][0-9.]*)"$', r"\1", right)   # a quoted version, $"8.0.2" as m4 leaves it
            if op not in ("lt", "le", "eq", "ne", "gt", "ge") or not re.fullmatch(r"[0-9][0-9.]*", right):
                return self.fail(f"{name}({', '.join(args)[:60]})")
            return (Step("compare", cond=(op, left.group(1), right), found=self.steps(args[3] if len(args) > 3 else ""),
                         missing=self.steps(args[4] if len(args) > 4 else "")),)
        right = args[1] if len(args) > 1 else ""
        if not re.fullmatch(r"[0-9][0-9.]*", right):
            return self.fail(f"{name}({', '.join(args)[:60]})")
        lt, eq, gt = (self.steps(args[i]) if len(args) > i else () for i in (2, 3, 4))
        return (Step("compare", cond=("lt", left.group(1), right), found=lt, missing=(
            Step("compare", cond=("eq", left.group(1), right), found=eq, missing=gt),)),)


_PUSHDEF = re.compile(r"m4_(?:push)?def(?:ine)?\(\[?([A-Za-z_][A-Za-z0-9_]*)\]?,\s*\[([^\[\]]*)\]\)")
_POPDEF = re.compile(r"m4_popdef\(\[?([A-Za-z_][A-Za-z0-9_]*)\]?\)")


def expand_defines(text: str, package: str = "") -> str:
    """Expand ``m4_pushdef([NAME], [value])`` (a value without quotes) in the text after it, as
    m4 would; the definition and ``m4_popdef`` calls are dropped. SAGE_SPKG_CONFIGURE's own
    names (``SPKG_NAME``, ``SPKG_INSTALL``, ``SPKG_REQUIRE``, ``SPKG_USE_SYSTEM``) and
    autoconf's descriptors (``AS_MESSAGE_LOG_FD``, ``AS_MESSAGE_FD``) are defined first."""
    own = {"SPKG_NAME": package, "SPKG_INSTALL": f"sage_spkg_install_{package}", "SPKG_REQUIRE": f"sage_require_{package}",
           "SPKG_USE_SYSTEM": f"sage_use_system_{package}", "AS_MESSAGE_LOG_FD": "5", "AS_MESSAGE_FD": "6"}
    text = "".join(f"m4_pushdef([{name}], [{value}])" for name, value in own.items() if package or "FD" in name) + text
    text = _POPDEF.sub("", text)
    while True:
        match = _PUSHDEF.search(text)
        if not match:
            break
        name, value = match.group(1), match.group(2)
        # m4 expands a name after `$` too: qhull's `$SAGE_QHULL_MINVER` is `$"8.0.2"` for the shell
        rest = re.sub(rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9_])", lambda _: value, text[match.end():])
        text = text[:match.start()] + rest
    return text


def _plain(text: str) -> str:
    """A name's text as m4 reads it again (``[nauty-]geng`` is ``nauty-geng``)."""
    try:
        return unquote(text)
    except ValueError:
        return text


def _split_commands(text: str) -> list[str]:
    """Shell text cut into commands at newlines and ``;`` outside quotes."""
    out, current, quote = [], [], ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in ";\n":
            out.append("".join(current))
            current = []
            continue
        current.append(char)
    return out + ["".join(current)]


def _split_and(line: str) -> list[str]:
    """A command line cut at ``&&`` outside quotes."""
    out, current, quote, i = [], [], "", 0
    while i < len(line):
        char = line[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif line.startswith("&&", i):
            out.append("".join(current).strip())
            current, i = [], i + 2
            continue
        current.append(char)
        i += 1
    return out + ["".join(current).strip()]


# gcc's spkg-configure.m4 is a program of its own (its own AC_DEFUNs around autoconf's compiler
# macros: AX_COMPILER_VENDOR, AX_CXX_COMPILE_STDCXX_17, AX_GCC_VERSION); what it decides on a
# machine without a gcc in the prefix is said here: the C and C++ compilers are GNU-compatible
# (clang is), and a real GCC's version is at least 10.3 and below 17. Both compilers are asked, so
# a C compiler of another version range fails too (Sage asks for the same version).
_GCC_RANGE = """#if !defined(__GNUC__)
# error not a GNU-compatible compiler
#endif
#if !defined(__clang__) && (__GNUC__ < 10 || (__GNUC__ == 10 && __GNUC_MINOR__ < 3) || __GNUC__ >= 17)
# error GCC older than 10.3 or newer than 16.x
#endif
int main(void) { return 0; }
"""
_INSTALL_GCC = (Step("set", var="sage_spkg_install_gcc", value="yes"),)


def _gcc_stand_in(text: str) -> tuple[Step, ...] | None:
    if "SAGE_SPKG_CONFIGURE_BASE([gcc]" not in text:
        return None
    return (Step("probe", Probe("compile", _GCC_RANGE, lang="C++"), missing=_INSTALL_GCC),
            Step("probe", Probe("compile", _GCC_RANGE, lang="C"), missing=_INSTALL_GCC))


# python3's spkg-configure.m4 searches for a Python in [MIN_VERSION, LT_VERSION) that has the
# modules Sage needs, in venvs (SAGE_CHECK_PYTHON_FOR_VENV from the tree's m4/). Here the Python
# configure uses (--with-python, else our own interpreter) is asked the same: its version and
# those modules; not its C extension build (Sage's --disable-python-distutils-check).
_PYTHON_MODULES = "sqlite3, ctypes, math, hashlib, socket, zlib, ssl, _posixsubprocess, ensurepip"


def _python3_stand_in(text: str) -> tuple[Step, ...] | None:
    found = {name: re.search(rf"m4_pushdef\(\[{name}\],\s*\[([0-9.]+)\]\)", text) for name in ("MIN_VERSION", "LT_VERSION")}
    if "SAGE_CHECK_PYTHON_FOR_VENV" not in text or not all(found.values()):
        return None
    low, high = (tuple(int(x) for x in found[n].group(1).split(".")) for n in ("MIN_VERSION", "LT_VERSION"))  # type: ignore[union-attr]
    code = f"import sys, {_PYTHON_MODULES}; sys.exit(not ({low} <= sys.version_info[:3] < {high}))"
    words = (((False, "var", "SAGE_PYTHON_CANDIDATE"),), ((False, "lit", "-c"),), ((True, "lit", code),))
    return (Step("if", cond=("run", words), missing=(Step("set", var="sage_spkg_install_python3", value="yes"),)),)


# gfortran's spkg-configure.m4 asks autoconf's AC_PROG_FC for a Fortran compiler and
# AC_FC_FREEFORM whether it takes free-form source (else gfortran is installed); then gfortran is
# not installed when gcc is (it comes with gcc); else, when $FC's name says gfortran, its
# -dumpversion (+".0") decides: [0-3].*|4.[0-7].* (older than 4.8) or 1[7-9].* (newer than 16.x)
# installs it. The stand-in is that program in steps, for the file as it is: each of these
# fragments in it (else the file is read, and not understood: gfortran is built).
_GFORTRAN_FRAGMENTS = ("SAGE_SPKG_CONFIGURE([gfortran]", "AC_REQUIRE([AC_PROG_FC])", "AC_FC_FREEFORM(",
                       "SAGE_HAVE_FC_FREEFORM=no", 'if test "x$sage_spkg_install_gcc" = "xyes"', 'AS_CASE(["$FC"]',
                       "[*gfortran*]", 'GFORTRAN_VERSION="`$FC -dumpversion`"', 'AS_CASE(["$GFORTRAN_VERSION.0"]',
                       "[[[0-3]].*|4.[[0-7]].*]", "[1[[7-9]].*]", "sage_spkg_install_gfortran=yes")
# AC_PROG_FC's list (autoconf's fortran.m4: _AC_F95_FC, _AC_F90_FC, _AC_F77_FC), AC_CHECK_TOOLS
# without a host prefix (configure is not cross-compiling)
_FC_PROGRAMS = ("gfortran g95 xlf95 f95 fort ifort ifc efc pgfortran pgf95 lf95 ftn nagfor"
                " xlf90 f90 pgf90 pghpf epcf90 g77 xlf f77 frt pgf77 cf77 fort77 fl32 af77").split()
# AC_FC_FREEFORM's flags, in its order ("-f free" is two fields of $FCFLAGS), and its program as
# configure writes it to conftest.f (``@&t@`` gone)
_FREEFORM_FLAGS = ("none", "-ffree-form", "-FR", "-free", "-qfree", "-Mfree", "-Mfreeform", "-freeform", "-f free",
                   "-8", "+source=free", "-nfix", "--nfix", "-Free")
_FREEFORM_PROGRAM = """
  program freeform
       ! FIXME: how to best confuse non-freeform compilers?
       print *, 'Hello ', &
          'world.'
       end
"""


def _gfortran_stand_in(text: str) -> tuple[Step, ...] | None:
    if not all(fragment in text for fragment in _GFORTRAN_FRAGMENTS):
        return None
    install = (Step("set", var="sage_spkg_install_gfortran", value="yes"),)
    fc, quoted_fc = ((False, "var", "FC"),), ((True, "var", "FC"),)
    # AC_PROG_FC: $FC as configure's environment gives it, else the first program of the list on
    # PATH, by its name (AC_CHECK_PROGS: FC=gfortran)
    search: tuple[Step, ...] = ()
    for name in reversed(_FC_PROGRAMS):
        search = (Step("probe", Probe("program", name, var="ac_ct_FC", libs=("AC_CHECK_PROGS",)),
                       found=(Step("set", var="FC", value=name),), missing=search),)
    find_fc = Step("if", cond=("test", (((False, "lit", "-z"),), quoted_fc)), found=search)
    # AC_FC_FREEFORM: the program compiles with $FCFLAGS, else with one of the flags added
    tries: list[Step] = []
    for flag in _FREEFORM_FLAGS:
        if flag != "none":
            tries.append(Step("set", var="FCFLAGS", value="${ac_fc_freeform_FCFLAGS_save} " + flag))
        tries.append(Step("probe", Probe("compile", _FREEFORM_PROGRAM, lang="Fortran"),
                          found=(Step("set", var="SAGE_HAVE_FC_FREEFORM", value="yes"), Step("break"))))
    freeform = (Step("set", var="SAGE_HAVE_FC_FREEFORM", value="no"),
                Step("set", var="ac_fc_freeform_FCFLAGS_save", value="${FCFLAGS}"),
                Step("loop", found=tuple(tries)),
                Step("set", var="FCFLAGS", value="${ac_fc_freeform_FCFLAGS_save}"),
                Step("if", cond=("test", (((True, "var", "SAGE_HAVE_FC_FREEFORM"),), ((False, "lit", "="),),
                                          ((False, "lit", "no"),))), found=install))
    # gcc installed (by this configure, or already in the prefix: Sage's SAGE_INSTALL_GCC=exists,
    # which configure's answer for gcc says too): gfortran comes with it. Else the version rule
    # (Sage's default --enable-gcc-version-check; our configure has no option to turn it off)
    version = ((True, "var", "GFORTRAN_VERSION"), (True, "lit", ".0"))
    version_rule = Step("if", cond=("match", quoted_fc, ("*gfortran*",)), found=(
        Step("output", var="GFORTRAN_VERSION", cond=(fc, ((False, "lit", "-dumpversion"),))),
        Step("if", cond=("match", version, ("[0-3].*", "4.[0-7].*")), found=install, missing=(
            Step("if", cond=("match", version, ("1[7-9].*",)), found=install),)),))
    gcc = Step("if", cond=("test", (((True, "lit", "x"), (True, "var", "sage_spkg_install_gcc")), ((False, "lit", "="),),
                                    ((True, "lit", "xyes"),))),
               found=(Step("set", var="sage_spkg_install_gfortran", value="no"),), missing=(version_rule,))
    return (find_fc,) + freeform + (gcc,)


_STAND_INS = {"gcc": _gcc_stand_in, "gfortran": _gfortran_stand_in, "python3": _python3_stand_in}


def read_check(text: str, package: str, where: str = M4_FILE, macros: Mapping[str, str] | None = None) -> Check:
    """The check of one spkg-configure.m4's text (gcc's, gfortran's and python3's: their
    stand-ins, ``_STAND_INS``). ``macros``: the tree's own (``m4/*.m4``'s AC_DEFUNs, :func:`tree_macros`);
    the file may define more before its SAGE_SPKG_CONFIGURE call."""
    stand_in = _STAND_INS[package](text) if package in _STAND_INS else None
    if stand_in is not None:
        return Check(package, steps=stand_in)
    reader = _Reader(package, where, macros)
    try:
        items = tokenize(expand_defines(strip_dnl(text), package))
    except ValueError as error:
        return Check(package, not_understood=[f"m4 quoting: {error}"])
    calls = [v for k, v in items if k == "macro"]
    for name, args in calls:
        if name == "AC_DEFUN" and len(args) == 2 and _NAME.fullmatch(args[0]):
            reader.macros[args[0]] = args[1]
    calls = [c for c in calls if c[0] != "AC_DEFUN"]
    others = [v for k, v in items if k == "text" and v.strip()]
    configure = [c for c in calls if c[0] in ("SAGE_SPKG_CONFIGURE", "SAGE_SPKG_CONFIGURE_BASE")]
    if len(configure) != 1 or others or len(calls) != 1:
        names = ", ".join(c[0] for c in calls) or "no macro"
        return Check(package, not_understood=[f"expected one SAGE_SPKG_CONFIGURE call, found {names}"])
    _, args = configure[0]
    if (args[0] if args else "") != package:
        reader.problems.append(f"SAGE_SPKG_CONFIGURE names {args[0] if args else '?'!r}, not {package!r}")
    # Sage's order: PRE (always), the REQUIRED-CHECK, then the CHECK; PRE runs with the first
    pre = reader.steps(args[3]) if len(args) > 3 else ()
    required = pre + (reader.steps(args[2]) if len(args) > 2 else ())
    steps = reader.steps(args[1]) if len(args) > 1 else ()
    return Check(package, steps=steps, required=required, requires=tuple(dict.fromkeys(reader.requires)),
                 python_check=reader.python, not_understood=reader.problems, unknown=reader.unknown)
    # POST (args[4]) runs after the decision and only substitutes variables: ignored.


def load_check(pkg_path: Path, package: str, macros: Mapping[str, str] | None = None) -> Check | None:
    """The check of a recipe directory's spkg-configure.m4; None when it has none. ``macros``:
    the tree's (:func:`tree_macros`), read here when not given."""
    path = pkg_path / M4_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"{path}: cannot read it ({error}); fix or remove the file") from None
    if macros is None:
        macros = tree_macros(m4_dir_of(pkg_path.parent))
    return read_check(text, package, str(path), macros)


def m4_dir_of(pkgs_dir: Path) -> Path:
    """The tree's m4/ beside build/pkgs (through a link to another tree's build/pkgs too)."""
    return pkgs_dir.resolve().parent.parent / "m4"


def tree_macros(m4_dir: Path) -> dict[str, str]:
    """The macros a tree's ``m4/*.m4`` files AC_DEFUN (name -> body), read once per state of the
    directory (a reconfigure reads them for every spkg-configure.m4)."""
    try:
        files = sorted(m4_dir.glob("*.m4"))
        stamp = tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    except OSError:
        return {}
    return _read_macros(m4_dir, stamp)


@lru_cache(maxsize=4)
def _read_macros(m4_dir: Path, stamp: tuple) -> dict[str, str]:
    macros: dict[str, str] = {}
    for name, *_ in stamp:
        try:
            text = (m4_dir / name).read_text()
            # bootstrap's generated lists (sage_spkg_configures.m4, ...) define nothing: skip the reading
            items = tokenize(strip_dnl(text)) if "AC_DEFUN(" in text else []
        except (OSError, UnicodeDecodeError, ValueError):
            continue   # a file we cannot read defines nothing we use; its macros stay unknown
        for kind, value in items:
            if kind == "macro" and value[0] == "AC_DEFUN" and len(value[1]) == 2 and _NAME.fullmatch(value[1][0]):  # type: ignore[index]
                macros.setdefault(value[1][0], value[1][1])  # type: ignore[index]
    return macros
