"""The build timeline: a self-contained HTML page with one SVG row per package.

One bar per phase on a time axis, failures in red, the critical path marked,
durations on hover (SVG ``<title>``).  Made from the build events and, for the critical
path, the packages' dependencies (the events do not carry them: the caller has the graph).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from sage_build.base import events as ev
from sage_build.base.atomic import write_atomic

PHASE_COLOURS = {
    ev.FETCH: "#9ecae1", ev.UNPACK: "#c6dbef", ev.BUILD: "#3182bd", ev.UNINSTALL_OLD: "#fdd0a2",
    ev.INSTALL: "#31a354", ev.RECORD: "#a1d99b", ev.CHECK: "#756bb1",
}
FAILED = "#d62728"


@dataclass(frozen=True)
class Bar:
    package: str
    phase: str
    start: float
    end: float
    failed: bool
    name: str = field(default="", compare=False)  # the package's name, without its version
    cached: bool = field(default=False, compare=False)  # pulled from a binary cache (#20)


def _label(name: object, version: object) -> str:
    """``name-version``; a package without a version (a stamp of 'none') is its name alone."""
    return f"{name}-{version}" if version not in (None, "", "none", "None") else str(name)


def bars_from_events(events: list[dict]) -> list[Bar]:
    """Pair each phase's start and end events into bars."""
    bars = []
    for event in events:
        if event.get("event") != ev.END:
            continue
        start = float(event.get("start", event.get("time", 0.0)))
        bars.append(Bar(
            package=_label(event.get("package"), event.get("version")), phase=str(event.get("phase")),
            start=start, end=float(event.get("time", start)), failed=event.get("outcome") == ev.FAILED,
            name=str(event.get("package")), cached=bool(event.get("cache")),
        ))
    return sorted(bars, key=lambda b: (b.start, b.package))


Dependencies = Callable[[str], Iterable[str]]  # a package's name -> the names it depends on


def critical_path(bars: list[Bar], dependencies: Dependencies) -> list[str]:
    """The longest chain of dependent builds, by duration (each package from its first phase's
    start to its last's end): the builds that no number of jobs could have run side by side.
    A dependency not built in this session passes the chain on to its own dependencies."""
    spans: dict[str, tuple[float, float]] = {}
    names: dict[str, str] = {}  # name -> label
    for bar in bars:
        first, last = spans.get(bar.package, (bar.start, bar.end))
        spans[bar.package] = (min(first, bar.start), max(last, bar.end))
        names[bar.name or bar.package] = bar.package
    if not spans:
        return []

    def built_dependencies(name: str) -> set[str]:
        """The labels of the built packages ``name`` needs, through packages not built."""
        found, seen, todo = set(), {name}, list(dependencies(name))
        while todo:
            dep = todo.pop()
            if dep in seen:
                continue
            seen.add(dep)
            if dep in names:
                found.add(names[dep])
            else:
                todo.extend(dependencies(dep))
        return found

    needs = {names[name]: built_dependencies(name) for name in names}
    longest: dict[str, tuple[float, list[str]]] = {}

    def chain(label: str, visiting: frozenset = frozenset()) -> tuple[float, list[str]]:
        if label not in longest:
            first, last = spans[label]
            before = [chain(dep, visiting | {label}) for dep in sorted(needs[label]) if dep not in visiting]
            length, path = max(before, key=lambda c: c[0], default=(0.0, []))
            longest[label] = (length + last - first, path + [label])
        return longest[label]

    return max((chain(label) for label in sorted(spans)), key=lambda c: c[0])[1]


def render(events: list[dict], dependencies: Dependencies | None = None) -> str:
    """The page; the critical path is marked when ``dependencies`` is given."""
    bars = bars_from_events(events)
    packages = list(dict.fromkeys(b.package for b in bars))
    if not bars:
        return "<!DOCTYPE html><html><body><p>No build events.</p></body></html>\n"
    t0 = min(b.start for b in bars)
    total = max(max(b.end for b in bars) - t0, 1e-3)
    width, label, row = 1000, 240, 22
    scale = (width - label - 20) / total
    critical = set(critical_path(bars, dependencies)) if dependencies is not None else set()
    height = row * (len(packages) + 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">']
    step = _tick_step(total)
    tick = 0.0
    while tick <= total:
        x = label + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - row}" stroke="#eee"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" fill="#555">{tick:.0f}s</text>')
        tick += step
    for index, package in enumerate(packages):
        y = index * row + 4
        mark = package in critical
        weight = ' font-weight="bold"' if mark else ""
        cached = " (from cache)" if any(b.cached for b in bars if b.package == package) else ""
        parts.append(f'<text x="4" y="{y + 13}"{weight} class="label">{"★ " if mark else ""}{html.escape(package)}'
                     f'{cached}</text>')
        for bar in (b for b in bars if b.package == package):
            x = label + (bar.start - t0) * scale
            w = max((bar.end - bar.start) * scale, 1.0)
            colour = FAILED if bar.failed else PHASE_COLOURS.get(bar.phase, "#999")
            stroke = ' stroke="#000" stroke-width="1"' if mark else ""
            parts.append(
                f'<rect class="bar" data-package="{html.escape(package)}" data-phase="{html.escape(bar.phase)}"'
                f' data-duration="{bar.end - bar.start:.3f}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 6}"'
                f' fill="{colour}"{stroke}><title>{html.escape(package)} {html.escape(bar.phase)}:'
                f' {bar.end - bar.start:.2f}s{" (failed)" if bar.failed else ""}</title></rect>'
            )
    parts.append("</svg>")
    legend = " ".join(f'<span style="background:{c};padding:0 6px">{p}</span>' for p, c in PHASE_COLOURS.items())
    legend += f' <span style="background:{FAILED};color:#fff;padding:0 6px">failed</span>'
    if critical:
        legend += " ★ = on the critical path: the longest chain of dependent builds"
    failed = sorted({b.package for b in bars if b.failed})
    summary = (f"{len(packages)} packages, {total:.1f}s"
               + (f", failed: {', '.join(failed)}" if failed else ""))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>sage-build timeline</title></head>\n"
            f"<body style=\"font-family:sans-serif\"><h1>Build timeline</h1><p>{html.escape(summary)}</p>"
            f"<p>{legend}</p>\n" + "\n".join(parts) + "\n</body></html>\n")


def _tick_step(total: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if total / step <= 12:
            return float(step)
    return 7200.0


def write_timeline(events: list[dict], path: Path, dependencies: Dependencies | None = None) -> Path:
    # a temporary name of this process's own: two builds finishing together never share one
    write_atomic(path, render(events, dependencies).encode())
    return path
