#!/usr/bin/env python3
"""Benchmark: does `make -jN` keep to N jobs inside the packages it builds? (issue #19, item 3)

Several small C packages (generated recipes, no network) whose spkg-install compiles many tiny C
files with a build tool of its own: `make -j$SAGE_NUM_THREADS`, `ninja -j$SAGE_NUM_THREADS`,
cmake + `cmake --build` (CMAKE_BUILD_PARALLEL_LEVEL) and a plain `make` (the jobserver). They
are built by `make -jN` through the generated Makefile, as a user does, while a sampler reads
/proc every 10 ms: the compiler processes running in the tree (the drivers cc/gcc, one a job, and cc1) and
the runnable tasks of the machine (procs_running, the instantaneous load; other users' included:
the quiet figure before the run is printed beside it). Target: peak compilers <= 1.25 x N.

Before and after in one run: ``--base REV`` builds the same recipes with that commit's tool too
(its src/, build/bin, configure.py and sage from ``git archive``; this checkout's tool
environment), alternating with this checkout's, each round in a fresh tree made beforehand.

    .venv/bin/python bench/bench_job_budget.py [--base REV] [--jobs 2 4] [--rounds 1] [--files 24] [--no-readme]

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
import threading
import time
from pathlib import Path

from readme_section import write_section  # bench/ is on sys.path: the script's directory

REPO = Path(__file__).resolve().parents[1]
TOOL_PYTHON = REPO / ".venv" / "bin" / "python"
DRIVERS = {"cc", "gcc", "c++", "g++"}
COMPILERS = {"cc1", "cc1plus"}
TARGET = 1.25

# One package per build tool; each compiles FILES C files and links them into a static library.
BUILDS = {
    "cmake_pkg": ("printf 'cmake_minimum_required(VERSION 3.10)\\nproject(p C)\\nfile(GLOB S *.c)\\n"
                  "add_library(p STATIC ${S})\\n' > CMakeLists.txt\n"
                  "cmake -S . -B b -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null\n"
                  "cmake --build b\n"),
    "make_pkg": "make -j$SAGE_NUM_THREADS libp.a\n",
    "ninja_pkg": "ninja -j$SAGE_NUM_THREADS\n",
    "plainmake_pkg": "${MAKE:-make} libp.a\n",
}


def c_file(i: int) -> str:
    """A file that takes cc1 a moment at -O2 (so that the sampler sees it)."""
    body = "\n".join(f"double f{i}_{k}(double x) {{ double s = 0; for (int j = 0; j < {k + 3}; j++)"
                     f" s += x * j / (j + {k + 1}.0) + __builtin_sin(x + j); return s; }}" for k in range(60))
    return f"/* generated */\n{body}\n"


def write_recipes(root: Path, files: int) -> list[str]:
    names = []
    objects = " ".join(f"f{i}.o" for i in range(files))
    makefile = (f"libp.a: {objects}\n\tar rcs $@ $^\n"
                "%.o: %.c\n\t$(CC) $(CFLAGS) -c $< -o $@\n")
    ninja = ("rule cc\n  command = cc -O2 -c $in -o $out\nrule ar\n  command = ar rcs $out $in\n"
             + "".join(f"build f{i}.o: cc f{i}.c\n" for i in range(files)) + f"build libp.a: ar {objects}\n")
    for name, command in BUILDS.items():
        recipe = root / "build" / "pkgs" / name
        (recipe / "src").mkdir(parents=True)
        (recipe / "type").write_text("standard\n")
        (recipe / "dependencies").write_text("\n")
        (recipe / "package-version.txt").write_text("1.0\n")
        for i in range(files):
            (recipe / "src" / f"f{i}.c").write_text(c_file(i))
        (recipe / "src" / "Makefile").write_text(makefile)
        (recipe / "src" / "build.ninja").write_text(ninja)
        (recipe / "spkg-install.in").write_text(
            f"cd src\n{command}"
            f'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share/{name}" && echo "jobs=$SAGE_NUM_THREADS" > '
            f'"$SAGE_DESTDIR$SAGE_LOCAL/share/{name}/built"\n')
        names.append(name)
    return names


def tool_of(base: str, work: Path) -> Path:
    """The base commit's entries and src/, beside a link to this checkout's tool environment."""
    tool = work / f"tool-{base}"
    tool.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", base, "src", "build/bin", "build/tool-requirements.txt", "configure.py", "sage",
                              "pyproject.toml"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tool)], input=archive, check=True)
    (tool / ".venv").symlink_to(REPO / ".venv")
    return tool


def user_env(root: Path) -> dict[str, str]:
    env = dict(os.environ, SAGE_ROOT=str(root))
    for variable in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "V", "DESTDIR", "SAGE_NUM_THREADS",
                     "CMAKE_BUILD_PARALLEL_LEVEL", "MAX_JOBS"):
        env.pop(variable, None)
    return env


def checked(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run([str(c) for c in command], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, command))}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def prepare(tool: Path, root: Path, files: int) -> list[str]:
    """A fresh tree, configured, its venv made (untimed)."""
    names = write_recipes(root, files)
    env = user_env(root)
    checked([TOOL_PYTHON, tool / "configure.py", f"--prefix={root / 'local'}", "--quiet"], env)
    checked(["make", "-f", root / "build/make/Makefile", "python3-venv"], env)
    return names


def _state_parent(pid: str) -> tuple[str, str]:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state, parent = handle.read().rsplit(")", 1)[1].split()[:2]
            return state, parent
    except OSError:
        return "", ""


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def sample(stop: threading.Event, out: dict, root: Path) -> None:
    """Peaks of the build's compilers (those working in the tree: another user's do not count) and
    of the machine's runnable tasks."""
    inside = str(root) + "/"
    drivers = compilers = runnable = 0
    running_sum = samples = 0
    while not stop.is_set():
        seen = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/comm") as handle:
                        comm = handle.read().strip()
                    if comm not in DRIVERS and comm not in COMPILERS:
                        continue
                    if not (os.readlink(f"/proc/{entry.name}/cwd") + "/").startswith(inside):
                        continue
                except OSError:
                    continue
                seen.append((entry.name, comm))
        # Only those still there once the scan is over ran at the same moment (one that ended
        # early in the scan and one that started late would count twice the same slot).
        # A driver's child between fork and exec is named as the driver: not a job of its own.
        alive = []
        for pid, comm in seen:
            state, parent = _state_parent(pid)
            if state not in ("", "Z") and not (comm in DRIVERS and _comm(parent) in DRIVERS):
                alive.append(comm)
        d = sum(comm in DRIVERS for comm in alive)
        c = sum(comm in COMPILERS for comm in alive)
        with open("/proc/stat") as handle:
            r = next(int(line.split()[1]) for line in handle if line.startswith("procs_running"))
        drivers, compilers, runnable = max(drivers, d), max(compilers, c), max(runnable, r)
        running_sum += r
        samples += 1
        stop.wait(0.01)
    out.update(drivers=drivers, compilers=compilers, runnable=runnable, runnable_mean=running_sum / max(1, samples),
               samples=samples)


def timed_build(root: Path, names: list[str], jobs: int) -> dict:
    stop, out = threading.Event(), {}
    sampler = threading.Thread(target=sample, args=(stop, out, root))
    sampler.start()
    start = time.perf_counter()
    result = subprocess.run(["make", f"-j{jobs}", "-f", str(root / "build/make/Makefile"), *names],
                            env=user_env(root), capture_output=True, text=True)
    out["wall"] = time.perf_counter() - start
    stop.set()
    sampler.join()
    out["loadavg"] = Path("/proc/loadavg").read_text().split()[0]
    if result.returncode != 0:
        raise SystemExit(f"make failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    out["shares"] = {n: (root / f"local/share/{n}/built").read_text().strip() for n in names}
    return out


def quiet_load() -> tuple[float, str]:
    """procs_running over 1 s before the run (other users' load), and the 1-minute load average."""
    values = []
    for _ in range(20):
        with open("/proc/stat") as handle:
            values.append(next(int(line.split()[1]) for line in handle if line.startswith("procs_running")))
        time.sleep(0.05)
    return statistics.mean(values) - 1, Path("/proc/loadavg").read_text().split()[0]  # minus the sampler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", help="a commit to compare with (before), e.g. the one before the job budget")
    parser.add_argument("--jobs", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--files", type=int, default=24, help="C files a package")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_job_budget-"))
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    sides = [(f"after ({head})", REPO)]
    if args.base:
        base = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.base], capture_output=True,
                              text=True, check=True).stdout.strip()
        sides.insert(0, (f"before ({base})", tool_of(base, work)))
    rows, failed = [], False
    try:
        for jobs in args.jobs:
            for round_ in range(args.rounds):
                for (label, tool), alone in [(side, alone) for alone in (False, True) for side in sides]:
                    root = work / f"{jobs}-{round_}-{len(rows)}"
                    names = prepare(tool, root, args.files)
                    if alone:  # one package: it gets the whole budget
                        names = ["ninja_pkg"]
                    quiet, quiet_avg = quiet_load()
                    figures = timed_build(root, names, jobs)
                    ok = figures["drivers"] <= TARGET * jobs and figures["compilers"] <= TARGET * jobs
                    failed |= not ok and label.startswith("after")
                    rows.append((jobs, round_ + 1, label, figures, quiet, quiet_avg, ok))
                    print(f"-j{jobs} round {round_ + 1} {label} {' '.join(names)}: peak cc/gcc {figures['drivers']}, cc1 "
                          f"{figures['compilers']}, runnable peak {figures['runnable']} (mean "
                          f"{figures['runnable_mean']:.1f}; before the run {quiet:.1f}), wall {figures['wall']:.1f} s, "
                          f"loadavg {quiet_avg} -> {figures['loadavg']}, shares {figures['shares']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        "## The job budget inside builds (bench/bench_job_budget.py)",
        "",
        f"{len(BUILDS)} generated C packages, {args.files} files each, one a build tool (`make -j$SAGE_NUM_THREADS`, "
        "`ninja -j$SAGE_NUM_THREADS`, cmake + `cmake --build`, a plain `make`), built by `make -jN` through the "
        "generated Makefile, then the ninja one alone (it gets the whole budget); /proc sampled every 10 ms. Peak compilers: cc/gcc drivers (one a job) and cc1 working in the tree (another user's do not count). "
        "Runnable: the machine's procs_running (instantaneous load, other users' included; 'quiet' is its "
        f"mean over 1 s before the build). Target: peak <= {TARGET} x N. {os.cpu_count()} cores.",
        "",
        f"    .venv/bin/python bench/bench_job_budget.py {'--base ' + args.base + ' ' if args.base else ''}"
        f"--jobs {' '.join(map(str, args.jobs))} --rounds {args.rounds} --files {args.files}",
        "",
        "| N | round | tool | packages | peak cc/gcc | peak cc1 | <= 1.25 N | runnable peak / mean (quiet) | loadavg 1 min before -> after "
        "| wall | SAGE_NUM_THREADS given |",
        "| ---: | ---: | --- | --- | ---: | ---: | --- | --- | --- | ---: | --- |",
    ]
    for jobs, round_, label, f, quiet, quiet_avg, ok in rows:
        shares = " ".join(f"{n.split('_')[0]}:{v.split('=')[1]}" for n, v in f["shares"].items())
        lines.append(f"| {jobs} | {round_} | {label} | {len(f['shares'])} | {f['drivers']} | {f['compilers']} | {'yes' if ok else 'NO'} | "
                     f"{f['runnable']} / {f['runnable_mean']:.1f} ({quiet:.1f}) | {quiet_avg} -> {f['loadavg']} | "
                     f"{f['wall']:.1f} s | {shares} |")
    body = "\n".join(lines)
    print(body)
    if not args.no_readme:
        write_section("bench_job_budget", body)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
