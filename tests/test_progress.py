"""Seeing the build: events, progress lines, failure summary, plan reasons, timeline, ordering."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from conftest import ROOT, add_recipe, make_sdist, python_recipe
from sage_build.base.events import record_event
from sage_build.base.events import read_events
from sage_build.face.timeline import write_timeline


def _progress(tree, *targets, jobs=1, extra_env=None):
    env = dict(tree.env, **(extra_env or {}))
    return subprocess.run(
        [str(ROOT / "build/bin/sage-progress"), "make", f"-j{jobs}", "-f", str(tree.root / "build/make/Makefile"),
         *targets], env=env, capture_output=True, text=True)


def _append_many(args):
    path, worker = args
    for i in range(200):
        record_event(path, package=f"p{worker}", phase="build", event="end", i=i, padding="x" * 500)
    return worker


def test_events_stay_whole_under_concurrency(tmp_path):
    path = tmp_path / "events.jsonl"
    with ProcessPoolExecutor(8) as pool:
        list(pool.map(_append_many, [(path, w) for w in range(8)]))
    lines = path.read_text().splitlines()
    assert len(lines) == 1600
    events = [json.loads(line) for line in lines]  # every line is whole JSON
    assert sorted({e["package"] for e in events}) == [f"p{w}" for w in range(8)]


def _tree_with_chain(tree):
    python_recipe(tree.root, "base", "1.0", {"base/__init__.py": ""})
    python_recipe(tree.root, "mid", "1.0", {"mid/__init__.py": ""}, deps="$(PYTHON) base")
    python_recipe(tree.root, "top", "1.0", {"top/__init__.py": ""}, deps="$(PYTHON) mid")
    python_recipe(tree.root, "side", "1.0", {"side/__init__.py": ""})
    tree.configure()


def test_plain_lines_and_timeline(tree):
    _tree_with_chain(tree)
    result = _progress(tree, "build", extra_env={"V": "1"})  # V=1: every phase, every build line
    assert result.returncode == 0, result.stderr
    stamped = re.compile(r"^\[\d\d:\d\d:\d\d\] ")  # plain mode: [HH:MM:SS] lines
    lines = [line for line in result.stdout.splitlines() if stamped.match(line)]
    assert any(line.endswith("base-1.0: build ...") for line in lines)
    assert "[base-1.0] --- build ---" in result.stdout
    # four packages and the prefix's virtual environment
    assert sum("installed (" in line for line in lines) == 5
    assert any(line.endswith("installed (5/5)") for line in lines)
    timeline = (tree.root / "logs/build-timeline.html").read_text()
    events = [e for e in read_events(tree.root / "logs/events.jsonl") if e.get("event") == "end"]
    assert timeline.count('class="bar"') == len(events)
    for event in events:
        assert f'data-package="{event["package"]}-{event["version"]}" data-phase="{event["phase"]}"' in timeline
    # the chain base -> mid -> top is the critical path
    for name in ("base-1.0", "mid-1.0", "top-1.0"):
        assert f'font-weight="bold" class="label">★ {name}' in timeline
    assert tree.sage("--timeline").stdout.strip() == str(tree.root / "logs/build-timeline.html")


def test_ci_log_is_one_line_a_package_with_warnings_and_a_summary_with_the_error(tree):
    # Off a terminal with V=0 (CI): one line a package and outcome, with its time; the warnings
    # stay; the summary carries the log's marked error lines.
    _tree_with_chain(tree)
    (tree.root / "build/pkgs/side/spkg-check.in").write_text("echo checking side; exit 1\n")
    python_recipe(tree.root, "broken", "1.0", {"broken/__init__.py": ""}, fail="boom in broken")
    tree.configure()
    result = _progress(tree, "-k", "build", extra_env={"SAGE_CHECK": "warn"})
    assert result.returncode != 0
    out = result.stdout
    # The total is known once the plan (made beside make) is; the first package may finish before.
    built = re.findall(r"^\[\d\d:\d\d:\d\d\] (\S+): built in \d+\.\ds \((\d)(/6)?\)$", out, re.M)
    assert sorted(name for name, _, _ in built) == sorted(
        ["base-1.0", "mid-1.0", "top-1.0", "side-1.0", next(n for n, _, _ in built if n.startswith("python"))])
    assert built[-1][2] == "/6"
    assert re.search(r"^\[\d\d:\d\d:\d\d\] broken-1.0: FAILED in phase 'build' after \d+\.\ds \(log: .*broken-1.0.log\)$",
                     out, re.M)
    assert ": build ..." not in out and "--- build ---" not in out  # no phases, no build lines
    assert "[side-1.0] Warning: Failures testing package side (ignored)" in out
    assert len(out.splitlines()) <= 8, out
    summary = result.stderr[result.stderr.index("=" * 72):]
    marked = [line for line in summary.splitlines() if line.strip().startswith(">>")]
    assert any("boom in broken" in line for line in marked)


def test_ci_summary_of_a_fetch_failure_lists_the_sources_tried(tree):
    python_recipe(tree.root, "gone", "1.0", {"gone/__init__.py": ""})
    (tree.root / "upstream/gone-1.0.tar.gz").unlink()
    tree.configure()
    result = _progress(tree, "build")
    assert result.returncode != 0
    summary = result.stderr[result.stderr.index("=" * 72):]
    assert "FAILED: gone-1.0 in phase 'fetch'" in summary
    reason = summary[summary.index("FAILED: gone-1.0"):summary.index("  log: ")]
    assert re.search(r"tried:\n  .*upstream.*not present", reason), summary


def test_failure_summary_lists_failed_and_skipped(tree):
    python_recipe(tree.root, "base", "1.0", {"base/__init__.py": ""}, fail="boom in base")
    python_recipe(tree.root, "mid", "1.0", {"mid/__init__.py": ""}, deps="$(PYTHON) base")
    python_recipe(tree.root, "side", "1.0", {"side/__init__.py": ""})
    tree.configure()
    result = _progress(tree, "-k", "build")
    assert result.returncode != 0
    summary = result.stderr[result.stderr.index("=" * 72):]
    assert "FAILED: base-1.0 in phase 'build'" in summary
    assert "logs/pkgs/base-1.0.log" in summary
    assert "reproduce: make base" in summary
    assert "Not built because a dependency failed:\n  mid (needs base)" in summary
    assert "side" not in summary  # make -k built it
    assert tree.stamp("side", "1.0").exists()


def test_failure_summary_with_display_highlights_the_error(tree):
    from sage_build.configure.config import load_config
    from sage_build.recipes.graph import Graph
    from sage_build.face.progress import Progress, failure_summary
    from sage_build.configure.build_plan import PlanItem
    from sage_build.recipes.recipe import load_packages

    python_recipe(tree.root, "base", "1.0", {"base/__init__.py": ""}, fail="boom in base")
    tree.configure()
    _progress(tree, "build")
    events = read_events(tree.root / "logs/events.jsonl")
    failed = [e for e in events if e.get("outcome") == "failed"][0]
    state = Progress(planned=[PlanItem("base", "1.0", "not installed", None)])
    state.apply(failed)
    graph = Graph.build(load_packages(tree.root / "build/pkgs"))
    text = failure_summary(state, graph, load_config(tree.root).layout(), with_tail=True)
    highlighted = [line for line in text.splitlines() if line.strip().startswith(">>")]
    assert any("boom in base" in line for line in highlighted)
    assert any("Error: the PEP 517 build" in line for line in highlighted)
    assert not any("--- fetch ---" in line for line in highlighted)


def test_plan_reasons(tree):
    _tree_with_chain(tree)
    out = tree.sage("--plan").stdout
    assert "base-1.0" in out and "not installed" in out
    assert out.index("base-1.0") < out.index("mid-1.0") < out.index("top-1.0")
    tree.make("build")
    assert "nothing to build" in tree.sage("--plan").stdout
    # recipe changed
    time.sleep(1.1)
    (tree.root / "build/pkgs/base/spkg-check").write_text("true\n")  # a build input (not SPKG.rst)
    subprocess.run([str(ROOT / "build/bin/sage-recipe-hash"), "base"], env=tree.env, check=True)
    out = tree.sage("--plan").stdout
    assert "base-1.0" in out and "recipe changed" in out
    assert "mid-1.0" in out and "a build dependency will be rebuilt (base)" in out
    tree.make("build")
    # a build dependency was rebuilt: rebuild base alone, then mid is out of date
    time.sleep(1.1)
    tree.make("base-no-deps")
    out = tree.sage("--plan", "mid").stdout
    assert "a build dependency was rebuilt (base)" in out
    tree.make("build")
    # version changed
    python_recipe(tree.root, "side", "2.0", {"side/__init__.py": ""})
    tree.configure()
    assert "version changed (1.0 -> 2.0)" in tree.sage("--plan").stdout
    # estimates come from past builds
    assert "~" in tree.sage("--plan").stdout


def test_learned_ordering_puts_long_chains_first(tree):
    python_recipe(tree.root, "aaa_quick", "1.0", {"aaa_quick/__init__.py": ""})
    python_recipe(tree.root, "slow_base", "1.0", {"slow_base/__init__.py": ""})
    python_recipe(tree.root, "slow_top", "1.0", {"slow_top/__init__.py": ""}, deps="$(PYTHON) slow_base")
    events = tree.root / "logs" / "events.jsonl"
    for name, seconds in (("aaa_quick", 1.0), ("slow_base", 50.0), ("slow_top", 60.0)):
        record_event(events, package=name, version="1.0", phase="build", event="end", outcome="ok",
                     duration=seconds, run=name)
    tree.configure()
    makefile = (tree.root / "build/make/Makefile").read_text()
    build_line = next(line for line in makefile.splitlines() if line.startswith("build:"))
    assert build_line.index("slow_base") < build_line.index("slow_top") < build_line.index("aaa_quick")


def _terminal_display_of_make_build(tree):
    """sage-progress's run() of `make build` in ``tree``, its terminal display written to a string."""
    import io

    from sage_build.face.progress import plan_for, run

    out = io.StringIO()
    old = dict(os.environ)
    os.environ.update(tree.env)
    try:
        code = run(["make", "-f", str(tree.root / "build/make/Makefile"), "build"], sage_root=tree.root,
                   planner=lambda: plan_for(["build"]), terminal=True, out=out)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return code, out


def test_terminal_display_shows_counts_and_running_packages(tree):
    _tree_with_chain(tree)
    code, out = _terminal_display_of_make_build(tree)
    assert code == 0
    text = out.getvalue()
    assert "5/5" in text
    assert "building: " in text and "(build)" in text
    assert "[base-1.0]" not in text  # the build's own lines stay in the logs


def _progress_on_a_pty(tree, *args, columns, extra_env=None):
    """sage-progress with a pty of ``columns`` columns as its terminal: what a person sees."""
    import fcntl
    import pty
    import struct
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = dict(tree.env, **(extra_env or {}))
    env.pop("COLUMNS", None)
    process = subprocess.Popen([str(ROOT / "build/bin/sage-progress"), "make", "-j2", "-f",
                                str(tree.root / "build/make/Makefile"), *args],
                               env=env, stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the pty's other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    return process.wait(), b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("columns", [80, 0])
def test_display_on_a_pty_keeps_a_line_a_package_and_counts_failures(tree, columns):
    _tree_with_chain(tree)
    python_recipe(tree.root, "broken", "1.0", {"broken/__init__.py": ""}, fail="boom in broken")
    tree.configure()
    code, text = _progress_on_a_pty(tree, "-k", "build", columns=columns)
    assert code != 0
    lines = [line.strip() for line in re.split(r"[\r\n]+", text)]
    for name in ("base-1.0", "mid-1.0", "top-1.0", "side-1.0"):
        assert any(re.fullmatch(rf"built  {name} in \d+\.\ds", line) for line in lines), text
    assert any(re.fullmatch(r"FAILED broken-1.0 in phase 'build' after \d+\.\ds", line) for line in lines), text
    assert "1 failed; building" in text
    assert "5/6" in text  # the bar, whatever width the terminal reports
    assert "boom in broken" in text  # the summary's marked lines


def test_display_of_a_forced_rebuild_has_a_total(tree):
    # ./sage -f PKG (SAGE_FORCE): the plan has the forced package, the bar a total (not 0/?).
    # Its build takes a second: the plan (made beside make) arrives while it runs, else a bar that
    # closed before the plan came would rightly show no time left (it failed 1 in 3 so).
    sdist = make_sdist(tree.root / "upstream", "solo", "1.0", {"solo/__init__.py": ""})
    add_recipe(tree.root, "solo", version="1.0", tarball=sdist,
               files={"spkg-install.in": "cd src\nsleep 1\nsdh_pip_install .\n"})
    tree.configure()
    tree.make("build")
    code, text = _progress_on_a_pty(tree, "SAGE_FORCE=solo", "solo", columns=80,
                                    extra_env={"SAGE_FORCE": "solo"})
    assert code == 0, text
    assert "1/1" in text and "/?" not in text
    # the first build's duration is known: the bar says the time left from it, not tqdm's rate
    assert re.search(r"about \d+s left", text), text


def test_time_left_comes_from_learned_durations():
    from sage_build.configure.build_plan import PlanItem
    from sage_build.face.progress import Progress

    plan = [PlanItem("a", "1", "", 10.0), PlanItem("b", "1", "", 30.0), PlanItem("c", "1", "", None),
            PlanItem("d", "1", "", 2.0)]
    state = Progress(planned=plan, started=100.0)
    assert state.seconds_left(jobs=1, now=100.0) == 10 + 30 + 10 + 2   # c counts as the median, 10
    assert state.seconds_left(jobs=4, now=100.0) == 30                 # never less than the longest
    state.apply({"event": "start", "package": "b", "phase": "build", "time": 100.0})
    state.apply({"event": "end", "package": "a", "phase": "record", "outcome": "ok", "time": 105.0})
    assert state.seconds_left(jobs=1, now=120.0) == 10 + 10 + 2          # b has 10 s left of its 30
    assert Progress(planned=[PlanItem("x", "1", "", None)]).seconds_left(jobs=2, now=0.0) is None

    # with the graph: never less than the longest chain left (c needs b needs a), whatever -jN
    chain = [PlanItem("a", "1", "", 10.0), PlanItem("b", "1", "", 10.0), PlanItem("c", "1", "", 10.0),
             PlanItem("d", "1", "", 1.0)]
    needs = {"c": ["b"], "b": ["a", "python3-venv"], "a": [], "d": []}
    assert Progress(planned=chain).seconds_left(jobs=8, now=0.0, dependencies=needs.__getitem__) == 30
    assert Progress(planned=chain).seconds_left(jobs=8, now=0.0) == 10


def test_makes_own_errors_go_through_the_display(tree):
    """On a terminal make's stderr ("*** Error 1") is written above the bar, not across it."""
    python_recipe(tree.root, "broken", "1.0", {"broken/__init__.py": ""}, fail="boom in broken")
    tree.configure()
    code, out = _terminal_display_of_make_build(tree)
    assert code != 0
    lines = re.split(r"[\r\n]+", out.getvalue())
    assert any(re.match(r"make(\[\d+\])?: \*\*\* ", line) for line in lines), out.getvalue()


def _chromium():
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_timeline_renders_in_headless_chromium(tree, tmp_path):
    import pytest

    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium here (.ci/run installs Debian's chromium package when apt-get can)")
    _tree_with_chain(tree)
    assert _progress(tree, "build").returncode == 0
    page = tree.root / "logs/build-timeline.html"
    shot = tmp_path / "timeline.png"
    result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                             f"--screenshot={shot}", "--window-size=1100,400", page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 2000, result.stderr[-2000:]
    dump = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile2'}",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dump.stdout.count('class="bar"') >= 10


def test_events_log_rotates_at_a_session_start_and_keeps_its_history(tmp_path):
    from sage_build.base.events import previous_events, record_event, rotate_events
    from sage_build.base.events import read_events

    events = tmp_path / "logs" / "events.jsonl"
    for i in range(50):
        record_event(events, event="end", package=f"p{i}", phase="build", duration=1.0)
    size = events.stat().st_size
    rotate_events(events, limit=size + 1)
    assert events.exists() and not previous_events(events).exists()  # under the limit: kept
    rotate_events(events, limit=size - 1)
    assert not events.exists() and previous_events(events).stat().st_size == size
    record_event(events, event="end", package="new", phase="build", duration=2.0)
    assert [e["package"] for e in read_events(events)] == [f"p{i}" for i in range(50)] + ["new"]
    rotate_events(events, limit=1)  # the older history goes, the last log stays
    assert [e["package"] for e in read_events(events)] == ["new"]


def _write_timelines(args):
    path, worker = args
    events = [{"event": "end", "package": f"p{worker}", "version": "1", "phase": "build", "start": 0, "time": 1}]
    for _ in range(100):
        write_timeline(events, path)
    return worker


def test_timelines_written_at_once_never_collide(tmp_path):
    # two builds ending together each write the timeline: their temporaries must not be one file,
    # also in processes forked after the module chose its temporary names (as the pool's are)
    path = tmp_path / "logs" / "build-timeline.html"
    write_timeline([], path)
    with ProcessPoolExecutor(4) as pool:
        list(pool.map(_write_timelines, [(path, w) for w in range(4)]))
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind


def _sessions(tree):
    return {e.get("session") for e in read_events(tree.root / "logs/events.jsonl") if e.get("session")}


@pytest.mark.slow  # five rounds of five builds and five uninstalls: ~12 s alone
def test_several_goals_are_one_build(tree):
    # `make -j4 a b c d e` ran one sage-progress and one sub-make per goal, which raced on the
    # timeline (the build failed in 1 to 3 of 5 rounds): now it is one build, every round.
    names = ["pa", "pb", "pc", "pd", "pe"]
    for name in names:
        python_recipe(tree.root, name, "1.0", {f"{name}/__init__.py": ""})
    tree.configure()
    make = tree.top_level()
    seen: set = set()
    for round_ in range(5):
        result = make("-j4", *names)
        assert result.returncode == 0, f"round {round_}:\n{result.stdout}\n{result.stderr}"
        assert len(re.findall(r"^built \d+ package", result.stdout, re.M)) == 1, result.stdout  # one summary
        for name in names:
            assert len(re.findall(rf"^\[.*\] {name}-1.0: built in ", result.stdout, re.M)) == 1, result.stdout
        sessions = _sessions(tree) - seen
        assert len(sessions) == 1, sessions  # one progress display, so one sub-make under it
        seen |= sessions
        assert (tree.root / "logs/build-timeline.html").is_file()
        assert not [p.name for p in (tree.root / "logs").glob("*.tmp")]
        # plain goals together are one plain sub-make, without a display
        result = make("-j4", *(f"{name}-uninstall" for name in names))
        assert result.returncode == 0, result.stderr
        assert not any(tree.stamp(name, "1.0").exists() for name in names)
        assert _sessions(tree) == seen


def test_goals_mixed_with_uninstall_list_and_keep_going(tree):
    python_recipe(tree.root, "pa", "1.0", {"pa/__init__.py": ""})
    python_recipe(tree.root, "pb", "1.0", {"pb/__init__.py": ""})
    python_recipe(tree.root, "bad", "1.0", {"bad/__init__.py": ""}, fail="boom in bad")
    tree.configure()
    make = tree.top_level()
    assert make("-j4", "pa").returncode == 0
    first = tree.stamp("pa", "1.0").stat().st_mtime_ns
    # the uninstall and list goals run first (one plain sub-make), then one build of the others
    result = make("-j4", "pa-uninstall", "list", "pa")
    assert result.returncode == 0, result.stderr
    assert {"pa", "pb", "bad"} <= set(result.stdout.split())
    assert tree.stamp("pa", "1.0").stat().st_mtime_ns > first  # uninstalled, then built again
    assert len(re.findall(r"^built 1 package", result.stdout, re.M)) == 1
    # a failing goal stops the build, as make does without -k ...
    result = make("-j4", "nosuch-uninstall", "pb")
    assert result.returncode != 0
    assert not tree.stamp("pb", "1.0").exists()
    # ... and with -k the rest goes on: one build, one failure summary
    result = make("-k", "-j4", "nosuch-uninstall", "bad", "pb", "build")
    assert result.returncode != 0
    assert tree.stamp("pb", "1.0").exists()
    assert result.stderr.count("FAILED: bad-1.0") == 1, result.stderr  # one summary


def _files(directory):
    return {str(p): p.stat().st_mtime_ns for p in directory.rglob("*")}


def _built_stamps(tree):
    return {p.name: p.stat().st_mtime_ns for p in (tree.prefix / "var/lib/sage/installed").iterdir() if p.is_file()}


def test_plan_after_a_recipe_edit_tells_what_the_top_level_make_will_do(tree):
    # `make build` through the top-level Makefile configures again when a recipe's type, version or
    # dependency file changed: the plan decides from the recipes as they are now, and writes nothing.
    _tree_with_chain(tree)
    make = tree.top_level()
    top_make = lambda: make("build")
    assert top_make().returncode == 0
    assert "nothing to build" in tree.sage("--plan").stdout
    time.sleep(0.05)
    (tree.root / "build/pkgs/mid/dependencies").write_text("$(PYTHON) base  # edited\n")
    python_recipe(tree.root, "extra", "1.0", {"extra/__init__.py": ""})  # a new standard package
    before = _files(tree.root / "build/make"), _built_stamps(tree)
    out = tree.sage("--plan").stdout
    assert (_files(tree.root / "build/make"), _built_stamps(tree)) == before  # nothing written
    planned = {line.split()[1]: line for line in out.splitlines() if re.match(r"^\s+\d+\. ", line)}
    assert sorted(planned) == ["extra-1.0", "mid-1.0", "top-1.0"], out
    assert "recipe changed" in planned["mid-1.0"]
    assert "a build dependency will be rebuilt (mid)" in planned["top-1.0"]
    assert "not installed" in planned["extra-1.0"]
    # make makes the same decision
    stamps = _built_stamps(tree)
    result = top_make()
    assert result.returncode == 0, result.stderr
    after = _built_stamps(tree)
    rebuilt = sorted(name for name in after if after[name] != stamps.get(name))
    assert rebuilt == ["extra-1.0", "mid-1.0", "top-1.0"]
    assert "nothing to build" in tree.sage("--plan").stdout


def test_plan_sees_a_recipe_edit_that_sage_recipe_hash_will_see(tree):
    # Without a top-level Makefile, make runs sage-recipe-hash for a recipe newer than its
    # hashes/<name>.checked: the plan says so before it ran.
    _tree_with_chain(tree)
    tree.make("build")
    time.sleep(0.05)
    (tree.root / "build/pkgs/side/spkg-check").write_text("true\n")
    out = tree.sage("--plan").stdout
    assert "side-1.0" in out and "recipe changed" in out
    stamp = tree.stamp("side", "1.0").stat().st_mtime_ns
    tree.make("build")
    assert tree.stamp("side", "1.0").stat().st_mtime_ns > stamp
    assert "nothing to build" in tree.sage("--plan").stdout


def test_failure_summary_keeps_every_reason_line_up_to_a_cap(tmp_path):
    # The reason of an unmet build requirement is several lines (the requirement itself is on the
    # second): the summary keeps them, capped, and says where the rest is.
    from sage_build.face.progress import REASON_LINES, Progress, failure_summary
    from sage_build.recipes.graph import Graph

    reason = "build-system.requires is not satisfied in the prefix:\n  flit_core<5,>=4 (have 3.12.0)\n"
    many = "sources tried:\n" + "".join(f"  mirror {i}: 404\n" for i in range(30))
    state = Progress(planned=[])
    for name, error in (("short", reason), ("long", many)):
        state.apply({"event": "end", "package": name, "version": "1.0", "phase": "build", "outcome": "failed",
                     "error": error, "log": str(tmp_path / f"{name}.log")})
    text = failure_summary(state, Graph(packages={}), None, with_tail=False)
    assert "flit_core<5,>=4 (have 3.12.0)" in text
    assert "mirror 0: 404" in text and f"mirror {REASON_LINES - 2}: 404" in text
    assert "mirror 29: 404" not in text
    assert f"{31 - REASON_LINES} more lines in {tmp_path / 'long.log'}" in text


def test_plan_help_and_bad_words(tree):
    python_recipe(tree.root, "six_like", "1.0", {"six_like/__init__.py": ""})
    tree.configure()
    shown = tree.sage("--plan", "--help")
    assert "usage: ./sage --plan" in shown.stdout and "writes nothing" in shown.stdout
    bad = tree.sage("--plan", "--verbose", check=False)
    assert bad.returncode != 0 and "package names only" in bad.stderr
    typo = tree.sage("--plan", "six_lik", check=False)
    assert typo.returncode != 0 and "did you mean six_like?" in typo.stderr
    assert "six_like" in tree.sage("--plan", "Six-Like").stdout


@pytest.mark.skipif(not __import__("shutil").which("tmux"), reason="tmux is not installed")
def test_display_in_tmux_as_a_person_sees_it(tree, tmp_path):
    """#22: the screen after a build with a failure, read back from a tmux pane: one whole line a
    finished package, the failure counted, make's own error on a line of its own, no bar left
    half-drawn into another line."""
    import shlex

    _tree_with_chain(tree)
    python_recipe(tree.root, "broken", "1.0", {"broken/__init__.py": ""}, fail="boom in broken")
    tree.configure()
    socket = str(tmp_path / "tmux.sock")
    done = tmp_path / "done"
    exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in tree.env.items())
    command = (f"env -i {exports} {shlex.quote(str(ROOT / 'build/bin/sage-progress'))} make -j2 -k -f"
               f" {shlex.quote(str(tree.root / 'build/make/Makefile'))} build; echo exit=$? > {done}")
    tmux = ["tmux", "-S", socket, "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-x", "100", "-y", "50", "bash", "--norc", "-c",
                    command + "; sleep 60"], check=True)
    try:
        deadline = time.time() + 240
        while not done.exists() and time.time() < deadline:
            time.sleep(0.5)
        assert done.exists(), "the build in tmux did not finish"
        screen = subprocess.run([*tmux, "capture-pane", "-p", "-J", "-S", "-200"], capture_output=True,
                                text=True, check=True).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    assert done.read_text().strip() != "exit=0"
    lines = [line.rstrip() for line in screen.splitlines()]
    for name in ("base-1.0", "mid-1.0", "top-1.0", "side-1.0"):
        assert any(re.fullmatch(rf"built  {name} in \d+\.\ds", line) for line in lines), screen
    assert any(re.fullmatch(r"FAILED broken-1.0 in phase 'build' after \d+\.\ds", line) for line in lines), screen
    assert any(re.match(r"make(\[\d+\])?: \*\*\* ", line) for line in lines), screen
    # a bar line is whole: the counts and the bracket of the elapsed time on the same line
    bars = [line for line in lines if "|" in line and ("/5" in line or "/6" in line)]
    assert bars and all(re.search(r"\d+/\d+ \[\d\d:\d\d", line) for line in bars), screen
