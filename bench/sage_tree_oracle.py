"""The oracle: our spkg-configure.m4 decisions against Sage's own configure on the same tree.

Usage: .venv/bin/python bench/sage_tree_oracle.py ORACLE [ORACLE_SSP] [--rounds N] [-v] [--write]

ORACLE is a tree (passagemath's) on which the tree's own ``./bootstrap && ./configure`` ran;
ORACLE_SSP a copy on which ``./configure --enable-system-site-packages`` ran. Sage's decision
per package is read from configure's summary lines in their ``config.log`` ("using system
package" and "not required on your platform" are ``sage_spkg_install_X=no``, the Makefile's
``DUMMY_PACKAGES``; anything else is built), also when configure ended with an error after the
summary (``--with-system-X=force`` failures). Ours comes from our configure on a clone of the
same tree (``build/pkgs`` linked, nothing written into the tree), with the same option set
(``--enable-system-site-packages``, ``--with-python``). Every package with a spkg-configure.m4 whose decision differs is listed with
both reasons, and the agreement is counted over those files.

With ``--rounds N`` (N >= 1), each round runs, interleaved: Sage's ``./configure`` again in
ORACLE with the arguments it was configured with (``config.status --config``; nothing is
cached there), ours cold (no ``build/make/config.cache``) and ours warm (the cache kept); the
medians are printed. The oracle trees must have been prepared by hand (see bench/README.md's
"#17 oracle"): autoconf, automake, libtool and pkg-config from the distribution.
"""

from __future__ import annotations

import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE)]

from readme_section import write_section  # noqa: E402
from sage_tree_dependencies import make_clone  # noqa: E402

from sage_build.configure.configure import configure  # noqa: E402


def sage_decisions(oracle: Path) -> dict[str, tuple[bool, str]]:
    """Sage's configure: package -> (built from source, configure's message)."""
    try:
        log = (oracle / "config.log").read_text()
    except OSError as error:
        raise SystemExit(f"{oracle}: no config.log ({error}); run the tree's ./bootstrap and ./configure first") from None
    result = {}
    for match in re.finditer(r"^configure:\d+: result: ([A-Za-z0-9_]+): +(.*)$", log, re.M):
        message = match.group(2)
        result[match.group(1)] = (not message.startswith(("using system package", "not required on your platform")), message)
    if not result:
        raise SystemExit(f"{oracle}/config.log has no summary lines: did the tree's ./configure get that far?")
    try:   # packages named _X have no summary line; the Makefile, when configure finished, has them
        makefile = (oracle / "build/make/Makefile").read_text()
    except OSError:
        return result
    for var, built in (("BUILT_PACKAGES", True), ("DUMMY_PACKAGES", False)):
        match = re.search(rf"^{var} =((?:[^\n]*\\\n)*[^\n]*)$", makefile, re.M)
        for name in (match.group(1).replace("\\", " ").split() if match else []):
            result.setdefault(name, (built, f"(the Makefile's {var})"))
    return result


def configure_args(oracle: Path) -> list[str]:
    """The arguments the oracle tree was configured with (config.log's first lines)."""
    try:
        log = (oracle / "config.log").read_text()
    except OSError as error:
        raise SystemExit(f"{oracle}: no config.log ({error}); run the tree's ./bootstrap and ./configure first") from None
    match = re.search(r"^  \$ \./configure(.*)$", log, re.M)
    return shlex.split(match.group(1)) if match else []


def our_args(sage_args: list[str]) -> list[str]:
    """Our options for the same decisions as Sage's arguments."""
    return [a for a in sage_args if a == "--enable-system-site-packages" or a.startswith("--with-python=")]


def our_configure(clone: Path, prefix: Path, args: list[str], cold: bool):
    cache = clone / "build/make/config.cache"
    if cold:
        cache.unlink(missing_ok=True)
        (clone / "build/make/target-cache.json").unlink(missing_ok=True)
    argv = ["--prefix", str(prefix)] + args
    start = time.perf_counter()
    result = configure(argv, clone)
    return result, time.perf_counter() - start


# Disagreements kept on purpose, and why (the table's reason column says what each side found).
EXPLAINED = {
    "symengine_py": "Sage's slip: its file says SAGE_PYTHON_PACKAGE_CHECK([symengine]), which sets "
                    "sage_spkg_install_symengine, so symengine_py's own variable stays 'no' and Sage takes "
                    "it from the system without looking; we build it (nothing checked that it is there)",
    "importlib_resources": "with --enable-system-site-packages on pyenv's 3.12.1: Sage's check reads the line "
                           "with the system Python's own `packaging`, which that Python lacks; its fallback then "
                           "refuses any line with a version or a marker. Ours evaluates the marker "
                           "(python_version<\"3.12\" is false on 3.12: nothing is required, so nothing to build)",
    "rpy2": "its REQUIRED-CHECK reads R's and libR's versions with $(R --version | sed ...) and "
            "$(pkg-config ...), command substitutions our reader does not run; libR is not on this machine, "
            "so Sage finds rpy2 not required; ours is 'not understood' and builds it (it is standard)",
}


def compare(oracle: Path, result) -> tuple[int, int, int, list[tuple[str, str, str, str]]]:
    """(files, agreeing, agreeing although ours is 'not understood', [(package, Sage, ours, reasons)])
    over the packages with a spkg-configure.m4."""
    sage = sage_decisions(oracle)
    names = sorted(p.parent.name for p in (oracle / "build/pkgs").glob("*/spkg-configure.m4"))
    rows, agree, by_chance = [], 0, 0
    for name in names:
        sage_built, message = sage.get(name, (True, "(not in Sage's summary)"))
        status = result.system.get(name)
        ours_built = status is None or status.status != "system" or not result.decisions[name].from_system
        if sage_built == ours_built:
            agree += 1
            by_chance += status is not None and status.status == "not understood"
            continue
        ours_reason = "(no check)" if status is None else f"{status.status}: {status.reason}"
        if status is not None and status.status == "system" and not result.decisions[name].from_system:
            ours_reason = result.decisions[name].reason
        why = f"{EXPLAINED[name]}. " if name in EXPLAINED else ""
        rows.append((name, "source" if sage_built else "system", "source" if ours_built else "system",
                     f"{why}Sage: {message} / ours: {ours_reason}"))
    return len(names), agree, by_chance, rows


def table(title: str, files: int, agree: int, by_chance: int, rows) -> str:
    text = (f"#### {title}: {agree} of {files} agree ({100 * agree / files:.1f} %)\n\n"
            f"Of the agreeing ones, {by_chance} are files our reader does not understand (built from source,\n"
            f"as Sage decided too).\n\n")
    if rows:
        text += "| package | Sage | ours | reason |\n| --- | --- | --- | --- |\n"
        text += "".join(f"| {n} | {s} | {o} | {r.replace('|', '/')} |\n" for n, s, o, r in rows)
    return text + "\n"


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    rounds = 0
    if "--rounds" in sys.argv:
        rounds = int(sys.argv[sys.argv.index("--rounds") + 1])
        args = [a for a in args if a != str(rounds)]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    oracles = [(Path(a).resolve(), "--enable-system-site-packages" in configure_args(Path(a))) for a in args[:2]]
    body = "### #17 oracle: our spkg-configure.m4 decisions against the tree's own ./configure\n\n"
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        clone, prefix = Path(tmp) / "clone", Path(tmp) / "local"
        make_clone(oracles[0][0], clone)
        for oracle, site_packages in oracles:
            sage_args = configure_args(oracle)
            args = our_args(sage_args)
            label = f"Sage: ./configure {' '.join(sage_args)}; ours: {' '.join(args) or 'no option'}"
            short = "with" if site_packages else "without"
            for _ in range(rounds):   # interleaved: Sage's cold, ours cold, ours warm
                start = time.perf_counter()
                # Sage's configure keeps no cache: each run is cold. It may end with an error
                # after its summary (--with-system-X=force); the time is the same.
                subprocess.run(["./configure"] + sage_args, cwd=oracle, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times.setdefault(f"Sage's ./configure, {short} --enable-system-site-packages", []).append(time.perf_counter() - start)
                times.setdefault(f"ours cold, {short}", []).append(our_configure(clone, prefix, args, cold=True)[1])
                times.setdefault(f"ours warm, {short}", []).append(our_configure(clone, prefix, args, cold=False)[1])
            result, _ = our_configure(clone, prefix, args, cold=False)
            files, agree, by_chance, rows = compare(oracle, result)
            body += table(label, files, agree, by_chance, rows)
    if times:
        medians = {k: statistics.median(v) for k, v in times.items()}
        body += ("| configure (same machine, same run, interleaved) | median | rounds | Sage's / this |\n"
                 "| --- | ---: | ---: | ---: |\n")
        for key, median in medians.items():
            short = key.rsplit(", ", 1)[1].split()[0]   # "without" / "with"
            sage = medians[f"Sage's ./configure, {short} --enable-system-site-packages"]
            body += f"| {key} | {median:.2f} s | {len(times[key])} | {sage / median:.1f} |\n"
        body += (f"\nLoad average when the run ended (2 cores, shared): {os.getloadavg()[0]:.1f}. Cold: ours without\n"
                 "build/make/config.cache (Sage's configure keeps no cache); warm: ours reading it.\n\n")
    print(body)
    if "--write" in sys.argv:
        write_section("sage-tree-oracle", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
