"""``./sage --ci``: CI pipelines generated from the dependency graph (issue #21), and the jobs they run.

  ./sage --ci generate github|gitlab [PKG...] [--cache URL] [--push] [-o FILE]
  ./sage --ci generate gitlab-parent [-o FILE]     the jobs of .gitlab-ci.yml that run the child pipeline
  ./sage --ci plan github --waves N [--push] [PKG...]   the plan job's outputs (GitHub's $GITHUB_OUTPUT)
  ./sage --ci job [--read-only|--only] PKG...      one job: dependencies from the cache, PKG built
  ./sage --ci run-local --runners N --cache URL [PKG...]   run the plan here as CI would: N copies of
                                                   the tree, wave by wave, then a fresh copy that
                                                   must take everything from the cache

(and ./sage --cache index URL: cache_index_main, called by face.cache_command)
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Callable

from sage_build.base.atomic import write_atomic
from sage_build.base.errors import SageBuildError
from sage_build.ci import github, gitlab
from sage_build.ci.jobs import CACHE_VARIABLE, PUSH_VARIABLE, Setup, configure_args_of
from sage_build.ci.plan import Plan, closure, make_plan
from sage_build.configure.build_plan import BuildState, build_state
from sage_build.configure.config import load_config
from sage_build.face import settings
from sage_build.recipes.names import resolve, unknown_package_message

USAGE = __doc__.split("\n\n")[1] + "\n"


def ci_main(argv: list[str]) -> int:
    """Dispatch ``./sage --ci SUBCOMMAND``; errors are SageBuildError for cli.py to print."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "generate":
        return _generate(rest)
    if command == "plan":
        return _plan(rest)
    if command == "job":
        return _job(rest)
    if command == "run-local":
        return _run_local(rest)
    raise SageBuildError(f"unknown ./sage --ci command {command!r}; one of generate, plan, job, run-local"
                         " (./sage --ci --help)")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are ours (a message and what to do), not a usage dump and exit 2."""

    def error(self, message: str):  # type: ignore[override]
        raise SageBuildError(f"{self.prog}: {message} ({self.prog} --help)")


def _state_and_targets(names: list[str]) -> tuple[BuildState, list[str]]:
    config = load_config(settings.sage_root())
    state = build_state(config)
    targets = []
    for given in names:
        name = resolve(given, state.graph.packages)
        if name is None:
            raise SageBuildError(unknown_package_message(given, state.graph.packages, "build/pkgs"))
        targets.append(name)
    return state, targets


def _cache_lookup(state: BuildState, targets: list[str], urls: str | None) -> Callable[[str], bool]:
    """Whether a package's key (as a build here would compute it) is in one of the caches ``urls``."""
    if not urls:
        return lambda name: False
    from sage_build.cache.key import package_keys, target_of
    from sage_build.ci.lookup import cached_packages

    config = load_config(settings.sage_root())
    keys = package_keys(config, state.graph, target_of(config), os.environ, enabled=state.enabled, names=targets)
    found = cached_packages({name: key.candidates for name, key in keys.items()}, urls.split())
    return found.__contains__


def _compute_plan(state: BuildState, targets: list[str], cache: str | None) -> Plan:
    targets = targets or sorted(state.enabled)
    return make_plan(state.graph, targets, _cache_lookup(state, targets, cache),
                     enabled=state.enabled, built=state.built)


def _write(text: str, output: str | None) -> None:
    if output in (None, "-"):
        sys.stdout.write(text)
    else:
        path = Path(output)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text.encode())
        except OSError as error:
            raise SageBuildError(f"cannot write {path}: {error.strerror}; name a file in a writable directory"
                                 " with -o, or leave -o out for standard output") from None
        print(f"wrote {path}", file=sys.stderr)


def _generate(argv: list[str]) -> int:
    parser = _Parser(prog="./sage --ci generate", description="Write a CI pipeline that builds the"
                     " packages whose key the binary cache lacks.")
    parser.add_argument("service", choices=("github", "gitlab", "gitlab-parent"))
    parser.add_argument("packages", nargs="*", metavar="PKG", help="these and their dependencies (default: all enabled)")
    parser.add_argument("--cache", default=os.environ.get(CACHE_VARIABLE) or None,
                        help=f"the binary cache's URL (default: ${CACHE_VARIABLE})")
    parser.add_argument("--push", action="store_true", help="the jobs push what they build (protected branches only)")
    parser.add_argument("-o", "--output", help="the file to write (default: standard output)")
    parser.add_argument("--image", help="GitLab: the jobs' image")
    parser.add_argument("--runs-on", default="ubuntu-latest", help="GitHub: the jobs' runner label")
    parser.add_argument("--configure-args", help="./configure.py's arguments in the jobs"
                        " (default: this tree's last configure call, without its prefix)")
    args = parser.parse_intermixed_args(argv)
    root = settings.sage_root()
    if args.service == "gitlab-parent":
        _write(gitlab.render(gitlab.parent_jobs(image=args.image)), args.output)
        return 0
    state, targets = _state_and_targets(args.packages)
    config = load_config(root)
    try:
        configure_args = (("--quiet", *shlex.split(args.configure_args)) if args.configure_args is not None
                          else configure_args_of(config.argv, root))
    except ValueError as error:   # shlex: an unbalanced quote
        raise SageBuildError(f"--configure-args {args.configure_args!r}: {error}; quote it as a shell would") from None
    setup = Setup(configure_args=configure_args, cache=args.cache, push=args.push, image=args.image,
                  runs_on=args.runs_on, targets=tuple(targets))
    if args.service == "gitlab":
        plan = _compute_plan(state, targets, args.cache)
        header = (f"# ./sage --ci generate gitlab: {len(plan.missing)} of {plan.considered} packages to build,"
                  f" {len(plan.cached)} in the binary cache, {plan.wave_count} waves\n")
        _write(gitlab.render(gitlab.child_pipeline(plan, setup), header=header), args.output)
    else:
        # the workflow is static: a wave job for each dependency level, whatever is cached today
        full = make_plan(state.graph, targets or sorted(state.enabled), lambda name: False,
                         enabled=state.enabled, built=state.built)
        header = (f"# ./sage --ci generate github: {full.wave_count} waves for {full.considered} packages;"
                  " generate it again when the recipes' dependencies change\n")
        _write(github.render(github.workflow(full.wave_count, setup), header=header), args.output)
    return 0


def _plan(argv: list[str]) -> int:
    parser = _Parser(prog="./sage --ci plan", description="The plan job's outputs: one matrix per wave.")
    parser.add_argument("service", choices=("github",))
    parser.add_argument("packages", nargs="*", metavar="PKG")
    parser.add_argument("--waves", type=int, required=True, help="the workflow's number of waves")
    parser.add_argument("--cache", default=os.environ.get(CACHE_VARIABLE) or None)
    parser.add_argument("--push", action="store_true")
    args = parser.parse_intermixed_args(argv)
    state, targets = _state_and_targets(args.packages)
    plan = _compute_plan(state, targets, args.cache)
    for name, value in github.plan_outputs(plan, args.waves, push=args.push).items():
        print(f"{name}={value}")
    print(f"sage: {len(plan.missing)} of {plan.considered} packages to build, {len(plan.cached)} in the cache",
          file=sys.stderr)
    return 0


def _job(argv: list[str]) -> int:
    parser = _Parser(prog="./sage --ci job", description="Build packages as a CI job does: their dependencies"
                     " from the binary cache only, the packages themselves built (and pushed).")
    parser.add_argument("packages", nargs="+", metavar="PKG")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--read-only", action="store_true",
                      help="build dependencies missing from the cache too, and push nothing")
    mode.add_argument("--only", action="store_true",
                      help="the packages too from the cache: build nothing (a miss is an error)")
    args = parser.parse_intermixed_args(argv)
    from sage_build.face.cli import run_make

    state, targets = _state_and_targets(args.packages)
    env = dict(os.environ)
    if args.only:
        return run_make(targets, env=dict(env, SAGE_BINARY_CACHE_MODE="only"))
    if args.read_only:
        env.pop(PUSH_VARIABLE, None)
        print(f"sage: read-only job: building {' '.join(targets)} and what the cache lacks; pushing nothing",
              flush=True)
        return run_make(targets, env=dict(env, SAGE_BINARY_CACHE_MODE="auto"))
    dependencies = [n for n in closure(state.graph, targets, state.enabled)
                    if n in state.built and n not in targets]
    if dependencies:
        print(f"sage: {len(dependencies)} dependencies from the binary cache (only)", flush=True)
        status = run_make(dependencies, env=dict(env, SAGE_BINARY_CACHE_MODE="only"))
        if status:
            print(f"sage: error: a dependency of {' '.join(targets)} could not be had from the binary cache;"
                  " see above (was its job successful?)", file=sys.stderr)
            return status
    return run_make(targets, env=dict(env, SAGE_BINARY_CACHE_MODE="auto"))


def _run_local(argv: list[str]) -> int:
    import tempfile

    from sage_build.base.layout import tool_root
    from sage_build.ci.local import check_fresh, make_runner, run_plan

    parser = _Parser(prog="./sage --ci run-local", description="Run the plan as CI would: N copies of the tree"
                     " ('runners', each its own prefix) run its jobs wave by wave against one binary cache;"
                     " then a fresh copy must take everything from the cache.")
    parser.add_argument("packages", nargs="*", metavar="PKG")
    parser.add_argument("--runners", type=int, default=3)
    parser.add_argument("--cache", default=os.environ.get(CACHE_VARIABLE) or None,
                        help="the binary cache, read and pushed to (e.g. file:///var/cache/sage)")
    parser.add_argument("--work-dir", help="where the runners' copies go (default: a new temporary directory)")
    parser.add_argument("--no-verify", action="store_true", help="leave out the fresh copy's check")
    args = parser.parse_intermixed_args(argv)
    if not args.cache:
        raise SageBuildError("./sage --ci run-local: name the binary cache the runners share: --cache file:///DIR")
    if not 1 <= args.runners <= 64:
        raise SageBuildError(f"./sage --ci run-local: --runners {args.runners}: give 1 to 64 runners")
    root = settings.sage_root()
    config = load_config(root)
    state, targets = _state_and_targets(args.packages)
    plan = _compute_plan(state, targets, args.cache)
    tool = tool_root()
    upstream = settings.layout_of(config).upstream
    setup = Setup(configure_args=(*configure_args_of(config.argv, root), f"--upstream-dir={upstream}"),
                  sage=shlex.join([sys.executable, str(tool / "sage")]),
                  configure=shlex.join([sys.executable, str(tool / "configure.py")]))
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="sage-ci-runners-"))
    print(f"sage: {len(plan.missing)} of {plan.considered} packages to build in {plan.wave_count} waves"
          f" on {args.runners} runners in {work}", flush=True)
    runners = [make_runner(root, work / f"runner-{k}") for k in range(1, args.runners + 1)]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    env.update({CACHE_VARIABLE: args.cache, PUSH_VARIABLE: args.cache})
    results = run_plan(plan, setup, runners, env, on_line=lambda line: print(line, flush=True))
    failed = [r for r in results if r.status]
    print(f"sage: {len(results) - len(failed)} job(s) ok, {len(failed)} failed", flush=True)
    if failed or args.no_verify:
        return 1 if failed else 0
    fresh = make_runner(root, work / "fresh")
    check = check_fresh(setup, fresh, targets or sorted(state.enabled), env)
    if check.status:
        print(f"sage: error: a fresh copy could not take everything from the cache (log {check.log})", file=sys.stderr)
        return 1
    print(f"sage: a fresh copy ({fresh / 'local'}) took all {plan.considered} packages from the cache", flush=True)
    return 0


def cache_index_main(argv: list[str]) -> int:
    """``./sage --cache index URL``: the cache's pip index, rebuilt (its place: ./sage --cache)."""
    from sage_build.cache.store import DirectoryStore, display_url, open_store
    from sage_build.ci.index import INDEX, build_index, index_url

    parser = _Parser(prog="./sage --cache index", description="Write a pip index (PEP 503 simple pages, PEP 691"
                     " JSON, PEP 658 metadata) of the binary cache's wheels into the cache, one per configuration.")
    parser.add_argument("url", help="the binary cache (file:///dir, /dir, s3://bucket/prefix)")
    args = parser.parse_intermixed_args(argv)
    if not args.url:
        raise SageBuildError("./sage --cache index: name the cache's URL (in CI: $SAGE_BINARY_CACHE_PUSH is empty"
                             " here, so this job cannot write the cache)")
    cache = settings.cache_settings(os.environ)
    store = open_store(args.url)
    result = build_index(store, None if cache.unsigned else list(cache.trusted_keys))
    for problem in result.skipped:
        print(f"sage: warning: left out of the index: {problem}", file=sys.stderr)
    if not result.configurations:
        print(f"{display_url(args.url)}: no wheels in the cache yet; wrote an empty {INDEX}/index.html")
    for configuration, count in sorted(result.configurations.items()):
        where = (index_url(store.root, configuration) if isinstance(store, DirectoryStore)
                 else f"{display_url(args.url).rstrip('/')}/{INDEX}/{configuration}/simple/")
        print(f"{configuration}: {count} wheels; pip install --index-url {where} NAME")
    return 0
