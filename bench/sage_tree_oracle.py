"""The oracle: our spkg-configure.m4 decisions against Sage's own configure on the same tree.

Usage: .venv/bin/python bench/sage_tree_oracle.py ORACLE [ORACLE_SSP] [--rounds N] [-v] [--write]

ORACLE is a tree (passagemath's) on which the tree's own ``./bootstrap && ./configure`` ran;
ORACLE_SSP a copy on which ``./configure --enable-system-site-packages`` ran. Sage's decision
per package is read from their ``build/make/Makefile`` (``BUILT_PACKAGES``: built from source,
``DUMMY_PACKAGES``: ``sage_spkg_install_X=no``, from the system or not required) and its
reason from ``config.log`` (configure's summary lines). Ours comes from our configure on a
clone of the same tree (``build/pkgs`` linked, nothing written into the tree), with the same
option set. Every package with a spkg-configure.m4 whose decision differs is listed with
both reasons, and the agreement is counted over those files.

With ``--rounds N`` (N >= 1), each round runs, interleaved: Sage's ``./configure`` again in
ORACLE with the arguments it was configured with (``config.status --config``; nothing is
cached there), ours cold (no ``build/make/config.cache``) and ours warm (the cache kept); the
medians are printed. The oracle trees must have been prepared by hand (see bench/README.md's
"#17 oracle"): autoconf, automake, libtool and pkg-config from the distribution.
"""

from __future__ import annotations

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
    makefile = (oracle / "build/make/Makefile").read_text()
    lists = {}
    for var in ("BUILT_PACKAGES", "DUMMY_PACKAGES"):
        match = re.search(rf"^{var} =((?:[^\n]*\\\n)*[^\n]*)$", makefile, re.M)
        if not match:
            raise SystemExit(f"{oracle}/build/make/Makefile has no {var}: run the tree's ./configure first")
        lists[var] = set(match.group(1).replace("\\\n", " ").split())
    messages = {}
    for match in re.finditer(r"^configure:\d+: result: ([A-Za-z0-9_]+): +(.*)$", (oracle / "config.log").read_text(), re.M):
        messages[match.group(1)] = match.group(2)
    result = {name: (True, messages.get(name, "")) for name in lists["BUILT_PACKAGES"]}
    result.update({name: (False, messages.get(name, "")) for name in lists["DUMMY_PACKAGES"]})
    return result


def configure_args(oracle: Path) -> list[str]:
    """The arguments the oracle tree was configured with."""
    out = subprocess.run(["./config.status", "--config"], cwd=oracle, capture_output=True, text=True, check=True).stdout
    return shlex.split(out)


def our_configure(clone: Path, prefix: Path, site_packages: bool, cold: bool):
    cache = clone / "build/make/config.cache"
    if cold:
        cache.unlink(missing_ok=True)
        (clone / "build/make/target-cache.json").unlink(missing_ok=True)
    argv = ["--prefix", str(prefix)] + (["--enable-system-site-packages"] if site_packages else [])
    start = time.perf_counter()
    result = configure(argv, clone)
    return result, time.perf_counter() - start


def compare(oracle: Path, result) -> tuple[int, int, list[tuple[str, str, str, str]]]:
    """(files, agreeing, [(package, Sage, ours, reasons)]) over the packages with a spkg-configure.m4."""
    sage = sage_decisions(oracle)
    names = sorted(p.parent.name for p in (oracle / "build/pkgs").glob("*/spkg-configure.m4"))
    rows, agree = [], 0
    for name in names:
        sage_built, message = sage.get(name, (True, "(not in Sage's Makefile)"))
        status = result.system.get(name)
        ours_built = status is None or status.status != "system" or not result.decisions[name].from_system
        if sage_built == ours_built:
            agree += 1
            continue
        ours_reason = "(no check)" if status is None else f"{status.status}: {status.reason}"
        if status is not None and status.status == "system" and not result.decisions[name].from_system:
            ours_reason = result.decisions[name].reason
        rows.append((name, "source" if sage_built else "system", "source" if ours_built else "system",
                     f"Sage: {message} / ours: {ours_reason}"))
    return len(names), agree, rows


def table(title: str, files: int, agree: int, rows) -> str:
    text = f"#### {title}: {agree} of {files} agree ({100 * agree / files:.1f} %)\n\n"
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
    oracles = [(Path(args[0]).resolve(), False)] + ([(Path(args[1]).resolve(), True)] if len(args) > 1 else [])
    body = "### #17 oracle: our spkg-configure.m4 decisions against the tree's own ./configure\n\n"
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        clone, prefix = Path(tmp) / "clone", Path(tmp) / "local"
        make_clone(oracles[0][0], clone)
        for oracle, site_packages in oracles:
            label = "with --enable-system-site-packages" if site_packages else "without --enable-system-site-packages"
            for _ in range(rounds):   # interleaved: Sage's cold, ours cold, ours warm
                start = time.perf_counter()
                subprocess.run(["./configure"] + configure_args(oracle), cwd=oracle, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times.setdefault(f"Sage's ./configure, {label}", []).append(time.perf_counter() - start)
                times.setdefault(f"ours cold, {label}", []).append(our_configure(clone, prefix, site_packages, cold=True)[1])
                times.setdefault(f"ours warm, {label}", []).append(our_configure(clone, prefix, site_packages, cold=False)[1])
            result, _ = our_configure(clone, prefix, site_packages, cold=False)
            files, agree, rows = compare(oracle, result)
            body += table(label, files, agree, rows)
    if times:
        body += ("| configure (same machine, same run) | median | rounds |\n| --- | ---: | ---: |\n"
                 + "".join(f"| {k} | {statistics.median(v):.2f} s | {len(v)} |\n" for k, v in times.items()) + "\n")
    print(body)
    if "--write" in sys.argv:
        write_section("sage-tree-oracle", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
