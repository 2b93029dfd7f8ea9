#!/usr/bin/env python3
"""Benchmark on a real Sage tree: reconfigure, ``./sage --package list``, no-op ``make build``.

A benchmark, not a timed test: it prints a table and refreshes its section of bench/README.md.
Targets (issue #16): a reconfigure <= 0.5 s, ``./sage --package list`` <= 0.3 s, a no-op
``make build`` <= 0.2 s, each the median of 5 runs after one warm-up, through the entries as a
user runs them (``./configure.py``, ``./sage``, make).

The tree is passagemath's (a maintained SageMath distribution, 625 recipes), never committed
here. Obtain it from a snapshot of the public repository passagemath/passagemath:

    git clone --depth 1 https://github.com/passagemath/passagemath SNAPSHOT
    mkdir SAGE_TREE && git -C SNAPSHOT archive HEAD build m4 pkgs src | tar -x -C SAGE_TREE

then

    .venv/bin/python bench/bench_sage_tree.py --tree SAGE_TREE [--runs 5] [--keep] [--no-readme]

(or set SAGE_BENCH_SAGE_TREE). The script works on a temporary copy: build/pkgs, build/make's
tracked files, m4/ and pkgs/ are copied, src/ (the target of recipes' links) is linked.
When configure fails on the tree, the section says so with configure's first lines, and the
figures that need no configuration (``./sage --package list``) are still measured.

Standard library only (and bench_spine's helpers).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_spine import Timing, fake_installed, machine_facts, noop_check, timed  # bench/ is on sys.path
from readme_section import README, write_section

REPO = Path(__file__).resolve().parents[1]
RECONFIGURE_TARGET = 0.5
LIST_TARGET = 0.3
NOOP_MAKE_TARGET = 0.2


def copy_tree(source: Path, root: Path) -> int:
    """The parts of a Sage tree sage-build reads, into ``root``; the number of recipe directories."""
    shutil.copytree(source / "build" / "pkgs", root / "build" / "pkgs", symlinks=True)
    if (source / "build" / "make").is_dir():  # tracked: Makefile.in and friends
        shutil.copytree(source / "build" / "make", root / "build" / "make", symlinks=True)
    if (source / "m4").is_dir():
        shutil.copytree(source / "m4", root / "m4", symlinks=True)
    if (source / "pkgs").is_dir():  # copied: Sage's configure generates files in it
        shutil.copytree(source / "pkgs", root / "pkgs", symlinks=True)
    if (source / "src").exists():
        (root / "src").symlink_to(source.resolve() / "src")
    return sum(1 for p in (root / "build" / "pkgs").iterdir() if (p / "type").is_file())


def first_checksum_section(root: Path) -> list[str]:
    """Keep only the first ``[file]`` section of each sectioned checksums.ini (passagemath lists a
    wheel per platform so); return the recipes changed. sage-build does not read sections yet."""
    changed = []
    for ini in sorted((root / "build" / "pkgs").glob("*/checksums.ini")):
        lines = ini.read_text().splitlines()
        headers = [i for i, line in enumerate(lines) if line.startswith("[")]
        if not headers:
            continue
        end = headers[1] if len(headers) > 1 else len(lines)
        text = "\n".join(lines[headers[0] + 1:end]) + "\n"
        ini.unlink()  # it may be a link into another recipe
        ini.write_text(text)
        changed.append(ini.parent.name)
    return changed


def create_generated_files(root: Path, env: dict[str, str], makefile: Path) -> list[str]:
    """Files that Sage's own configure generates and dependency tokens name (sage-conf's
    _sage_conf/_conf.py): created empty, so that make finds them; their paths under the tree."""
    created: list[str] = []
    for _ in range(20):
        result = subprocess.run(["make", "-n", "-k", "-f", str(makefile), "build"], env=env,
                                capture_output=True, text=True)
        missing = [Path(m) for m in re.findall(r"No rule to make target '([^']+)'", result.stderr)]
        # where the file really goes (build/pkgs/sage_conf/src is a link into pkgs/); never into src/
        ours = [p.parent.resolve() / p.name for p in missing if root in p.parents]
        ours = [p for p in ours if root in p.parents]
        if not ours:
            break
        for path in ours:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            os.utime(path, (1_000_000_000, 1_000_000_000))  # older than every stamp
            created.append(str(path.relative_to(root)))
    return created


def user_env(root: Path) -> dict[str, str]:
    env = dict(os.environ, SAGE_ROOT=str(root))
    for variable in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "V", "DESTDIR"):
        env.pop(variable, None)
    return env


def table(rows: list[tuple[str, Timing | str, float]]) -> str:
    lines = ["| measurement | median | min | max | target | result |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for label, timing, target in rows:
        if isinstance(timing, str):
            lines.append(f"| {label} | - | - | - | <= {target:.1f} s | {timing} |")
            continue
        verdict = "FAIL: not a no-op" if timing.problem else ("pass" if timing.median <= target else "FAIL")
        lines.append(f"| {label} | {timing.median:.3f} s | {min(timing.runs):.3f} s | {max(timing.runs):.3f} s"
                     f" | <= {target:.1f} s | {verdict} |")
    return "\n".join(lines)


def section(rows, notes: list[str], recipes: int, runs: int) -> str:
    facts = "\n".join(f"- {key}: {value}" for key, value in machine_facts().items())
    note_lines = "\n".join(f"- {note}" for note in notes) or "- none"
    return f"""## A real Sage tree: passagemath's {recipes} recipes

Reproduce: `.venv/bin/python bench/bench_sage_tree.py --tree SAGE_TREE` (its docstring says how
to obtain the tree; it refreshes this section).

A temporary copy of the tree (build/pkgs, build/make's tracked files, m4/ and pkgs/ copied;
src/ linked; files Sage's own configure would generate, which dependency tokens name, created empty),
driven by the repository's entries with `SAGE_ROOT` set to it. Each figure is the wall time of the whole command, median of {runs} runs after one warm-up:

- **reconfigure**: `SAGE_ROOT=<tree> ./configure.py --prefix=<tree>/local --quiet`, run again
  after a first configure (system detection results cached).
- **./sage --package list**: `SAGE_ROOT=<tree> ./sage --package list`, output to a pipe.
- **no-op make build**: every stamp present, newer than what configure wrote; then
  `make -f <tree>/build/make/Makefile build`. A run that exits non-zero, runs one of our commands
  or changes a stamp or a recipe hash is "not a no-op".

{table(rows)}

Notes from this run:

{note_lines}

Machine:

{facts}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=os.environ.get("SAGE_BENCH_SAGE_TREE"),
                        help="an extracted Sage tree (build/pkgs, pkgs, src) [$SAGE_BENCH_SAGE_TREE]")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement, after one warm-up [5]")
    parser.add_argument("--first-checksum-section", action="store_true",
                        help="keep only the first [file] section of sectioned checksums.ini files (which"
                             " sage-build does not read yet); the notes name the recipes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary tree and print its path")
    parser.add_argument("--no-readme", action="store_true", help="do not refresh bench/README.md")
    args = parser.parse_args()
    if args.tree is None or not (args.tree / "build" / "pkgs").is_dir():
        parser.error("--tree DIR (or SAGE_BENCH_SAGE_TREE) must name an extracted Sage tree; see --help")

    root = Path(tempfile.mkdtemp(prefix="sage-build-bench-sage-tree-")).resolve()
    try:
        recipes = copy_tree(args.tree, root)
        env = user_env(root)
        prefix = root / "local"
        configure = [str(REPO / "configure.py"), f"--prefix={prefix}", "--quiet"]
        rows: list[tuple[str, Timing | str, float]] = []
        notes: list[str] = []
        print(f"tree: {root} ({recipes} recipes)", file=sys.stderr)
        if args.first_checksum_section:
            changed = first_checksum_section(root)
            notes.append(f"--first-checksum-section: the checksums.ini of {len(changed)} recipes cut to their"
                         f" first [file] section ({', '.join(changed)}): sage-build does not read sections yet")

        first = subprocess.run(configure, env=env, capture_output=True, text=True)
        if first.returncode == 0:
            created = create_generated_files(root, env, root / "build" / "make" / "Makefile")
            if created:
                shown = ", ".join(created[:3]) + (f" and {len(created) - 3} more" if len(created) > 3 else "")
                notes.append(f"{len(created)} files Sage's own configure generates (dependency tokens name them)"
                             f" created empty before timing: {shown}")
                subprocess.run(configure, env=env, capture_output=True, check=True)
            rows.append(("reconfigure (`./configure.py`)",
                         timed("reconfigure", configure, env, args.runs), RECONFIGURE_TARGET))
        else:
            lines = (first.stderr or first.stdout).strip().splitlines()
            rows.append(("reconfigure (`./configure.py`)", "blocked: configure fails on the tree", RECONFIGURE_TARGET))
            notes.append(f"configure exits {first.returncode} on the tree ({len(lines)} lines of errors), first:"
                         f" `{lines[0][:300] if lines else ''}`")
        rows.append(("`./sage --package list`",
                     timed("list", [str(REPO / "sage"), "--package", "list"], env, args.runs), LIST_TARGET))
        if first.returncode == 0:
            time.sleep(0.05)
            stamps = fake_installed(root)
            notes.append(f"{stamps} stamps faked for the no-op make")
            make = ["make", "-f", str(root / "build" / "make" / "Makefile"), "build"]
            noop = timed("no-op make", make, env, args.runs, None, noop_check(root))
            rows.append(("no-op `make build`", noop, NOOP_MAKE_TARGET))
            if noop.problem:
                notes.append(f"no-op `make build`: not a no-op: {noop.problem}")
        else:
            rows.append(("no-op `make build`", "blocked: no configuration", NOOP_MAKE_TARGET))

        print(table(rows))
        print("\n".join(notes))
        if not args.no_readme:
            write_section("bench_sage_tree", section(rows, notes, recipes, args.runs))
            print(f"wrote {README.relative_to(REPO)}", file=sys.stderr)
        return 0
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
