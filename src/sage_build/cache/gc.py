"""Housekeeping of a binary cache (#20 item 6): mark from the keys that a set of configurations
needs, delete what nothing references and is older than a grace period.

Entries go before artifacts, so a reader never finds a manifest whose artifact is gone; an
artifact that a push is writing now is referenced by no manifest yet but is younger than the grace
period, so it stays (a grace of at least a day is sensible: longer than any push).

The roots are packages' keys (``./sage --cache key --all``); a staged package whose files could not
be relocated has its entry under its prefix key, which the roots do not list: such an entry stays
when its inputs, the prefix left out, give a kept key (its manifest is read before it would go).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

from sage_build.cache.key import RELOCATED, key_of
from sage_build.cache.store import LAYOUT, Store, age_days, blob_path, is_temporary

_MANIFEST = re.compile(rf"^{LAYOUT}/([0-9a-f]{{64}})\.json$")


@dataclass
class Collected:
    kept: int = 0
    entries: list[str] = field(default_factory=list)    # the keys of the entries deleted
    artifacts: list[str] = field(default_factory=list)  # the sha256 of the artifacts deleted
    other: list[str] = field(default_factory=list)      # temporaries of killed pushes


def collect_garbage(store: Store, keep: set[str], grace_days: float, *, dry_run: bool = False,
                    now: float | None = None) -> Collected:
    """Delete the entries whose key is not in ``keep`` and the artifacts no remaining entry names,
    when older than ``grace_days``. An entry that cannot be read keeps every artifact (when in doubt,
    keep). The store is walked as it is listed (a page at a time from S3), the entries first (one
    manifest read at a time), then the artifacts: what stays in memory is the set of artifacts the
    kept entries name."""
    now = time.time() if now is None else now
    result = Collected()
    referenced: set[str] = set()
    unreadable = False
    for path, mtime in store.list(f"{LAYOUT}/", recursive=False):
        if is_temporary(path):
            _temporary(store, path, mtime, now, grace_days, result, dry_run)
            continue
        match = _MANIFEST.match(path)
        if not match:
            continue
        key = match.group(1)
        document = None
        if key not in keep and age_days(mtime, now) > grace_days:
            document = _read(store, path)
            if not _prefix_entry_of(document, keep):
                result.entries.append(key)
                if not dry_run:
                    store.delete(path)
                continue
        result.kept += 1
        try:
            document = document or _read(store, path)
            referenced |= {a["sha256"] for a in document["manifest"]["artifacts"]}
        except (KeyError, TypeError):
            unreadable = True
    for path, mtime in store.list(f"{LAYOUT}/blobs/"):
        if is_temporary(path):
            _temporary(store, path, mtime, now, grace_days, result, dry_run)
            continue
        if unreadable:
            continue
        digest = path.rsplit("/", 1)[1]
        if digest not in referenced and age_days(mtime, now) > grace_days and path == blob_path(digest):
            result.artifacts.append(digest)
            if not dry_run:
                store.delete(path)
    return result


def _read(store: Store, path: str) -> dict | None:
    try:
        return json.loads(store.read(path) or b"")
    except ValueError:
        return None


def _prefix_entry_of(document: dict | None, keep: set[str]) -> bool:
    """Whether an entry is the prefix-key entry of a kept key (cache.key.PackageKey.prefix_key)."""
    try:
        inputs = document["manifest"]["inputs"]
        return isinstance(inputs, dict) and "prefix" in inputs and key_of({**inputs, "prefix": RELOCATED}) in keep
    except (KeyError, TypeError):
        return False


def _temporary(store: Store, path: str, mtime: float, now: float, grace_days: float, result: Collected,
               dry_run: bool) -> None:
    """A temporary of a push killed half-way: deleted once old."""
    if age_days(mtime, now) > grace_days:
        result.other.append(path)
        if not dry_run:
            store.delete(path)


def read_roots(text: str) -> set[str]:
    """The keys of a roots file: one a line, as ``./sage --cache key --all`` prints them
    (``NAME KEY``) or the key alone; blank lines and ``#`` comments are skipped."""
    keys = set()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words and re.fullmatch(r"[0-9a-f]{64}", words[-1]):
            keys.add(words[-1])
    return keys
