"""Housekeeping of a binary cache (#20 item 6): ./sage --cache gc URL --keep ROOTS --grace DAYS."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

from conftest import ROOT
from sage_build.cache.entry import make_manifest, push
from sage_build.cache.store import blob_path, manifest_path, open_store

OLD = time.time() - 10 * 86400


def _entry(root, key, *payloads):
    artifacts = [(f"p{i}-1.0-py3-none-any.whl", "wheel", data) for i, data in enumerate(payloads)]
    manifest = make_manifest(key, "p", "1.0", {}, artifacts, [])
    push(open_store(str(root)), manifest, artifacts)
    return [a["sha256"] for a in manifest["artifacts"]]


def _age(root):
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (OLD, OLD))


def _gc(root, keep_file, *more):
    return subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "gc", f"file://{root}", "--keep",
                           str(keep_file), *more], capture_output=True, text=True)


def test_gc_deletes_what_no_kept_key_references_once_old(tmp_path):
    cache = tmp_path / "c"
    keep_a, drop_b, young_c = "a" * 64, "b" * 64, "c" * 64
    shared, *_ = _entry(cache, keep_a, b"shared", b"only-a")
    _, only_b = _entry(cache, drop_b, b"shared", b"only-b")
    _age(cache)
    young_blob = open_store(str(cache))
    young_blob.write_once(blob_path("f" * 64), b"a push writing now")  # no manifest yet, young
    _entry(cache, young_c, b"young")  # young, not kept
    leftover = cache / "v1/blobs" / ".x.sbtmp-99999-0"
    leftover.write_bytes(b"half")
    os.utime(leftover, (OLD, OLD))
    roots = tmp_path / "roots"
    roots.write_text(f"# keys of the default configuration\nbase {keep_a}\n")

    dry = _gc(cache, roots, "--grace", "3", "--dry-run")
    assert dry.returncode == 0 and "would delete 1 entries, 1 artifacts, 1 temporaries" in dry.stdout, dry.stdout
    assert (cache / manifest_path(drop_b)).exists()

    result = _gc(cache, roots, "--grace", "3")
    assert result.returncode == 0, result.stderr
    assert not (cache / manifest_path(drop_b)).exists() and not (cache / blob_path(only_b)).exists()
    assert (cache / manifest_path(keep_a)).exists() and (cache / blob_path(shared)).exists()
    assert (cache / manifest_path(young_c)).exists() and (cache / blob_path("f" * 64)).exists()
    assert not leftover.exists()


def test_gc_refuses_an_empty_root_set_and_bad_values(tmp_path):
    cache = tmp_path / "c"
    _entry(cache, "a" * 64, b"x")
    empty = tmp_path / "empty"
    empty.write_text("\n# nothing\n")
    result = _gc(cache, empty, "--grace", "1")
    assert result.returncode == 1 and "no key in it; refusing to delete every entry" in result.stderr
    assert (cache / manifest_path("a" * 64)).exists()
    result = _gc(cache, tmp_path / "missing", "--grace", "1")
    assert result.returncode == 1 and "cannot read it" in result.stderr and "Traceback" not in result.stderr
    result = _gc(cache, empty, "--grace", "-1")
    assert result.returncode == 1 and "0 or more" in result.stderr


def test_gc_keeps_the_prefix_key_entry_of_a_kept_key(tmp_path):
    """A staged package whose files could not be relocated has its entry under its prefix key; the
    roots list the package's key, and gc keeps that entry (and its artifact) all the same."""
    from sage_build.cache.key import RELOCATED, key_of

    cache = tmp_path / "c"
    inputs = {"package": "stuck", "version": "1.0", "prefix": "/opt/sage/local", "environment": {"x": 1}}
    prefix_key, key = key_of(inputs), key_of(dict(inputs, prefix=RELOCATED))
    other = dict(inputs, version="0.9")  # an older build's prefix-key entry: nothing keeps it
    staged = [("staged.tar.gz", "staged", b"files")]
    push(open_store(str(cache)), make_manifest(prefix_key, "stuck", "1.0", inputs, staged, []), staged)
    old_staged = [("staged.tar.gz", "staged", b"old files")]
    old_manifest = make_manifest(key_of(other), "stuck", "0.9", other, old_staged, [])
    push(open_store(str(cache)), old_manifest, old_staged)
    (cache / "v1" / f"{'e' * 64}.json").write_text("not json")  # unreadable and not kept: goes
    _age(cache)
    roots = tmp_path / "roots"
    roots.write_text(f"stuck {key}\n")
    result = _gc(cache, roots, "--grace", "1")
    assert result.returncode == 0, result.stderr
    assert (cache / manifest_path(prefix_key)).exists()
    assert (cache / blob_path(old_manifest["artifacts"][0]["sha256"])).exists() is False
    assert not (cache / manifest_path(key_of(other))).exists() and not (cache / manifest_path("e" * 64)).exists()
    assert {p.name for p in (cache / "v1/blobs").iterdir()} == {hashlib.sha256(b"files").hexdigest()}
