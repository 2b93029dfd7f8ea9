#!/usr/bin/env python3
"""Benchmark of the spine: configure.py and a no-op ``make build`` over 2,000 synthetic recipes.

A benchmark, not a timed test: it prints a table and refreshes its section of
bench/README.md.  Targets (from the issue): configure.py under 1 s, and
``make build`` with everything already installed under 0.5 s.  The peer is GNU
make alone: a minimal Makefile with the same stamps and dependency edges, so
the table shows what our generated Makefile costs on top of bare make.

    .venv/bin/python bench/bench_spine.py [--count 2000] [--runs 5] [--keep] [--no-readme]

Standard library only.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from readme_section import (  # bench/ is on sys.path: the script's directory
    README,
    write_section,
)

REPO = Path(__file__).resolve().parents[1]
TOOL_PYTHON = REPO / ".venv" / "bin" / "python"
CONFIGURE_TARGET = 1.0   # seconds
NOOP_MAKE_TARGET = 0.5   # seconds
TOOLCHAIN = ("setuptools", "wheel", "flit_core")
SYLLABLES = ("py", "lib", "sphinx", "contrib", "zope", "test", "data", "net", "cy", "math", "io",
             "web", "async", "json", "yaml", "tools", "core", "utils", "plot", "sym", "num", "graph")


# --- the synthetic tree ------------------------------------------------------------------------


@dataclass
class Recipe:
    name: str
    shape: str          # "sdist", "wheel", "script" (a C library built by spkg-install.in)
    type: str           # "standard" or "optional"
    version: str
    deps: list[str]


def plan_recipes(count: int, rng: random.Random) -> list[Recipe]:
    """``count`` recipes in dependency order (each depends only on earlier ones): acyclic."""
    recipes = [Recipe(name, "wheel", "standard", f"{rng.randint(1, 80)}.{rng.randint(0, 9)}.0", [])
               for name in TOOLCHAIN]
    while len(recipes) < count:
        index = len(recipes)
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))) + f"_{index}"
        roll = rng.random()
        shape = "script" if roll < 0.06 else "wheel" if roll < 0.08 else "sdist"
        type_ = "optional" if rng.random() < 0.04 else "standard"
        version = f"{rng.randint(0, 30)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
        if rng.random() < 0.1:
            version += f".p{rng.randint(0, 3)}"
        # A standard package never depends on an optional one (make build would build it);
        # C libraries depend only on C libraries.
        candidates = [r.name for r in recipes[len(TOOLCHAIN):]
                      if r.type == "standard" and (shape != "script" or r.shape == "script")]
        deps = rng.sample(candidates, min(len(candidates), rng.randint(0, 5)))
        recipes.append(Recipe(name, shape, type_, version, deps))
    return recipes


def write_recipe(pkgs: Path, recipe: Recipe, rng: random.Random) -> None:
    directory = pkgs / recipe.name
    directory.mkdir(parents=True)
    upstream = recipe.version.split(".p")[0]
    sha256 = "".join(rng.choice("0123456789abcdef") for _ in range(64))
    files = {"type": f"{recipe.type}\n", "package-version.txt": f"{recipe.version}\n"}
    if recipe.shape == "script":
        files["checksums.ini"] = f"tarball={recipe.name}-VERSION.tar.bz2\nsha256={sha256}\n"
        files["dependencies"] = " ".join(recipe.deps) + "\n" if recipe.deps else "# no dependencies\n"
        files["spkg-install.in"] = "cd src\nsdh_configure --disable-static\nsdh_make\nsdh_make_install\n"
    else:
        suffix = "-py3-none-any.whl" if recipe.shape == "wheel" else ".tar.gz"
        files["checksums.ini"] = f"tarball={recipe.name}-VERSION{suffix}\nsha256={sha256}\n"
        if rng.random() < 0.3:
            files["checksums.ini"] += f"upstream_url=https://example.org/{recipe.name}/{recipe.name}-VERSION{suffix}\n"
        line = " ".join(["$(PYTHON)", *recipe.deps])
        if recipe.shape == "sdist":
            line += " | $(PYTHON_TOOLCHAIN)"
        files["dependencies"] = line + "\n"
        files["install-requires.txt"] = f"{recipe.name} >={upstream}\n"
    if rng.random() < 0.5:
        files["dependencies"] += "\n----------\nAll lines of this file are ignored except the first.\n"
    if rng.random() < 0.4:
        title = f"{recipe.name}: a synthetic package"
        files["SPKG.rst"] = f"{title}\n{'=' * len(title)}\n\nDescription\n-----------\n\nFor the benchmark.\n"
    if rng.random() < 0.25:
        debian = f"lib{recipe.name}-dev" if recipe.shape == "script" else f"python3-{recipe.name}"
        files["distros/debian.txt"] = debian + "\n"
    for relative, text in files.items():
        (directory / relative).parent.mkdir(exist_ok=True)
        (directory / relative).write_text(text)


def generate_tree(root: Path, count: int, seed: int) -> list[Recipe]:
    rng = random.Random(seed)
    recipes = plan_recipes(count, rng)
    for recipe in recipes:
        write_recipe(root / "build" / "pkgs", recipe, rng)
    # For the top-level Makefile, which expects the tree to be a checkout: the repository's
    # Makefile and build/bin, and a configure.py that runs the real one.
    (root / "Makefile").symlink_to(REPO / "Makefile")
    (root / "build" / "bin").symlink_to(REPO / "build" / "bin")
    stub = root / "configure.py"
    stub.write_text(f"#!/bin/sh\nexec {TOOL_PYTHON} {REPO / 'configure.py'} \"$@\"\n")
    stub.chmod(0o755)
    return recipes


# --- running and timing ------------------------------------------------------------------------

#: What our recipes print when make runs them: a no-op must print none of these.
OUR_COMMANDS = ("sage-spkg", "sage-recipe-hash", "sage-reconfigure", "configure:")


def clean_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "V")}
    env["SAGE_ROOT"] = str(root)
    return env


@dataclass
class Timing:
    label: str
    runs: list[float]
    target: float | None = None
    problem: str = ""   # why a run that should be a no-op was not one

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def verdict(self) -> str:
        if self.problem:
            return "FAIL: not a no-op"
        if self.target is None:
            return "-"
        return "pass" if self.median < self.target else "FAIL"


Check = Callable[[int, str], str]   # (exit code, output) -> problem, or "" when all is well


def timed(label: str, command: list[str], env: dict[str, str], runs: int, target: float | None = None,
          noop: Check | None = None) -> Timing:
    """One warm-up, then ``runs`` timed runs of the whole command (wall time).

    Without ``noop`` a failing command stops the benchmark; with it, every run is checked and the
    first problem is recorded (the figures still come out).
    """
    times, problem = [], ""
    for i in range(runs + 1):
        start = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        output = result.stdout + result.stderr
        if noop is None and result.returncode != 0:
            raise SystemExit(f"failed (exit {result.returncode}): {' '.join(command)}\n{output[-3000:]}")
        if noop is not None and not problem:
            problem = noop(result.returncode, output)
        if i > 0:
            times.append(elapsed)
    return Timing(label, times, target, problem)


def snapshot(root: Path) -> dict[str, int]:
    """Names and mtimes of the stamps and the recipe hashes: a no-op changes none of them."""
    dirs = [root / "local" / "var" / "lib" / "sage" / "installed", root / "build" / "make" / "hashes"]
    return {entry.path: entry.stat().st_mtime_ns for d in dirs for entry in os.scandir(d)}


def noop_check(root: Path) -> Check:
    before = snapshot(root)

    def check(returncode: int, output: str) -> str:
        ours = [line for line in output.splitlines() if any(word in line for word in OUR_COMMANDS)]
        if returncode != 0:
            return f"exit {returncode}; last lines: {' / '.join(output.strip().splitlines()[-3:])}"
        if ours:
            return f"it ran {ours[0].strip()!r}"
        if snapshot(root) != before:
            return "it changed a stamp or a recipe hash"
        return ""
    return check


def make_question(makefile: Path, env: dict[str, str]) -> int:
    """Exit code of ``make -q build``, with our commands disarmed: make -q still runs `+` lines."""
    disarm = ["SPKG=false", "SPKG_UNINSTALL=false", "RECIPE_HASH=false"]
    return subprocess.run(["make", "-q", "-f", str(makefile), "build", *disarm], env=env,
                          capture_output=True).returncode


# --- the "everything installed" prefix and the bare Makefile -----------------------------------


def make_variables(makefile: Path) -> dict[str, str]:
    """The simply expanded variables (``:=``, ``?=``) of a generated Makefile, expanded in order."""
    variables: dict[str, str] = {}
    for line in makefile.read_text().splitlines():
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*) *(:=|\?=) *(.*)$", line)
        if match:
            value = re.sub(r"\$\(([A-Za-z0-9_]+)\)", lambda m: variables.get(m.group(1), ""), match.group(3))
            variables[match.group(1)] = value.strip()
    return variables


def stamps(makefile: Path) -> list[Path]:
    """Every stamp the generated Makefile knows: ``inst_<pkg>`` and the ``$(PYTHON)`` pseudo-package."""
    variables = make_variables(makefile)
    paths = [value for name, value in variables.items() if name.startswith("inst_") and value]
    return [Path(p) for p in [variables["PYTHON"], *paths]]


def fake_installed(root: Path) -> int:
    """Create every stamp, all with one mtime newer than anything configure wrote."""
    make_dir = root / "build" / "make"
    newest = max(p.stat().st_mtime for p in [make_dir / "Makefile", *(make_dir / "hashes").iterdir()])
    when = time.time()
    assert when > newest, "configure wrote files in the future?"
    paths = stamps(make_dir / "Makefile")
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
        os.utime(path, (when, when))
    return len(paths)


def write_bare_makefile(generated: Path, bare: Path) -> int:
    """A minimal Makefile with the same stamps and edges, minus recipe hashes; returns the edge count.

    Taken from the generated one: its ``inst_`` and ``PYTHON`` definitions, its stamp rules
    without the ``$(HASHES)/<pkg>`` prerequisite, and its ``build`` line.
    """
    variables = make_variables(generated)
    lines = [f"{name} := {value}" for name, value in variables.items() if name.startswith("inst_") or name == "PYTHON"]
    lines += ["", ".PHONY: build", ""]
    edges = 0
    for line in generated.read_text().splitlines():
        if line.startswith("build:"):
            lines += [line, ""]
        rule = re.match(r"^(\$\(inst_[^)]+\)): \$\(HASHES\)/\S+ (.*)$", line)
        if rule:
            lines += [f"{rule.group(1)}: {rule.group(2)}", "\t@echo would build $@", ""]
            edges += len([w for w in rule.group(2).split() if w != "|"])
    lines += ["$(PYTHON):", "\t@echo would build $@", ""]
    bare.write_text("\n".join(lines))
    return edges


# --- facts and the report ----------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    make_version = subprocess.run(["make", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    python_version = subprocess.run([str(TOOL_PYTHON), "-c", "import platform; print(platform.python_version())"],
                                    capture_output=True, text=True).stdout.strip()
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    revision = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                              capture_output=True, text=True).stdout.strip()
    return {
        "sage-build": f"{revision} (-dirty: with uncommitted changes)" if revision.endswith("-dirty") else revision,
        "cpu": f"{cpu}, nproc {len(os.sched_getaffinity(0))}",
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{python_version} (the tool's .venv)",
        "make": make_version,
        "load average at the end": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def describe(recipes: list[Recipe]) -> str:
    def count(predicate: Callable[[Recipe], bool]) -> int:
        return sum(1 for r in recipes if predicate(r))
    edges = sum(len(r.deps) for r in recipes)
    return (f"{len(recipes):,} recipes: {count(lambda r: r.shape == 'sdist'):,} Python sdists,"
            f" {count(lambda r: r.shape == 'wheel'):,} wheels (toolchain: {', '.join(TOOLCHAIN)}),"
            f" {count(lambda r: r.shape == 'script'):,} C libraries built by spkg-install.in;"
            f" {count(lambda r: r.type == 'optional'):,} of them optional;"
            f" {edges:,} package-to-package dependency edges, plus $(PYTHON) and $(PYTHON_TOOLCHAIN)")


def table(timings: list[Timing]) -> str:
    rows = ["| measurement | median | min | max | target | result |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for t in timings:
        target = f"< {t.target:.1f} s" if t.target is not None else "-"
        rows.append(f"| {t.label} | {t.median:.3f} s | {min(t.runs):.3f} s | {max(t.runs):.3f} s"
                    f" | {target} | {t.verdict} |")
    return "\n".join(rows)


def section(timings: list[Timing], notes: list[str], facts: dict[str, str], tree: str, runs: int,
            edges: int) -> str:
    fact_lines = "\n".join(f"- {key}: {value}" for key, value in facts.items())
    note_lines = "\n".join(f"- {note}" for note in notes) or "- none"
    return f"""## Spine: configure and no-op make over 2,000 recipes

Reproduce: `.venv/bin/python bench/bench_spine.py` (`--help` for options; it refreshes this section).

A synthetic tree of {tree}. Seeded, acyclic: each package depends only on earlier ones.

Each figure is the wall time of the whole command (process start to exit), median of {runs} runs
after one warm-up:

- **configure.py**: `SAGE_ROOT=<tree> .venv/bin/python configure.py --prefix=<tree>/local --quiet`,
  first with an empty prefix, then with every package installed (the usual re-configure; the
  installed optional packages are then kept).
- **no-op make build**: every stamp present, all with one mtime newer than what configure wrote;
  configure run again since (as a developer does); then `make -f <tree>/build/make/Makefile build`
  with SAGE_ROOT exported. Every run must exit 0, print no line of ours (`sage-spkg`,
  `sage-recipe-hash`, `sage-reconfigure`, `configure:`) and change no stamp and no recipe hash;
  else the row says "not a no-op". The `make -r` row is the same command with make's built-in
  implicit rules off, for diagnosis.
- **top-level make build**: `make -C <tree> build` through the repository's top-level Makefile
  (symlinked into the tree, with build/bin): what a developer types. It first checks whether the
  generated Makefile is stale (wildcards over every recipe's type, version, dependencies and
  checksums files), then runs the generated Makefile.
- **bare GNU make (peer)**: a minimal Makefile with the same stamps and the same {edges:,}
  prerequisite edges (taken from the generated Makefile, minus the recipe-hash prerequisites), no
  hash files, no wildcards: the time make itself needs to decide the no-op.

{table(timings)}

Notes from this run:

{note_lines}

Machine:

{fact_lines}
"""


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="number of recipes [2000]")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement, after one warm-up [5]")
    parser.add_argument("--seed", type=int, default=2000, help="random seed of the tree [2000]")
    parser.add_argument("--keep", action="store_true", help="keep the temporary tree and print its path")
    parser.add_argument("--no-readme", action="store_true", help="do not refresh bench/README.md")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="sage-build-bench-spine-")).resolve()
    try:
        recipes = generate_tree(root, args.count, args.seed)
        env = clean_env(root)
        prefix = root / "local"
        generated = root / "build" / "make" / "Makefile"
        configure = [str(TOOL_PYTHON), str(REPO / "configure.py"), f"--prefix={prefix}", "--quiet"]
        print(f"tree: {root}\n{describe(recipes)}", file=sys.stderr)

        fresh = timed("configure.py, empty prefix", configure, env, args.runs, CONFIGURE_TARGET)
        installed = fake_installed(root)
        print(f"faked {installed:,} installed stamps under {prefix}", file=sys.stderr)
        reconfigure = timed("configure.py, everything installed", configure, env, args.runs, CONFIGURE_TARGET)

        noop = noop_check(root)
        make = ["make", "-f", str(generated), "build"]
        generated_make = timed("no-op `make build` (generated Makefile)", make, env, args.runs, NOOP_MAKE_TARGET, noop)
        generated_r = timed("same with `make -r` (diagnosis: no built-in rules)", [*make, "-r"], env, args.runs,
                            None, noop)
        toplevel = timed("no-op `make build` (top-level Makefile)", ["make", "-C", str(root), "build"], env,
                         args.runs, NOOP_MAKE_TARGET, noop)
        bare_makefile = root / "bare.mk"
        edges = write_bare_makefile(generated, bare_makefile)
        bare = timed("bare GNU make, same stamps and edges (peer)", ["make", "-f", str(bare_makefile), "build"],
                     env, args.runs, None, noop)
        timings = [fresh, reconfigure, generated_make, generated_r, toplevel, bare]

        notes = [f"our no-op `make build` over bare make: {generated_make.median - bare.median:+.3f} s"
                 f" ({generated_make.median / bare.median:.0f}x); with `make -r`:"
                 f" {generated_r.median - bare.median:+.3f} s ({generated_r.median / bare.median:.0f}x)"]
        notes += [f"{t.label}: not a no-op: {t.problem}" for t in timings if t.problem]
        question = make_question(generated, env)
        if question != 0:
            notes.append(f"`make -q build` exits {question} although `make build` runs nothing: configure"
                         " touched every hashes/<pkg>.checked after hashes/<pkg>, and make -q assumes that"
                         " the empty recipe of hashes/<pkg> would update it (make -n likewise lists every"
                         " package); make -q and -n also run `+` recipe lines for real")
        print(table(timings))
        print("\n".join(notes))
        if not args.no_readme:
            write_section("bench_spine", section(timings, notes, machine_facts(), describe(recipes), args.runs, edges))
            print(f"wrote {README.relative_to(REPO)}", file=sys.stderr)
        return 0 if not any(t.verdict.startswith("FAIL") for t in timings) else 1
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
