"""The build events log, ``logs/events.jsonl``: its schema, its writer and its reader.

sage-spkg appends one JSON object a line when a phase starts and when it ends; the
progress display, the failure summary, ``./sage --plan``'s estimates, the timeline and
configure's ordering read them.  A single ``write`` on an ``O_APPEND`` descriptor keeps
lines whole under ``make -j``.  Past :data:`EVENTS_LIMIT` the log is rotated to
``events.jsonl.1`` when the next build session starts.

Fields of every event: ``event`` (:data:`START` or :data:`END`), ``phase`` (one of
:data:`PHASES`), ``package``, ``version``, ``session`` (one ``make`` run), ``run`` (one
sage-spkg), ``time``, ``log``; a start also has ``reason`` (why it builds); an end has
``start``, ``duration`` and ``outcome`` (:data:`OK` or :data:`FAILED`; a failed one also
``error``, the reason, possibly several lines). Once a package was pulled from a binary cache
(#20), its events from the end of that fetch on also have ``cache``: the cache's URL, without
credentials; when its tests were asked for (SAGE_CHECK) and not run, its record events also have
``check`` ("not run: from the binary cache").  A package that a make session's worker ran (#19)
has ``worker``, its process id.
Standard library only.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

START, END = "start", "end"
OK, FAILED = "ok", "failed"

FETCH = "fetch"
UNPACK = "unpack"
BUILD = "build"
UNINSTALL_OLD = "uninstall-old"
INSTALL = "install"
CHECK = "check"
RECORD = "record"
PHASES = (FETCH, UNPACK, BUILD, UNINSTALL_OLD, INSTALL, CHECK, RECORD)

EVENTS_LIMIT = 8 << 20


def record_event(events_file: Path, **event: object) -> None:
    """Append one event (a JSON line) to the build events log."""
    event.setdefault("time", time.time())
    data = (json.dumps(event, sort_keys=True) + "\n").encode()
    events_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(events_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def rotate_events(events_file: Path, limit: int = EVENTS_LIMIT) -> None:
    """Keep the events log bounded: past ``limit`` bytes it becomes ``events.jsonl.1`` (replacing
    the previous one), so the history the plan learns durations from is one to two logs long.
    Called when a build session starts, never while one follows the log."""
    try:
        if events_file.stat().st_size > limit:
            os.replace(events_file, previous_events(events_file))
    except FileNotFoundError:
        pass


def previous_events(events_file: Path) -> Path:
    return events_file.with_name(events_file.name + ".1")


def read_events(events_file: Path) -> list[dict]:
    """Every event of the build log and of its rotated predecessor; a torn or foreign line is skipped."""
    events = []
    for path in (previous_events(events_file), events_file):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    try:
                        events.append(json.loads(line))
                    except ValueError:
                        continue
        except FileNotFoundError:
            pass
    return events
