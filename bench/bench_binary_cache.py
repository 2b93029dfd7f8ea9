#!/usr/bin/env python3
"""Benchmark (#20): the default distribution on a fresh prefix from a warm local binary cache,
against building it from source, against `uv pip install --no-deps --find-links DIR` of the same
wheels, side by side in one run.

A distribution tree (a copy of build/pkgs, configured with --upstream-dir) is built once from
source with SAGE_BINARY_CACHE_PUSH (signed with a fresh key): the warm cache; its wheels are also
copied into one flat directory for uv. Then rounds interleave four configurations, each on a fresh
prefix at the same path (the previous prefix is moved aside, untimed, and deleted at the end):

- **from source**: `make -jN -f <tree>/build/make/Makefile build`, no cache;
- **from cache**: the same command with SAGE_BINARY_CACHE=<dir> SAGE_BINARY_CACHE_MODE=only and the
  public key trusted (every package must come from the cache: checked from logs/events.jsonl);
- **cache in order**: the same with SAGE_PULL_AHEAD=no (each package pulled by its own rule, in
  the dependency order, as before the pull ahead);
- **uv**: `python -m venv --without-pip` (untimed) then ONE timed `uv pip install --no-deps
  --no-index --find-links DIR --compile-bytecode --cache-dir FRESH` of every wheel's distribution.

Byte-code levels are equal: sage-build's default SAGE_BYTECODE_LEVELS=0 compiles level 0, uv's
--compile-bytecode too. uv installs wheels only: the staged package libyaml is not among its files
(sage-build unpacks it from the cache). After each sage-build run `import yaml._yaml,
markupsafe._speedups` must work.

    .venv/bin/python bench/bench_binary_cache.py [--runs 3] [--jobs 2] [--upstream DIR] [--no-readme]

Offline: the sources come from --upstream (default: the repository's upstream/). uv from the
bench's own venv (bench_install.tools_venv). Writes its section of bench/README.md.
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

from bench_install import tools_venv
from bench_make_install import timed, user_env
from readme_section import write_section

REPO = Path(__file__).resolve().parents[1]
TOOL_PYTHON = REPO / ".venv" / "bin" / "python"
CONFIGS = ("source", "cache", "cache in order", "uv")
IMPORT_CHECK = "import yaml._yaml, markupsafe._speedups; assert yaml.__with_libyaml__"


def log(message: str) -> None:
    print(f"[bench_binary_cache {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(command: list, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(map(str, command))}\n"
                         f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def make_build(tree: Path, jobs: int, env: dict) -> None:
    run(["make", f"-j{jobs}", "-f", tree / "build/make/Makefile", "build"], env=env)


def events_of(tree: Path) -> list[dict]:
    return [json.loads(line) for line in (tree / "logs/events.jsonl").read_text().splitlines()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--upstream", type=Path, default=REPO / "upstream")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    if not (args.upstream / "six-1.17.0.tar.gz").exists() and not any(args.upstream.glob("six-*")):
        raise SystemExit(f"{args.upstream}: the default distribution's sources are not there (make download)")
    uv = tools_venv() / "bin" / "uv"
    work = Path(tempfile.mkdtemp(prefix="bench_binary_cache-")).resolve()
    tree, cache, flat, keys = work / "tree", work / "cache", work / "wheels", work / "keys"
    prefix = tree / "local"
    try:
        shutil.copytree(REPO / "build/pkgs", tree / "build/pkgs", symlinks=True)
        base_env = user_env(tree)
        run([TOOL_PYTHON, REPO / "configure.py", f"--prefix={prefix}", f"--upstream-dir={args.upstream.resolve()}",
             "--quiet"], env=base_env)
        run([TOOL_PYTHON, REPO / "sage", "--cache", "keygen", "bench-1", keys], env=base_env)
        public = (keys / "bench-1.public").read_text().strip()
        log("warming the cache: the default distribution from source, pushed")
        make_build(tree, args.jobs, dict(base_env, SAGE_BINARY_CACHE_PUSH=str(cache),
                                         SAGE_BINARY_CACHE_SIGNING_KEY=str(keys / "bench-1.secret")))
        flat.mkdir()
        for wheel in (prefix / "var/lib/sage/wheels").glob("*.whl"):
            shutil.copy2(wheel, flat / wheel.name)
        wheels = sorted(flat.glob("*.whl"))
        distributions = sorted({w.name.split("-")[0] for w in wheels})
        packages = sorted({e["package"] for e in events_of(tree) if e["phase"] == "record" and e["event"] == "end"}
                          - {"python3-venv"})
        entries = len(list((cache / "v1").glob("*.json")))
        log(f"{len(packages)} packages built, {entries} cache entries, {len(wheels)} wheels")
        aside = work / "aside"
        aside.mkdir()
        times: dict[str, list[tuple[float, float]]] = {c: [] for c in CONFIGS}
        counter = 0
        for round_ in range(args.runs):
            order = CONFIGS[round_ % len(CONFIGS):] + CONFIGS[: round_ % len(CONFIGS)]
            for config in order:
                counter += 1
                if prefix.exists():
                    os.replace(prefix, aside / f"prefix-{counter}")
                (tree / "logs/events.jsonl").unlink(missing_ok=True)
                if config == "uv":
                    venv = work / f"uv-{counter}"
                    run([base_python(), "-m", "venv", "--without-pip", venv])
                    command = [uv, "pip", "install", "--no-deps", "--no-index", "--offline", "-q",
                               "--find-links", flat, "--compile-bytecode", "--python", venv / "bin/python3",
                               "--cache-dir", work / f"uv-cache-{counter}", *distributions]

                    def go(command=command) -> None:
                        run(command, env=base_env)
                else:
                    env = dict(base_env)
                    if config.startswith("cache"):
                        env.update(SAGE_BINARY_CACHE=str(cache), SAGE_BINARY_CACHE_MODE="only",
                                   SAGE_BINARY_CACHE_TRUSTED_KEYS=public)
                    if config == "cache in order":
                        env.update(SAGE_PULL_AHEAD="no")

                    def go(env=env) -> None:
                        make_build(tree, args.jobs, env)
                os.sync()
                elapsed, others = timed(go)
                if config != "uv":
                    run([prefix / "bin/python3", "-c", IMPORT_CHECK])
                    events = events_of(tree)
                    built = {e["package"] for e in events if e["phase"] == "build" and e["event"] == "end"}
                    pulled = {e["package"] for e in events if e.get("cache") and e["phase"] == "fetch"
                              and e["event"] == "end"}
                    if config.startswith("cache") and (built or pulled != set(packages)):
                        raise SystemExit(f"the cache run built {sorted(built)}; pulled {len(pulled)} of {len(packages)}")
                    if config == "source" and pulled:
                        raise SystemExit(f"the source run pulled {sorted(pulled)}")
                times[config].append((elapsed, others))
                log(f"round {round_ + 1}/{args.runs}: {config:<14} {elapsed:7.2f} s (other processes {others:.2f} cores)")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(config: str) -> float:
        return statistics.median(t for t, _ in times[config])

    per_round = lambda a, b: ", ".join(f"{x / y:.1f}" for (x, _), (y, _) in zip(times[a], times[b]))  # noqa: E731
    lines = [
        "## Binary cache: the default distribution from a warm local cache (bench/bench_binary_cache.py)",
        "",
        f"The default distribution ({len(packages)} packages, {len(wheels)} wheels and libyaml's staged files) on a"
        f" fresh prefix by `make -j{args.jobs} build`: from source, and from a warm local `file://` cache"
        " (SAGE_BINARY_CACHE_MODE=only, signed entries checked against the trusted key: every package pulled, none"
        " built), against `uv pip install --no-deps --no-index --find-links DIR --compile-bytecode` of the same"
        " wheels into a fresh venv (cold uv cache; uv has no libyaml: it installs wheels only). Byte-code level 0 on"
        f" every side. {args.runs} interleaved rounds; wall seconds (other processes' cores busy meanwhile);"
        f" {os.cpu_count()} cores.",
        "",
        f"    .venv/bin/python bench/bench_binary_cache.py --runs {args.runs} --jobs {args.jobs}",
        "",
        "| configuration | median | runs |",
        "| --- | ---: | --- |",
    ]
    for config, label in (("source", "from source"), ("cache", "from the binary cache"),
                          ("cache in order", "from the binary cache, in dependency order (SAGE_PULL_AHEAD=no)"),
                          ("uv", "uv, same wheels")):
        cells = ", ".join(f"{t:.1f} ({o:.2f})" for t, o in times[config])
        lines.append(f"| {label} | {median(config):.1f} s | {cells} |")
    lines += [
        "",
        f"- from source / from cache: {median('source') / median('cache'):.1f}x (per round: {per_round('source', 'cache')};"
        " target >= 10x)",
        f"- from cache / uv: {median('cache') / median('uv'):.2f}x (per round: {per_round('cache', 'uv')};"
        " target <= 1.5x)",
        f"- in dependency order / pulled ahead: {median('cache in order') / median('cache'):.2f}x (per round:"
        f" {per_round('cache in order', 'cache')})",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_readme:
        write_section("bench_binary_cache", body)
    return 0


def base_python() -> str:
    """The interpreter the tree's venv is made from (configure's default: the tool's base Python)."""
    return run([TOOL_PYTHON, "-c", "import sys; print(sys._base_executable)"]).stdout.strip()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    sys.exit(main())
