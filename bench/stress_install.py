"""Long stress run of race-free installs (the fast version is tests/test_install.py).

Each round: a fresh prefix; ten wheels that share ns/__init__.py, a sub-directory and
__pycache__, installed by 16 concurrent processes (six wheels twice at once); then every file
is checked complete and everything imported. A second phase gives one shared file different
bytes in one wheel (p9): whichever of the two contents is published first stays, every install
that brings the other fails naming both packages and the path, and no file is ever half-written.

    .venv/bin/python bench/stress_install.py [--rounds N] [--no-readme]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import make_wheel  # noqa: E402  (the tests' wheel builder)
from readme_section import write_section  # noqa: E402

from sage_build.install.target import query_python  # noqa: E402


def wheels(directory: Path, count: int, conflicting: bool = False) -> list[Path]:
    made = []
    for i in range(count):
        common = b"#define COMMON 2\n" if conflicting and i == count - 1 else b"#define COMMON 1\n"
        files = {
            "ns/__init__.py": b"# shared namespace\n",
            "ns/shared/include/common.h": common,
            f"ns/p{i}/__init__.py": f"VALUE = {i}\n".encode() + b"x = 1\n" * 3000,
        }
        made.append(make_wheel(directory, f"p{i}", "1.0", files))
    return made


def fresh_prefix(base: Path) -> Path:
    prefix = Path(tempfile.mkdtemp(dir=base))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    query_python(prefix / "bin" / "python3").save(prefix / "var/lib/sage/target-python.json")
    return prefix


def install_all(prefix: Path, wheel_files: list[Path]) -> list[tuple[int, str]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    processes = [subprocess.Popen([sys.executable, "-m", "sage_build.install", "--prefix", str(prefix), str(w)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
                 for w in wheel_files]
    return [(p.wait(), p.stdout.read()) for p in processes]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sage-build-stress-"))
    good, bad = wheels(base / "good", 10), wheels(base / "bad", 10, conflicting=True)
    failures = incomplete = import_failures = 0
    conflict_errors = conflict_named = torn = 0
    started = time.time()
    for round_ in range(args.rounds):
        prefix = fresh_prefix(base)
        results = install_all(prefix, good + good[:6])
        failures += sum(code != 0 for code, _ in results)
        site = next((prefix / "lib").glob("python3*/site-packages"))
        if (site / "ns/shared/include/common.h").read_bytes() != b"#define COMMON 1\n":
            incomplete += 1
        incomplete += sum(1 for i in range(10)
                          if not (site / f"ns/p{i}/__init__.py").read_bytes().endswith(b"x = 1\n"))
        code = "import ns; " + "; ".join(f"import ns.p{i}" for i in range(10))
        import_failures += subprocess.run([str(prefix / "bin/python3"), "-c", code]).returncode != 0
        # the conflicting set: the last wheel's common.h differs
        prefix = fresh_prefix(base)
        results = install_all(prefix, bad)
        errors = [out for code, out in results if code != 0]
        if round_ == 0 and errors:
            print(errors[0].strip())
        # Whoever publishes common.h first owns it: p9 alone fails, or (p9 first) the nine others.
        conflict_errors += len(errors) in (1, 9)
        # each failure names itself, the path and the owner
        conflict_named += bool(errors) and all(
            re.search(r"p\d 1\.0 would overwrite \S*common\.h, which 'p\d'", e) for e in errors)
        site = next((prefix / "lib").glob("python3*/site-packages"))
        content = (site / "ns/shared/include/common.h").read_bytes()
        torn += content not in (b"#define COMMON 1\n", b"#define COMMON 2\n")
        print(f"round {round_ + 1}/{args.rounds}: failures {failures}, incomplete {incomplete}, "
              f"import failures {import_failures}, conflict errors {conflict_errors}, torn {torn}", flush=True)
    elapsed = time.time() - started
    rows = [
        ("rounds (16 concurrent installs of 10 wheels sharing files)", str(args.rounds)),
        ("failed installs", str(failures)),
        ("incomplete files", str(incomplete)),
        ("rounds where an import failed", str(import_failures)),
        ("conflicting rounds that failed as they must (p9 alone, or the nine others)",
         f"{conflict_errors} of {args.rounds}"),
        ("... whose every error names both packages and the path", f"{conflict_named} of {args.rounds}"),
        ("torn shared file", str(torn)),
        ("wall time", f"{elapsed:.0f} s"),
    ]
    table = "\n".join(["| measure | result |", "| --- | ---: |"] + [f"| {a} | {b} |" for a, b in rows])
    print(table)
    ok = failures == incomplete == import_failures == torn == 0 and conflict_errors == conflict_named == args.rounds
    if not args.no_readme:
        write_section("stress_install",
                      f"## Stress: concurrent installs sharing files\n\n"
                      f"`.venv/bin/python bench/stress_install.py --rounds {args.rounds}` "
                      f"(nproc {os.cpu_count()}, Python {sys.version.split()[0]}): {'PASS' if ok else 'FAIL'}.\n\n"
                      f"{table}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
