"""Watching a build: live progress, the failure summary and the timeline, all from the build events.

``sage-progress MAKE ARGS...`` runs make (sharing its jobserver) and follows
``logs/events.jsonl``: on a terminal a tqdm display (done/total, what builds now
and in which phase, elapsed and estimated time left); otherwise plain
timestamped lines: one a package and outcome (built, failed, with its time), or with ``V=1``
every phase and every line of every build.  Afterwards the failure summary comes from the events of
this build (what actually failed), never from grepping logs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sage_build.base import events
from sage_build.base.events import rotate_events
from sage_build.base.layout import TreeLayout
from sage_build.face import settings

# Imports stay light here: a build with nothing to do must cost little more than make.

_ERROR_LINE = re.compile(r"(?i)(error|fail|traceback|exception|no such file|not found|undefined reference)")


@dataclass
class Progress:
    """The state of one build session, folded from its events."""

    planned: list  # of plan.PlanItem
    started: float = field(default_factory=time.time)
    running: dict[str, str] = field(default_factory=dict)   # package -> phase
    done: set[str] = field(default_factory=set)
    failed: dict[str, dict] = field(default_factory=dict)   # package -> the failing end event
    began: dict[str, float] = field(default_factory=dict)   # package -> when its first phase started

    def total(self) -> int:
        """Planned packages, and any that started before the plan was known (the plan is made
        beside make and may miss what already finished, such as the prefix's venv)."""
        return len({p.name for p in self.planned} | self.done | set(self.failed) | set(self.running))

    def apply(self, event: dict) -> None:
        name = event.get("package", "?")
        if event.get("event") == events.START:
            self.running[name] = event.get("phase", "?")
            self.began.setdefault(name, float(event.get("time", time.time())))
        elif event.get("event") == events.END:
            if event.get("outcome") == events.FAILED:
                self.failed[name] = event
                self.running.pop(name, None)
            elif event.get("phase") == events.RECORD:
                self.done.add(name)
                self.running.pop(name, None)

    def seconds_left(self, jobs: int, now: float, dependencies=None) -> float | None:
        """The time left, from how long each package took before (the plan's estimates; a package
        never built counts as the median of those known): the work left spread over ``jobs``, but
        never less than the longest chain of packages left (``dependencies(name)``: what a
        package needs; without it, the longest single package). None while nothing is known."""
        known = sorted(p.estimate for p in self.planned if p.estimate)
        if not known:
            return None
        typical = known[len(known) // 2]
        finished = self.done | set(self.failed)
        left: dict[str, float] = {}
        for item in self.planned:
            if item.name in finished:
                continue
            expected = item.estimate or typical
            if item.name in self.began:
                expected = max(0.0, expected - (now - self.began[item.name]))
            left[item.name] = expected
        if not left:
            return 0.0
        return max(sum(left.values()) / max(1, jobs), _longest_chain(left, dependencies))

    def took(self, event: dict) -> float:
        """Seconds from the package's first phase to ``event``, an end."""
        end = float(event.get("time", time.time()))
        return end - self.began.get(str(event.get("package")), float(event.get("start", end)))


def _longest_chain(left: dict[str, float], dependencies) -> float:
    """The longest chain of dependent packages among ``left`` (name -> seconds), by seconds."""
    if dependencies is None:
        return max(left.values())
    chain: dict[str, float] = {}
    for start in left:
        stack = [(start, False)]
        while stack:   # depth first without recursion: a tree may chain hundreds of packages
            name, expanded = stack.pop()
            if name in chain:
                continue
            needs = [d for d in dependencies(name) if d in left and d != name]
            if expanded:
                chain[name] = left[name] + max((chain.get(d, 0.0) for d in needs), default=0.0)
                continue
            stack.append((name, True))
            stack.extend((d, False) for d in needs if d not in chain)
    return max(chain.values())


def _follow(events_file: Path, offset: int, session: str, stop: threading.Event, handle_event) -> None:
    """Call ``handle_event`` for each new event of this session until ``stop`` is set (and once more)."""
    position = offset
    while True:
        finished = stop.is_set()
        try:
            with open(events_file, encoding="utf-8", errors="replace") as stream:
                stream.seek(position)
                while True:
                    line = stream.readline()
                    if not line.endswith("\n"):
                        break  # a line still being written: read it next time
                    position += len(line.encode())
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if event.get("session") == session:
                        handle_event(event)
        except FileNotFoundError:
            pass
        if finished:
            return
        stop.wait(0.2)


def _jobserver_fds(makeflags: str) -> tuple[int, ...]:
    match = re.search(r"--jobserver-(?:auth|fds)=(\d+),(\d+)", makeflags)
    return (int(match.group(1)), int(match.group(2))) if match else ()


class _Display:
    """What the person watching sees: a tqdm bar on a terminal, else timestamped lines: one a
    package and outcome, or (``verbose``, V=1) one a phase as well."""

    def __init__(self, terminal: bool, out, verbose: bool = False, jobs: int = 1) -> None:
        self.terminal, self.out, self.verbose, self.jobs = terminal, out, verbose, jobs
        self.bar = None
        self.dependencies = None   # the graph's, once the plan is known: the ETA's critical path

    def above(self, line: str) -> None:
        """A line of make's own output (its errors) above the bar, never written across it."""
        if self.bar is not None:
            self.bar.write(line, file=self.out)
        else:
            print(line, file=self.out, flush=True)

    def show(self, state: Progress, event: dict | None) -> None:
        if self.terminal:
            self._show_bar(state, event)
        elif event is not None:
            self._print_line(state, event)

    def _show_bar(self, state: Progress, event: dict | None) -> None:
        if self.bar is None and (event is not None or state.planned):
            from tqdm import tqdm

            # a terminal that reports no width (a pty of 0 columns, some CI consoles) still gets a bar
            width = _columns(self.out)
            self.bar = tqdm(total=state.total(), unit="pkg", file=self.out, dynamic_ncols=width > 0,
                            ncols=None if width > 0 else 80,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        if self.bar is None:
            return
        if event is not None and event.get("event") == events.END:
            # what finished stays in the scrollback, above the bar
            if event.get("outcome") == events.FAILED:
                self.bar.write(f"FAILED {event.get('package')}-{event.get('version')} in phase"
                               f" '{event.get('phase')}' after {state.took(event):.1f}s", file=self.out)
            elif event.get("phase") == events.RECORD:
                done = "cached" if event.get("cache") else "built "  # pulled from a binary cache (#20)
                untested = " (tests not run: from the binary cache)" if event.get("check") else ""
                self.bar.write(f"{done} {event.get('package')}-{event.get('version')}"
                               f" in {state.took(event):.1f}s{untested}", file=self.out)
        if self.bar.total != state.total():
            self.bar.total = state.total()
        self.bar.n = len(state.done)
        now = ", ".join(f"{n} ({p})" for n, p in sorted(state.running.items()))
        failed = f"{len(state.failed)} failed; " if state.failed else ""
        self.bar.set_description_str(f"{failed}building: {now}" if now else f"{failed}building", refresh=False)
        left = state.seconds_left(self.jobs, time.time(), self.dependencies)
        self.bar.set_postfix_str("" if left is None else f"about {_duration(left)} left", refresh=False)
        self.bar.refresh()

    def _print_line(self, state: Progress, event: dict) -> None:
        stamp = time.strftime("%H:%M:%S")
        what = f"{event.get('package')}-{event.get('version')}"
        total = f"/{state.total()}" if state.planned else ""
        if not self.verbose:
            if event.get("outcome") == events.FAILED:
                print(f"[{stamp}] {what}: FAILED in phase '{event.get('phase')}' after {state.took(event):.1f}s"
                      f" (log: {event.get('log')})", file=self.out, flush=True)
            elif event.get("event") == events.END and event.get("phase") == events.RECORD:
                done = "from the binary cache" if event.get("cache") else "built"
                untested = ", tests not run: from the binary cache" if event.get("check") else ""
                print(f"[{stamp}] {what}: {done} in {state.took(event):.1f}s{untested} ({len(state.done)}{total})",
                      file=self.out, flush=True)
        elif event.get("event") == events.START:
            print(f"[{stamp}] {what}: {event.get('phase')} ...", file=self.out, flush=True)
        elif event.get("outcome") == events.FAILED:
            print(f"[{stamp}] {what}: {event.get('phase')} FAILED", file=self.out, flush=True)
        elif event.get("phase") == events.RECORD:
            print(f"[{stamp}] {what}: installed ({len(state.done)}{total})", file=self.out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _jobs(make_command: list[str], environ) -> int:
    """make's -jN from its command line, else the job budget an outer make gives (makeflags)."""
    from sage_build.base.makeflags import job_budget

    for word in reversed(make_command[1:]):
        match = re.fullmatch(r"-j\s*(\d+)|--jobs=(\d+)", word)
        if match:
            return int(match.group(1) or match.group(2))
    return job_budget(environ)


def _columns(out) -> int:
    """The terminal's width as it reports it (0 when it reports none)."""
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


class _PlanBesideMake:
    """The build's plan, made in a thread once (only when something is built: a build with
    nothing to do costs what make costs), written for sage-spkg's reasons, handed to the display."""

    def __init__(self, planner, plan_file: Path, on_plan) -> None:
        self.planner, self.plan_file, self.on_plan = planner, plan_file, on_plan
        self.graph = self.layout = None
        self._thread = threading.Thread(target=self._plan, daemon=True)
        self._started = False

    def start_once(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def wait(self) -> bool:
        """Wait for the plan (starting it if nothing did); whether one was made."""
        self.start_once()
        self._thread.join()
        return self.graph is not None

    def _plan(self) -> None:
        try:
            plan, graph, layout = self.planner()
        except Exception:  # the display is a nicety: never fail the build for it
            return
        self.plan_file.write_text(json.dumps({p.name: p.reason for p in plan}))
        self.graph, self.layout = graph, layout
        self.on_plan(plan)


def run(make_command: list[str], *, sage_root: Path, planner, terminal: bool | None = None,
        verbose: bool | None = None, out=sys.stdout) -> int:
    """Run make; ``planner()`` returns (plan, graph, layout) and runs beside make once the first
    package starts, so that a build with nothing to do costs no more than make itself.
    ``verbose`` (V=1): every line of every build, and no display."""
    verbose = settings.verbose() if verbose is None else verbose
    terminal = sys.stdout.isatty() and not verbose if terminal is None else terminal
    tree = TreeLayout(sage_root)
    events_file = tree.events_file
    events_file.parent.mkdir(parents=True, exist_ok=True)
    rotate_events(events_file)
    session = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    plan_file = tree.plan_file(session)
    offset = events_file.stat().st_size if events_file.exists() else 0
    env = {**os.environ, settings.SESSION: session, settings.PLAN: str(plan_file)}
    if terminal or not verbose:
        # the display (or one line a package) replaces the build's lines; they are in the logs
        env[settings.QUIET] = "1" if terminal else settings.QUIET_BUT_WARNINGS
        make_command = [make_command[0], "--silent", *make_command[1:]]  # the display says what runs
    state = Progress(planned=[])
    display = _Display(terminal, out, verbose, jobs=_jobs(make_command, os.environ))
    lock = threading.Lock()

    def on_plan(plan: list) -> None:
        with lock:
            state.planned = plan
            if beside.graph is not None:
                display.dependencies = _dependencies_of(beside.graph)
            display.show(state, None)

    beside = _PlanBesideMake(planner, plan_file, on_plan)

    def handle(event: dict) -> None:
        beside.start_once()
        with lock:
            state.apply(event)
            display.show(state, event)

    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(events_file, offset, session, stop, handle), daemon=True)
    follower.start()
    # On a terminal make's own messages ("*** Error 1") come through the display, above the bar.
    process = subprocess.Popen(make_command, env=env, pass_fds=_jobserver_fds(os.environ.get("MAKEFLAGS", "")),
                               stderr=subprocess.PIPE if terminal else None)
    relay = None
    if terminal:
        def relay_stderr() -> None:
            for raw in process.stderr:
                with lock:
                    display.above(raw.decode(errors="replace").rstrip("\n"))
        relay = threading.Thread(target=relay_stderr, daemon=True)
        relay.start()
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.wait()
        code = 130
    if relay is not None:
        relay.join()
    stop.set()
    follower.join()
    display.close()
    plan_file.unlink(missing_ok=True)
    if not state.done and not state.failed and code == 0:
        return 0  # nothing was built: no summary, no timeline
    timeline = _write_session_timeline(events_file, session, tree.timeline_file,
                                       _dependencies_of(beside.graph) if beside.wait() else None)
    if code != 0 or state.failed:
        if beside.wait():
            print(failure_summary(state, beside.graph, beside.layout), file=sys.stderr)
        return code or 1
    print(f"built {len(state.done)} package(s) in {time.time() - state.started:.0f}s; timeline: {timeline}",
          file=out)
    return 0


def _dependencies_of(graph):
    """A package's name -> the names it needs (the prefix's venv too), for the timeline's critical path."""
    def dependencies(name: str) -> list[str]:
        if name not in graph.packages:
            return []
        normal, order_only = graph.dependencies(name)
        return normal + order_only
    return dependencies


def _write_session_timeline(events_file: Path, session: str, timeline: Path, dependencies=None) -> Path:
    from sage_build.base.events import read_events
    from sage_build.face.timeline import write_timeline

    session_events = [e for e in read_events(events_file) if e.get("session") == session]
    if session_events:
        write_timeline(session_events, timeline, dependencies)
    return timeline


REASON_LINES = 12  # of a failure's reason in the summary; the rest is in the log


def _reason_lines(error: str, log: Path) -> list[str]:
    """Every line of a failure's reason (the requirement that is not met, the fetch sources
    tried ...), up to REASON_LINES, then where the rest is."""
    reason = [line for line in error.splitlines() if line.strip()]
    shown = [f"  {line}" for line in reason[:REASON_LINES]]
    if len(reason) > REASON_LINES:
        shown.append(f"  ... {len(reason) - REASON_LINES} more lines in {log}")
    return shown


def failure_summary(state: Progress, graph, layout, with_tail: bool = True) -> str:
    lines = ["", "=" * 72]
    if not state.failed:
        lines.append("make failed before any package failed (see its messages above).")
    for name, event in sorted(state.failed.items()):
        log = Path(event.get("log", ""))
        lines.append(f"FAILED: {name}-{event.get('version')} in phase '{event.get('phase')}'")
        if event.get("error"):
            lines += _reason_lines(event["error"], log)
        lines.append(f"  log: {log}")
        try:
            tail = log.read_text(errors="replace").splitlines()[-100:] if with_tail else []
        except OSError:
            tail = []
        for line in tail:
            marker = ">>" if _ERROR_LINE.search(line) else "  "
            lines.append(f"  {marker} {line}")
        lines.append(f"  reproduce: make {name}   (keep the build directory: ./sage -i -s {name})")
        lines.append("")
    failed = set(state.failed)
    skipped, not_started = [], []
    for item in state.planned:
        if item.name in state.done or item.name in failed:
            continue
        blockers = sorted(graph.closure([item.name]) & failed)
        (skipped if blockers else not_started).append((item.name, blockers))
    if skipped:
        lines.append("Not built because a dependency failed:")
        lines += [f"  {name} (needs {', '.join(blockers)})" for name, blockers in skipped]
    if not_started:
        lines.append("Not built because make stopped (make -k build, or ./sage -i --keep-going, builds them):")
        lines += [f"  {name}" for name, _ in not_started]
    lines.append("=" * 72)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``sage-progress MAKE [ARGS...] TARGET...``, as the top-level Makefile runs it."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: sage-progress MAKE [MAKE ARGS...] [TARGETS...]", file=sys.stderr)
        return 2
    from sage_build.base.makeflags import make_dry_run

    if make_dry_run(os.environ):
        # make -n, -q, -t: nothing builds, so nothing to show; make's own answer is the answer
        return subprocess.run(argv).returncode
    targets = [a for a in argv[1:] if not a.startswith("-") and "=" not in a and "/" not in a]
    return run(argv, sage_root=settings.sage_root(), planner=lambda: plan_for(targets))


def plan_for(targets: list[str]):
    """(plan, graph, layout) of a build of ``targets`` ('build' = every enabled package)."""
    from sage_build.configure.config import load_config
    from sage_build.recipes.graph import PYTHON_PSEUDO
    from sage_build.configure.build_plan import PlanItem, build_state, make_plan

    config = load_config(settings.sage_root())
    layout = settings.layout_of(config)
    state = build_state(config)
    names: set[str] = set()
    # PKG-from-source (./sage -i of a package taken from the system) builds it anyway
    from_source = {t.removesuffix("-from-source") for t in targets if t.endswith("-from-source")}
    for target in targets or ["build"]:
        if target == "build":
            names |= state.enabled
        elif target in state.graph.packages:
            names.add(target)
    names |= from_source & set(state.graph.packages)
    forced = [name for name in settings.forced() if name in state.graph.packages]
    names |= set(forced)
    plan = make_plan(layout, state.graph, sorted(names), state.built | from_source, enabled=state.enabled,
                     reconfigured=state.reconfigured, forced=forced)
    if names and not layout.installed_stamps(PYTHON_PSEUDO):
        plan.insert(0, PlanItem(PYTHON_PSEUDO, config.python_version, "the prefix has no virtual environment yet", 1.0))
    return plan, state.graph, layout
