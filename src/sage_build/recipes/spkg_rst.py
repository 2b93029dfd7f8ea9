"""Reading a recipe's ``SPKG.rst``: its title line and its sections, as plain text.

Sage writes the file as reStructuredText::

    gmp: Library for arbitrary precision arithmetic
    ===============================================

    License
    -------

    -  LGPL V3

A section is a heading underlined with one punctuation character repeated; its text runs
to the next heading.  A field's value is that text without the markup a reader does not
want in a value: list markers (``-``, ``*``, ``+``) go, lines of one item or paragraph are
joined with spaces, and several items with ``"; "``.
"""

from __future__ import annotations

import re

_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1+\s*$")
_BULLET = re.compile(r"^[-*+]\s+")


def sections(text: str) -> dict[str, list[str]]:
    """{lowercased heading: its lines}; the title's section is keyed by the title line itself."""
    lines = text.splitlines()
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and _UNDERLINE.match(following) and len(following.strip()) >= len(line.strip()):
            current = found.setdefault(line.strip().lower(), [])
            i += 2
            continue
        if _UNDERLINE.match(line) and i + 2 < len(lines) and _UNDERLINE.match(lines[i + 2]) and lines[i + 1].strip():
            # an overlined title: ====/title/====
            current = found.setdefault(lines[i + 1].strip().lower(), [])
            i += 3
            continue
        if current is not None:
            current.append(line)
        i += 1
    return found


def plain_value(lines: list[str]) -> str | None:
    """The text of a section as one value: items without their markers, joined by '; '."""
    items: list[list[str]] = []
    new_item = True
    for raw in lines:
        line = raw.strip()
        if not line:
            new_item = True
            continue
        bullet = _BULLET.match(line)
        if bullet:
            line = line[bullet.end():]
            new_item = True
        if new_item or not items:
            items.append([])
            new_item = False
        items[-1].append(line)
    values = [" ".join(item) for item in items if item]
    return "; ".join(values) if values else None


_NAME_DESCRIPTION = re.compile(r"(?P<name>[^:]*): (?P<description>.*)")


def title(text: str) -> tuple[str | None, str | None]:
    """(name, one-line description) from the title line ``name: description``, exactly as
    sage_bootstrap's ``description`` property reads it: the first line, or the second when the
    first is an overline (starts with ``=``); the description is the rest of that line as written.
    (None, None) when that line is not of this form."""
    lines = text.splitlines()
    line = lines[0] if lines else ""
    if line.startswith("=") and len(lines) > 1:
        line = lines[1]
    match = _NAME_DESCRIPTION.match(line)
    if match is None:
        return None, None
    return match.group("name"), match.group("description")


def field(text: str, heading: str) -> str | None:
    """The plain value of the section ``heading`` (case-insensitive), or None."""
    lines = sections(text).get(heading.lower())
    return plain_value(lines) if lines is not None else None
