"""A binary-cache entry: its manifest, pushing one, pulling one (#20 items 3-5).

An entry is the signed manifest ``v1/<key>.json``::

    {"manifest": {"format": 1, "key": ..., "package": ..., "version": ...,
                  "artifacts": [{"name": "x-1.0-py3-none-any.whl", "kind": "wheel", "sha256": ..., "size": ...}],
                  "tags": [...], "inputs": {...}, "builder": {...}, "time": ...},
     "signatures": [{"key": "NAME", "sig": "BASE64"}]}

and its artifacts ``v1/blobs/<sha256>``: the wheel of a Python package, or for a staged package a
tarball of its files (paths relative to the prefix), relocated (cache.relocate): the manifest's
``relocation`` lists the files whose text holds the placeholder for the prefix. A staged tree with a
file that cannot be relocated goes under the package's prefix key, and the manifest's
``unrelocatable`` says which files and why. The artifacts go first and the manifest last, each
written once (see :mod:`sage_build.cache.store`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import NamedTuple

from sage_build.base.errors import CacheError
from sage_build.cache import trust
from sage_build.cache.record import read_record, wheel_hashes
from sage_build.cache.settings import CacheSettings
from sage_build.cache.store import Store, blob_path, display_url, manifest_path, open_store

FORMAT = 1
WHEEL, STAGED = "wheel", "staged"
STAGED_NAME = "staged.tar.gz"
_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+!-]*\.(whl|tar\.gz)$")


class Pulled(NamedTuple):
    """A verified entry, its artifacts written to a directory."""

    url: str
    manifest: dict
    wheels: list[Path]
    staged: Path | None  # the staged files' tarball


def _key_module():
    """cache.key, imported when an entry is made or checked: its imports (the graph, platform) are
    not on the path of a build that uses no cache (#19)."""
    from sage_build.cache import key

    return key


def make_manifest(key: str, package: str, version: str, inputs: dict, artifacts: list[tuple[str, str, bytes]],
                  tags: list[str], extra: dict | None = None) -> dict:
    """The manifest of an entry; ``artifacts``: (name, kind, bytes); ``extra``: more fields
    (``relocation``, ``unrelocatable``)."""
    return {**(extra or {}),
        "format": FORMAT, "key": key, "package": package, "version": version,
        "artifacts": [{"name": name, "kind": kind, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                      for name, kind, data in artifacts],
        "tags": tags, "inputs": inputs,
        "builder": {"sage-build": _key_module().BUILD_FORMAT, "machine": os.uname().machine,
                    "python": ".".join(map(str, sys.version_info[:3]))},
        "time": round(time.time()),
    }


def push(store: Store, manifest: dict, artifacts: list[tuple[str, str, bytes]], signing_key: str = "") -> bool:
    """Publish an entry: the artifacts (content-addressed), then the manifest, signed with
    ``signing_key`` when given. False when the key has an entry already (it stays as it was)."""
    path = manifest_path(manifest["key"])
    try:
        if store.exists(path):
            return False
    except CacheError:
        pass  # a directory not made yet: the writes make it, or fail saying why
    for (_, _, data), described in zip(artifacts, manifest["artifacts"]):
        store.write_once(blob_path(described["sha256"]), data)
    signatures = [trust.sign(_key_module().canonical_json(manifest), signing_key)] if signing_key else []
    document = {"manifest": manifest, "signatures": signatures}
    return store.write_once(path, json.dumps(document, indent=1, sort_keys=True).encode() + b"\n")


def pull(url: str, key: str, package: str, directory: Path, settings: CacheSettings) -> Pulled | None:
    """The entry of ``key`` from the cache at ``url``, verified, its artifacts written into
    ``directory``; None when the cache has none. CacheError when it cannot be reached or its entry
    is not to be trusted (unsigned, unknown key, bad signature, an artifact missing, truncated or
    changed): the message says which."""
    store = open_store(url)
    where = f"{display_url(url)}: the entry of {package} ({key[:16]}...)"
    raw = store.read(manifest_path(key))
    if raw is None:
        return None
    try:
        document = json.loads(raw)
        manifest = document["manifest"]
        signatures = document.get("signatures", [])
        artifacts = manifest["artifacts"]
        assert isinstance(manifest, dict) and isinstance(artifacts, list) and artifacts
    except (ValueError, KeyError, TypeError, AssertionError, AttributeError):
        raise CacheError(f"{where} is not a manifest sage-build wrote (unreadable JSON or fields missing)") from None
    if not settings.unsigned:
        trust.verify(_key_module().canonical_json(manifest), signatures, list(settings.trusted_keys), where)
    if manifest.get("key") != key or manifest.get("package") != package or manifest.get("format") != FORMAT:
        raise CacheError(f"{where} describes another entry ({manifest.get('package')!r}, key"
                         f" {str(manifest.get('key'))[:16]}...)")
    directory.mkdir(parents=True, exist_ok=True)
    wheels, staged = [], None
    for artifact in artifacts:
        name, kind, digest = artifact.get("name", ""), artifact.get("kind"), artifact.get("sha256", "")
        if not isinstance(name, str) or not _ARTIFACT_NAME.match(name) or kind not in (WHEEL, STAGED) \
                or not re.fullmatch(r"[0-9a-f]{64}", str(digest)):
            raise CacheError(f"{where} names an artifact sage-build does not take: {name!r} ({kind})")
        data = store.read(blob_path(digest))
        if data is None:
            raise CacheError(f"{where}: its artifact {name} is missing")
        if len(data) != artifact.get("size") or hashlib.sha256(data).hexdigest() != digest:
            raise CacheError(f"{where}: its artifact {name} does not match the manifest's sha256 and size"
                             f" ({len(data)} bytes): truncated or changed")
        (directory / name).write_bytes(data)
        if kind == WHEEL:
            wheels.append(directory / name)
        else:
            staged = directory / name
    return Pulled(display_url(url), manifest, wheels, staged)


class StagedTarball(NamedTuple):
    data: bytes
    templated: list[str]  # files whose text holds the placeholder
    problems: list[str]   # "FILE: why it cannot be relocated"


def staged_tarball(root: Path, files: list[str], prefix: Path | None = None) -> StagedTarball:
    """A reproducible tarball of ``files`` (relative to ``root``, the prefix as written now), links
    kept; with ``prefix`` (the prefix they were installed for), relocated (cache.relocate)."""
    import tarfile

    from sage_build.cache.relocate import relocate_link, relocate_staged_file

    buffer = io.BytesIO()
    templated, problems = [], []
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(files):
            info = tar.gettarinfo(str(root / rel), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if info.isreg():
                data = (root / rel).read_bytes()
                if prefix is not None:
                    staged = relocate_staged_file(data, rel, prefix)
                    data = staged.data
                    if staged.templated:
                        templated.append(rel)
                    if staged.problem:
                        problems.append(f"{rel}: {staged.problem}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                if info.issym() and prefix is not None:
                    info.linkname = relocate_link(info.linkname, rel, prefix)
                tar.addfile(info)
    return StagedTarball(buffer.getvalue(), templated, problems)


def unpack_staged(tarball: Path, destination: Path, relocation: object = None, prefix: Path | None = None) -> None:
    """Unpack a staged package's tarball into ``destination`` (the staging tree's prefix); the
    tarfile "data" filter refuses absolute names, '..', links out of it and devices. ``relocation``
    (the manifest's): the files whose placeholder becomes ``prefix``."""
    import tarfile

    from sage_build.cache.relocate import PLACEHOLDER, fill_placeholder

    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tarball) as tar:
            tar.extractall(destination, filter="data")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise CacheError(f"{tarball.name}: cannot unpack the cached files: {error}") from None
    if relocation is None:
        return
    if not isinstance(relocation, dict) or relocation.get("placeholder") != PLACEHOLDER \
            or not isinstance(relocation.get("files"), list) or prefix is None:
        raise CacheError(f"{tarball.name}: its manifest's relocation is not one sage-build wrote")
    fill_placeholder(destination, relocation["files"], prefix)


def read_signing_key(path: str) -> str:
    """The secret key in a file (SAGE_BINARY_CACHE_SIGNING_KEY names it)."""
    try:
        text = Path(path).read_text().strip()
    except OSError as error:
        raise CacheError(f"SAGE_BINARY_CACHE_SIGNING_KEY={path}: cannot read it ({error.strerror})") from None
    trust.parse_key(text, f"SAGE_BINARY_CACHE_SIGNING_KEY={path}")
    if os.stat(path).st_mode & 0o077:
        raise CacheError(f"SAGE_BINARY_CACHE_SIGNING_KEY={path}: others may read this secret key; chmod 600 it")
    return text


def installed_artifacts(local: Path, prefix: Path, files: list[str], package: str, *,
                        keyed_on_prefix: bool) -> tuple[list[tuple[str, str, bytes]], StagedTarball | None]:
    """An installed package's artifacts, from its stamp's ``files`` (relative to ``local``, the
    prefix as written now): its stored wheels; every other file goes into one staged tarball,
    relocated unless ``keyed_on_prefix`` (a record from before relocation). A wheel that names the
    prefix (a RUNPATH, a script) cannot serve another prefix and its key names none: CacheError.
    Returns the artifacts and the staged tarball (its relocation; None without staged files)."""
    import zipfile

    artifacts, others = [], []
    needle = str(prefix).encode()
    for rel in files:
        path = local / rel
        if rel.endswith(".whl") and rel.startswith("var/lib/sage/wheels/"):
            data = path.read_bytes()
            if not keyed_on_prefix:
                with zipfile.ZipFile(io.BytesIO(data)) as wheel:
                    for member in wheel.namelist():
                        if needle in wheel.read(member):
                            raise CacheError(f"{package}: {path.name}'s {member} names the prefix {prefix}; such a"
                                             " wheel cannot serve another prefix (only the RUNPATHs of its"
                                             " shared objects are relocated), so it is not pushed")
            artifacts.append((path.name, WHEEL, data))
        elif os.path.lexists(path) and not (path.is_dir() and not path.is_symlink()):
            others.append(rel)
    staged = None
    if others:
        staged = staged_tarball(local, others, None if keyed_on_prefix else prefix)
        artifacts.append((STAGED_NAME, STAGED, staged.data))
    return artifacts, staged


def push_installed(layout, pkg, settings: CacheSettings, url: str | None = None) -> str:
    """Publish an installed package (``layout``: base.layout.Layout, ``pkg``: recipes.recipe.Package)
    under the key recorded when it was built, to ``url`` (default: the settings' push URL). What
    happened, in words; CacheError when it cannot be pushed."""
    from sage_build.install.manifest import read_manifest

    url = url or settings.push
    stamp = layout.stamp(pkg.name, pkg.stamp_version)
    if not stamp.is_file():
        raise CacheError(f"{pkg.name}-{pkg.stamp_version} is not installed: nothing to push")
    record = read_record(layout.cache_record(pkg.name, pkg.stamp_version))
    if record is None:
        raise CacheError(f"{pkg.name}-{pkg.stamp_version} has no key recorded by its build (a key is recorded"
                         f" when a binary cache is configured): rebuild it with one,"
                         f" SAGE_BINARY_CACHE_PUSH={url or 'URL'} ./sage -f {pkg.name}, to push it")
    inputs = record.get("inputs", {})
    files = read_manifest(stamp).get("files", [])
    if record.get("files") != sorted(files) or record.get("wheels") != wheel_hashes(layout.local, files):
        raise CacheError(f"{pkg.name}-{pkg.stamp_version}: what is installed is not what the recorded build made"
                         f" (a build interrupted, or files changed since): rebuild it (./sage -f {pkg.name}) to push it")
    # a record from before staged trees were relocated: its key names the prefix
    keyed_on_prefix = inputs.get("prefix") == str(layout.prefix)
    artifacts, staged = installed_artifacts(layout.local, layout.prefix, files, pkg.name,
                                            keyed_on_prefix=keyed_on_prefix)
    if not artifacts:
        raise CacheError(f"{pkg.name}-{pkg.stamp_version} installed nothing: nothing to push")
    key, extra, why = record["key"], {}, ""
    if staged is not None and staged.templated:
        from sage_build.cache.relocate import PLACEHOLDER

        extra["relocation"] = {"placeholder": PLACEHOLDER, "files": staged.templated}
    if staged is not None and staged.problems:
        if not isinstance(record.get("prefix_key"), str):
            raise CacheError(f"{pkg.name}: {'; '.join(staged.problems[:3])}: it cannot serve another prefix,"
                             " and its key names none, so it is not pushed")
        # the entry goes under the prefix key: shared between trees of this prefix path only
        key, inputs = record["prefix_key"], {**inputs, "prefix": str(layout.prefix)}
        extra["unrelocatable"] = staged.problems
        why = (f"; keyed on the prefix {layout.prefix}, as {len(staged.problems)} file(s) cannot be relocated:"
               f" {'; '.join(staged.problems[:3])}{' ...' if len(staged.problems) > 3 else ''}")
    tags = sorted({tag for name, kind, _ in artifacts if kind == WHEEL for tag in _wheel_tags(name)})
    if staged is not None:
        tags.append(str(inputs.get("environment", {}).get("python", {}).get("tag", "")))
    manifest = make_manifest(key, pkg.name, pkg.stamp_version, inputs, artifacts, tags, extra)
    store = open_store(url)
    if push(store, manifest, artifacts, settings.signing_key):
        return f"pushed to {store.url} (key {key}){why}"
    return f"{store.url} has it already (key {key}){why}"


def relocation_problems(layout, pkg) -> list[str] | None:
    """Why an installed staged package's files cannot serve another prefix ("FILE: why"; empty:
    they relocate); None when it is not installed. For ``./sage --cache key --explain``."""
    from sage_build.install.manifest import read_manifest

    stamp = layout.stamp(pkg.name, pkg.stamp_version)
    if not stamp.is_file():
        return None
    files = [rel for rel in read_manifest(stamp).get("files", []) if not rel.endswith(".whl")
             and os.path.lexists(layout.local / rel)
             and not ((layout.local / rel).is_dir() and not (layout.local / rel).is_symlink())]
    return staged_tarball(layout.local, files, layout.prefix).problems


def _wheel_tags(filename: str) -> list[str]:
    from packaging.utils import parse_wheel_filename

    return [str(tag) for tag in parse_wheel_filename(filename)[3]]
