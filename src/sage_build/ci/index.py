"""A package index of the binary cache's wheels, for pip and uv (#21 item 4).

Derived from the store's manifests, rebuilt once per pipeline (its final job), never needed for
correctness: make pulls by key, not through this index.  One index per configuration (the target
Python and the rest of a build's shared inputs: compiler, libc, settings), since wheels of one
name and version built for two configurations differ::

    index/index.html                                   the configurations, for a person
    index/<configuration>/simple/index.html|.json      PEP 503 / PEP 691: the projects
    index/<configuration>/simple/<project>/index.html|.json   the project's files, #sha256= links
    index/<configuration>/files/<sha256>/<wheel>       the wheel, under its name (pip reads the
    index/<configuration>/files/<sha256>/<wheel>.metadata   name from the URL); its METADATA (PEP 658)

The store's blobs are named by their sha256 alone, so the wheels are copied under their names
(write-once, content-addressed: a rebuild writes only new ones).  Pages are replaced; a project no
longer in the cache loses its pages.  A static host serves the HTML; the JSON pages (PEP 691) are
beside them for hosts that negotiate (``Accept: application/vnd.pypi.simple.v1+json``).
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import zipfile
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from sage_build.base.atomic import write_atomic
from sage_build.base.errors import CacheError
from sage_build.cache import trust
from sage_build.cache.key import canonical_json
from sage_build.cache.store import LAYOUT, DirectoryStore, Store, blob_path

INDEX = "index"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEY_FILE = re.compile(rf"^{LAYOUT}/([0-9a-f]{{64}})\.json$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class Wheel:
    """A wheel of the cache, as the index lists it."""

    configuration: str
    filename: str
    project: str          # normalized (PEP 503)
    version: str
    sha256: str
    size: int
    time: int             # the entry's time: of two builds of one file name, the newer is listed


@dataclass(frozen=True)
class IndexResult:
    configurations: dict[str, int]   # configuration -> wheels listed
    skipped: list[str]               # entries left out, and why


def configuration_of(manifest: dict) -> str:
    """The index an entry's wheels go to: its Python tag and a digest of the shared build inputs."""
    environment = manifest.get("inputs", {}).get("environment", {})
    tag = str(environment.get("python", {}).get("tag") or "py")
    digest = hashlib.sha256(canonical_json(environment)).hexdigest()[:12]
    return f"{_UNSAFE.sub('_', tag)}-{digest}"


def collect(store: Store, trusted_keys: list[str] | None = None) -> tuple[list[Wheel], list[str]]:
    """The wheels the store's manifests describe (newest entry per configuration and file name),
    and the entries left out, with why (a manifest unreadable or, with ``trusted_keys``, not signed
    by one of them; a file name that is not a wheel's). ``trusted_keys`` None: unsigned entries
    are taken (SAGE_BINARY_CACHE_TRUST=unsigned, a cache of one's own)."""
    chosen: dict[tuple[str, str], Wheel] = {}
    skipped: list[str] = []
    for path, _ in sorted(store.list(f"{LAYOUT}/", recursive=False)):  # the manifests, not the blobs
        if not _KEY_FILE.match(path):
            continue
        raw = store.read(path)
        try:
            document = json.loads(raw or b"")
            manifest = document["manifest"]
            artifacts = manifest["artifacts"]
            configuration = configuration_of(manifest)
            when = int(manifest.get("time", 0))
        except (ValueError, KeyError, TypeError, AttributeError):
            skipped.append(f"{path}: not a manifest sage-build wrote")
            continue
        if trusted_keys is not None:
            # the index republishes the wheels to pip, which checks no signature: only trusted ones
            try:
                trust.verify(canonical_json(manifest), document.get("signatures"), trusted_keys, path)
            except CacheError as error:
                skipped.append(str(error))
                continue
        for artifact in artifacts:
            if not isinstance(artifact, dict) or artifact.get("kind") != "wheel":
                continue   # a staged tree's tarball: not for pip
            filename, digest = str(artifact.get("name", "")), str(artifact.get("sha256", ""))
            try:
                name, version, _, _ = parse_wheel_filename(filename)
            except InvalidWheelFilename:
                skipped.append(f"{path}: {filename!r} is not a wheel's file name")
                continue
            if not _SHA256.match(digest) or "/" in filename:
                skipped.append(f"{path}: {filename!r} has no sha256")
                continue
            wheel = Wheel(configuration, filename, canonicalize_name(name), str(version), digest,
                          int(artifact.get("size", 0)), when)
            previous = chosen.get((configuration, filename))
            if previous is None or (wheel.time, wheel.sha256) > (previous.time, previous.sha256):
                chosen[(configuration, filename)] = wheel
    return sorted(chosen.values(), key=lambda w: (w.configuration, w.project, w.filename)), skipped


def wheel_metadata(filename: str, data: bytes) -> bytes:
    """The METADATA file of a wheel (PEP 658 serves it beside the wheel)."""
    name, version, _, _ = parse_wheel_filename(filename)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        candidates = [n for n in archive.namelist()
                      if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        wanted = [n for n in candidates
                  if canonicalize_name(n.split("-")[0]) == name and n.split("/")[0].endswith(f"-{version}.dist-info")]
        member = (wanted or candidates or [None])[0]
        if member is None:
            raise CacheError(f"{filename} has no .dist-info/METADATA")
        return archive.read(member)


def _page(title: str, links: list[str]) -> bytes:
    body = "\n".join(f"    {link}<br/>" for link in links)
    return (f'<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" content="1.1">\n'
            f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n    <h1>{html.escape(title)}</h1>\n"
            f"{body}\n  </body>\n</html>\n").encode()


def _json(document: dict) -> bytes:
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def build_index(store: Store, trusted_keys: list[str] | None = None) -> IndexResult:
    """(Re)write the index of every configuration under ``index/`` of the store (``trusted_keys``:
    see :func:`collect`)."""
    wheels, skipped = collect(store, trusted_keys)
    pages: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    by_configuration: dict[str, dict[str, list[tuple[Wheel, str, str | None]]]] = {}
    for wheel in wheels:
        data = store.read(blob_path(wheel.sha256))
        if data is None or hashlib.sha256(data).hexdigest() != wheel.sha256:
            skipped.append(f"{wheel.filename}: its artifact is missing or does not match its sha256")
            continue
        try:
            metadata = wheel_metadata(wheel.filename, data)
        except (zipfile.BadZipFile, CacheError, KeyError, OSError) as error:
            skipped.append(f"{wheel.filename}: not a wheel pip could read ({error})")
            continue
        requires_python = BytesHeaderParser().parsebytes(metadata).get("Requires-Python")
        base = f"{INDEX}/{wheel.configuration}/files/{wheel.sha256}/{wheel.filename}"
        store.write_once(base, data)
        store.write_once(base + ".metadata", metadata)
        by_configuration.setdefault(wheel.configuration, {}).setdefault(wheel.project, []).append(
            (wheel, hashlib.sha256(metadata).hexdigest(), requires_python))
    for configuration, projects in sorted(by_configuration.items()):
        root = f"{INDEX}/{configuration}/simple"
        counts[configuration] = sum(len(files) for files in projects.values())
        pages[f"{root}/index.html"] = _page(
            "Simple index", [f'<a href="{html.escape(p)}/">{html.escape(p)}</a>' for p in sorted(projects)])
        pages[f"{root}/index.json"] = _json({"meta": {"api-version": "1.1"},
                                             "projects": [{"name": p} for p in sorted(projects)]})
        for project, files in sorted(projects.items()):
            links, entries = [], []
            for wheel, metadata_sha, requires_python in files:
                url = f"../../files/{wheel.sha256}/{wheel.filename}"
                attributes = f' data-dist-info-metadata="sha256={metadata_sha}" data-core-metadata="sha256={metadata_sha}"'
                if requires_python:
                    attributes += f' data-requires-python="{html.escape(requires_python)}"'
                links.append(f'<a href="{html.escape(url)}#sha256={wheel.sha256}"{attributes}>'
                             f"{html.escape(wheel.filename)}</a>")
                entry = {"filename": wheel.filename, "url": url, "hashes": {"sha256": wheel.sha256},
                         "size": wheel.size, "core-metadata": {"sha256": metadata_sha},
                         "dist-info-metadata": {"sha256": metadata_sha}}
                if requires_python:
                    entry["requires-python"] = requires_python
                entries.append(entry)
            pages[f"{root}/{project}/index.html"] = _page(f"Links for {project}", links)
            pages[f"{root}/{project}/index.json"] = _json({
                "meta": {"api-version": "1.1"}, "name": project, "files": entries,
                "versions": sorted({w.version for w, _, _ in files})})
    pages[f"{INDEX}/index.html"] = _page("sage-build binary cache: one index per configuration", [
        f'<a href="{html.escape(c)}/simple/">{html.escape(c)}</a> ({counts[c]} wheels)' for c in sorted(counts)])
    _replace_pages(store, pages)
    return IndexResult(counts, skipped)


def _replace_pages(store: Store, pages: dict[str, bytes]) -> None:
    """Write the pages, replacing the old ones; remove pages of projects gone from the cache."""
    old = {path for path, _ in store.list(f"{INDEX}/") if path.endswith(("/index.html", "/index.json"))}
    for path, data in sorted(pages.items()):
        if isinstance(store, DirectoryStore):
            write_atomic(store.root / path, data)   # a reader sees the old page or the new one
        else:
            # object stores replace a whole object on a put; the store protocol writes once only
            store.delete(path)
            store.write_once(path, data)
    for path in sorted(old - set(pages)):
        store.delete(path)


def index_url(store_root: Path, configuration: str) -> str:
    """The ``--index-url`` of a configuration's index in a directory store."""
    return (store_root / INDEX / configuration / "simple").as_uri() + "/"
