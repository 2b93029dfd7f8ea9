"""--enable-system-site-packages on a clone of passagemath's tree: the cost of SAGE_PYTHON_PACKAGE_CHECK.

Usage: .venv/bin/python bench/site_packages_check.py [TREE] [--rounds N] [--write]

The user's path, `./configure.py --enable-system-site-packages` (a subprocess, SAGE_ROOT the
clone), beside Sage's way of running the same checks, in interleaved rounds:

- ours, cold: build/make/config.cache removed (every probe asked again, one throw-away venv for
  all the Python packages);
- ours, cold, without the option: the same without the Python checks (the difference is the
  check's cold cost);
- ours, warm: the cache kept (a reconfigure: no venv is made);
- Sage's way (peer): what Sage's configure does for each package whose spkg-configure.m4 calls
  SAGE_PYTHON_PACKAGE_CHECK: `python3 -m venv --system-site-packages --clear config.venv`, then
  the macro's Python snippet on its version_requirements.txt, PYTHONUSERBASE poisoned; one venv
  per package, as m4/sage_python_package_check.m4 runs them (autoconf itself is not run).

Medians of the rounds; --write puts them into bench/README.md (section site-packages-check).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "src"), str(HERE)]

from readme_section import write_section  # noqa: E402
from sage_tree_dependencies import make_clone  # noqa: E402

# m4/sage_python_package_check.m4's snippet, SAGE_PKG_VERSPEC filled in as configure does
SAGE_SNIPPET = """import importlib.metadata as _m, sys
try:
    from packaging.requirements import Requirement as _R
except ImportError:
    _R = None
for _r in (%s):
    if _R:
        _q = _R(_r)
        if _q.marker is not None and not _q.marker.evaluate():
            continue
        try:
            _v = _m.version(_q.name)
            if not _q.specifier.contains(_v, prereleases=True):
                sys.exit(1)
        except _m.PackageNotFoundError:
            sys.exit(1)
    else:
        if any(c in _r for c in '><=!@;'):
            sys.exit(1)
        try:
            _m.version(_r.strip())
        except _m.PackageNotFoundError:
            sys.exit(1)
"""


def python_checked(tree: Path) -> dict[str, list[str]]:
    """The packages whose spkg-configure.m4 calls SAGE_PYTHON_PACKAGE_CHECK, with their requirement lines."""
    found = {}
    for m4 in sorted((tree / "build/pkgs").glob("*/spkg-configure.m4")):
        if "SAGE_PYTHON_PACKAGE_CHECK" not in m4.read_text(errors="replace"):
            continue
        for name in ("version_requirements.txt", "install-requires.txt"):
            path = m4.parent / name
            if path.is_file():
                lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
                found[m4.parent.name] = [line for line in lines if line]
                break
    return found


def sage_way(python: str, checks: dict[str, list[str]], work: Path) -> tuple[float, set[str]]:
    """Sage's loop: a venv and the snippet per package. (seconds, the packages found)"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONUSERBASE"] = str(Path.home() / ".sage" / "local")
    venv = work / "config.venv"
    found = set()
    start = time.perf_counter()
    for name, lines in checks.items():
        made = subprocess.run([python, "-m", "venv", "--system-site-packages", "--clear", "--without-pip", str(venv)],
                              env=env, cwd=work, capture_output=True)
        if made.returncode == 0:
            verspec = ", ".join(json.dumps(line) for line in lines) + ","
            ran = subprocess.run([str(venv / "bin/python3"), "-c", SAGE_SNIPPET % verspec], env=env, cwd=work,
                                 capture_output=True)
            if ran.returncode == 0:
                found.add(name)
        shutil.rmtree(venv, ignore_errors=True)
    return time.perf_counter() - start, found


def check_alone(clone: Path, python: str, checks: dict[str, list[str]]) -> float:
    """Our check of the same packages alone, nothing cached: one venv and one scan."""
    from sage_build.configure.probes import Probes
    from sage_build.configure.system import detect_python
    from sage_build.recipes.recipe import load_packages

    packages = load_packages(clone / "build/pkgs")
    wanted = [packages[n] for n in checks if n in packages]
    start = time.perf_counter()
    detect_python(wanted, python, Probes(dict(os.environ)))
    return time.perf_counter() - start


def ours(clone: Path, prefix: Path, *, cold: bool, option: bool) -> float:
    if cold:
        (clone / "build/make/config.cache").unlink(missing_ok=True)
    command = [sys.executable, str(ROOT / "configure.py"), f"--prefix={prefix}", "--quiet"]
    if option:
        command.append("--enable-system-site-packages")
    start = time.perf_counter()
    subprocess.run(command, env=dict(os.environ, SAGE_ROOT=str(clone)), check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    args = sys.argv[1:]
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 3
    positional = [a for i, a in enumerate(args) if not a.startswith("--") and (i == 0 or args[i - 1] != "--rounds")]
    tree = Path(positional[0] if positional else "/work/passagemath")
    checks = python_checked(tree)
    python = sys.executable   # the default target Python: configure's own (a venv of the tool's base)
    times: dict[str, list[float]] = {"cold": [], "cold, no option": [], "warm": [], "alone": [], "sage": []}
    with tempfile.TemporaryDirectory() as tmp:
        clone, prefix, work = Path(tmp) / "clone", Path(tmp) / "local", Path(tmp) / "work"
        make_clone(tree, clone)
        work.mkdir()
        ours(clone, prefix, cold=True, option=True)   # warm-up (the OS's file cache)
        for _ in range(rounds):
            times["cold"].append(ours(clone, prefix, cold=True, option=True))
            times["warm"].append(ours(clone, prefix, cold=False, option=True))
            times["cold, no option"].append(ours(clone, prefix, cold=True, option=False))
            times["alone"].append(check_alone(clone, python, checks))
            elapsed, sage_found = sage_way(python, checks, work)
            times["sage"].append(elapsed)
        # our check alone, on the same packages (before DEPCHECK and the other rules)
        from sage_build.configure.probes import Probes
        from sage_build.configure.system import detect_python
        from sage_build.install.target import query_python
        from sage_build.recipes.recipe import load_packages

        packages = load_packages(clone / "build/pkgs")
        detections = detect_python([packages[n] for n in checks if n in packages], python, Probes(dict(os.environ)),
                                   query_python(python).markers)
        our_found = {name for name, d in detections.items() if d.found}
    differ = "\n".join(f"  - {name}: ours {'system' if name in our_found else 'source'} ({detections[name].reason}),"
                       f" Sage's snippet {'system' if name in sage_found else 'source'}"
                       for name in sorted(our_found ^ sage_found))
    med = {k: statistics.median(v) for k, v in times.items()}
    check_cost = med["cold"] - med["cold, no option"]
    body = f"""## --enable-system-site-packages: SAGE_PYTHON_PACKAGE_CHECK on {tree.name}

Reproduce: `.venv/bin/python bench/site_packages_check.py {tree} --rounds {rounds} --write`.
{len(checks)} packages call SAGE_PYTHON_PACKAGE_CHECK; the target Python is the tool's
interpreter (its base installation's site-packages is the "system"). The user's path,
`./configure.py --quiet --enable-system-site-packages` on a clone, whole command; the peer is
Sage's way of running the same checks (one `venv --system-site-packages --clear` and the
macro's snippet per package, as m4/sage_python_package_check.m4; autoconf itself not run).
Medians of {rounds} interleaved rounds after a warm-up.

| measurement | median | min | max |
| --- | ---: | ---: | ---: |
| ours, cold (no config.cache), with the option | {med['cold']:.2f} s | {min(times['cold']):.2f} s | {max(times['cold']):.2f} s |
| ours, cold, without the option | {med['cold, no option']:.2f} s | {min(times['cold, no option']):.2f} s | {max(times['cold, no option']):.2f} s |
| ours, warm (config.cache kept), with the option | {med['warm']:.2f} s | {min(times['warm']):.2f} s | {max(times['warm']):.2f} s |
| ours, the {len(checks)} checks alone, cold (one venv, one scan; in-process) | {med['alone']:.2f} s | {min(times['alone']):.2f} s | {max(times['alone']):.2f} s |
| Sage's way, the {len(checks)} checks alone (peer) | {med['sage']:.2f} s | {min(times['sage']):.2f} s | {max(times['sage']):.2f} s |

- the checks alone, cold: ours {med['alone']:.2f} s, Sage's way {med['sage']:.1f} s
  ({med['sage'] / med['alone']:.0f}x ours; the rounds' own ratios: {", ".join(f"{b / a:.0f}x" for a, b in zip(times['alone'], times['sage']))});
  in the whole configure, cold with minus cold without the option: {check_cost:.2f} s
- warm: no venv is made (the cache holds while the directories the venv sees keep their mtimes)
- packages the check finds on the system (the check alone, before DEPCHECK): ours
  {len(our_found)}, Sage's snippet {len(sage_found)}; where they differ:
{differ or "  - nowhere"}

Machine: {os.cpu_count()} cores, load average at the end {" ".join(f"{x:.1f}" for x in os.getloadavg())}
(other work ran beside it: the spread of min and max is that load, hence medians).
"""
    print(body)
    if "--write" in args:
        write_section("site-packages-check", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
