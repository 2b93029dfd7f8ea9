#!/usr/bin/env python3
"""Benchmark of issue #21: generating CI pipelines for passagemath's tree, and their sizes against
the CI services' limits.

A benchmark, not a timed test: it prints a table and refreshes its section of bench/README.md.
The tree is passagemath's (625 recipes), never committed here; bench/bench_sage_tree.py's
docstring says how to obtain it. The script configures a temporary copy (as bench_sage_tree does)
and runs, as a user does, through ``./sage`` with SAGE_ROOT set, in interleaved rounds (one run of
each command per round, after one warm-up round), the median of each:

- ``./sage --ci generate gitlab --push`` with no cache named (nothing is asked: the graph alone),
  with an empty ``file://`` cache (every key computed and asked for: all miss) and with a full one
  (a manifest for every key: all hit, the pipeline is one no-op job);
- ``./sage --ci generate github`` (the static workflow) and ``./sage --ci plan github`` (its plan
  job) against the empty and the full cache;
- ``./sage --cache key --all``: the keys alone (the part of the cache's cost that is not the lookups).

The sizes are those of the generated files for the packages ``make build`` builds and for every
recipe of the tree (named on the command line), with an empty cache (the largest pipeline).

    .venv/bin/python bench/bench_ci.py --tree SAGE_TREE [--rounds 5] [--no-readme]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench_sage_tree import copy_tree, create_generated_files, user_env  # bench/ is on sys.path
from bench_spine import machine_facts
from readme_section import write_section

REPO = Path(__file__).resolve().parents[1]
SAGE = [sys.executable, str(REPO / "sage")]
GITLAB_CHILD_LIMIT, GITLAB_NEEDS_LIMIT = 5 * 1024 * 1024, 50
GITHUB_MATRIX_LIMIT, GITHUB_OUTPUTS_LIMIT = 256, 1024 * 1024


def run(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed (exit {result.returncode}): {' '.join(command)}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout


def sizes(label: str, root: Path, env: dict[str, str], packages: list[str], empty: str) -> list[str]:
    """Rows of the sizes table for one set of packages."""
    _, child = run([*SAGE, "--ci", "generate", "gitlab", "--push", "--cache", empty, *packages], env)
    label = label.format(n=child.split(" packages to build")[0].rsplit(" ", 1)[1])   # "... X of N packages"
    data = yaml.safe_load(child)
    jobs = {k: v for k, v in data.items() if isinstance(v, dict) and "script" in v}
    needs = [len(job.get("needs", [])) for name, job in jobs.items() if name != "cache-index"]
    over = sum(1 for name, job in jobs.items() if name != "cache-index" and "needs" not in job)
    _, workflow = run([*SAGE, "--ci", "generate", "github", *packages], env)
    waves = len([j for j in yaml.safe_load(workflow)["jobs"] if j.startswith("wave")])
    _, outputs = run([*SAGE, "--ci", "plan", "github", "--waves", str(waves), "--push", "--cache", empty, *packages], env)
    matrices = dict(line.split("=", 1) for line in outputs.splitlines())
    widest = max(len(json.loads(v)) for v in matrices.values())
    output_bytes = sum(len(k) + len(v) for k, v in matrices.items())
    return [
        f"| {label}: GitLab child pipeline | {len(child.encode()):,} bytes | {GITLAB_CHILD_LIMIT:,} bytes"
        f" | {100 * len(child.encode()) / GITLAB_CHILD_LIMIT:.1f}% |",
        f"| {label}: GitLab jobs, stages | {len(jobs) - 1} + index, {len(data['stages'])} | - | - |",
        f"| {label}: GitLab most `needs:` of a job | {max(needs)} ({over} jobs over the limit: stage order) |"
        f" {GITLAB_NEEDS_LIMIT} | {100 * max(needs) / GITLAB_NEEDS_LIMIT:.0f}% |",
        f"| {label}: GitHub workflow | {len(workflow.encode()):,} bytes, {waves} waves | - | - |",
        f"| {label}: GitHub plan job's outputs | {output_bytes:,} bytes | {GITHUB_OUTPUTS_LIMIT:,} bytes"
        f" | {100 * output_bytes / GITHUB_OUTPUTS_LIMIT:.1f}% |",
        f"| {label}: GitHub widest wave's matrix | {widest} entries | {GITHUB_MATRIX_LIMIT}"
        f" | {100 * widest / GITHUB_MATRIX_LIMIT:.0f}% |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=os.environ.get("SAGE_BENCH_SAGE_TREE"),
                        help="an extracted Sage tree (build/pkgs, pkgs, src) [$SAGE_BENCH_SAGE_TREE]")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, after one warm-up round [5]")
    parser.add_argument("--no-readme", action="store_true", help="do not refresh bench/README.md")
    args = parser.parse_args()
    if args.tree is None or not (args.tree / "build" / "pkgs").is_dir():
        parser.error("--tree DIR (or SAGE_BENCH_SAGE_TREE) must name an extracted Sage tree; see --help")
    work = Path(tempfile.mkdtemp(prefix="sage-build-bench-ci-")).resolve()
    try:
        root = work / "tree"
        recipes = copy_tree(args.tree, root)
        env = user_env(root)
        configure = [sys.executable, str(REPO / "configure.py"), f"--prefix={root}/local", "--quiet"]
        subprocess.run(configure, env=env, capture_output=True, check=True)
        if create_generated_files(root, env, root / "build" / "make" / "Makefile"):
            subprocess.run(configure, env=env, capture_output=True, check=True)
        empty, full = work / "empty-cache", work / "full-cache"
        (empty / "v1").mkdir(parents=True)
        (full / "v1").mkdir(parents=True)
        _, keys = run([*SAGE, "--cache", "key", "--all"], env)
        for line in keys.splitlines():
            (full / "v1" / f"{line.split()[1]}.json").write_text("{}")   # a complete entry, as planning sees it
        empty_url, full_url = empty.as_uri(), full.as_uri()
        _, workflow = run([*SAGE, "--ci", "generate", "github"], env)
        waves = str(len([j for j in yaml.safe_load(workflow)["jobs"] if j.startswith("wave")]))
        commands = {
            "`./sage --ci generate gitlab --push` (no cache named)": [*SAGE, "--ci", "generate", "gitlab", "--push"],
            "`./sage --ci generate gitlab --push --cache EMPTY`": [*SAGE, "--ci", "generate", "gitlab", "--push",
                                                                   "--cache", empty_url],
            "`./sage --ci generate gitlab --push --cache FULL`": [*SAGE, "--ci", "generate", "gitlab", "--push",
                                                                  "--cache", full_url],
            "`./sage --ci generate github` (static workflow)": [*SAGE, "--ci", "generate", "github"],
            "`./sage --ci plan github --push --cache EMPTY`": [*SAGE, "--ci", "plan", "github", "--waves", waves,
                                                               "--push", "--cache", empty_url],
            "`./sage --ci plan github --push --cache FULL`": [*SAGE, "--ci", "plan", "github", "--waves", waves,
                                                              "--push", "--cache", full_url],
            "`./sage --cache key --all` (the keys alone)": [*SAGE, "--cache", "key", "--all"],
        }
        times: dict[str, list[float]] = {label: [] for label in commands}
        for round_ in range(args.rounds + 1):
            for label, command in commands.items():
                elapsed, _ = run(command, env)
                if round_:
                    times[label].append(elapsed)
        _, full_child = run(commands["`./sage --ci generate gitlab --push --cache FULL`"], env)
        all_recipes = sorted(p.name for p in (root / "build" / "pkgs").iterdir() if (p / "type").is_file())
        size_rows = (sizes("the {n} packages of make build", root, env, [], empty_url)
                     + sizes(f"all {recipes} recipes named ({{n}} built)", root, env, all_recipes, empty_url))
        timing_rows = [f"| {label} | {statistics.median(runs):.3f} s | {min(runs):.3f} s | {max(runs):.3f} s |"
                       for label, runs in times.items()]
        facts = "\n".join(f"- {key}: {value}" for key, value in machine_facts().items())
        header = full_child.splitlines()[0]
        body = f"""## #21: CI pipelines generated from passagemath's {recipes} recipes

Reproduce: `.venv/bin/python bench/bench_ci.py --tree SAGE_TREE` (the tree: see
bench/bench_sage_tree.py; the script refreshes this section).

A temporary configured copy of the tree, driven through `./sage` with `SAGE_ROOT` set. Each
figure is the wall time of the whole command (process start to exit), median of {args.rounds}
interleaved rounds after a warm-up round. EMPTY is an empty `file://` cache (every key is computed
and asked for, every answer a miss); FULL holds a manifest for each of the {len(keys.splitlines())}
keys of `./sage --cache key --all` (every answer a hit: the child pipeline is one no-op job,
`{header}`). No peer tool runs here (Spack's `spack ci generate` needs a Spack environment of its
own); the keys alone are the baseline of what a cache lookup adds.

| command | median | min | max |
| --- | ---: | ---: | ---: |
{chr(10).join(timing_rows)}

Sizes against the services' limits, with the empty cache (the largest pipeline):

| what | size | limit | share |
| --- | ---: | ---: | ---: |
{chr(10).join(size_rows)}

Machine:

{facts}
"""
        print(body)
        if not args.no_readme:
            write_section("bench_ci", body)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
