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


def test_critical_path_of_a_known_schedule():
    # Two make jobs:   b [0,3]  d [3,8]  e [8,25]        (b -> d -> e ends last)
    #                  a [0,10] c [10,20]
    events = _build("a", 0, 10) + _build("b", 0, 3) + _build("c", 10, 20) + _build("d", 3, 8) + _build("e", 8, 25)
    assert critical_path(bars_from_events(events)) == ["b-1", "d-1", "e-1"]
    # f after c ends last: the chain goes back through c and a instead
    events += _build("f", 20, 30)
    assert critical_path(bars_from_events(events)) == ["a-1", "c-1", "f-1"]


def test_critical_path_of_nothing_and_of_one_package():
    assert critical_path([]) == []
    assert critical_path(bars_from_events(_build("solo", 1, 4))) == ["solo-1"]


def test_page_marks_the_critical_path_and_failures():
    events = (_build("a", 0, 10) + _build("b", 0, 3) + _build("c", 10, 20) + _build("d", 3, 8)
              + _phase("e", ev.BUILD, 8, 25, outcome=ev.FAILED))
    page = render(events)
    rects = re.findall(r'<rect class="bar" data-package="([^"]+)" data-phase="([^"]+)" data-duration="([^"]+)"'
                       r'[^>]* fill="([^"]+)"', page)
    assert len(rects) == 9
    assert ("e-1", ev.BUILD, "17.000", FAILED) in rects
    assert ("a-1", ev.BUILD, "5.000", PHASE_COLOURS[ev.BUILD]) in rects
    assert ("a-1", ev.INSTALL, "5.000", PHASE_COLOURS[ev.INSTALL]) in rects
    starred = re.findall(r'class="label">★ ([^<]+)<', page)
    assert starred == ["b-1", "d-1", "e-1"]
    assert "5 packages, 25.0s, failed: e-1" in page
    assert "<title>e-1 build: 17.00s (failed)</title>" in page


def test_empty_page_and_writing_it(tmp_path):
    assert "No build events." in render([])
    target = tmp_path / "logs" / "timeline.html"
    events = _build("a", 0, 2)
    assert write_timeline(events, target) == target
    assert target.read_text() == render(events)
    assert sorted(p.name for p in target.parent.iterdir()) == ["timeline.html"]
