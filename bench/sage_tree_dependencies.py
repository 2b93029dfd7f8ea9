#!/usr/bin/env python3
"""Acceptance check: for EVERY recipe of a real Sage tree, our generated Makefile's prerequisites
equal the tree's own ``build/bin/sage-package dependencies --format=shell``, in Sage's meaning.

Getting the tree (never commit it to this project): fetch a snapshot of the public repository
passagemath/passagemath (e.g. the search tool's ``fetch`` of ``github:passagemath/passagemath``,
which gives a bare git directory), then extract the parts the recipes refer to::

    mkdir -p DIR && git --git-dir=<snapshot> archive HEAD build m4 pkgs src | tar -x -C DIR

(``src`` and ``pkgs`` keep the recipes' ``src`` links and dependency paths from dangling.)  Then::

    .venv/bin/python bench/sage_tree_dependencies.py DIR [--keep WORKDIR]

What it does, in a temporary directory (the tree itself is only read):

1. a clone-like directory: ``build/pkgs``, ``src`` and ``pkgs`` are links to the tree's, and
   ``build/make/Makefile.in`` is a copy of the tree's (where Sage defines its make variables);
2. ``./configure.py --quiet --prefix=...`` there, as a user runs it (timed; warnings counted);
3. the oracle: the tree's own ``build/bin/sage-package dependencies --format=shell :all:``, run
   with its own sage_bootstrap (``sage-package`` puts its ``build/`` directory on the path) under
   ``python3`` with ``SAGE_ROOT`` set to the clone, as Sage's configure runs it
   (m4/sage_spkg_collect.m4), so that its ``$(SAGE_ROOT)/build/pkgs/...`` paths name the clone;
4. Sage's meaning of the oracle, as Sage's Makefile.in gives it: the prerequisites of a package are
   ``runtime_deps build_deps [optional_deps that configure enables: without options, the base
   and standard ones] | order_only_deps`` plus ``check_deps``
   when SAGE_CHECK is set; each word expands through the variables of ``Makefile.in``
   (``$(PYTHON_TOOLCHAIN)``, ``$(SAGERUNTIME)``... an autoconf substitution ``@X@`` is empty, an
   undefined variable is empty) and Sage's ``pkg_deps`` (a package name stands for its stamp, any
   other word is a file); make drops a package's dependency on itself, and a normal prerequisite
   wins over the same order-only one.  This expansion is written here, independently of
   sage-build's own (``recipes/graph.py``);
5. our side, as make reads it: ``make -pq`` prints the database of the generated Makefile, with
   every variable and function expanded; stamps are mapped back to package names.  Run twice,
   without and with ``SAGE_CHECK=yes``: the difference is what spkg-check needs.

Two things of ours are not differences and are left out of the comparison: the recipe-hash file
(``$(HASHES)/<pkg>``, our rebuild trigger) and ``$(PYTHON)`` (the prefix's virtual environment),
which is a normal prerequisite of every one of our stamps by design where Sage has it order-only
for Python recipes.  Prints each difference and the counts; exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = "PYTHON"   # the marker for $(PYTHON) on both sides


def makefile_in_variables(text: str) -> dict[str, str]:
    """Unconditional top-level ``NAME = value`` lines of Sage's Makefile.in (continuations joined)."""
    text = re.sub(r"\\\n", " ", text)
    values: dict[str, str] = {}
    depth = 0
    for line in text.splitlines():
        word = line.split(None, 1)[0] if line.strip() else ""
        if word in ("define", "ifeq", "ifneq", "ifdef", "ifndef"):
            depth += 1
        elif word in ("endef", "endif"):
            depth -= 1
        elif not depth and not line.startswith("\t"):
            match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:?=\s*(.*)$", line)
            if match:
                values[match.group(1)] = match.group(2).split("#", 1)[0].strip()
    return values


class SageMeaning:
    """Expands the oracle's words as Sage's Makefile does (see the module docstring, step 4)."""

    def __init__(self, variables: dict[str, str], clone: Path, prefix: Path, versions: dict[str, str]):
        self.variables = variables
        self.versions = versions
        self.stamps = {str(prefix / "var/lib/sage/installed" / f"{n}-{v}"): n for n, v in versions.items()}
        self.fixed = {"SAGE_ROOT": str(clone), "SAGE_SRC": str(clone / "src"), "SAGE_LOCAL": str(prefix),
                      "SPKG_INST_RELDIR": "var/lib/sage/installed"}

    def words(self, text: str, seen: frozenset[str] = frozenset()) -> list[str]:
        result: list[str] = []
        for word in text.split():
            match = re.fullmatch(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", word)
            if match:
                name = match.group(1)
                if name == "PYTHON":
                    result.append(PY)
                elif name.startswith("inst_"):
                    result.append(name[len("inst_"):])
                elif name in self.variables and name not in seen:
                    value = re.sub(r"@[A-Za-z_0-9]+@", "", self.variables[name])
                    result += self.words(value, seen | {name})
                continue   # undefined: empty
            if "$" in word or "/" in word:
                path = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", self._path_variable, word)
                matches = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
                result += [self.stamps.get(p, p) for p in matches]
                continue
            result.append(word)
        return result

    def _path_variable(self, match: re.Match) -> str:
        name = match.group(1)
        if name.startswith("vers_"):
            return self.versions.get(name[len("vers_"):], "")
        return self.fixed.get(name, "")


def make_clone(tree: Path, clone: Path) -> None:
    """A clone-like directory over ``tree`` (step 1 of the docstring): ``build/pkgs``, ``src`` and
    ``pkgs`` are links to the tree's, ``build/make/Makefile.in`` a copy; the tree is only read."""
    if clone.exists():
        shutil.rmtree(clone)
    (clone / "build/make").mkdir(parents=True)
    os.symlink(tree / "build/pkgs", clone / "build/pkgs")
    for part in ("src", "pkgs"):
        if (tree / part).exists():
            os.symlink(tree / part, clone / part)
    makefile_in = tree / "build/make/Makefile.in"
    if makefile_in.is_file():
        shutil.copy(makefile_in, clone / "build/make/Makefile.in")


def oracle(tree: Path, clone: Path, work: Path) -> dict[str, dict[str, str]]:
    env = dict(os.environ, SAGE_ROOT=str(clone), SAGE_DISTFILES=str(work / "upstream"), PYTHONIOENCODING="utf-8")
    out = subprocess.run([shutil.which("python3") or "python3", str(tree / "build/bin/sage-package"),
                          "dependencies", "--format=shell", ":all:"],
                         env=env, cwd=clone, capture_output=True, text=True, check=True).stdout
    lists: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        match = re.match(r"^(build|order_only|optional|runtime|check)_deps_([a-z0-9_.]+)=(.*)$", line)
        if match:
            kind, name, value = match.groups()
            lists.setdefault(name, {})[kind] = " ".join(shlex.split(value))
    return lists


def make_database(clone: Path, check: bool) -> tuple[dict[str, str], dict[str, tuple[list[str], list[str]]]]:
    """(stamp path -> package, stamp path -> (normal, order-only)) as make reads our Makefile."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SAGE_CHECK")}
    env["SAGE_ROOT"] = str(clone)
    if check:
        env["SAGE_CHECK"] = "yes"
    out = subprocess.run(["make", "-pq", "-f", str(clone / "build/make/Makefile"), "list"],
                         env=env, cwd=clone, capture_output=True, text=True).stdout
    stamps = {}
    for match in re.finditer(r"^inst_([a-z0-9_.]+) := (\S+)$", out, re.M):
        stamps[match.group(2)] = match.group(1)
    rules = {}
    for line in out.splitlines():
        target, sep, rest = line.partition(": ")
        if sep and target in stamps:
            normal, _, order_only = rest.partition("|")
            rules[target] = (normal.split(), order_only.split())
    return stamps, rules


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", type=Path, help="an extracted Sage tree (see the docstring)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    tree = args.tree.resolve()
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="sage-tree-deps-"))
    clone = work / "clone"
    try:
        make_clone(tree, clone)
        makefile_in = tree / "build/make/Makefile.in"
        prefix = clone / "local"

        env = dict(os.environ, SAGE_ROOT=str(clone))
        start = time.monotonic()
        configured = subprocess.run([sys.executable, str(ROOT / "configure.py"), "--quiet", f"--prefix={prefix}"],
                                    env=env, cwd=clone, capture_output=True, text=True)
        seconds = time.monotonic() - start
        print(f"configure: exit {configured.returncode} in {seconds:.2f} s")
        warnings = [line for line in configured.stderr.splitlines() if "warning" in line]
        for line in configured.stderr.splitlines():
            print(f"  {line}")
        if configured.returncode != 0:
            print("configure failed: nothing to compare")
            return 1

        lists = oracle(tree, clone, work)
        versions = {}
        for name in lists:
            version_file = clone / "build/pkgs" / name / "package-version.txt"
            versions[name] = version_file.read_text().split()[0] if version_file.exists() else "none"
        standard = {name for name in lists
                     if (clone / "build/pkgs" / name / "type").read_text().split()[0] in ("base", "standard")}
        meaning = SageMeaning(makefile_in_variables(makefile_in.read_text()) if makefile_in.is_file() else {},
                              clone, prefix, versions)
        stamps, rules = make_database(clone, check=False)
        _, rules_check = make_database(clone, check=True)
        by_name = {name: stamp for stamp, name in stamps.items()}
        hashes = str(clone / "build/make/hashes") + "/"

        def ours(rule: tuple[list[str], list[str]]) -> tuple[set[str], set[str]]:
            def names(words: list[str]) -> set[str]:
                return {stamps.get(w, w) for w in words if not w.startswith(hashes)} - {by_name.get("", "")}
            normal, order_only = names(rule[0]), names(rule[1])
            python = [w for w in rule[0] + rule[1] if "python3-venv" in w]
            normal -= set(python)
            order_only -= set(python)
            return normal, order_only

        differences = dropped = 0
        for name in sorted(lists):
            sage = lists[name]
            # Sage's $(optional_inst_X): X's stamp when X is to be installed (configure without
            # options: the base and standard packages), else nothing
            optional = [o for o in meaning.words(sage.get("optional", "")) if o in standard]
            normal = set(meaning.words(sage.get("runtime", "") + " " + sage.get("build", "")) + optional) - {name}
            order_only = set(meaning.words(sage.get("order_only", ""))) - normal - {name}
            check = set(meaning.words(sage.get("check", ""))) - normal - {name}
            normal.discard(PY)
            order_only.discard(PY)
            stamp = by_name.get(name)
            if not stamp or stamp not in rules:
                dropped += 1
                print(f"DROPPED {name}: no rule for its stamp in our Makefile")
                continue
            our_normal, our_order_only = ours(rules[stamp])
            check_normal, _ = ours(rules_check[stamp])
            our_check = check_normal - our_normal
            for label, theirs, mine in (("normal", normal, our_normal), ("order-only", order_only, our_order_only),
                                        ("check", check, our_check)):
                if theirs != mine:
                    differences += 1
                    print(f"DIFF {name} {label}: sage-package only {sorted(theirs - mine)};"
                          f" ours only {sorted(mine - theirs)}")
        print(f"\n{len(lists)} recipes compared; {differences} differences; {dropped} dropped;"
              f" {len(warnings)} configure warnings; configure {seconds:.2f} s")
        return 1 if differences or dropped else 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
