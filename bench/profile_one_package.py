#!/usr/bin/env python3
"""Profile: where one small wheel-kind package's wall time goes (issue #19, item 1).

six's wheel becomes a wheel-kind recipe of a fresh distribution tree (configured, its prefix's
venv made, untimed); then, round after round, `make -f build/make/Makefile w_six` installs it
into the prefix where it is not yet present (the untimed `make w_six-uninstall` before each
round removes it; nothing else is deleted before a timed run).

* plain rounds: the wall time of that make, as a user gets it (median);
* traced rounds (interleaved with the plain ones): the same make under
  `strace -f --seccomp-bpf -e trace=execve,exit_group` (only those two system calls stop the
  processes), whose timestamps, with the package's events in logs/events.jsonl (the same
  clock), cut the run into: make until it starts sage-spkg, the interpreter's start and
  sage-spkg's imports and set-up until its first phase, each phase, the idle gaps between
  phases, after the last phase until sage-spkg exits, make's end; and every other process
  started on the way (make's `date`, the recipe hash, a `uname` ...);
* the interpreter alone (`python -c pass`, the tool venv's) and `python -X importtime` of
  sage-spkg's entry module, in fresh processes: the imports' share of the start;
* the floor (in the same interleaved rounds): what any sage-spkg that installs the wheel in its
  own process cannot go below while pypa/installer does the install: make's own part (`make -n
  w_six`: it parses the Makefile and runs its `date`) plus an interpreter of the tool's venv that
  loads site and imports installer and the standard modules an install needs, with no line of
  sage-build (`python -S -c "import site; site.main(); import installer, ..."`);
* with --instructions: every process of one make under `valgrind --tool=callgrind
  --trace-children=yes`, instructions per command (decisions on a loaded machine), and the
  floor's interpreter under callgrind too.

* with --session: the same package as the last of a make session whose worker is up (the
  session's first packages, a tiny wheel and a script that waits for the worker's socket, run
  before it), with the worker and with SAGE_SPKG_WORKER=no in interleaved rounds, under the same
  strace: w_six's sage-spkg from its exec to its exit, and make's whole run.

Load average before each timed round is printed beside its figure.  With --against DIR (another
sage-build checkout with its own .venv, e.g. a worktree of main) a second tree configured by
that checkout runs in the same interleaved rounds (A/B).

    .venv/bin/python bench/profile_one_package.py [--rounds 9] [--against DIR] [--instructions] [--session] [--no-readme]

Writes its section of bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_install import fetch_wheels  # bench/ is on sys.path: the script's directory
from bench_make_install import make_tree, user_env
from readme_section import write_section

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "w_six"


def checkout_python(checkout: Path) -> Path:
    return checkout / ".venv" / "bin" / "python"


def make_tree_of(checkout: Path, root: Path, wheel: Path) -> None:
    """make_tree, configured by ``checkout``'s configure.py (its Makefile runs that checkout)."""
    import bench_make_install

    saved = bench_make_install.TOOL_PYTHON, bench_make_install.REPO
    bench_make_install.TOOL_PYTHON, bench_make_install.REPO = checkout_python(checkout), checkout
    try:
        make_tree(root, [wheel])
    finally:
        bench_make_install.TOOL_PYTHON, bench_make_install.REPO = saved


LAST_CPU = [0.0]  # CPU seconds (user + system) of the last run_make's processes


def run_make(root: Path, goal: str, trace: Path | None = None) -> float:
    command = ["make", "-s", "-f", str(root / "build/make/Makefile"), goal]
    if trace is not None:
        command = ["strace", "-f", "-ttt", "-s", "512", "--seccomp-bpf", "-e", "trace=execve,exit_group", "-o", str(trace),
                   *command]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, env=user_env(root), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed


TRACE_LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")


def read_trace(trace: Path) -> dict[int, dict]:
    """pid -> {"exec": time of its last successful execve, "argv": its command, "exit": exit time}."""
    procs: dict[int, dict] = {}
    pending: dict[int, tuple[float, str]] = {}
    for line in trace.read_text().splitlines():
        match = TRACE_LINE.match(line)
        if not match:
            continue
        pid, when, rest = int(match[1]), float(match[2]), match[3]
        proc = procs.setdefault(pid, {"exec": None, "argv": "", "exit": None, "first": when})
        if rest.startswith("execve("):
            if rest.endswith("= 0"):
                proc["exec"], proc["argv"] = when, _argv(rest)
            elif "<unfinished" in rest:
                pending[pid] = (when, _argv(rest))
        elif "execve resumed" in rest and rest.endswith("= 0") and pid in pending:
            proc["exec"], proc["argv"] = pending.pop(pid)
        elif rest.startswith("+++ exited") or rest.startswith("+++ killed"):
            proc["exit"] = when
    return procs


def _argv(call: str) -> str:
    match = re.search(r'\[(.*?)\]', call)
    words = re.findall(r'"((?:[^"\\]|\\.)*)"', match[1]) if match else []
    # the interpreter's options are not words of the command (make runs `python -S sage-spkg PKG`)
    words = words[:1] + [w for w in words[1:] if not w.startswith("-")]
    return " ".join(Path(words[0]).name if i == 0 else (Path(w).name if "/" in w else w)
                    for i, w in enumerate(words[:3]))


def run_events(root: Path, since: float) -> list[dict]:
    events = []
    with open(root / "logs" / "events.jsonl") as stream:
        for line in stream:
            event = json.loads(line)
            if event.get("package") == PACKAGE and event["time"] >= since:
                events.append(event)
    return events


def breakdown(root: Path, trace: Path, since: float) -> list[tuple[str, float]]:
    """The traced run cut into consecutive pieces (name, seconds), process start to exit."""
    procs = read_trace(trace)
    make_pid = next(iter(procs))  # the first line's: the traced make itself
    make = procs[make_pid]
    spkg = [p for p in procs.values() if "sage-spkg" in p["argv"]]
    if len(spkg) != 1:
        raise SystemExit(f"expected one sage-spkg in the trace, found {len(spkg)}: {trace}")
    spkg = spkg[0]
    events = run_events(root, since)
    starts = [e for e in events if e["event"] == "start"]
    ends = {e["phase"]: e for e in events if e["event"] == "end"}
    pieces: list[tuple[str, float]] = []
    others = [p for pid, p in sorted(procs.items(), key=lambda kv: kv[1]["first"])
              if pid != make_pid and p is not spkg and p["exec"] is not None]
    before = [p for p in others if p["exec"] < spkg["exec"]]
    inside = [p for p in others if p["exec"] >= spkg["exec"]]
    pieces.append(("make: start until it runs sage-spkg" + (f" (incl. {', '.join(p['argv'] for p in before)})"
                                                           if before else ""), spkg["exec"] - make["exec"]))
    pieces.append(("sage-spkg: interpreter start, imports, set-up until the first phase",
                   starts[0]["time"] - spkg["exec"]))
    previous_end = None
    for start in starts:
        phase = start["phase"]
        if previous_end is not None:
            pieces.append((f"  idle gap before {phase}", start["time"] - previous_end))
        end = ends[phase]
        children = [p["argv"] for p in inside if start["time"] <= p["exec"] <= end["time"]]
        pieces.append((f"phase {phase}" + (f" (runs {', '.join(children)})" if children else ""),
                       end["time"] - start["time"]))
        previous_end = end["time"]
    after = [p["argv"] for p in inside if p["exec"] > previous_end]
    pieces.append(("sage-spkg: after the last phase until its exit" + (f" (runs {', '.join(after)})" if after else ""),
                   spkg["exit"] - previous_end))
    pieces.append(("make: after sage-spkg until its exit", make["exit"] - spkg["exit"]))
    return pieces


#: What an install with pypa/installer imports whoever runs it: installer (which loads email,
#: dataclasses with inspect, configparser and csv) and the standard modules a wheel's install needs.
FLOOR_CODE = "import site; site.main(); import installer, installer.scripts, zipfile, json, hashlib, subprocess"


def floor_command(python: Path) -> list[str]:
    return [str(python), "-S", "-c", FLOOR_CODE]


def run_floor(root: Path, python: Path) -> float:
    """Wall of make's own part for the package (`make -n`) plus the floor interpreter's."""
    start = time.perf_counter()
    subprocess.run(["make", "-s", "-n", "-f", str(root / "build/make/Makefile"), PACKAGE], env=user_env(root),
                   capture_output=True, check=True)
    subprocess.run(floor_command(python), check=True)
    return time.perf_counter() - start


def interpreter_start(python: Path, runs: int) -> tuple[float, float]:
    """Median wall of `python -c pass` and of importing sage-spkg's entry, fresh processes."""
    plain, entry = [], []
    src = str(REPO / "src")
    for _ in range(runs):
        for times, code in ((plain, "pass"), (entry, f"import sys; sys.path.insert(0, {src!r}); "
                                                     "import sage_build.face.spkg_command")):
            start = time.perf_counter()
            subprocess.run([str(python), "-c", code], check=True)
            times.append(time.perf_counter() - start)
    return statistics.median(plain), statistics.median(entry)


def top_imports(python: Path, limit: int = 12) -> list[tuple[int, str]]:
    """The slowest top-level imports (cumulative microseconds) of sage-spkg's entry module."""
    result = subprocess.run(
        [str(python), "-X", "importtime", "-c",
         f"import sys; sys.path.insert(0, {str(REPO / 'src')!r}); import sage_build.face.spkg_command"],
        capture_output=True, text=True, check=True)
    rows = []
    for line in result.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            depth = (len(name) - len(name.lstrip())) // 2
            if depth <= 1:
                rows.append((int(parts[1]), name.strip()))
    return sorted(rows, reverse=True)[:limit]


def instructions(root: Path, out: Path) -> list[tuple[str, int]]:
    """Instructions (callgrind's Ir) of every process of one make of the package."""
    out.mkdir(parents=True, exist_ok=True)
    run_make(root, f"{PACKAGE}-uninstall")
    command = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={out}/cg.%p",
               "make", "-s", "-f", str(root / "build/make/Makefile"), PACKAGE]
    result = subprocess.run(command, env=user_env(root), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"valgrind failed:\n{result.stderr[-3000:]}")
    rows = []
    for path in sorted(out.glob("cg.*")):
        cmd, total = "", 0
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("cmd:"):
                cmd = " ".join(Path(w).name if "/" in w else w for w in line[4:].split()[:3])
            elif line.startswith("totals:") or line.startswith("summary:"):
                total = int(line.split()[1])
        rows.append((cmd, total))
    return rows


def floor_instructions(python: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg", *floor_command(python)],
                   capture_output=True, check=True)
    for line in (out / "cg").read_text(errors="replace").splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise SystemExit(f"no total in {out / 'cg'}")


WAIT_FOR_WORKER = ('[ "$SAGE_SPKG_WORKER" = no ] && exit 0; for i in $(seq 400); do'
                   ' ls "$XDG_RUNTIME_DIR"/sage-build/*.sock >/dev/null 2>&1 && exit 0; sleep 0.05; done; exit 1\n')


def _tiny_wheel(directory: Path) -> Path:
    import zipfile

    path = directory / "sbtiny-1.0-py3-none-any.whl"
    files = {"sbtiny/__init__.py": "X = 1\n",
             "sbtiny-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: sbtiny\nVersion: 1.0\n",
             "sbtiny-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    import base64
    import hashlib

    def row(name: str, text: str) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        return f"{name},sha256={digest},{len(text.encode())}\n"

    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("sbtiny-1.0.dist-info/RECORD",
                         "".join(row(n, t) for n, t in files.items()) + "sbtiny-1.0.dist-info/RECORD,,\n")
    return path


def session_tree(root: Path, wheel: Path, runtime: Path) -> dict[str, str]:
    """The tree of make_tree plus a session's first packages before w_six; its environment."""
    import hashlib

    make_tree_of(REPO, root, wheel)
    tiny = _tiny_wheel(root / "upstream")
    for name, deps, files in (("w_tiny", "$(PYTHON)", {}), ("w_wait", "$(PYTHON) w_tiny", {"spkg-install": WAIT_FOR_WORKER})):
        recipe = root / "build/pkgs" / name
        recipe.mkdir(parents=True)
        (recipe / "type").write_text("standard\n")
        (recipe / "dependencies").write_text(deps + "\n")
        for file, text in files.items():
            (recipe / file).write_text(text)
    digest = hashlib.sha256(tiny.read_bytes()).hexdigest()
    (root / "build/pkgs/w_tiny/package-version.txt").write_text("1.0\n")
    (root / "build/pkgs/w_tiny/checksums.ini").write_text(f"tarball=sbtiny-VERSION-py3-none-any.whl\nsha256={digest}\n")
    (root / "build/pkgs" / PACKAGE / "dependencies").write_text("$(PYTHON) w_wait\n")
    env = user_env(root, XDG_RUNTIME_DIR=str(runtime))
    result = subprocess.run([str(checkout_python(REPO)), str(REPO / "configure.py"), f"--prefix={root / 'local'}",
                             "--quiet"], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"configure failed:\n{result.stdout}\n{result.stderr}")
    return env


def session_round(root: Path, env: dict[str, str], trace: Path) -> tuple[float, float, bool]:
    """One traced `make w_six` after its session's first packages: make's wall, w_six's sage-spkg
    from exec to exit, and whether the worker ran it."""
    makefile = str(root / "build/make/Makefile")
    subprocess.run(["make", "-s", "-k", "-f", makefile, f"{PACKAGE}-uninstall", "w_wait-uninstall", "w_tiny-uninstall"],
                   env=env, capture_output=True)
    since = time.time()
    start = time.perf_counter()
    result = subprocess.run(["strace", "-f", "-ttt", "-s", "512", "--seccomp-bpf", "-e", "trace=execve,exit_group",
                             "-o", str(trace), "make", "-s", "-f", makefile, PACKAGE], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"make {PACKAGE} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    spkg = [p for p in read_trace(trace).values() if p["argv"].endswith(f"sage-spkg {PACKAGE}") and p["exit"]]
    worker = any(e.get("worker") for e in run_events(root, since))
    return wall, spkg[-1]["exit"] - spkg[-1]["exec"], worker


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--against", type=Path, help="another sage-build checkout (with .venv) for A/B rounds")
    parser.add_argument("--instructions", action="store_true", help="callgrind instruction counts too (slow)")
    parser.add_argument("--session", action="store_true",
                        help="also the package as the last of a make session, with and without its worker")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    lines: list[str] = []
    out = lines.append
    (wheel,) = fetch_wheels([("six", "1.17.0")])
    work = Path(tempfile.mkdtemp(prefix="profile_one_package-")).resolve()
    checkouts = {"this": REPO}
    if args.against:
        checkouts["against"] = args.against.resolve()
    walls: dict[str, list[tuple[float, float]]] = {k: [] for k in checkouts}
    floors: list[float] = []
    cpus: dict[str, list[float]] = {k: [] for k in checkouts}
    traced: dict[str, list[float]] = {k: [] for k in checkouts}
    pieces: dict[str, list[list[tuple[str, float]]]] = {k: [] for k in checkouts}
    try:
        roots = {}
        for name, checkout in checkouts.items():
            subprocess.run([str(checkout_python(checkout)), "-m", "compileall", "-q", str(checkout / "src")],
                           check=True)
            roots[name] = work / name
            make_tree_of(checkout, roots[name], wheel)
            run_make(roots[name], PACKAGE)  # a first install: the hash, the page cache
        for round_ in range(args.rounds):
            names = list(checkouts) if round_ % 2 == 0 else list(reversed(checkouts))
            for name in names:
                root = roots[name]
                for mode in ("plain", "traced"):
                    run_make(root, f"{PACKAGE}-uninstall")
                    if mode == "plain" and name == "this":  # make -n sees the package to install
                        floors.append(run_floor(root, checkout_python(REPO)))
                    load = os.getloadavg()[0]
                    if mode == "plain":
                        walls[name].append((run_make(root, PACKAGE), load))
                        cpus[name].append(LAST_CPU[0])
                        print(f"round {round_ + 1}/{args.rounds} {name}: {walls[name][-1][0] * 1000:6.1f} ms "
                              f"(load before {load:.2f})", file=sys.stderr, flush=True)
                    else:
                        trace = work / f"trace-{name}-{round_}"
                        since = time.time()
                        traced[name].append(run_make(root, PACKAGE, trace))
                        pieces[name].append(breakdown(root, trace, since))
        for name, checkout in checkouts.items():
            python = checkout_python(checkout)
            out(f"\n### {name}: {checkout.name} ({_commit(checkout)})\n")
            wall = [w for w, _ in walls[name]]
            out(f"make {PACKAGE} (a fresh install), {args.rounds} rounds: median {statistics.median(wall) * 1000:.1f} ms"
                  f" (min {min(wall) * 1000:.1f}, max {max(wall) * 1000:.1f}; load before "
                  f"{min(l for _, l in walls[name]):.2f}-{max(l for _, l in walls[name]):.2f});"
                  f" under strace: median {statistics.median(traced[name]) * 1000:.1f} ms; CPU time (user + system, its "
                  f"processes): median {statistics.median(cpus[name]) * 1000:.1f} ms")
            if name == "this":
                out(f"\nthe floor (make -n {PACKAGE}, then the tool's interpreter importing site, installer and the "
                    f"modules an install needs; nothing of sage-build), in the same rounds: median "
                    f"{statistics.median(floors) * 1000:.1f} ms (min {min(floors) * 1000:.1f}); "
                    f"make {PACKAGE} over the floor: {statistics.median(wall) / statistics.median(floors):.2f}x")
            out("\nwhere it goes (traced rounds, median ms of each piece):\n")
            labels = [label for label, _ in max(pieces[name], key=len)]
            for i, label in enumerate(labels):
                values = [p[i][1] for p in pieces[name] if len(p) > i and p[i][0] == label]
                if not values:  # the piece's label changed between rounds (a child seen once)
                    values = [p[i][1] for p in pieces[name] if len(p) > i]
                out(f"    {statistics.median(values) * 1000:7.1f}  {label}")
            total = statistics.median(sum(v for _, v in p) for p in pieces[name])
            out(f"    {total * 1000:7.1f}  total (make's exec to make's exit)")
            plain, entry = interpreter_start(python, 7)
            out(f"\ninterpreter alone (python -c pass): {plain * 1000:.1f} ms; with sage-spkg's entry module "
                  f"imported: {entry * 1000:.1f} ms (imports {1000 * (entry - plain):.1f} ms); slowest imports "
                  "(python -X importtime, cumulative us):\n")
            for micros, module in top_imports(python):
                out(f"    {micros:8d}  {module}")
            if args.instructions:
                out("\ninstructions (callgrind) per process of one make:\n")
                rows = instructions(roots[name], work / f"callgrind-{name}")
                for cmd, total in rows:
                    out(f"    {total / 1e6:9.1f} M  {cmd}")
                out(f"    {sum(t for _, t in rows) / 1e6:9.1f} M  total")
                if name == "this":
                    out(f"    {floor_instructions(python, work / 'callgrind-floor') / 1e6:9.1f} M  the floor's interpreter "
                        "(site, installer, the install's modules)")
        if args.session:
            session_figures(work, wheel, args.rounds, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = f"    .venv/bin/python bench/profile_one_package.py --rounds {args.rounds}" + (
        " --session" if args.session else "") + (
        f" --against {args.against}" if args.against else "") + (" --instructions" if args.instructions else "")
    text = "\n".join([
        "## #19 per-package cost: one wheel-kind package through make (bench/profile_one_package.py)",
        "",
        f"six's wheel as a wheel-kind recipe, `make {PACKAGE}` through the generated Makefile into a prefix where it "
        "is not installed (a fresh install; the untimed `make w_six-uninstall` before each round), plain and under "
        f"strace in interleaved rounds; load average before each round given. {os.cpu_count()} cores.",
        "",
        command,
        *lines,
    ])
    print(text)
    if not args.no_readme:
        write_section("profile_one_package", text)
    return 0


def session_figures(work: Path, wheel: Path, rounds: int, out) -> None:
    runtime = Path(tempfile.mkdtemp(prefix="sw-", dir="/tmp"))  # short: a socket's path has 107 bytes
    try:
        root = work / "session"
        env = session_tree(root, wheel, runtime)
        first = subprocess.run(["make", "-s", "-f", str(root / "build/make/Makefile"), PACKAGE], env=env,
                               capture_output=True, text=True)
        if first.returncode != 0:
            raise SystemExit(f"make {PACKAGE} failed:\n{first.stdout[-3000:]}\n{first.stderr[-3000:]}")
        figures: dict[str, list[tuple[float, float, float]]] = {"worker": [], "no": []}
        for round_ in range(rounds):
            for mode in ("worker", "no") if round_ % 2 == 0 else ("no", "worker"):
                load = os.getloadavg()[0]
                wall, spkg, by_worker = session_round(root, dict(env, SAGE_SPKG_WORKER=mode), work / "trace-session")
                if by_worker != (mode == "worker"):
                    raise SystemExit(f"round {round_ + 1} ({mode}): the worker ran w_six: {by_worker}")
                figures[mode].append((spkg, wall, load))
                print(f"session round {round_ + 1}/{rounds} {mode}: w_six's sage-spkg {spkg * 1000:6.1f} ms"
                      f" (load before {load:.2f})", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    out(f"\n### {PACKAGE} as the last package of a make session ({_commit(REPO)})\n")
    out("`make w_six` where w_six needs w_tiny (a tiny wheel, the session's first package) and w_wait (a script "
        "that waits until the session's worker listens), all three uninstalled before each round (untimed); "
        f"under strace (execve, exit_group only), {rounds} interleaved rounds, load before "
        f"{min(l for v in figures.values() for *_, l in v):.2f}-{max(l for v in figures.values() for *_, l in v):.2f}.\n")
    out("| | w_six's sage-spkg, exec to exit: median (min-max) | the whole make (3 packages): median |")
    out("| --- | ---: | ---: |")
    for mode, label in (("worker", "with the session's worker"), ("no", "`SAGE_SPKG_WORKER=no` (its own process)")):
        spkg = [s for s, _, _ in figures[mode]]
        wall = [w for _, w, _ in figures[mode]]
        out(f"| {label} | {statistics.median(spkg) * 1000:.1f} ms ({min(spkg) * 1000:.1f}-{max(spkg) * 1000:.1f}) |"
            f" {statistics.median(wall) * 1000:.0f} ms |")


def _commit(checkout: Path) -> str:
    result = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return result.stdout.strip() + (" + changes" if dirty else "")


if __name__ == "__main__":
    sys.exit(main())
