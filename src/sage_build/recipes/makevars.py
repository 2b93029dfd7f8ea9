"""The make variables a distribution's dependency files use (``$(PYTHON_TOOLCHAIN)``, ``$(BLAS)``...).

They belong to the distribution, so they are read from its tree:

1. ``build/make/Makefile.in``, where a Sage tree defines them (``PYTHON_TOOLCHAIN = setuptools pip
   ...``, ``SAGERUNTIME = sagelib $(inst_ipython) $(inst_pexpect)``, ``BLAS = openblas``...);
2. else ``build/variables.mk``, our small file in the same syntax (sage-build's own tree has one);
3. else nothing: ``recipes.graph`` then uses its defaults (the build backends of the tree that are
   wheels, ``BLAS``/``MP_LIBRARY``/``SAGERUNTIME`` as the one package of that name).

Only unconditional top-level assignments count (``NAME = value``, ``:=``, ``?=``, ``+=``, lines
continued with ``\\``); ``define`` blocks, ``ifeq``/``ifdef`` branches and rules are skipped, and a
value substituted by Sage's autoconf configure (``@SAGE_TOOLCHAIN@``) is empty: sage-build has no
such configure.  How a value is expanded is ``recipes.graph``'s business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: Where a tree's variables are read, first found wins (relative to its ``build/`` directory).
SOURCES = ("make/Makefile.in", "variables.mk")

_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(=|:=|::=|\?=|\+=)\s*(.*)$")
_CONDITIONAL_START = re.compile(r"^(ifeq|ifneq|ifdef|ifndef)\b")
_SUBSTITUTION = re.compile(r"@[A-Za-z_][A-Za-z0-9_]*@")


@dataclass(frozen=True)
class MakeVariables:
    """The variables of one tree, and the file they came from (None: the tree has none)."""

    values: dict[str, str] = field(default_factory=dict)
    source: Path | None = None


def parse_make_variables(text: str) -> dict[str, str]:
    """The unconditional top-level variable assignments of a makefile text."""
    values: dict[str, str] = {}
    depth = 0          # nesting of define/ifeq blocks
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        if line.startswith("\t"):
            continue   # a rule's recipe line
        stripped = line.split("#", 1)[0].strip()
        word = stripped.split(None, 1)[0] if stripped else ""
        if word == "define" or _CONDITIONAL_START.match(stripped):
            depth += 1
            continue
        if word in ("endef", "endif"):
            depth = max(0, depth - 1)
            continue
        if depth or not stripped:
            continue
        match = _ASSIGNMENT.match(stripped)
        if not match:
            continue
        name, operator, value = match.groups()
        value = " ".join(_SUBSTITUTION.sub("", value).split())
        if operator == "+=":
            values[name] = f"{values.get(name, '')} {value}".strip()
        elif operator == "?=":
            values.setdefault(name, value)
        else:
            values[name] = value
    return values


def read_make_variables(build_dir: Path) -> MakeVariables:
    """The variables of the tree whose ``build/`` directory is ``build_dir`` (see the module)."""
    for relative in SOURCES:
        path = build_dir / relative
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        return MakeVariables(values=parse_make_variables(text), source=path)
    return MakeVariables()
