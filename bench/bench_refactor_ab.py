#!/usr/bin/env python3
"""Before and after a change of the code, in one run: ``make -j2 build`` of the same recipes.

A benchmark, not a timed test. It answers "is the behaviour (and the speed) unchanged?" for a
rearrangement of the code such as the layer sub-packages of issue #15: the same recipes
(the base commit's ``build/pkgs``) are built by the base commit's tool and by this checkout's
tool, through the user's path (``make -j2 build`` in a distribution tree), in alternating
rounds, each into a fresh prefix, with the upstream files already downloaded (``upstream/`` of
this checkout, linked). Nothing is deleted before a timed run: each round's prefix is moved
aside and everything goes at the end (creating files right after deleting many is several times
slower on this disk, see bench/README.md). Each tool has its own environment (``.venv``), made
before the first timed round.

    .venv/bin/python bench/bench_refactor_ab.py --base 2571125 [--rounds 3] [--no-readme]

Writes its section of bench/README.md. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from readme_section import write_section  # bench/ is on sys.path: the script's directory

REPO = Path(__file__).resolve().parents[1]


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, **kwargs)


def user_env(root: Path) -> dict[str, str]:
    env = dict(os.environ, SAGE_ROOT=str(root))
    for variable in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "V", "DESTDIR"):
        env.pop(variable, None)
    return env


def prepare(work: Path, label: str, rev: str, base: str) -> Path:
    """A checkout of ``rev`` whose recipes are ``base``'s, sharing this checkout's upstream/."""
    tree = work / label
    run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(tree), rev])
    if rev != base:
        shutil.rmtree(tree / "build" / "pkgs")
        run(["git", "-C", str(tree), "checkout", "-q", base, "--", "build/pkgs"])
    (tree / "upstream").symlink_to(REPO / "upstream")
    env = user_env(tree)
    run(["make", "-C", str(tree), "tool-env"], env=env, stdout=subprocess.DEVNULL)
    run([str(tree / "configure.py"), "--quiet"], env=env, cwd=tree, stdout=subprocess.DEVNULL)
    return tree


def timed_build(tree: Path, jobs: int) -> float:
    env = user_env(tree)
    start = time.perf_counter()
    result = subprocess.run(["make", "-C", str(tree), f"-j{jobs}", "build"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"make build failed in {tree}:\n{result.stdout[-3000:]}")
    return elapsed


def retire(tree: Path, round_: int, attic: Path) -> None:
    """Move the prefix (and logs) aside: deleted at the end, never before a timed run."""
    for name in ("local", "logs"):
        if (tree / name).exists():
            os.replace(tree / name, attic / f"{tree.name}-{name}-{round_}")


def installed_tree(tree: Path) -> dict[str, int]:
    site = next((tree / "local" / "lib").glob("python3*/site-packages"))
    return {str(p.relative_to(site)): p.stat().st_size for p in site.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(("RECORD", "INSTALLER"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit before the change (e.g. 2571125)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    base = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.base], capture_output=True,
                          text=True, check=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="sage-build-ab-"))
    attic = work / "attic"
    attic.mkdir()
    trees = {}
    try:
        trees = {"before": prepare(work, "before", base, base), "after": prepare(work, "after", "HEAD", base)}
        times: dict[str, list[float]] = {"before": [], "after": []}
        same_tree = True
        for round_ in range(args.rounds):
            order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
            for label in order:
                retire(trees[label], round_, attic)
                times[label].append(timed_build(trees[label], args.jobs))
                print(f"round {round_ + 1} {label}: {times[label][-1]:.2f} s", flush=True)
            same_tree = same_tree and installed_tree(trees["before"]) == installed_tree(trees["after"])
        medians = {label: statistics.median(values) for label, values in times.items()}
        ratios = [b / a for b, a in zip(times["before"], times["after"])]
        rows = "\n".join(f"| {label} ({base if label == 'before' else head}) | {medians[label]:.2f} s |"
                         f" {', '.join(f'{t:.2f}' for t in times[label])} |" for label in ("before", "after"))
        text = f"""## Before and after a rearrangement of the code (issue #15)

Reproduce: `.venv/bin/python bench/bench_refactor_ab.py --base {base} --rounds {args.rounds}`.
`make -j{args.jobs} build` of the same recipes (commit {base}'s build/pkgs) by the tool of commit {base}
and by the tool of commit {head}, alternating, each round into a fresh prefix, upstream files
already downloaded; nothing deleted before a timed run; load average at the end
{os.getloadavg()[0]:.2f}.

| tool | median | runs |
| --- | ---: | --- |
{rows}

Per-round before/after: {', '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f}x).
The installed trees (files and sizes of site-packages, RECORD and INSTALLER aside) are
{'identical' if same_tree else 'DIFFERENT'} in every round.
"""
        print(text)
        if not args.no_readme:
            write_section("refactor-ab", text)
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
