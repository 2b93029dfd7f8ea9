#!/usr/bin/env python3
"""Benchmark and oracle of the wheel installer: sage-build against pip, installer and uv.

The same real wheels (bench/wheels.txt: 50 assorted, about 73 MB, numpy and sympy
among them) go into a fresh prefix (``python3 -m venv --without-pip``) with

* sage-build: ``python -m sage_build.install --prefix P --bytecode 0|none WHEEL``, one
  process per wheel, two at a time (as ``make -j2`` installs them);
* pip: ``pip --python P/bin/python3 install --no-deps --no-index [--no-compile] WHEEL...``,
  one call;
* installer: ``P/bin/python3 -m installer --compile-bytecode 0|--no-compile-bytecode WHEEL``,
  one wheel after another;
* uv: ``uv pip install --no-deps --python P/bin/python3 --cache-dir FRESH [--compile-bytecode]
  WHEEL...`` with a cold (new, empty) cache each run;

every tool at the same byte-code levels (level 0, and none).  Each configuration runs
``--runs`` times (rounds interleave the configurations); the table gives medians and
the ratios tool/sage-build (above 1: sage-build is faster).  A single small wheel (six)
is timed the same way.  Targets (issue 4): no slower than uv on the set, with and
without byte-code; for six the whole install step at least 4x faster than pip.

The oracle compares, wheel by wheel, the tree sage-build made with the tree
``pip install --no-deps`` made (both byte-code settings): same files, same contents
(.pyc as code objects without mtime and embedded source path, scripts with the prefix in the shebang
normalised, RECORD as a set of lines without INSTALLER/REQUESTED/direct_url.json and
byte-code/script hashes), same executable bits.

If a speed target is missed, sage-build's install of numpy and sympy is profiled
(cProfile of ``sage_build.install.__main__.main``) and the hot spots are printed and written.

    .venv/bin/python bench/bench_install.py [--runs 3] [--six-runs 5] [--limit N] [--no-readme]
                                            [--keep] [--profile] [--no-oracle]

Wheels are downloaded when missing into ~/.cache/sage-build-bench/wheels; pip, uv and
installer (pinned in TOOLS below) into a venv of their own there.  The page cache
cannot be dropped here: wheels are read once before timing, so every tool reads them warm.
"""

from __future__ import annotations

import argparse
import concurrent.futures
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
WHEEL_LIST = REPO / "bench" / "wheels.txt"
CACHE = Path(os.environ.get("SAGE_BUILD_BENCH_CACHE", Path.home() / ".cache" / "sage-build-bench"))
TOOLS = {"pip": "26.3", "uv": "0.13.9", "installer": "1.1.0"}
JOBS = 2            # make -j2
SIX_TARGET = 4.0    # pip's six install / sage-build's six install
LOAD_AT_START = os.getloadavg()
BASE_PYTHON = getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable

sys.path.insert(0, str(REPO / "src"))


# --- set-up: wheels and tools ----------------------------------------------------------------

def read_wheel_list(path: Path = WHEEL_LIST) -> list[tuple[str, str]]:
    pins = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins.append((name.strip(), version.strip()))
    return pins


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def find_wheel(directory: Path, name: str, version: str) -> Path | None:
    from packaging.utils import parse_wheel_filename

    for path in sorted(directory.glob("*.whl")):
        try:
            wname, wversion, _, _ = parse_wheel_filename(path.name)
        except Exception:
            continue
        if _canon(str(wname)) == _canon(name) and str(wversion) == version:
            return path
    return None


def fetch_wheels(pins: list[tuple[str, str]]) -> list[Path]:
    directory = CACHE / "wheels"
    directory.mkdir(parents=True, exist_ok=True)
    missing = [f"{n}=={v}" for n, v in pins if not find_wheel(directory, n, v)]
    if missing:
        print(f"downloading {len(missing)} wheels into {directory}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "--only-binary", ":all:", "--no-deps",
                        "-q", "-d", str(directory), *missing], check=True)
    wheels = []
    for name, version in pins:
        wheel = find_wheel(directory, name, version)
        if wheel is None:
            raise SystemExit(f"no wheel for {name}=={version} in {directory}")
        wheels.append(wheel)
    return wheels


def tools_venv() -> Path:
    """A venv of the bench's own holding the pinned pip, uv and installer."""
    venv = CACHE / "tools-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([BASE_PYTHON, "-m", "venv", str(venv)], check=True)
    script = ("import importlib.metadata as m, json, sys\n"
              "have = {}\n"
              "for n in sys.argv[1:]:\n"
              "    try: have[n] = m.version(n)\n"
              "    except m.PackageNotFoundError: pass\n"
              "print(json.dumps(have))\n")
    import json

    have = json.loads(subprocess.run([str(python), "-c", script, *TOOLS], capture_output=True, text=True,
                                     check=True).stdout)
    wanted = [f"{n}=={v}" for n, v in TOOLS.items() if have.get(n) != v]
    if wanted:
        print(f"installing {' '.join(wanted)} into {venv}", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted], check=True)
    return venv


def installer_lib(venv: Path) -> Path:
    """``installer`` alone in a directory, put on the prefix interpreter's PYTHONPATH for its CLI."""
    lib = CACHE / f"installer-{TOOLS['installer']}"
    if not (lib / "installer" / "__main__.py").exists():
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--target",
                        str(lib), f"installer=={TOOLS['installer']}"], check=True)
    return lib


def make_prefix(root: Path, label: str, *, describe: bool) -> Path:
    prefix = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=root))
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", str(prefix)], check=True)
    if describe:  # as configure does once: sage-build does not query the interpreter per install
        from sage_build.install.target import query_python

        query_python(prefix / "bin" / "python3").save(prefix / "var" / "lib" / "sage" / "target-python.json")
    return prefix


# --- the installs ------------------------------------------------------------------------------

# A run's prefix and uv cache hold 15,000-20,000 files.  On the disk these figures come from,
# creating files within a minute or so of deleting that many is several times slower (pygments'
# sdist unpacks in 0.5 s, and in 3.4 s ten seconds after such a deletion), which would charge
# the next run's tool with this one's clean-up: so the runs' directories are all removed at the
# end, when the disk has room for them.
RUN_FOOTPRINT = 400 << 20  # bytes, at most, of one run of the set (prefix with byte-code, uv cache)


@dataclass
class Env:
    venv: Path
    installer_lib: Path
    root: Path
    keep_runs: bool = True  # keep every run's directories until the end (see RUN_FOOTPRINT)

    def clean_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "PYTHON"))}
        env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", **extra)
        return env


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{what} failed ({result.returncode}): {' '.join(cmd[:8])} ...\n{result.stdout[-3000:]}")


def install_sage(env: Env, prefix: Path, wheels: list[Path], bytecode: bool) -> None:
    # make -jN hands every package build its job budget in MAKEFLAGS; sage-build's byte-code
    # compile of a big wheel uses it, as under `make -j2 build`.
    environ = env.clean_env(PYTHONPATH=str(REPO / "src"), MAKEFLAGS=f" -j{JOBS}")
    level = "0" if bytecode else "none"

    def one(wheel: Path) -> None:
        _run([str(TOOL_PYTHON), "-m", "sage_build.install", "--prefix", str(prefix), "--bytecode", level,
              str(wheel)], environ, f"sage-build install of {wheel.name}")

    with concurrent.futures.ThreadPoolExecutor(JOBS) as pool:
        for future in [pool.submit(one, w) for w in wheels]:
            future.result()


def install_pip(env: Env, prefix: Path, wheels: list[Path], bytecode: bool) -> None:
    cmd = [str(env.venv / "bin" / "python"), "-m", "pip", "--python", str(prefix / "bin" / "python3"),
           "install", "--no-deps", "--no-index", "--disable-pip-version-check", "-q"]
    _run(cmd + ([] if bytecode else ["--no-compile"]) + [str(w) for w in wheels], env.clean_env(), "pip install")


def install_installer(env: Env, prefix: Path, wheels: list[Path], bytecode: bool) -> None:
    environ = env.clean_env(PYTHONPATH=str(env.installer_lib))
    flags = ["--compile-bytecode", "0"] if bytecode else ["--no-compile-bytecode"]
    for wheel in wheels:
        _run([str(prefix / "bin" / "python3"), "-m", "installer", *flags, str(wheel)], environ,
             f"installer of {wheel.name}")


def scratch_of(prefix: Path) -> Path:
    """A run's own scratch directory beside its prefix, removed with it after the timing."""
    return prefix.with_name(prefix.name + ".scratch")


def install_uv(env: Env, prefix: Path, wheels: list[Path], bytecode: bool) -> None:
    cache = scratch_of(prefix) / "uv-cache"  # cold: new and empty each run; removed after the timing
    cmd = [str(env.venv / "bin" / "uv"), "pip", "install", "--no-deps", "--offline", "-q",
           "--python", str(prefix / "bin" / "python3"), "--cache-dir", str(cache)]
    _run(cmd + (["--compile-bytecode"] if bytecode else []) + [str(w) for w in wheels], env.clean_env(),
         "uv pip install")


INSTALLERS = {"sage-build": install_sage, "pip": install_pip, "installer": install_installer, "uv": install_uv}
HOW = {
    "sage-build": "one process per wheel, 2 at a time (make -j2)",
    "pip": "one call, --no-deps",
    "installer": "CLI, one wheel after another",
    "uv": "one call, --no-deps, cold cache",
}


@dataclass
class Config:
    tool: str
    bytecode: bool
    subject: str            # "set" or "six"
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)   # user + system seconds of all processes of a run
    others: list[float] = field(default_factory=list)  # CPUs busy with other processes meanwhile

    @property
    def key(self) -> tuple[str, bool, str]:
        return (self.tool, self.bytecode, self.subject)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs), from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed_install(env: Env, config: Config, wheels: list[Path], *, keep: bool = False) -> tuple[float, Path]:
    prefix = make_prefix(env.root, f"{config.tool}-{'bc0' if config.bytecode else 'nobc'}-{config.subject}",
                         describe=config.tool == "sage-build")
    os.sync()  # no dirty pages of the previous run left to write back during this one
    before, busy_before = resource.getrusage(resource.RUSAGE_CHILDREN), _busy_seconds()
    start = time.perf_counter()
    INSTALLERS[config.tool](env, prefix, wheels, config.bytecode)
    elapsed = time.perf_counter() - start
    after, busy_after = resource.getrusage(resource.RUSAGE_CHILDREN), _busy_seconds()
    ours = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    config.cpu.append(ours)
    config.others.append(max(0.0, busy_after - busy_before - ours) / elapsed)
    if not env.keep_runs:
        shutil.rmtree(scratch_of(prefix), ignore_errors=True)
        if not keep:
            shutil.rmtree(prefix, ignore_errors=True)
    return elapsed, prefix


# --- the oracle --------------------------------------------------------------------------------

_CODE_FIELDS = ("co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals", "co_stacksize", "co_flags",
                "co_code", "co_names", "co_varnames", "co_freevars", "co_cellvars", "co_name", "co_qualname",
                "co_firstlineno", "co_linetable", "co_exceptiontable")


def _canonical(value):
    """A code object (and its constants) as plain data, without ``co_filename``."""
    import types

    if isinstance(value, types.CodeType):
        return ("code", *(getattr(value, name, None) for name in _CODE_FIELDS), _canonical(value.co_consts))
    if isinstance(value, tuple):
        return ("tuple", *map(_canonical, value))
    if isinstance(value, frozenset):
        return ("frozenset", *sorted(repr(_canonical(v)) for v in value))
    return (type(value).__name__, value)


def _pyc_normalised(data: bytes) -> bytes:
    """Byte-code without its mtime and the embedded source path (the prefix).

    Like ``_pyc_without_header_and_path`` of tests/test_install.py, but comparing the code
    objects as data rather than re-marshalled bytes: marshal sets its reference flag by
    the refcounts of the process that writes, so the same code compiled by pip and by
    sage-build can differ in those bits (seen for networkx and sphinx files).
    Magic number, flags and source size (header bytes 0-8, 12-16) are kept.
    """
    import marshal

    return data[:8] + data[12:16] + repr(_canonical(marshal.loads(data[16:]))).encode()


IGNORED_META = ("INSTALLER", "REQUESTED", "direct_url.json")


def site_packages(prefix: Path) -> Path:
    return next((prefix / "lib").glob("python3*/site-packages"))


def owners(prefix: Path) -> dict[str, str]:
    """Path relative to the prefix -> canonical name of the distribution whose RECORD lists it."""
    import csv

    site = site_packages(prefix)
    result = {}
    for record in site.glob("*.dist-info/RECORD"):
        dist = _canon(record.parent.name[: -len(".dist-info")].rsplit("-", 1)[0])
        for row in csv.reader(record.read_text().splitlines()):
            if row:
                result[os.path.relpath(os.path.normpath(site / row[0]), prefix)] = dist
        result[os.path.relpath(record, prefix)] = dist
    return result


def tree(prefix: Path) -> dict[str, tuple[bytes, bool]]:
    """Every installed file (relative path -> normalised content, executable bit)."""
    result = {}
    site = site_packages(prefix)
    for file in sorted(prefix.rglob("*")):
        rel = str(file.relative_to(prefix))
        if file.is_dir() and not file.is_symlink():
            continue
        if rel.startswith("var/") or rel == "pyvenv.cfg" or file.name in IGNORED_META:
            continue
        if rel.startswith(("bin/activate", "bin/Activate", "bin/python")):
            continue  # the venv's own files
        if file.is_symlink():
            result[rel] = (b"->" + os.readlink(file).encode(), False)
            continue
        data = file.read_bytes()
        if file.suffix == ".pyc":
            data = _pyc_normalised(data)
        elif rel.startswith("bin/"):
            # the shebang names each prefix's interpreter
            data = _launcher(data.replace(str(prefix).encode(), b"PREFIX"))
        elif file.name == "RECORD" and file.parent.parent == site:
            lines = set()
            for line in data.decode().splitlines():
                path = line.rsplit(",", 2)[0].strip('"')
                if path.endswith(IGNORED_META):
                    continue
                # pip lists byte-code without a hash; a script's hash depends on its shebang
                lines.add(path if path.endswith(".pyc") or "/bin/" in path else line)
            data = "\n".join(sorted(lines)).encode()
        result[rel] = (data, os.access(file, os.X_OK))
    return result


def _launcher(data: bytes) -> bytes:
    """An entry-point launcher reduced to what it does: shebang, import, call.

    Each tool writes launchers from its own template (pip's differs from installer's in
    quoting and in how it trims argv[0]); scripts shipped in the wheel are kept whole.
    """
    lines = data.decode(errors="replace").splitlines()
    if not (lines and lines[0].startswith("#!") and "import sys" in lines
            and any(l.strip().startswith("sys.exit(") for l in lines)):
        return data
    keep = [lines[0]] + [l.strip() for l in lines[1:] if re.match(r"\s*(from \S+ import |sys\.exit\()", l)]
    return ("launcher: " + " | ".join(keep)).encode()


def oracle(ours: Path, pips: Path, wheels: list[Path]) -> dict[str, str]:
    """Per wheel: '' when sage-build's files equal pip's, else the first difference."""
    from packaging.utils import parse_wheel_filename

    mine, theirs = tree(ours), tree(pips)
    owner = {**owners(pips), **owners(ours)}
    verdict: dict[str, str] = {}
    names = {_canon(str(n)): f"{n} {v}" for n, v, _, _ in (parse_wheel_filename(w.name) for w in wheels)}
    for name in names:
        verdict[name] = ""
    for rel in sorted(set(mine) | set(theirs)):
        a, b = mine.get(rel), theirs.get(rel)
        if a == b:
            continue
        who = owner.get(rel, "(no RECORD lists it)")
        if a is None:
            why = f"{rel}: only pip installed it"
        elif b is None:
            why = f"{rel}: only sage-build installed it"
        elif a[0] != b[0]:
            why = f"{rel}: contents differ"
        else:
            why = f"{rel}: executable bit differs (sage-build {a[1]}, pip {b[1]})"
        if not verdict.get(who):
            verdict[who] = why
    return {names.get(k, k): v for k, v in verdict.items()}


# --- profiling ---------------------------------------------------------------------------------

PROFILE_SCRIPT = r"""
import cProfile, pstats, sys, io, time
sys.setrecursionlimit(10000)
from sage_build.install.__main__ import main
out, argv = sys.argv[1], sys.argv[2:]
profile = cProfile.Profile()
start = time.perf_counter()
profile.enable()
code = main(argv)
profile.disable()
wall = time.perf_counter() - start
profile.dump_stats(out)
print(wall)
sys.exit(code)
"""

# (label, predicate on pstats' (file, line, function)): buckets of cumulative time
BUCKETS = [
    ("byte-code compile subprocess", lambda f, n: n == "_compile_bytecode_all"),
    ("  of which: waiting for the child", lambda f, n: n == "communicate" and f.endswith("subprocess.py")),
    ("  of which: reading .pyc back and hashing", lambda f, n: n == "read_bytes" and "pathlib" in f),
    ("staging members (write_to_fs)", lambda f, n: n == "write_to_fs"),
    ("  of which: RECORD check of members (_HashCheckingReader.read)",
     lambda f, n: n == "read" and "install.py" in f),
    ("  of which: sweeping stale temporaries", lambda f, n: n == "cleanup_stale_temporaries"),
    ("  of which: make_dirs", lambda f, n: n == "make_dirs"),
    ("publishing (link into place)", lambda f, n: n == "publish_file"),
    ("collision pre-check (filecmp)", lambda f, n: n == "cmp" and "filecmp" in f),
    ("RECORD writing", lambda f, n: n == "write_atomic"),
    ("prefix lock", lambda f, n: n == "__enter__" and "contextlib" in f),
]


def profile_sage(env: Env, wheels: list[Path], bytecode: bool) -> str:
    import pstats

    lines = []
    for wheel in wheels:
        prefix = make_prefix(env.root, f"profile-{wheel.name[:10]}", describe=True)
        stats_file = env.root / f"{wheel.name}.prof"
        environ = env.clean_env(PYTHONPATH=str(REPO / "src"))
        start = time.perf_counter()
        result = subprocess.run([str(TOOL_PYTHON), "-c", PROFILE_SCRIPT, str(stats_file), "--prefix", str(prefix),
                                 "--bytecode", "0" if bytecode else "none", str(wheel)],
                                env=environ, capture_output=True, text=True)
        process = time.perf_counter() - start
        if result.returncode != 0:
            lines.append(f"profiling {wheel.name} failed: {result.stderr[-500:]}")
            continue
        wall = float(result.stdout.strip().splitlines()[-1])
        stats = pstats.Stats(str(stats_file))
        cumulative: dict[str, float] = {}
        for (file, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
            for label, match in BUCKETS:
                if match(file, name):
                    cumulative[label] = max(cumulative.get(label, 0.0), ct) if label.startswith("prefix") \
                        else cumulative.get(label, 0.0) + ct
        lines.append(f"{wheel.name} (byte-code {'0' if bytecode else 'none'}): whole process {process:.2f} s,"
                     f" main() {wall:.2f} s, start-up and imports {process - wall:.2f} s")
        for label, _ in BUCKETS:
            if label in cumulative:
                lines.append(f"    {label:<62} {cumulative[label]:7.3f} s")
        text = io_stats(stats, "tottime", 12)
        lines.append("    top functions by own time:")
        lines.extend("      " + l for l in text[:8])
        shutil.rmtree(prefix, ignore_errors=True)
    return "\n".join(lines)


def syscall_counts(env: Env, wheel: Path) -> str:
    """System calls of one install of ``wheel`` (no byte-code) by sage-build, installer and uv (strace -c -f)."""
    if not shutil.which("strace"):
        return ""
    from zipfile import ZipFile

    members = len([n for n in ZipFile(wheel).namelist() if not n.endswith("/")])
    commands = {
        "sage-build": ([str(TOOL_PYTHON), "-m", "sage_build.install", "--bytecode", "none", "--prefix"],
                       env.clean_env(PYTHONPATH=str(REPO / "src"))),
        "installer": (None, env.clean_env(PYTHONPATH=str(env.installer_lib))),
        "uv": ([str(env.venv / "bin" / "uv"), "pip", "install", "-q", "--no-deps", "--offline", "--python"],
               env.clean_env()),
    }
    lines = [f"system calls installing {wheel.name} ({members} members), no byte-code (strace -f -c):"]
    for tool, (cmd, environ) in commands.items():
        prefix = make_prefix(env.root, f"strace-{tool}", describe=True)
        out = env.root / f"strace-{tool}.txt"
        if tool == "sage-build":
            cmd = cmd + [str(prefix), str(wheel)]
        elif tool == "installer":
            cmd = [str(prefix / "bin" / "python3"), "-m", "installer", "--no-compile-bytecode", str(wheel)]
        else:
            cmd = cmd + [str(prefix / "bin" / "python3"), "--cache-dir", str(env.root / "strace-uv-cache"), str(wheel)]
        result = subprocess.run(["strace", "-f", "-c", "-o", str(out), *cmd], env=environ, capture_output=True)
        shutil.rmtree(prefix, ignore_errors=True)
        if result.returncode != 0 or not out.exists():
            lines.append(f"    {tool}: strace failed")
            continue
        rows = []
        total = 0
        for line in out.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[3].isdigit():
                if parts[-1] == "total":
                    total = int(parts[3])
                else:
                    rows.append((int(parts[3]), parts[-1]))
        rows.sort(reverse=True)
        top = ", ".join(f"{name} {count}" for count, name in rows[:10])
        lines.append(f"    {tool:<10} {total:6d} calls ({total / members:.1f} per member): {top}")
    shutil.rmtree(env.root / "strace-uv-cache", ignore_errors=True)
    return "\n".join(lines)


def io_stats(stats, sort: str, count: int) -> list[str]:
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2 if sort == "tottime" else 3])[:count]
    out = []
    for (file, line, name), (_cc, calls, tt, ct, _callers) in rows:
        where = f"{Path(file).name}:{line}" if line else file
        out.append(f"{tt:7.3f} s own {ct:7.3f} s cum {calls:7d} calls  {name} ({where})")
    return out


# --- report ------------------------------------------------------------------------------------

def machine_facts(env: Env) -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    fs = ""
    if shutil.which("findmnt"):
        fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", str(env.root)], capture_output=True,
                            text=True).stdout.strip()
    fs = fs or subprocess.run(["stat", "-f", "-c", "%T", str(env.root)], capture_output=True, text=True).stdout.strip()
    target = subprocess.run([BASE_PYTHON, "-c", "import platform; print(platform.python_version())"],
                            capture_output=True, text=True).stdout.strip()
    return [
        f"{cpu}, {os.cpu_count()} CPUs{mem}; {platform.system()} {platform.release()};"
        f" prefixes and uv caches on {fs or 'unknown fs'} ({env.root.parent});"
        f" load average {LOAD_AT_START[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        f"target Python {target} ({BASE_PYTHON}); pip {TOOLS['pip']}, uv {TOOLS['uv']},"
        f" installer {TOOLS['installer']} (sage-build uses installer"
        f" {_version('installer')} from .venv)",
    ]


def _version(name: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def fmt(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def render(configs: dict, wheels: list[Path], six: Path, runs: int, six_runs: int, verdicts: dict,
           facts: list[str], profile: str, targets: list[tuple[str, float, float, bool]], elapsed: float,
           keep_runs: bool = True) -> str:
    size = sum(w.stat().st_size for w in wheels)
    out = ["## Installing wheels: sage-build against pip, installer and uv", ""]
    out += [
        f"`bench/bench_install.py` installs the same {len(wheels)} real wheels (`bench/wheels.txt`,"
        f" {size / 1e6:.1f} MB, numpy and sympy among them) into a fresh prefix (`python3 -m venv"
        " --without-pip`) with each tool, at the same byte-code levels (level 0, and none):",
        "",
        "- **sage-build**: `python -m sage_build.install --prefix P --bytecode 0|none WHEEL`, one process per"
        " wheel, two at a time, as `make -j2` runs them (`target-python.json` saved beforehand, as configure does);",
        "- **pip**: `pip --python P/bin/python3 install --no-deps --no-index [--no-compile] WHEEL...`, one call;",
        "- **installer**: `P/bin/python3 -m installer --compile-bytecode 0|--no-compile-bytecode WHEEL`,"
        " one wheel after another (its default would be levels 0 and 1);",
        "- **uv**: `uv pip install --no-deps --python P/bin/python3 --cache-dir NEW [--compile-bytecode] WHEEL...`,"
        " a new, empty cache each run (cold), removed after the timing.",
        "",
        f"Median of {runs} runs for the set ({six_runs} for six), rounds interleaving the tools; a new prefix"
        f" for every run, {'all removed at the end (on this disk, creating files within a minute or so of deleting many is several times slower: no run pays for the clean-up of another)' if keep_runs else 'removed after each run (too little disk space to keep them to the end)'};"
        " timing covers the install command(s) only. The page cache cannot be dropped here:"
        " every wheel is read once before timing, so all tools read them warm; `sync` runs before each timing."
        " Ratio = tool's median / sage-build's median at the same byte-code setting (above 1: sage-build is"
        " faster). CPU = user + system seconds of all the run's processes (less sensitive than wall time to"
        " other work on the machine); `others` = CPUs busy with other processes during the run (median), as"
        " read from /proc/stat: this machine is shared with other sessions, so wall times are noisy.",
        "",
        "Reproduce: `.venv/bin/python bench/bench_install.py` (downloads missing wheels into"
        " `~/.cache/sage-build-bench/wheels`, and pinned pip/uv/installer into a venv there;"
        f" this run took {elapsed / 60:.1f} min).",
        "",
    ]
    for subject, title in (("set", f"{len(wheels)} wheels"), ("six", f"one small wheel ({six.name})")):
        out += [f"**{title}**", "",
                "| tool | how | byte-code | wall median | wall runs | ratio | ratio of minima | CPU median | CPU ratio"
                " | others |",
                "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
        for bytecode in (True, False):
            base = configs.get(("sage-build", bytecode, subject))
            for tool in INSTALLERS:
                config = configs.get((tool, bytecode, subject))
                if not config or not config.times:
                    continue
                ratio = cpu_ratio = min_ratio = "1"
                if tool != "sage-build":
                    ratio = f"{config.median / base.median:.2f}" if base and base.times else ""
                    min_ratio = f"{min(config.times) / min(base.times):.2f}" if base and base.times else ""
                    cpu_ratio = f"{config.cpu_median / base.cpu_median:.2f}" if base and base.times else ""
                runs_text = ", ".join(f"{t:.2f}" for t in config.times)
                out.append(f"| {tool} | {HOW[tool]} | {'0' if bytecode else 'none'} | {fmt(config.median)} |"
                           f" {runs_text} | {ratio} | {min_ratio} | {fmt(config.cpu_median)} | {cpu_ratio} |"
                           f" {statistics.median(config.others):.2f} |")
        out.append("")
    out += ["**Targets** (verdict on the medians; the minima, least disturbed by other work, for comparison)", "",
            "| target | sage-build | other | verdict | by the minima |", "| --- | ---: | ---: | --- | --- |"]
    for label, ours, other, ok, by_min in targets:
        out.append(f"| {label} | {fmt(ours)} | {fmt(other)} | {'PASS' if ok else 'FAIL'} |"
                   f" {'PASS' if by_min else 'FAIL'} |")
    out.append("")
    failed = {k: v for k, v in verdicts.items() if v}
    out += [
        "**Oracle: sage-build's tree against pip's**", "",
        "For each byte-code setting, the prefix sage-build made in the first round is compared with the one pip"
        " made, file by file, each difference charged to the wheel whose RECORD lists the file: same files, same"
        " contents, same executable bits; .pyc compared as code objects (fields and constants, not re-marshalled"
        " bytes, whose reference flags depend on the writing process) without the mtime and the embedded source"
        " path, scripts with the prefix in the shebang"
        " normalised, entry-point launchers (each tool has its own template) reduced to shebang, import and"
        " call, RECORD as a"
        " set of lines without INSTALLER, REQUESTED and direct_url.json and without the hashes of byte-code"
        " (pip lists none) and scripts (they hash the shebang).", "",
    ]
    if verdicts:
        passed = sorted(k for k, v in verdicts.items() if not v)
        out.append(f"{len(passed)} of {len(verdicts)} wheels PASS: {', '.join(passed) or '-'}.")
        out.append("")
        if failed:
            out += ["| wheel | FAIL: first difference |", "| --- | --- |"]
            out += [f"| {k} | {v} |" for k, v in sorted(failed.items())]
            out.append("")
    else:
        out += ["(not run)", ""]
    if profile:
        out += ["**Profile of sage-build's install** (run when a target is missed, or with --profile): cProfile of"
                " `sage_build.install.__main__.main`, one wheel per process, cumulative seconds; then the system calls of"
                " one install per tool", "", "```", profile, "```", ""]
    out += ["Machine: " + facts[0] + ".", "", "Tools: " + facts[1] + "."]
    return "\n".join(out) + "\n"


# --- main --------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per tool and byte-code setting for the set")
    parser.add_argument("--six-runs", type=int, default=7, help="runs per tool and setting for six alone")
    parser.add_argument("--limit", type=int, default=0, help="only the first N wheels (a quick try)")
    parser.add_argument("--tools", default=",".join(INSTALLERS), help="comma-separated subset of tools")
    parser.add_argument("--profile", action="store_true", help="profile sage-build even if targets are met")
    parser.add_argument("--no-oracle", action="store_true")
    parser.add_argument("--no-readme", action="store_true", help="do not refresh bench/README.md")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    # sage-build's own modules byte-compiled, as the other tools' are (theirs were compiled when
    # installed; ours are an editable install, and PYTHONDONTWRITEBYTECODE would make every process
    # compile them again).
    subprocess.run([str(TOOL_PYTHON), "-m", "compileall", "-q", str(REPO / "src")], check=True)
    began = time.perf_counter()

    pins = read_wheel_list()
    wheels = fetch_wheels(pins)
    if args.limit:
        wheels = wheels[: args.limit]
    six = next(w for w in wheels if w.name.startswith("six-")) if any(w.name.startswith("six-") for w in wheels) \
        else fetch_wheels([p for p in pins if p[0] == "six"])[0]
    venv = tools_venv()
    root = Path(tempfile.mkdtemp(prefix="sage-build-bench-install-")).resolve()
    runs_in_all = len(INSTALLERS) * 2 * args.runs  # of the set; six's are small
    env = Env(venv=venv, installer_lib=installer_lib(venv), root=root,
              keep_runs=shutil.disk_usage(root).free > 2 * RUN_FOOTPRINT * runs_in_all)
    tools = [t for t in INSTALLERS if t in args.tools.split(",")]
    for wheel in wheels:  # warm the page cache for everybody
        wheel.read_bytes()

    configs: dict[tuple, Config] = {}
    for subject in ("set", "six"):
        for bytecode in (True, False):
            for tool in tools:
                configs[(tool, bytecode, subject)] = Config(tool, bytecode, subject)
    kept: dict[tuple, Path] = {}
    try:
        for subject, runs, files in (("set", args.runs, wheels), ("six", args.six_runs, [six])):
            order = [c for c in configs.values() if c.subject == subject]
            for round_ in range(runs):
                rotated = order[round_ % len(order):] + order[: round_ % len(order)]
                for config in rotated:
                    keep = subject == "set" and round_ == 0 and config.tool in ("sage-build", "pip") \
                        and not args.no_oracle
                    elapsed, prefix = timed_install(env, config, files, keep=keep)
                    config.times.append(elapsed)
                    if keep:
                        kept[config.key] = prefix
                    print(f"{subject} round {round_ + 1}/{runs}: {config.tool:<10} byte-code"
                          f" {'0   ' if config.bytecode else 'none'} {elapsed:7.2f} s", file=sys.stderr)

        verdicts: dict[str, str] = {}
        if not args.no_oracle and kept:
            for bytecode in (True, False):
                ours, pips = kept.get(("sage-build", bytecode, "set")), kept.get(("pip", bytecode, "set"))
                if ours and pips:
                    for name, why in oracle(ours, pips, wheels).items():
                        if why and not verdicts.get(name):
                            verdicts[name] = f"(byte-code {'0' if bytecode else 'none'}) {why}"
                        verdicts.setdefault(name, why)

        targets = []
        for bytecode in (True, False):
            ours, uv = configs.get(("sage-build", bytecode, "set")), configs.get(("uv", bytecode, "set"))
            if ours and uv and ours.times and uv.times:
                targets.append((f"{len(wheels)} wheels, byte-code {'0' if bytecode else 'none'}: sage-build <= uv",
                                ours.median, uv.median, ours.median <= uv.median, min(ours.times) <= min(uv.times)))
        ours, pip = configs.get(("sage-build", True, "six")), configs.get(("pip", True, "six"))
        if ours and pip and ours.times and pip.times:
            targets.append((f"six, byte-code 0: pip / sage-build >= {SIX_TARGET:g}"
                            f" (here {pip.median / ours.median:.1f}x)", ours.median, pip.median,
                            pip.median / ours.median >= SIX_TARGET, min(pip.times) / min(ours.times) >= SIX_TARGET))

        profile = ""
        if args.profile or not all(t[3] for t in targets):
            picks = [w for w in wheels if w.name.startswith(("numpy-", "sympy-"))] or wheels[:1]
            profile = "\n".join(profile_sage(env, picks, bytecode) for bytecode in (True, False))
            sympy = [w for w in wheels if w.name.startswith("sympy-")]
            profile += "\n" + syscall_counts(env, (sympy or wheels)[0])
            print(profile, file=sys.stderr)

        facts = machine_facts(env)
        section = render(configs, wheels, six, args.runs, args.six_runs, verdicts, facts, profile, targets,
                         time.perf_counter() - began, keep_runs=env.keep_runs)
        print(section)
        if not args.no_readme:
            write_section("bench_install", section)
            print(f"wrote {README.relative_to(REPO)}", file=sys.stderr)
        oracle_ok = not any(verdicts.values())
        return 0 if all(t[3] for t in targets) and oracle_ok else 1
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
