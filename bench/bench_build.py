#!/usr/bin/env python3
"""Benchmark: the default distribution's Python sdists built and installed by sage-build at -j1 and
-j2, against one ``pip install --no-deps --no-build-isolation`` of the same sdists.

A benchmark, not a timed test: it prints a table and refreshes its section of bench/README.md
(between ``<!-- bench_build:start -->`` and ``<!-- bench_build:end -->``).  Targets (from the
issue): sage-build at -j1 no slower than pip; -j2 at least 1.6x faster than -j1.

    .venv/bin/python bench/bench_build.py [--runs 5] [--workdir DIR] [--keep] [--no-readme] [--profile]

Everything is offline: the sources come from the repository's upstream/ cache.  Standard library
only (it drives the tool through configure.py, make and ./sage, as a user does).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from readme_section import (  # bench/ is on sys.path: the script's directory
    README,
    write_section,
)

REPO = Path(__file__).resolve().parents[1]
TOOL_PYTHON = REPO / ".venv" / "bin" / "python"
UPSTREAM = REPO / "upstream"
PIP_VS_J1_TARGET = 1.0   # pip time / sage-build -j1 time must be >= this
J1_VS_J2_TARGET = 1.6    # sage-build -j1 time / -j2 time must be >= this
# Imported after every run on both sides: the C extensions must have been built (libyaml found).
IMPORT_CHECK = ("import yaml, markupsafe._speedups, charset_normalizer; "
                "assert yaml.__with_libyaml__, 'pyyaml built without libyaml'; "
                "import yaml._yaml; print('C extensions ok')")


def log(message: str) -> None:
    print(f"[bench_build {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(command: list[str], *, env: dict[str, str] | None = None, check: bool = True,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], env=env, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(map(str, command))}\n"
                         f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def cpu_busy() -> float:
    """CPU-seconds the whole machine has been busy (all processes, all cores), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Timing:
    wall: float
    cpu: float      # CPU-seconds of the command and everything it started
    foreign: float  # average cores busy with other processes meanwhile (should be ~0)


def timed(command: list[str], *, env: dict[str, str]) -> tuple[Timing, subprocess.CompletedProcess]:
    busy, own = cpu_busy(), children_cpu()
    start = time.perf_counter()
    result = run(command, env=env)
    wall = time.perf_counter() - start
    cpu = children_cpu() - own
    return Timing(wall, cpu, max(0.0, (cpu_busy() - busy - cpu) / wall)), result


def wait_for_quiet(limit: float, threshold: float = 0.25, window: float = 3.0) -> float:
    """Wait (up to ``limit`` seconds) until other processes use under ``threshold`` cores; return
    the last load seen (in cores)."""
    deadline = time.monotonic() + limit
    said = False
    while True:
        busy, own = cpu_busy(), children_cpu()
        time.sleep(window)
        load = (cpu_busy() - busy - (children_cpu() - own)) / window
        if load < threshold or time.monotonic() > deadline:
            return load
        if not said:
            log(f"the machine is busy ({load:.1f} cores used by other processes); waiting up to {limit:.0f} s")
            said = True


# --- the distribution tree ---------------------------------------------------------------------


@dataclass
class Package:
    name: str
    kind: str
    python: bool
    version: str
    tarball: str | None
    distribution: str | None
    deps: list[str]


class Tree:
    """A copy of the repository's recipes, configured against the repository's upstream/ cache."""

    def __init__(self, root: Path):
        self.root = root
        self.prefix = root / "local"
        self.makefile = root / "build" / "make" / "Makefile"
        self.events = root / "logs" / "events.jsonl"
        self.snapshot = root / "local.base"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, SAGE_ROOT=str(self.root))
        for variable in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "V", "SAGE_CHECK", "SAGE_BYTECODE_LEVELS",
                         "PYTHONPATH", "VIRTUAL_ENV"):
            env.pop(variable, None)
        return env

    def create(self) -> None:
        (self.root / "build").mkdir(parents=True)
        shutil.copytree(REPO / "build" / "pkgs", self.root / "build" / "pkgs", symlinks=True)
        run([TOOL_PYTHON, REPO / "configure.py", f"--prefix={self.prefix}", "--quiet",
             f"--upstream-dir={UPSTREAM}"], env=self.env)

    def make(self, jobs: int, *targets: str) -> list[str]:
        return [ "make", f"-j{jobs}", "-f", str(self.makefile), *targets]

    def packages(self) -> dict[str, Package]:
        enabled = run(self.make(1, "list"), env=self.env).stdout.split()
        data = json.loads(run([TOOL_PYTHON, REPO / "sage", "--package", "list", "--format", "json"],
                              env=self.env).stdout)
        result = {}
        for item in data:
            if item["name"] not in enabled:
                continue
            deps = item["dependencies"]
            result[item["name"]] = Package(item["name"], item["kind"], bool(item["python"]), item["version"],
                                           item.get("tarball"), item.get("distribution"),
                                           list(deps["normal"]) + list(deps["order_only"]))
        return result

    def config_python(self) -> str:
        return json.loads((self.root / "build" / "make" / "config.json").read_text())["python"]

    def restore(self) -> None:
        """Back to the snapshot: the prefix with everything but the sdists installed."""
        retire(self.prefix)
        run(["cp", "-a", self.snapshot, self.prefix])

    def stamps(self) -> set[str]:
        directory = self.prefix / "var" / "lib" / "sage" / "installed"
        return {p.name for p in directory.iterdir()} if directory.is_dir() else set()


def retire(directory: Path) -> None:
    """Move a previous run's prefix or venv aside, to be deleted with the work directory at the end.

    On the disk these figures come from, creating files within a minute or so of deleting many is
    several times slower (pygments' sdist unpacks in 0.5 s, and in 3.4 s ten seconds after deleting
    20,000 files): deleting before a timed run would charge that run with the clean-up, and more so
    the side whose set-up is shorter."""
    retired = directory.parent / ".retired"
    retired.mkdir(exist_ok=True)
    directory.rename(retired / f"{directory.name}-{len(list(retired.iterdir()))}")


def is_sdist(pkg: Package) -> bool:
    return pkg.kind == "normal" and pkg.python and bool(pkg.tarball) and not pkg.tarball.endswith(".whl")


def dependency_order(names: list[str], packages: dict[str, Package]) -> list[str]:
    """``names`` sorted so that each comes after the ones it depends on (transitively), else by name."""
    wanted, done, order = set(names), set(), []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done or name not in packages:
            return
        if name in path:
            raise SystemExit(f"dependency cycle: {' -> '.join(path + (name,))}")
        for dep in sorted(packages[name].deps):
            visit(dep, path + (name,))
        done.add(name)
        if name in wanted:
            order.append(name)

    for name in sorted(names):
        visit(name, ())
    return order


# --- events.jsonl ------------------------------------------------------------------------------


@dataclass
class RunEvents:
    """The phase events one timed make run wrote (read from the offset it started at)."""

    phases: dict[str, dict[str, float]] = field(default_factory=dict)   # package -> phase -> seconds
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)  # package -> (first start, last end)
    failed: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path, offset: int) -> RunEvents:
        result = cls()
        with open(path, "rb") as f:
            f.seek(offset)
            lines = f.read().decode().splitlines()
        for line in lines:
            event = json.loads(line)
            name = event["package"]
            if event["event"] == "start":
                first, last = result.spans.get(name, (event["time"], event["time"]))
                result.spans[name] = (min(first, event["time"]), last)
            else:
                phases = result.phases.setdefault(name, {})
                phases[event["phase"]] = phases.get(event["phase"], 0.0) + event["duration"]
                first, last = result.spans.get(name, (event["start"], event["time"]))
                result.spans[name] = (first, max(last, event["time"]))
                if event.get("outcome") != "ok":
                    result.failed.append(f"{name}:{event['phase']}")
        return result

    def phase_total(self, phase: str) -> float:
        return sum(p.get(phase, 0.0) for p in self.phases.values())

    def pipeline_total(self) -> float:
        return sum(end - start for start, end in self.spans.values())


@dataclass
class Measurement:
    label: str
    timings: list[Timing] = field(default_factory=list)
    events: list[RunEvents] = field(default_factory=list)
    discarded: int = 0

    @property
    def seconds(self) -> list[float]:
        return [t.wall for t in self.timings]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu(self) -> float:
        return statistics.median(t.cpu for t in self.timings)

    @property
    def foreign(self) -> float:
        return max(t.foreign for t in self.timings)


# --- the two sides -----------------------------------------------------------------------------


def build_flags(prefix: Path) -> dict[str, str]:
    """The compiler flags sage-build gives every build (sage_build.pipeline.build.build_environment)."""
    include = f"-I{prefix / 'include'}"
    return {
        "CPPFLAGS": include,
        "CFLAGS": f"{include} -O2",
        "CXXFLAGS": f"{include} -O2",
        "LDFLAGS": f"-L{prefix / 'lib'} -Wl,-rpath,{prefix / 'lib'}",
    }


def sage_build_run(tree: Tree, jobs: int, sdists: list[str], packages: dict[str, Package]) -> tuple[Timing, RunEvents]:
    """One timed ``make -jN build`` from the restored snapshot (restore it first)."""
    before = tree.stamps()
    offset = tree.events.stat().st_size if tree.events.exists() else 0
    timing, result = timed(tree.make(jobs, "build"), env=tree.env)
    events = RunEvents.read(tree.events, offset)
    # Sanity: exactly the sdists were built, all of them, nothing failed, the C extensions work.
    built = {name for name, phases in events.phases.items() if "build" in phases}
    if built != set(sdists) or events.failed:
        raise SystemExit(f"sage-build -j{jobs} built {sorted(built)} (failed: {events.failed}),"
                         f" expected {sorted(sdists)}\n{result.stdout[-3000:]}")
    missing = [n for n in sdists if f"{n}-{packages[n].version}" not in tree.stamps() - before]
    if missing:
        raise SystemExit(f"sage-build -j{jobs}: no new stamp for {missing}")
    run([tree.prefix / "bin" / "python3", "-c", IMPORT_CHECK])
    return timing, events


class PipSide:
    """A fresh venv per run, from the same interpreter with the same command as sage-build's prefix,
    with the same toolchain wheels installed (untimed); then one timed pip install of the sdists."""

    def __init__(self, workdir: Path, python: str, wheels: list[Path], sdists: list[Path], libyaml_prefix: Path):
        self.venv = workdir / "pip-venv"
        self.python, self.wheels, self.sdists = python, wheels, sdists
        self.libyaml_prefix = libyaml_prefix
        self.pip_wheel = next(w for w in wheels if w.name.startswith("pip-"))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        for variable in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHONPATH", "VIRTUAL_ENV", "SAGE_ROOT"):
            env.pop(variable, None)
        env.update(build_flags(self.libyaml_prefix))
        env.update(PATH=f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
                   VIRTUAL_ENV=str(self.venv), PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        return env

    def prepare(self) -> None:
        if self.venv.exists():
            retire(self.venv)
        run([self.python, "-m", "venv", "--without-pip", self.venv])
        python = self.venv / "bin" / "python"
        # pip runs from its own wheel to install itself and the rest of the toolchain.
        run([python, self.pip_wheel / "pip", "install", "--no-deps", "--no-index", "--no-cache-dir", "--quiet",
             *self.wheels], env=self.env())

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                "--no-index", "--no-cache-dir", *map(str, self.sdists)]

    def run(self) -> Timing:
        """One timed pip install (call prepare() first)."""
        timing, result = timed(self.command(), env=self.env())
        built = result.stdout.count("Building wheel for ")
        if built < len(self.sdists) or "Successfully installed" not in result.stdout:
            raise SystemExit(f"pip built {built} of {len(self.sdists)} sdists:\n{result.stdout[-3000:]}")
        run([self.venv / "bin" / "python", "-c", IMPORT_CHECK])
        return timing


# --- profiling one sage-spkg run ---------------------------------------------------------------


def profile_spkg(tree: Tree, name: str, workdir: Path) -> str:
    """importtime and cProfile of ``sage-spkg <name>`` (a rebuild of an installed package)."""
    lines = []
    spkg = REPO / "build" / "bin" / "sage-spkg"
    env = dict(tree.env, SAGE_LOCAL=str(tree.prefix))
    timing, _ = timed([TOOL_PYTHON, spkg, name], env=env)
    lines.append(f"sage-spkg {name} (rebuild, wall): {timing.wall:.2f} s")
    result = run([TOOL_PYTHON, "-X", "importtime", spkg, name], env=env)
    imports = []
    for line in result.stderr.splitlines():
        # "import time: <self us> | <cumulative us> | <2 spaces per nesting level><module>"
        parts = line[len("import time:"):].split(" | ") if line.startswith("import time:") else []
        if len(parts) == 3 and parts[1].strip().isdigit():
            imports.append((int(parts[1]), parts[2]))
    top_level = sorted(((us, mod) for us, mod in imports if not mod.startswith(" ")), reverse=True)[:10]
    total = sum(us for us, mod in imports if not mod.startswith(" "))
    lines.append(f"imports (top level, cumulative): {total / 1e6:.3f} s; largest: "
                 + ", ".join(f"{mod} {us / 1e3:.0f} ms" for us, mod in top_level))
    stats = workdir / f"sage-spkg-{name}.prof"
    run([TOOL_PYTHON, "-m", "cProfile", "-o", stats, spkg, name], env=env)
    report = run([TOOL_PYTHON, "-c",
                  "import pstats, sys; pstats.Stats(sys.argv[1]).sort_stats('cumulative').print_stats(25)", stats])
    lines.append("cProfile (cumulative, top 25):")
    lines += [f"    {line}" for line in report.stdout.splitlines() if line.strip()][-27:]
    return "\n".join(lines)


SPIN = "x = 0\nfor i in range(12_000_000): x += i"


def parallel_capacity(python: str, quiet_wait: float, rounds: int = 3, max_load: float = 0.3,
                      attempts: int = 8) -> tuple[float, float, float, float]:
    """How much faster two CPU-bound processes finish at once than one after the other on this
    machine: (seconds alone, seconds for two at once, 2 * alone / pair, the most other processes
    used meanwhile in cores).  2.0 on two free cores; less on hyper-threads or shared virtual
    CPUs.  The ceiling of any -j2 speed-up.  Rounds during which other processes were busy are
    repeated (up to ``attempts`` in all)."""
    alone, pair, loads = [], [], []
    for _ in range(attempts):
        wait_for_quiet(quiet_wait)
        busy, own, start = cpu_busy(), children_cpu(), time.perf_counter()
        subprocess.run([python, "-c", SPIN], check=True)
        one = time.perf_counter() - start
        middle = time.perf_counter()
        procs = [subprocess.Popen([python, "-c", SPIN]) for _ in range(2)]
        for proc in procs:
            proc.wait()
        two = time.perf_counter() - middle
        load = max(0.0, (cpu_busy() - busy - (children_cpu() - own)) / (one + two))
        if load <= max_load:
            alone.append(one)
            pair.append(two)
            loads.append(load)
        if len(alone) == rounds:
            break
    if not alone:
        return float("nan"), float("nan"), float("nan"), float("nan")
    a, b = statistics.median(alone), statistics.median(pair)
    return a, b, 2 * a / b, max(loads)


def best_j2(j1: Measurement, packages: dict[str, Package]) -> tuple[float, float, float]:
    """From the -j1 runs: (sum of the sdists' pipeline spans, their longest dependency chain,
    the time outside the pipelines); the best -j2 wall is about max(sum / 2, chain) + outside / 2
    (the per-process start-up outside the phases runs two at a time as well)."""
    spans = {n: statistics.median(e.spans[n][1] - e.spans[n][0] for e in j1.events) for n in j1.events[0].spans}
    chain: dict[str, float] = {}

    def longest(name: str) -> float:
        if name not in chain:
            chain[name] = spans[name] + max((longest(d) for d in packages[name].deps if d in spans), default=0.0)
        return chain[name]

    total = sum(spans.values())
    return total, max(longest(n) for n in spans), j1.median - total


def process_costs(tree: Tree) -> dict[str, float]:
    """Seconds of the fixed per-package costs (medians of 5): the tool's start-up and the target
    Python's, which sage-spkg starts three times per sdist (installed list, two PEP 517 hooks)."""
    costs = {}
    spkg = REPO / "build" / "bin" / "sage-spkg"
    for label, command in (
        ("sage-spkg --help (tool start-up + imports)", [TOOL_PYTHON, spkg, "--help"]),
        ("target python -c pass", [tree.prefix / "bin" / "python3", "-c", "pass"]),
        ("target python: list installed distributions", [tree.prefix / "bin" / "python3", "-c",
                                                          "from importlib import metadata; "
                                                          "[d.metadata['Name'] for d in metadata.distributions()]"]),
        ("target python: import setuptools.build_meta", [tree.prefix / "bin" / "python3", "-c",
                                                          "import setuptools.build_meta"]),
    ):
        costs[label] = statistics.median(timed(command, env=tree.env)[0].wall for _ in range(5))
    return costs


# --- report ------------------------------------------------------------------------------------


def machine_facts(python: str) -> dict[str, str]:
    def first_line(command: list[str]) -> str:
        try:
            out = subprocess.run(command, capture_output=True, text=True)
            return (out.stdout or out.stderr).splitlines()[0].strip()
        except (OSError, IndexError):
            return "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "?"
    return {
        "cpu": f"{cpu}; nproc {first_line(['nproc'])}",
        "os": f"{platform.system()} {platform.release()}",
        "python (target, both sides)": f"{first_line([python, '--version'])} (venvs made by {python},"
                                       f" base {first_line([python, '-c', 'import sys; print(sys._base_executable)'])})",
        "make": first_line(["make", "--version"]),
        "cc": first_line(["cc", "--version"]),
        "load average at the end": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "sage-build source": source_state(),
    }


def source_state() -> str:
    """The commit measured, and whether src/ had uncommitted changes (read-only git commands)."""
    head = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "build/bin"],
                           capture_output=True, text=True)
    if head.returncode != 0:
        return "not a git checkout"
    changed = len(dirty.stdout.splitlines())
    subject = head.stdout.strip()
    subject = subject if len(subject) <= 80 else subject[:77].rsplit(" ", 1)[0] + " ..."
    return subject + (f" (+ {changed} uncommitted file(s) in src/, build/bin/)" if changed else "")


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def phase_table(measurements: list[Measurement]) -> str:
    """Median over runs of the summed per-phase seconds (events.jsonl) of the sdists."""
    phases = ["fetch", "unpack", "build", "uninstall-old", "install", "record"]
    rows = ["| run | " + " | ".join(phases) + " | sum of package pipelines | make wall |",
            "| --- |" + " ---: |" * (len(phases) + 2)]
    for m in measurements:
        cells = [statistics.median(e.phase_total(p) for e in m.events) for p in phases]
        pipeline = statistics.median(e.pipeline_total() for e in m.events)
        rows.append(f"| {m.label} | " + " | ".join(f"{c:.2f}" for c in cells)
                    + f" | {pipeline:.2f} | {m.median:.2f} |")
    return "\n".join(rows)


def package_table(j1: Measurement) -> str:
    """Per sdist at -j1: median build phase vs the pipeline's other phases."""
    names = sorted(j1.events[0].phases)
    rows = ["| package | build (s) | other phases (s) | pipeline span (s) |", "| --- | ---: | ---: | ---: |"]
    for name in sorted(names, key=lambda n: -statistics.median(e.phases[n].get("build", 0) for e in j1.events)):
        build = statistics.median(e.phases[name].get("build", 0.0) for e in j1.events)
        other = statistics.median(sum(v for k, v in e.phases[name].items() if k != "build") for e in j1.events)
        span = statistics.median(e.spans[name][1] - e.spans[name][0] for e in j1.events)
        rows.append(f"| {name} | {build:.2f} | {other:.2f} | {span:.2f} |")
    return "\n".join(rows)


def section(pip: Measurement, j1: Measurement, j2: Measurement, sdists: list[str], wheels: list[str],
            facts: dict[str, str], runs: int, costs: dict[str, float], notes: list[str],
            ceiling: list[str], compiled: list[str], hooks: dict[str, int]) -> str:
    pip_vs_j1 = pip.median / j1.median
    j1_vs_j2 = j1.median / j2.median
    rows = ["| configuration | median wall | min | max | runs (s) | median CPU | other load, max (cores) |"
            " discarded runs |",
            "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for m in (pip, j1, j2):
        rows.append(f"| {m.label} | {m.median:.2f} s | {min(m.seconds):.2f} s | {max(m.seconds):.2f} s"
                    f" | {', '.join(f'{s:.2f}' for s in m.seconds)} | {m.cpu:.1f} s | {m.foreign:.2f}"
                    f" | {m.discarded} |")
    fact_lines = "\n".join(f"- {k}: {v}" for k, v in facts.items())
    cost_lines = "\n".join(f"- {k}: {v * 1000:.0f} ms" for k, v in costs.items())
    note_lines = "\n".join(f"- {n}" for n in notes) or "- none"
    ceiling_lines = "\n".join(f"- {n}" for n in ceiling)
    counts = collections.Counter(hooks.values())
    hook_text = " and ".join(f"{k} hook process{'es' if k != 1 else ''} for {v} sdist{'s' if v != 1 else ''}"
                             for k, v in sorted(counts.items()))
    return f"""## Build: the default distribution's sdists, sage-build -j1 / -j2 vs pip

Reproduce: `.venv/bin/python bench/bench_build.py` (`--help` for options; about 10 minutes on a
quiet machine, longer while it waits for other work to finish; offline; it refreshes this section).

**What is measured**: building and installing the {len(sdists)} Python sdists of the default
distribution ({', '.join(sdists)}), {len(compiled)} of them with C extensions ({', '.join(compiled)};
pyyaml's against libyaml), from the files in `upstream/`, into a prefix that already holds the
rest. Both sides start from the same state, and the timing excludes everything else:

- **sage-build**: a distribution tree in a temporary directory (a copy of `build/pkgs`, configured
  with `--upstream-dir=<repo>/upstream`) is built once with everything *but* the sdists
  (`python3-venv`, the {len(wheels)} wheel packages {', '.join(wheels)}, libyaml with cmake, and
  the pip package tomli_w); that prefix is kept as a snapshot. Each run restores the snapshot
  (`cp -a`, untimed) and times `make -jN -f <tree>/build/make/Makefile build`, which then builds
  exactly the sdists (checked from `logs/events.jsonl`: every sdist, and only they, went through
  the build phase; every stamp is new). The timed part is the whole per-package pipeline: fetch
  (finding the file in `upstream/` and checking its sha256), unpack, PEP 517 build without
  isolation, install, byte-code (level 0, the default), manifest and spkg-piprm.
- **pip**: a fresh venv made by the same interpreter with the same command sage-build uses
  (`python -m venv --without-pip`), then the same wheel files installed with pip (untimed); then
  ONE timed `python -m pip install --no-deps --no-build-isolation --no-index --no-cache-dir
  <the {len(sdists)} sdists in dependency order>`. `--no-cache-dir`, because pip would otherwise
  keep the wheels it built and reuse them in the next run. pip compiles byte-code by default (one
  level), as sage-build does.
- **libyaml / compiler flags**: both sides build pyyaml's C extension against the libyaml built in
  the tree's prefix: pip runs with the flags sage-build gives every build (`CPPFLAGS`/`CFLAGS=-I<prefix>/include
  [-O2]`, `LDFLAGS=-L<prefix>/lib -Wl,-rpath,<prefix>/lib`). After every run, on both sides,
  `import yaml._yaml, markupsafe._speedups` must work and `yaml.__with_libyaml__` be true.
- No network anywhere (`--no-index`; sage-build finds every file in `upstream/`). Medians of
  {runs} runs per configuration, the configurations interleaved (pip, -j1, -j2, pip, ...).
- Nothing is deleted before a timed run: the previous run's prefix (sage-build) or venv (pip) is
  moved aside and deleted at the end, because on this disk creating files within a minute or so of
  deleting many is several times slower (it would charge a run with the previous one's clean-up).
- Other processes: this machine is shared, and with two cores a second busy process halves -j2.
  Before each run the script waits (up to 5 minutes) until other processes use under 0.25
  cores; during the run it measures what they used (all CPU time of the machine from
  `/proc/stat` minus the CPU time of the timed command and its children), and a run during
  which they used more than 0.3 cores on average is discarded and repeated (up to twice; the
  last attempt counts). "median CPU" is the user+system time of the timed command and
  everything it started.

| measurement | value | target | result |
| --- | ---: | ---: | --- |
| pip / sage-build -j1 | {pip_vs_j1:.2f}x | >= {PIP_VS_J1_TARGET:.1f}x (-j1 no slower than pip) | {verdict(pip_vs_j1 >= PIP_VS_J1_TARGET)} |
| sage-build -j1 / -j2 | {j1_vs_j2:.2f}x | >= {J1_VS_J2_TARGET:.1f}x | {verdict(j1_vs_j2 >= J1_VS_J2_TARGET)} |

{chr(10).join(rows)}

Where sage-build's time goes (seconds summed over the sdists from `logs/events.jsonl`, median
of the runs; "sum of package pipelines" is the sum of each package's first-event-to-last-event
span, so make wall minus it, at -j1, is the per-process cost outside the phases: make, the
start-up of `sage-spkg` and its imports, and recipe loading):

{phase_table([j1, j2])}

Per sdist at -j1 (median; "other phases" = fetch + unpack + uninstall-old + install + record):

{package_table(j1)}

Fixed costs per process start (median of 5). pip starts two PEP 517 hook processes per sdist
(`prepare_metadata_for_build_wheel`, then `build_wheel`; without build isolation it does not ask
`get_requires_for_build_wheel`); sage-build started {hook_text} (counted in the package logs), plus
one `sage-spkg` process (the tool's Python) per sdist, which also compiles the byte-code (the prefix's
interpreter is the same build here; otherwise a child of the prefix's interpreter would):

{cost_lines}

The ceiling of -j2 on this machine:

{ceiling_lines}

Notes from this run:

{note_lines}

Machine:

{fact_lines}
"""


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per configuration [5]")
    parser.add_argument("--workdir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-readme", action="store_true", help="do not refresh bench/README.md")
    parser.add_argument("--quiet-wait", type=float, default=300, metavar="SECONDS",
                        help="before each timed run, wait up to this long for other processes to go"
                             " under 0.25 cores [300]")
    parser.add_argument("--max-other-load", type=float, default=0.3, metavar="CORES",
                        help="repeat a run if other processes used more cores than this meanwhile [0.3]")
    parser.add_argument("--retries", type=int, default=2,
                        help="how often a run may be repeated for --max-other-load [2]")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one sage-spkg run (python -X importtime, cProfile) and print it")
    args = parser.parse_args()
    # sage-build's own modules byte-compiled, as the other tools' are (theirs were compiled when
    # installed; ours are an editable install, and PYTHONDONTWRITEBYTECODE would make every process
    # compile them again).
    subprocess.run([str(TOOL_PYTHON), "-m", "compileall", "-q", str(REPO / "src")], check=True)
    if not TOOL_PYTHON.exists():
        raise SystemExit(f"{TOOL_PYTHON} is missing: run `make tool-env` first")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_build-"))
    workdir.mkdir(parents=True, exist_ok=True)
    tree = Tree(workdir / "tree")
    try:
        if tree.root.exists():
            shutil.rmtree(tree.root)
        log(f"work directory {workdir}")
        tree.create()
        packages = tree.packages()
        sdists = dependency_order([n for n, p in packages.items() if is_sdist(p)], packages)
        others = sorted(n for n in packages if n not in sdists)
        wheels = sorted(n for n, p in packages.items() if p.kind == "wheel")
        odd = [n for n in others if packages[n].kind not in ("wheel", "pip") and packages[n].python]
        if odd:
            raise SystemExit(f"Python packages that are neither sdist nor wheel: {odd}")

        log(f"base build (untimed): python3-venv {' '.join(others)}")
        start = time.perf_counter()
        run(tree.make(2, "python3-venv", *others), env=tree.env)
        log(f"base build done in {time.perf_counter() - start:.0f} s; snapshot of the prefix")
        run(["cp", "-a", tree.prefix, tree.snapshot])
        if any(f"{n}-{packages[n].version}" in tree.stamps() for n in sdists):
            raise SystemExit("the base build installed an sdist package: the timed runs would not build it")

        python = tree.config_python()
        wheel_files = [UPSTREAM / packages[n].tarball for n in wheels]
        sdist_files = [UPSTREAM / packages[n].tarball for n in sdists]
        pip_side = PipSide(workdir, python, wheel_files, sdist_files, tree.prefix)

        pip = Measurement("pip install --no-deps --no-build-isolation (one call)")
        j1 = Measurement("sage-build make -j1 build")
        j2 = Measurement("sage-build make -j2 build")
        def measure(label: str, measurement: Measurement, attempt) -> None:
            """One accepted run: repeated (up to --retries times) while other processes used more than
            --max-other-load cores during it; the last attempt counts whatever the load."""
            for tries in range(args.retries + 1):
                timing, events = attempt()
                log(f"run {index + 1}/{args.runs}: {label} {timing.wall:.2f} s (CPU {timing.cpu:.1f} s,"
                    f" other load {timing.foreign:.2f} cores)")
                if timing.foreign <= args.max_other_load or tries == args.retries:
                    break
                measurement.discarded += 1
                log(f"  discarded: other processes used {timing.foreign:.2f} cores meanwhile; again")
            measurement.timings.append(timing)
            if events is not None:
                measurement.events.append(events)

        def pip_attempt():
            pip_side.prepare()
            os.sync()  # the untimed set-up's writes are not flushed during the timed run
            wait_for_quiet(args.quiet_wait)
            return pip_side.run(), None

        def sage_attempt(jobs: int):
            def attempt():
                tree.restore()
                os.sync()
                wait_for_quiet(args.quiet_wait)
                return sage_build_run(tree, jobs, sdists, packages)
            return attempt

        for index in range(args.runs):
            measure("pip", pip, pip_attempt)
            measure("sage-build -j1", j1, sage_attempt(1))
            measure("sage-build -j2", j2, sage_attempt(2))

        def normal(name: str) -> str:
            return re.sub(r"[-_.]+", "_", name).lower()
        platform_wheels = {normal(w.name.split("-")[0]) for w in (tree.prefix / "var" / "lib" / "sage" / "wheels").glob("*.whl")
                           if not w.name.endswith("-none-any.whl")}
        compiled = [n for n in sdists if normal(packages[n].distribution or n) in platform_wheels]
        hooks = {n: sum(1 for line in (tree.root / "logs" / "pkgs" / f"{n}-{packages[n].version}.log").read_text()
                        .splitlines() if "_in_process" in line and "] $ " in line) for n in sdists}
        wait_for_quiet(args.quiet_wait)
        costs = process_costs(tree)
        wait_for_quiet(args.quiet_wait)
        alone, pair, capacity, capacity_load = parallel_capacity(python, args.quiet_wait)
        total, chain, outside = best_j2(j1, packages)
        best = max(total / 2, chain) + outside / 2
        if capacity == capacity:  # not NaN
            ceiling = [
                f"two CPU-bound processes (a pure-Python loop, {alone:.2f} s alone) take {pair:.2f} s at once"
                f" (median of the rounds during which other processes used at most {capacity_load:.2f} cores):"
                f" this machine gives {capacity:.2f}x the throughput of one process with two"]
            scaled = f"; scaled by the machine's {capacity:.2f}x it is about {j1.median / max(best, j1.median / capacity):.2f}x"
        else:
            ceiling = ["the throughput of two processes at once could not be measured: other processes kept"
                       " the machine busy"]
            scaled = ""
        ceiling.append(
            f"from the -j1 runs: the sdists' pipelines sum to {total:.1f} s, their longest dependency chain is"
            f" {chain:.1f} s, {outside:.1f} s is outside the pipelines; with two *free* cores -j2 could take"
            f" about {best:.1f} s, i.e. -j1/-j2 <= {j1.median / best:.2f}x{scaled}")
        paired_pip = statistics.median(p / j for p, j in zip(pip.seconds, j1.seconds))
        paired_j2 = statistics.median(a / b for a, b in zip(j1.seconds, j2.seconds))
        notes = [
            f"ratios of the runs of one round (pip, -j1 and -j2 run back to back), median over the rounds:"
            f" pip/-j1 {paired_pip:.2f}x, -j1/-j2 {paired_j2:.2f}x",
            f"pip: `{' '.join(pip_side.command()[:9])} ...`; {run([pip_side.venv / 'bin' / 'python', '-m', 'pip', '--version']).stdout.split(' from ')[0]}",
            f"sage-build -j1 spends {statistics.median(e.phase_total('build') for e in j1.events):.2f} s in build"
            f" phases of {j1.median:.2f} s wall; pip's whole call takes {pip.median:.2f} s",
        ]
        facts = machine_facts(python)
        pip_vs_j1, j1_vs_j2 = pip.median / j1.median, j1.median / j2.median
        print(f"\npip {pip.median:.2f} s | sage-build -j1 {j1.median:.2f} s | -j2 {j2.median:.2f} s")
        print(f"pip/-j1 = {pip_vs_j1:.2f}x (target >= {PIP_VS_J1_TARGET}) {verdict(pip_vs_j1 >= PIP_VS_J1_TARGET)}")
        print(f"-j1/-j2 = {j1_vs_j2:.2f}x (target >= {J1_VS_J2_TARGET}) {verdict(j1_vs_j2 >= J1_VS_J2_TARGET)}")
        print("\n" + phase_table([j1, j2]) + "\n\n" + package_table(j1))
        print("\n" + "\n".join(f"{k}: {v * 1000:.0f} ms" for k, v in costs.items()))
        print("\n" + "\n".join(ceiling))
        if args.profile:
            print("\n" + profile_spkg(tree, "six", workdir))
        if not args.no_readme:
            write_section("bench_build", section(pip, j1, j2, sdists, wheels, facts, args.runs, costs, notes, ceiling,
                                  compiled, hooks))
            log(f"wrote {README.relative_to(REPO)}")
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep:
            log(f"kept {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
