"""A generated plan run on this machine as CI would run it (#21 item 3): N separate copies of the
tree ("runners"), each with its own prefix, run the plan's jobs wave by wave against one binary
cache, each job as a CI job runs it (the same :func:`sage_build.ci.jobs.job_script` lines).

A runner keeps its copy across jobs, as a shell runner keeps its build directory; jobs of a wave
are dealt to the runners in turn, so a job mostly finds its dependencies only in the cache.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from sage_build.base.errors import SageBuildError
from sage_build.ci.jobs import Setup, job_script
from sage_build.ci.plan import Plan

#: Top-level entries of a tree that a runner does not copy: what a build makes, and downloads
#: (the runners share the tree's upstream/ through --upstream-dir, as CI shares a download cache).
NOT_COPIED = frozenset({"local", "logs", "upstream", ".git", ".venv", "var", "__pycache__", ".pytest_cache"})


@dataclass(frozen=True)
class JobResult:
    packages: tuple[str, ...]
    wave: int
    runner: int
    status: int
    seconds: float
    log: Path


def make_runner(source: Path, runner: Path) -> Path:
    """A copy of the tree ``source`` at ``runner`` (without its builds and downloads), as a CI
    checkout is a copy of the repository: its own configuration, its own prefix."""
    if runner.exists():
        raise SageBuildError(f"{runner} exists: run-local makes its runners afresh; remove it or name another --work-dir")

    def ignore(directory: str, names: list[str]) -> set[str]:
        if Path(directory) == source:
            return {n for n in names if n in NOT_COPIED}
        if Path(directory) == source / "build" / "make":
            return {n for n in names if n not in ("Makefile.in",)}   # what configure writes, not the tree's
        return {n for n in names if n == "__pycache__"}

    shutil.copytree(source, runner, symlinks=True, ignore=ignore)
    return runner


def run_plan(plan: Plan, setup: Setup, runners: list[Path], environ: Mapping[str, str], *,
             on_line: Callable[[str], None] = lambda line: None) -> list[JobResult]:
    """Run the plan's jobs wave by wave, a wave's jobs shared among ``runners`` (one job at a time
    on each, the runners at once); a failed job does not stop the others (fail-fast off), its
    dependents then fail for want of it in the cache.  ``environ``: the jobs' environment (the
    cache's variables), to which each runner adds its SAGE_ROOT."""
    results: list[JobResult] = []
    for number, wave in enumerate(plan.waves(), start=1):
        shares: list[list[str]] = [wave[k::len(runners)] for k in range(len(runners))]
        on_line(f"wave {number}: {len(wave)} job(s) on {sum(1 for s in shares if s)} runner(s)")

        def run_share(index: int) -> list[JobResult]:
            done = []
            for package in shares[index]:
                done.append(_run_job(setup, runners[index], index + 1, number, [package], environ))
                on_line(_describe(done[-1]))
            return done

        with ThreadPoolExecutor(max_workers=len(runners)) as pool:
            for found in pool.map(run_share, range(len(runners))):
                results.extend(found)
    return results


def check_fresh(setup: Setup, runner: Path, packages: list[str], environ: Mapping[str, str]) -> JobResult:
    """A fresh runner takes ``packages`` and all they need from the cache, building nothing (its
    jobs in ``only`` mode: a miss is an error)."""
    return _run_job(setup, runner, 0, 0, packages, environ, only=True)


def _run_job(setup: Setup, runner: Path, index: int, wave: int, packages: list[str],
             environ: Mapping[str, str], *, only: bool = False) -> JobResult:
    log = runner / "logs" / "ci-jobs" / f"{'+'.join(packages)[:100]}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    script = "set -e\n" + "\n".join(job_script(setup, packages, only=only)) + "\n"
    start = time.monotonic()
    with open(log, "wb") as output:
        status = subprocess.run(["bash", "-c", script], cwd=runner, stdout=output, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=dict(environ, SAGE_ROOT=str(runner))).returncode
    return JobResult(tuple(packages), wave, index, status, time.monotonic() - start, log)


def _describe(result: JobResult) -> str:
    outcome = "ok" if result.status == 0 else f"FAILED (exit {result.status}; log {result.log})"
    return f"  runner {result.runner}: {' '.join(result.packages)} {outcome} in {result.seconds:.1f}s"
