#!/usr/bin/env python3
"""The recipe-authoring trial of issue #23: ten real projects added with one command each and
built in one ``make`` run, with zero hand edits.

For each project: ``./sage --package create NAME --pypi --with-deps --type standard`` in a fresh
clone of this repository (its default distribution already built there); then one ``make -jN
build`` builds them all; then each is imported with the prefix's Python and ``pip check`` runs in
the prefix. Nothing is edited by hand between the steps: "hand edits" counts the edits this
script would have needed, which is always 0 here (a failure is reported, not patched).

Usage (network through the index pip is configured with; ~10 minutes on 2 cores):

    .venv/bin/python bench/create_trial.py [--jobs 2] [--workdir DIR] [--keep] [--no-readme]

Writes the table to its section of bench/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_spine import machine_facts  # bench/ is on sys.path
from readme_section import write_section

REPO = Path(__file__).resolve().parents[1]

#: (project on the index, module to import, its build backends as the issue lists them)
PROJECTS = [
    ("rich", "rich", "poetry-core"),
    ("cleo", "cleo", "poetry-core"),
    ("httpx", "httpx", "hatchling + hatch-fancy-pypi-readme"),
    ("black", "black", "hatchling + hatch-vcs + hatch-fancy-pypi-readme"),
    ("platformdirs", "platformdirs", "hatchling + hatch-vcs"),
    ("pytest", "pytest", "setuptools + setuptools_scm"),
    ("python-dateutil", "dateutil", "setuptools + setuptools_scm"),
    ("flask", "flask", "flit_core"),
    ("trio", "trio", "setuptools"),
    ("unearth", "unearth", "pdm-backend"),
]


def run(command: list[str], cwd: Path, log: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    with log.open("a") as stream:
        stream.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n(exit {result.returncode})\n")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="where the clone goes (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the clone")
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sage-create-trial-"))
    clone = work / "clone"
    log = work / "trial.log"
    work.mkdir(parents=True, exist_ok=True)
    if clone.exists():
        shutil.rmtree(clone)
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    upstream = REPO / "upstream"
    if upstream.is_dir():  # the default distribution's files, already verified once: no need to download again
        shutil.copytree(upstream, clone / "upstream", dirs_exist_ok=True)
    print(f"building the default distribution in {clone} ...", flush=True)
    base = run(["make", f"-j{args.jobs}", "build"], clone, log)
    if base.returncode != 0:
        print(f"the default distribution did not build; see {log}", file=sys.stderr)
        return 1

    rows = []
    decisions: list[str] = []   # what create decided on its own: releases passed over, platform wheels
    created_total: list[str] = []
    for project, module, backends in PROJECTS:
        before = {p.name for p in (clone / "build/pkgs").iterdir()}
        result = run(["./sage", "--package", "create", project, "--pypi", "--with-deps", "--type", "standard"],
                     clone, log)
        created = sorted({p.name for p in (clone / "build/pkgs").iterdir()} - before)
        decisions += [f"{project}: {line.strip()}" for line in (result.stdout + result.stderr).splitlines()
                      if "trying an older release" in line or "(Rust)" in line]
        created_total += created
        rows.append({"project": project, "module": module, "backends": backends, "created": created,
                     "create_ok": result.returncode == 0 or "exists already" in result.stderr,
                     "create_error": result.stderr.strip().splitlines()[-1:] if result.returncode else []})
        print(f"{project}: created {len(created)} recipe(s): {', '.join(created) or '-'}"
              + ("" if rows[-1]["create_ok"] else f"  FAILED: {rows[-1]['create_error']}"), flush=True)

    start = time.monotonic()
    build = run(["make", f"-j{args.jobs}", "-k", "build"], clone, log)
    build_seconds = time.monotonic() - start
    python = clone / "local" / "bin" / "python3"
    for row in rows:
        imported = subprocess.run([str(python), "-c", f"import {row['module']}"], capture_output=True, text=True)
        row["imports"] = imported.returncode == 0
        row["import_error"] = imported.stderr.strip().splitlines()[-1:] if imported.returncode else []
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)

    lines = [
        "## Adding packages: ten real projects with `create --pypi --with-deps` (bench/create_trial.py)",
        "",
        "Issue #23 item 6. In a fresh clone with the default distribution built: one `./sage --package",
        "create NAME --pypi --with-deps --type standard` per project, then one `make -j"
        f"{args.jobs} -k build`, then `import` of each and `pip check`. No hand edits between the steps.",
        "",
        "| project | build backends | recipes created (with its dependencies) | created | built and imports | hand edits |",
        "| --- | --- | --- | --- | --- | ---: |",
    ]
    for row in rows:
        created = ", ".join(row["created"]) or "(all present already)"
        imports = "yes" if row["imports"] else f"no: {' '.join(row['import_error'])}"
        made = "yes" if row["create_ok"] else f"no: {' '.join(row['create_error'])}"
        lines.append(f"| {row['project']} | {row['backends']} | {created} | {made} | {imports} | 0 |")
    ok = sum(1 for row in rows if row["imports"])
    lines += [
        "",
        f"- {len(created_total)} recipes created in all; `make -j{args.jobs} -k build` of them: exit"
        f" {build.returncode}, {build_seconds:.0f} s; {ok} of {len(rows)} projects import.",
        f"- `pip check` in the prefix: {check.stdout.strip() or check.stderr.strip() or 'clean'}"
        f" (exit {check.returncode}).",
        "- What `create` decided on its own (releases passed over as pip's resolver backtracks,"
        " Rust projects taken as platform wheels):",
        *[f"  - {line}" for line in decisions or ["nothing"]],
        "- Machine: " + "; ".join(f"{k}: {v}" for k, v in machine_facts().items()),
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_readme:
        write_section("create-trial", text)
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work} (log: {log})")
    return 0 if ok == len(rows) and build.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
