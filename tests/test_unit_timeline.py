"""face/timeline.py, in process: bars from events, the critical path, the page."""

from __future__ import annotations

import re

from sage_build.base import events as ev
from sage_build.face.timeline import FAILED, PHASE_COLOURS, Bar, bars_from_events, critical_path, render, write_timeline

T0 = 1_700_000_000.0


def _phase(package, phase, start, end, outcome=ev.OK, version="1"):
    """The start and end events of one phase, ``start``/``end`` in seconds after T0."""
    return [
        {"event": ev.START, "phase": phase, "package": package, "version": version, "time": T0 + start},
        {"event": ev.END, "phase": phase, "package": package, "version": version, "time": T0 + end,
         "start": T0 + start, "duration": end - start, "outcome": outcome},
    ]


def _build(package, start, end, **kw):
    """A package built in two phases that fill [start, end]."""
    middle = (start + end) / 2
    return _phase(package, ev.BUILD, start, middle, **kw) + _phase(package, ev.INSTALL, middle, end)


def test_bars_pair_start_and_end_events():
    events = _phase("b", ev.BUILD, 5, 9, outcome=ev.FAILED) + _phase("a", ev.FETCH, 0, 2) + _phase("a", ev.BUILD, 2, 5)
    events.append({"event": ev.START, "phase": ev.INSTALL, "package": "c", "version": "3", "time": T0 + 9})  # no end yet
    # an end without 'start' (an old log) starts at its own time
    events.append({"event": ev.END, "phase": ev.RECORD, "package": "a", "version": "1", "time": T0 + 6, "outcome": ev.OK})
    assert bars_from_events(events) == [
        Bar("a-1", ev.FETCH, T0, T0 + 2, False),
        Bar("a-1", ev.BUILD, T0 + 2, T0 + 5, False),
        Bar("b-1", ev.BUILD, T0 + 5, T0 + 9, True),
        Bar("a-1", ev.RECORD, T0 + 6, T0 + 6, False),
    ]


def _deps(edges: dict[str, str]):
    """``{"b": "a c"}``: b depends on a and c."""
    return lambda name: edges.get(name, "").split()


# A fixture DAG whose longest chain is known (times in seconds):
#   x [0,17] -> s [17,20]            chain 20 s: the longest (x is the long build, as pyyaml)
#   p [0,3] -> q [3,6] -> r [6,10]   chain 10 s
#   u [10,21]                         no dependencies; ends last, beside r
DAG = {"s": "x", "q": "p", "r": "q"}


def _dag_events():
    return (_build("x", 0, 17) + _build("s", 17, 20) + _build("p", 0, 3) + _build("q", 3, 6)
            + _build("r", 6, 10) + _build("u", 10, 21))


def test_critical_path_is_the_longest_chain_through_the_dependencies():
    assert critical_path(bars_from_events(_dag_events()), _deps(DAG)) == ["x-1", "s-1"]
    # u made long enough, alone it is the chain; p -> q -> r made longer, it is
    assert critical_path(bars_from_events(_dag_events() + _build("u", 10, 40)), _deps(DAG)) == ["u-1"]
    longer = _dag_events()[:-8] + _build("r", 6, 40)
    assert critical_path(bars_from_events(longer), _deps(DAG)) == ["p-1", "q-1", "r-1"]


def test_critical_path_goes_through_a_dependency_not_built_this_time():
    # t needs m (installed before, not in this build), which needs x: the chain is x -> t
    events = _build("x", 0, 17) + _build("t", 17, 19) + _build("p", 0, 10)
    assert critical_path(bars_from_events(events), _deps({"t": "m", "m": "x"})) == ["x-1", "t-1"]


def test_critical_path_of_nothing_and_of_one_package():
    assert critical_path([], _deps({})) == []
    assert critical_path(bars_from_events(_build("solo", 1, 4)), _deps({})) == ["solo-1"]


def test_a_package_without_a_version_is_labelled_by_its_name():
    events = _phase("tomli_w", ev.BUILD, 0, 1, version="none") + _phase("six", ev.BUILD, 1, 2, version=None)
    assert [b.package for b in bars_from_events(events)] == ["tomli_w", "six"]
    page = render(events, _deps({}))
    assert "tomli_w-none" not in page and 'tomli_w</text>' in page


def test_page_marks_the_critical_path_and_failures():
    events = _dag_events()[:-4] + _phase("u", ev.BUILD, 10, 21, outcome=ev.FAILED)
    page = render(events, _deps(DAG))
    rects = re.findall(r'<rect class="bar" data-package="([^"]+)" data-phase="([^"]+)" data-duration="([^"]+)"'
                       r'[^>]* fill="([^"]+)"', page)
    assert len(rects) == 11
    assert ("u-1", ev.BUILD, "11.000", FAILED) in rects
    assert ("x-1", ev.BUILD, "8.500", PHASE_COLOURS[ev.BUILD]) in rects
    assert ("x-1", ev.INSTALL, "8.500", PHASE_COLOURS[ev.INSTALL]) in rects
    starred = re.findall(r'class="label">★ ([^<]+)<', page)
    assert starred == ["x-1", "s-1"]
    assert "★ = on the critical path: the longest chain of dependent builds" in page
    assert "6 packages, 21.0s, failed: u-1" in page
    assert "<title>u-1 build: 11.00s (failed)</title>" in page
    # without the dependencies, nothing is starred (and the page does not promise a star)
    assert "★" not in render(events)


def test_empty_page_and_writing_it(tmp_path):
    assert "No build events." in render([])
    target = tmp_path / "logs" / "timeline.html"
    events = _build("a", 0, 2)
    assert write_timeline(events, target) == target
    assert target.read_text() == render(events)
    assert sorted(p.name for p in target.parent.iterdir()) == ["timeline.html"]
