#!/usr/bin/env python3
"""Benchmark: the user's path of installing wheels (issue #19, item 1): N wheel-kind recipes
installed by `make -jN` through the generated Makefile and through the top-level one, against pip
one call and uv one call.

The wheels of bench/wheels-make.txt (50, numpy, scipy, sympy, jax ... among them; ``--wheels``
names another list, e.g. bench/wheels.txt; ``--limit`` takes the first N) become wheel-kind
recipes (the wheel is the recipe's upstream file, linked from the bench cache) of a distribution
tree, configured and with its prefix's venv made before the timing; the timed run is `make -jN -f
build/make/Makefile PKG...` (the generated Makefile) or `make -C TREE -jN PKG...` (the top-level
Makefile, linked into the tree as a distribution links sage-build: it checks the generated
Makefile and runs sage-progress around it), with `SAGE_BYTECODE_LEVELS` 0 or none. Beside it, as bench/bench_install.py does them:
`pip install --no-deps` (one call, `--no-compile` without byte-code) and `uv pip install --no-deps`
(one call, cold cache, `--compile-bytecode` with byte-code) into a fresh venv. Rounds interleave
the eight configurations (rotated each round); each round's ratios uv/sage-build and pip/sage-build
are given (above 1: sage-build is faster). Nothing is deleted before a timed run (every tree and
prefix goes at the end: see bench_install.py's RUN_FOOTPRINT); the other processes' CPU use during
each run and the load average before it are recorded beside it. For sage-build, the tree's
logs/events.jsonl also gives the sum of the packages' install phases (unzip, check, write, publish,
RECORD: the work itself, without make, the interpreters, the worker's forks or the other phases),
divided by N: the wall time the installs alone would take on N lanes with nothing else to do.

    .venv/bin/python bench/bench_make_install.py [--runs 3] [--limit N] [--jobs 2] [--wheels FILE] [--no-readme]

Wheels, pip and uv as for bench/bench_install.py (~/.cache/sage-build-bench). Writes its section
of bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_install import (  # bench/ is on sys.path: the script's directory
    Env,
    _busy_seconds,
    fetch_wheels,
    install_pip,
    install_uv,
    installer_lib,
    make_prefix,
    read_wheel_list,
    tools_venv,
)
from readme_section import write_section

REPO = Path(__file__).resolve().parents[1]
TOOL_PYTHON = REPO / ".venv" / "bin" / "python"
TOOLS = ("sage-build", "sage-build top", "pip", "uv")  # generated Makefile, top-level Makefile
WHEEL_SET = REPO / "bench" / "wheels-make.txt"


def recipe_name(wheel: Path) -> str:
    return "w_" + wheel.name.split("-")[0].lower().replace(".", "_")


def link_top_level(root: Path) -> None:
    """The top-level Makefile, configure.py and build/bin linked into the tree (as tests' Tree.top_level)."""
    for name in ("Makefile", "configure.py"):
        (root / name).symlink_to(REPO / name)
    (root / "build" / "bin").symlink_to(REPO / "build" / "bin")


def make_tree(root: Path, wheels: list[Path]) -> list[str]:
    """A tree of wheel-kind recipes, configured, its prefix's venv made (untimed)."""
    import hashlib

    (root / "upstream").mkdir(parents=True)
    names = []
    for wheel in wheels:
        name, version = recipe_name(wheel), wheel.name.split("-")[1]
        recipe = root / "build" / "pkgs" / name
        recipe.mkdir(parents=True)
        (recipe / "type").write_text("standard\n")
        (recipe / "dependencies").write_text("$(PYTHON)\n")
        (recipe / "package-version.txt").write_text(version + "\n")
        (root / "upstream" / wheel.name).symlink_to(wheel)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        (recipe / "checksums.ini").write_text(f"tarball={wheel.name.replace(version, 'VERSION')}\nsha256={digest}\n")
        names.append(name)
    env = user_env(root)
    for command in ([TOOL_PYTHON, REPO / "configure.py", f"--prefix={root / 'local'}", "--quiet"],
                    ["make", "-f", root / "build/make/Makefile", "python3-venv"]):
        result = subprocess.run([str(c) for c in command], env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"failed: {command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return names


def user_env(root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, SAGE_ROOT=str(root), **extra)
    for variable in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "V", "DESTDIR", "PYTHONPATH"):
        env.pop(variable, None)
    return env


def install_phases(root: Path) -> float:
    """Seconds of all packages' install phases in the tree's event log (every package once)."""
    import json

    total = 0.0
    with open(root / "logs" / "events.jsonl", encoding="utf-8") as events:
        for line in events:
            event = json.loads(line)
            if event.get("event") == "end" and event.get("phase") == "install" and event.get("package") != "python3-venv":
                total += event["duration"]
    return total


def timed(run) -> tuple[float, float]:
    """Wall seconds of ``run()`` and the cores other processes kept busy meanwhile."""
    before, busy_before = resource.getrusage(resource.RUSAGE_CHILDREN), _busy_seconds()
    start = time.perf_counter()
    run()
    elapsed = time.perf_counter() - start
    after, busy_after = resource.getrusage(resource.RUSAGE_CHILDREN), _busy_seconds()
    ours = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, max(0.0, busy_after - busy_before - ours) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="only the first N wheels")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--wheels", type=Path, default=WHEEL_SET, help="the list of wheels (name==version lines)")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    subprocess.run([str(TOOL_PYTHON), "-m", "compileall", "-q", str(REPO / "src")], check=True)
    pins = read_wheel_list(args.wheels.resolve())
    wheels = fetch_wheels(pins[: args.limit] if args.limit else pins)
    venv = tools_venv()
    work = Path(tempfile.mkdtemp(prefix="bench_make_install-")).resolve()
    env = Env(venv=venv, installer_lib=installer_lib(venv), root=work)
    for wheel in wheels:  # warm the page cache for everybody
        wheel.read_bytes()
    configs = [(tool, bytecode) for bytecode in (True, False) for tool in TOOLS]
    times: dict[tuple[str, bool], list[tuple[float, float, float]]] = {c: [] for c in configs}
    lanes: dict[tuple[str, bool], list[float]] = {c: [] for c in configs}  # install phases / jobs
    try:
        for round_ in range(args.runs):
            order = configs[round_ % len(configs):] + configs[: round_ % len(configs)]
            for tool, bytecode in order:
                label = f"{tool.replace(' ', '-')}-{'bc0' if bytecode else 'nobc'}-{round_}"
                if tool.startswith("sage-build"):
                    root = work / label
                    names = make_tree(root, wheels)
                    environ = user_env(root, SAGE_BYTECODE_LEVELS="0" if bytecode else "none")
                    if tool == "sage-build top":
                        link_top_level(root)
                        command = ["make", "-C", str(root), f"-j{args.jobs}", *names]
                    else:
                        command = ["make", f"-j{args.jobs}", "-f", str(root / "build/make/Makefile"), *names]

                    def run(command=command, environ=environ) -> None:
                        result = subprocess.run(command, env=environ, capture_output=True, text=True)
                        if result.returncode != 0:
                            raise SystemExit(f"make failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
                else:
                    prefix = make_prefix(work, label, describe=False)
                    installer = install_pip if tool == "pip" else install_uv

                    def run(installer=installer, prefix=prefix, bytecode=bytecode) -> None:
                        installer(env, prefix, wheels, bytecode)
                os.sync()
                load = os.getloadavg()[0]
                elapsed, others = timed(run)
                times[(tool, bytecode)].append((elapsed, others, load))
                if tool.startswith("sage-build"):
                    lanes[(tool, bytecode)].append(install_phases(root) / args.jobs)
                print(f"round {round_ + 1}/{args.runs}: {tool:<14} byte-code {'0   ' if bytecode else 'none'} "
                      f"{elapsed:7.2f} s (other processes {others:.2f} cores, load before {load:.2f})",
                      file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"## The user's path: {len(wheels)} wheel recipes through `make -j{args.jobs}` (bench/bench_make_install.py)",
        "",
        f"{len(wheels)} wheels of bench/{args.wheels.name} as wheel-kind recipes, installed by `make -j{args.jobs}` "
        "through the generated Makefile (sage-build) and through the top-level Makefile (sage-build top: `make -C TREE`, "
        "which checks the generated Makefile and runs sage-progress) into a fresh prefix (tree configured and venv "
        "made beforehand), against `pip install "
        "--no-deps` one call and `uv pip install --no-deps` one call (cold cache), byte-code level 0 (pip's default, "
        f"uv `--compile-bytecode`) and none; {args.runs} interleaved rounds, nothing deleted before a timed run. "
        f"Each time: wall seconds (other processes' cores busy meanwhile; load average before). {os.cpu_count()} "
        "cores.",
        "",
        f"    .venv/bin/python bench/bench_make_install.py --runs {args.runs} --jobs {args.jobs}"
        + (f" --limit {args.limit}" if args.limit else "")
        + (f" --wheels bench/{args.wheels.name}" if args.wheels.resolve() != WHEEL_SET else ""),
        "",
        f"The last column: the sum of sage-build's install phases divided by {args.jobs} (the installs alone on "
        f"{args.jobs} lanes, nothing else), and uv's median wall over it.",
        "",
        "| byte-code | tool | median | runs | uv / sage-build per round | pip / sage-build per round "
        "| install phases per lane: median (uv / it) |",
        "| --- | --- | ---: | --- | --- | --- | ---: |",
    ]
    for bytecode in (True, False):
        for tool in TOOLS:
            runs = times[(tool, bytecode)]
            cells = ", ".join(f"{t:.1f} ({o:.2f}; {load:.1f})" for t, o, load in runs)
            ours = [t for t, _, _ in runs]
            ratios = {other: ", ".join(f"{t / s:.2f}" for (t, _, _), s in zip(times[(other, bytecode)], ours))
                      for other in ("uv", "pip")}
            mine = tool.startswith("sage-build")
            lane = ""
            if mine:
                uv = statistics.median(t for t, _, _ in times[("uv", bytecode)])
                lane = f"{statistics.median(lanes[(tool, bytecode)]):.2f} s ({uv / statistics.median(lanes[(tool, bytecode)]):.2f})"
            lines.append(f"| {'0' if bytecode else 'none'} | {tool} | {statistics.median(ours):.1f} s "
                         f"| {cells} | {ratios['uv'] if mine else ''} | {ratios['pip'] if mine else ''} | {lane} |")
    body = "\n".join(lines)
    print(body)
    if not args.no_readme:
        write_section("bench_make_install", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
