#!/usr/bin/env python3
"""Acceptance check: for EVERY recipe of a real Sage tree, ``./sage --package list`` and
``./sage --package properties`` agree with the tree's own sage_bootstrap (``build/bin/sage-package``).

Getting the tree (never commit it to this project): as for ``bench/sage_tree_dependencies.py``,
a snapshot of the public repository passagemath/passagemath (e.g. the search tool's ``fetch`` of
``github:passagemath/passagemath``, a bare git directory), extracted with::

    mkdir -p DIR && git --git-dir=<snapshot> archive HEAD build m4 pkgs src | tar -x -C DIR

Then::

    .venv/bin/python bench/sage_tree_properties.py DIR [--keep WORKDIR] [--no-readme] [--show N]

Both tools run in the same clone-like directory (``sage_tree_dependencies.make_clone``: links to
the tree's ``build/pkgs``, ``src``, ``pkgs``, a copy of its ``Makefile.in``; the tree is only read),
the oracle with ``SAGE_ROOT`` set to it under ``python3``, ours as ``SAGE_ROOT=<clone> ./sage``.

**Lists.** ``./sage --package list [F]`` against ``sage-package list [F]`` for F = (none),
``:standard:``, ``:optional:``, ``:experimental:``, ``:all:``.  sage_bootstrap has no ``:base:``
filter (it rejects the word), so ours for ``:base:`` is compared with the recipes whose oracle
``type`` property is ``base``.

**Properties.** ``./sage --package properties --format json`` of every recipe against the oracle's
``properties --format=shell`` of ``:all:`` (its default properties), plus the same function of the
oracle (``Application.properties``, shell format) asked for the string properties it has but does
not print by default, plus ``sage-package dependencies --format=shell :all:``.  The mapping, ours
<- sage_bootstrap's (PROPERTY_MAP below):

- ``version`` <- ``version_with_patchlevel`` (absent: our null, its ``none``).  Documented
  exception: our version keeps Sage's patch level ``.pN`` (it names the stamp, as Sage's does),
  so it differs from sage_bootstrap's ``version`` property (without ``.pN``) on those recipes; the
  count is printed and is not a difference;
- ``type`` <- ``type``; ``kind`` <- ``source``; ``trees`` (a list) <- ``trees`` (words);
- ``distribution`` <- ``distribution_name`` (its PEP 508 name: ``pep508_name``); ``tarball`` <- ``tarball_filename``;
  ``tarball_pattern`` <- ``tarball_pattern``; ``upstream_url`` <- ``tarball_upstream_url``;
- ``dependencies.optional`` <- ``dependencies_optional``; ``dependencies.check`` <-
  ``dependencies_check`` (as sets of words);
- ``dependencies.normal`` / ``dependencies.order_only`` <- ``runtime_deps build_deps`` /
  ``order_only_deps``, package names only, in Sage's meaning (``SageMeaning`` of
  sage_tree_dependencies.py: make variables expanded through the tree's ``Makefile.in``, the
  package itself dropped, a normal one wins over the same order-only one); ``$(PYTHON)`` is our
  ``python3-venv``, as order-only on Sage's side.  Words that are make text (paths, functions)
  are left to ``bench/sage_tree_dependencies.py``, which compares the whole Makefile.

sage_bootstrap's properties ours does not print (``path``, ``purl``, ``description``,
``uses_python_package_check``) are listed as missing from our output and, where the recipe
readers compute the value (``Package.purl``, ``spkg_rst.title``), the readers are compared too.

Prints each difference (the first ``--show`` per property) and the counts by property; refreshes
the ``sage_tree_properties`` section of bench/README.md (unless ``--no-readme``); exits 1 when any
difference remains.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from readme_section import write_section  # bench/ is on sys.path: the script's directory
from sage_tree_dependencies import PY, ROOT, SageMeaning, make_clone, makefile_in_variables

FILTERS = ["", ":standard:", ":optional:", ":experimental:", ":all:"]

#: ours -> sage_bootstrap's property (string properties)
PROPERTY_MAP = {
    "version": "version_with_patchlevel",
    "type": "type",
    "kind": "source",
    "trees": "trees",
    "distribution": "distribution_name",
    "tarball": "tarball_filename",
    "tarball_pattern": "tarball_pattern",
    "upstream_url": "tarball_upstream_url",
}
#: sage_bootstrap's default properties (``properties --format=shell``)
DEFAULT_PROPS = ["path", "version_with_patchlevel", "type", "source", "trees", "purl", "description",
                 "uses_python_package_check"]
EXTRA_PROPS = ["version", "distribution_name", "tarball_filename", "tarball_pattern", "tarball_upstream_url"]
#: sage_bootstrap's properties that our JSON lacks, and what of ours reads them (None: nothing yet)
NOT_PRINTED = {"path": "Package.path", "purl": "Package.purl", "description": "spkg_rst.title",
               "uses_python_package_check": "Package.uses_python_package_check"}
#: ours that a checksums.ini of sections only (one per file, no line outside them) gives: the
#: first section's file, where sage_bootstrap has no primary tarball (``tarballs()[None]``)
SECTIONED_KEYS = ("tarball", "tarball_pattern", "upstream_url")
OUR_PYTHON = "python3-venv"


def parse_shell(text: str, names: list[str], props: list[str]) -> dict[str, dict[str, str]]:
    """``PROP_NAME=VALUE`` lines -> {name: {prop: value}}; a package name may hold '_', so the
    line is split at the longest known property prefix."""
    result: dict[str, dict[str, str]] = defaultdict(dict)
    known = set(names)
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        for prop in sorted(props, key=len, reverse=True):
            if key.startswith(prop + "_") and key[len(prop) + 1:] in known:
                words = shlex.split(value)
                result[key[len(prop) + 1:]][prop] = " ".join(words) if len(words) != 1 else words[0]
                break
    return result


class Oracle:
    def __init__(self, tree: Path, clone: Path):
        self.tree, self.clone = tree, clone
        self.python = shutil.which("python3") or "python3"
        self.env = dict(os.environ, SAGE_ROOT=str(clone), PYTHONIOENCODING="utf-8",
                        PYTHONPATH=str(tree / "build"))

    def run(self, *args: str) -> str:
        return subprocess.run([self.python, str(self.tree / "build/bin/sage-package"), *args], env=self.env,
                              cwd=self.clone, capture_output=True, text=True, check=True).stdout

    def properties(self, props: list[str]) -> str:
        code = ("import sys; from sage_bootstrap.app import Application; "
                f"Application().properties(':all:', props={props!r}, format='shell')")
        return subprocess.run([self.python, "-c", code], env=self.env, cwd=self.clone,
                              capture_output=True, text=True, check=True).stdout


def ours(clone: Path, *args: str) -> str:
    env = dict(os.environ, SAGE_ROOT=str(clone))
    return subprocess.run([str(ROOT / "sage"), "--package", *args], env=env, cwd=clone,
                          capture_output=True, text=True, check=True).stdout


def words(value) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, list):
        return set(value)
    return set(str(value).split())


def sectioned(recipe: Path) -> bool:
    """Whether checksums.ini holds sections only (no ``tarball=`` line before the first one)."""
    try:
        lines = (recipe / "checksums.ini").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        if line.startswith("["):
            return True
        if line.startswith("tarball="):
            return False
    return False


def sage_words(meaning: SageMeaning, text: str) -> list[str]:
    """The oracle's words in Sage's meaning, without the make text (paths: left to
    sage_tree_dependencies.py; our properties keep them verbatim)."""
    return [w for token in text.split() if "/" not in token for w in meaning.words(token)]


def pep508_name(value: str) -> str:
    """sage_bootstrap's ``distribution_name`` is the first word of the requirement line: for
    ``name>=1.0`` (no blank) it keeps the specifier, for a URL it is the URL.  Ours is the
    distribution's name: compared with the PEP 508 name of its value (a URL's ``#egg=`` name)."""
    from packaging.requirements import InvalidRequirement, Requirement

    egg = re.search(r"#egg=([A-Za-z0-9_.-]+)", value)
    if egg:
        return egg.group(1)
    try:
        return Requirement(value).name if value else value
    except InvalidRequirement:
        return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", type=Path, help="an extracted Sage tree (see the docstring)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument("--no-readme", action="store_true", help="do not refresh bench/README.md")
    parser.add_argument("--show", type=int, default=10, help="differences printed per property (default 10)")
    args = parser.parse_args()
    tree = args.tree.resolve()
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="sage-tree-props-"))
    clone = work / "clone"
    try:
        make_clone(tree, clone)
        oracle = Oracle(tree, clone)
        diffs: dict[str, list[str]] = defaultdict(list)
        explained: dict[str, list[str]] = defaultdict(list)

        # -- lists
        names = oracle.run("list").split()
        default = parse_shell(oracle.run("properties", "--format=shell", ":all:"), names, DEFAULT_PROPS)
        extra = parse_shell(oracle.properties(EXTRA_PROPS), names, EXTRA_PROPS)
        for flt in FILTERS + [":base:"]:
            theirs = ([n for n in names if default[n].get("type") == "base"] if flt == ":base:"
                      else oracle.run("list", *([flt] if flt else [])).split())
            mine = ours(clone, "list", *([flt] if flt else [])).split()
            label = f"list {flt or '(all)'}"
            if mine != theirs:
                diffs[label].append(f"{label}: sage-package only {sorted(set(theirs) - set(mine))};"
                                    f" ours only {sorted(set(mine) - set(theirs))}"
                                    + ("; order differs" if set(mine) == set(theirs) else ""))
            print(f"{label}: {len(theirs)} recipes, {'same' if mine == theirs else 'DIFFERENT'}")

        # -- properties
        props = json.loads(ours(clone, "properties", "--format", "json", *names))
        deps_lists: dict[str, dict[str, str]] = defaultdict(dict)
        for line in oracle.run("dependencies", "--format=shell", ":all:").splitlines():
            key, _, value = line.partition("=")
            for kind in ("build", "order_only", "optional", "runtime", "check"):
                if key.startswith(f"{kind}_deps_") and key[len(kind) + 6:] in props:
                    deps_lists[key[len(kind) + 6:]][kind] = " ".join(shlex.split(value))
        makefile_in = clone / "build/make/Makefile.in"
        versions = {n: (p["version"] or "none") for n, p in props.items()}
        meaning = SageMeaning(makefile_in_variables(makefile_in.read_text()) if makefile_in.is_file() else {},
                              clone, clone / "local", versions)
        patch_level = 0
        for name in names:
            mine, theirs = props.get(name), {**default[name], **extra[name]}
            if mine is None:
                diffs["missing"].append(f"{name}: not in our properties")
                continue
            for our_key, key in PROPERTY_MAP.items():
                value = mine.get(our_key)
                if our_key == "trees":
                    value = " ".join(value or [])
                expected = theirs.get(key, "")
                if our_key == "distribution":
                    expected = pep508_name(expected)
                if our_key == "version":
                    value = value if value is not None else "none"
                    if value != theirs.get("version", "none"):
                        patch_level += 1
                if (value if value is not None else "") != expected:
                    line = f"{name} {our_key}: sage-package {expected!r}; ours {value!r}"
                    if our_key in SECTIONED_KEYS and not expected and sectioned(clone / "build/pkgs" / name):
                        explained["sectioned checksums.ini"].append(line)
                    else:
                        diffs[our_key].append(line)
            sage = deps_lists.get(name, {})
            for our_key, kind in (("optional", "optional"), ("check", "check")):
                a, b = words(sage.get(kind)), words(mine["dependencies"].get(our_key))
                if a != b:
                    diffs[f"dependencies.{our_key}"].append(
                        f"{name} dependencies.{our_key}: sage-package only {sorted(a - b)}; ours only {sorted(b - a)}")
            normal = set(sage_words(meaning, sage.get("runtime", "") + " " + sage.get("build", ""))) - {name}
            order_only = set(sage_words(meaning, sage.get("order_only", ""))) - normal - {name}
            for our_key, theirs_set in (("normal", normal), ("order_only", order_only)):
                a = {OUR_PYTHON if w == PY else w for w in theirs_set if w == PY or w in props}
                b = {w for w in mine["dependencies"][our_key] if w == OUR_PYTHON or w in props}
                if a != b:
                    diffs[f"dependencies.{our_key}"].append(
                        f"{name} dependencies.{our_key}: sage-package only {sorted(a - b)}; ours only {sorted(b - a)}")
        missing_keys = [k for k in NOT_PRINTED if not any(k in p for p in props.values())]

        # -- sage_bootstrap's properties our JSON lacks: compared in our JSON when it has them, else
        # through the recipe readers that compute them (what the face would print)
        sys.path.insert(0, str(ROOT / "src"))
        from sage_build.recipes.recipe import load_packages
        from sage_build.recipes.spkg_rst import title

        packages = load_packages(clone / "build/pkgs")
        for name in names:
            pkg = packages[name]
            try:
                text = (pkg.path / "SPKG.rst").read_text(encoding="utf-8")
            except OSError:
                text = ""
            readers = {"path": str(pkg.path), "purl": pkg.purl, "description": title(text)[1] or "",
                       "uses_python_package_check": str(pkg.uses_python_package_check)}
            for key, reader in NOT_PRINTED.items():
                expected = default[name].get(key, "")
                if key in props[name]:
                    value, label = props[name][key], key
                    value = str(value) if isinstance(value, bool) else (value if value is not None else "")
                else:
                    value, label = readers[key], f"reader: {key}"
                if value != expected:
                    diffs[label].append(f"{name} {label} ({reader}): sage-package {expected!r}; ours {value!r}")

        counts = Counter({k: len(v) for k, v in diffs.items()})
        for key in sorted(diffs):
            print(f"\n== {key}: {len(diffs[key])}")
            for line in diffs[key][:args.show]:
                print(f"  {line}")
            if len(diffs[key]) > args.show:
                print(f"  ... {len(diffs[key]) - args.show} more")
        for key in sorted(explained):
            print(f"\n== explained, not counted: {key}: {len(explained[key])}")
            for line in explained[key][:args.show]:
                print(f"  {line}")
        total = sum(counts.values())
        summary = [f"{len(names)} recipes; {len(FILTERS) + 1} lists and {len(PROPERTY_MAP) + 4} properties compared",
                   f"differences: {total}" + (" (" + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + ")"
                                               if total else ""),
                   "explained: " + (", ".join(f"{k} {len(v)}" for k, v in sorted(explained.items())) or "none")
                   + " (sage_bootstrap has no primary tarball when checksums.ini holds only [sections];"
                   " ours names the first section's file)",
                   f"documented exception: {patch_level} recipes keep Sage's patch level .pN in our version"
                   f" (= sage_bootstrap's version_with_patchlevel, not its version)",
                   "sage_bootstrap properties our output does not print: " + (", ".join(missing_keys) or "none")]
        print("\n" + "\n".join(summary))
        if not args.no_readme:
            write_section("sage_tree_properties", readme_section(tree, summary, counts))
        return 1 if total else 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def readme_section(tree: Path, summary: list[str], counts: Counter) -> str:
    lines = ["## A real Sage tree: `./sage --package list` and `properties` against sage_bootstrap", "",
             "Reproduce: `.venv/bin/python bench/sage_tree_properties.py DIR` (DIR: an extracted"
             " passagemath tree, see the script's docstring; it refreshes this section).", "",
             f"Tree: `{tree.name}`. Lists: none, `:standard:`, `:optional:`, `:experimental:`, `:all:`,"
             " `:base:` (sage_bootstrap has no `:base:`: its `type` property is used). Properties, ours <-"
             " sage_bootstrap's: " + ", ".join(f"`{a}` <- `{b}`" for a, b in PROPERTY_MAP.items())
             + ", `dependencies.{normal,order_only,optional,check}` <- `dependencies --format=shell`"
             " (names, in Sage's meaning).", "",
             "**Documented exception: `.pN`.** Our `version` keeps Sage's patch level (`1.2.p3`), as"
             " `package-version.txt` says and the stamp is named; it equals sage_bootstrap's"
             " `version_with_patchlevel`, and differs from its `version` (without `.pN`) on the recipes"
             " counted below; that is not a difference.", ""]
    lines += [f"- {line}" for line in summary]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
