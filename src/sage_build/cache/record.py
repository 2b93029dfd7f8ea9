"""The record of a package's build (``Layout.cache_record``): the key it was built under (a
:class:`cache.key.PackageKey`), its stamp's files and the sha256 of its wheels. Every build writes
or removes it, and a build that uses no cache loads nothing else of the cache; ``./sage --cache
push`` reads it to know that an installed package is the one built under that key
(:func:`sage_build.cache.entry.push_installed`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sage_build.base.atomic import write_atomic


def write_record(path: Path, key, local: Path, files: list[str]) -> None:
    """Record the key (a cache.key.PackageKey) a package was built under, with the stamp's files and
    the sha256 of its wheels, right before its stamp is written; no key: remove the record."""
    if key is None:
        path.unlink(missing_ok=True)
        return
    record = {"key": key.key, "inputs": key.inputs, "files": sorted(files), "wheels": wheel_hashes(local, files)}
    if key.prefix_key:
        record["prefix_key"] = key.prefix_key
    write_atomic(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())


def wheel_hashes(local: Path, files: list[str]) -> dict[str, str]:
    hashes = {}
    for rel in files:
        if rel.endswith(".whl"):
            try:
                hashes[rel] = hashlib.sha256((local / rel).read_bytes()).hexdigest()
            except OSError:
                hashes[rel] = ""  # gone: matches no recorded build
    return hashes


def read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
        return record if isinstance(record, dict) and isinstance(record.get("key"), str) else None
    except (OSError, ValueError):
        return None
