"""Trust in binary-cache entries (#20 item 4): signed manifests, the sha256 and size of every
artifact; corrupted, truncated, unsigned, wrongly signed or swapped entries are refused, saying why."""

from __future__ import annotations

import hashlib
import json

import pytest

from sage_build.base.errors import CacheError
from sage_build.cache.entry import make_manifest, pull, push
from sage_build.cache.settings import CacheSettings
from sage_build.cache.store import blob_path, manifest_path, open_store
from sage_build.cache.trust import generate_key

KEY = "a" * 64
WHEEL = b"PK\x03\x04 pretend wheel " * 100


@pytest.fixture
def keys():
    return generate_key("good-1"), generate_key("evil-1")


def _push(root, secret="", key=KEY, package="base"):
    artifacts = [("base-1.0-py3-none-any.whl", "wheel", WHEEL)]
    manifest = make_manifest(key, package, "1.0", {"package": package}, artifacts, ["py3-none-any"])
    assert push(open_store(str(root)), manifest, artifacts, secret)
    return manifest


def _trusting(public, **more):
    return CacheSettings(urls=("x",), trusted_keys=(public,), **more)


def test_a_signed_entry_from_a_trusted_key_is_pulled(tmp_path, keys):
    (secret, public), _ = keys
    _push(tmp_path / "c", secret)
    pulled = pull(str(tmp_path / "c"), KEY, "base", tmp_path / "out", _trusting(public))
    assert pulled is not None and pulled.wheels[0].read_bytes() == WHEEL
    assert pull(str(tmp_path / "c"), "b" * 64, "base", tmp_path / "out", _trusting(public)) is None  # a miss


@pytest.mark.parametrize("damage, message", [
    ("corrupt", "does not match the manifest's sha256 and size"),
    ("truncate", "does not match the manifest's sha256 and size"),
    ("missing", "is missing"),
    ("manifest-edited", "does not match its content"),
    ("manifest-garbage", "not a manifest sage-build wrote"),
])
def test_a_damaged_entry_is_refused(tmp_path, keys, damage, message):
    (secret, public), _ = keys
    manifest = _push(tmp_path / "c", secret)
    blob = tmp_path / "c" / blob_path(manifest["artifacts"][0]["sha256"])
    entry = tmp_path / "c" / manifest_path(KEY)
    if damage == "corrupt":
        blob.write_bytes(WHEEL.replace(b"pretend", b"PRETEND"))
    elif damage == "truncate":
        blob.write_bytes(WHEEL[:100])
    elif damage == "missing":
        blob.unlink()
    elif damage == "manifest-edited":
        document = json.loads(entry.read_text())
        document["manifest"]["artifacts"][0]["sha256"] = hashlib.sha256(b"other").hexdigest()
        entry.write_text(json.dumps(document))
    else:
        entry.write_text('{"manifest": ')
    with pytest.raises(CacheError, match=message):
        pull(str(tmp_path / "c"), KEY, "base", tmp_path / "out", _trusting(public))
    assert not list((tmp_path / "out").glob("*.whl")) or damage in ("missing",)


def test_unsigned_and_unknown_keys_are_refused_unless_told(tmp_path, keys):
    (secret, public), (evil_secret, evil_public) = keys
    _push(tmp_path / "unsigned")
    _push(tmp_path / "evil", evil_secret)
    with pytest.raises(CacheError, match="is not signed; trust an unsigned cache of your own with SAGE_BINARY_CACHE_TRUST=unsigned"):
        pull(str(tmp_path / "unsigned"), KEY, "base", tmp_path / "out", _trusting(public))
    with pytest.raises(CacheError, match="signed by 'evil-1', a key not trusted here"):
        pull(str(tmp_path / "evil"), KEY, "base", tmp_path / "out", _trusting(public))
    with pytest.raises(CacheError, match="no key is trusted"):
        pull(str(tmp_path / "evil"), KEY, "base", tmp_path / "out", CacheSettings(urls=("x",)))
    # a key of the same name but other bytes: a forged signature
    forged = "good-1:" + evil_public.split(":")[1]
    _push(tmp_path / "forged", "good-1:" + evil_secret.split(":")[1])
    with pytest.raises(CacheError, match="does not match its content"):
        pull(str(tmp_path / "forged"), KEY, "base", tmp_path / "out", _trusting(public))
    assert pull(str(tmp_path / "forged"), KEY, "base", tmp_path / "out", _trusting(forged)) is not None
    # told: unsigned entries are taken, their artifacts still checked
    assert pull(str(tmp_path / "unsigned"), KEY, "base", tmp_path / "out", CacheSettings(unsigned=True)) is not None


def test_an_entry_of_another_key_or_package_is_refused(tmp_path, keys):
    (secret, public), _ = keys
    _push(tmp_path / "c", secret, key="b" * 64)
    (tmp_path / "c" / manifest_path(KEY)).write_bytes((tmp_path / "c" / manifest_path("b" * 64)).read_bytes())
    with pytest.raises(CacheError, match="describes another entry"):
        pull(str(tmp_path / "c"), KEY, "base", tmp_path / "out", _trusting(public))


def test_an_artifact_name_that_would_escape_is_refused(tmp_path):
    artifacts = [("../../evil.whl", "wheel", WHEEL)]
    push(open_store(str(tmp_path / "c")), make_manifest(KEY, "base", "1.0", {}, artifacts, []), artifacts)
    with pytest.raises(CacheError, match="names an artifact sage-build does not take"):
        pull(str(tmp_path / "c"), KEY, "base", tmp_path / "out", CacheSettings(unsigned=True))
    assert not (tmp_path / "evil.whl").exists()


def test_a_second_push_of_a_key_leaves_the_first(tmp_path, keys):
    (secret, public), _ = keys
    _push(tmp_path / "c", secret)
    before = (tmp_path / "c" / manifest_path(KEY)).read_bytes()
    artifacts = [("base-1.0-py3-none-any.whl", "wheel", b"other bytes")]
    assert not push(open_store(str(tmp_path / "c")), make_manifest(KEY, "base", "1.0", {}, artifacts, []), artifacts, secret)
    assert (tmp_path / "c" / manifest_path(KEY)).read_bytes() == before


def test_bad_keys_are_told_clearly(tmp_path):
    from sage_build.cache.trust import parse_key

    for text in ("", "nocolon", "name:not-base64!", "name:" + "QUJD", "bad name:" + "A" * 44):
        with pytest.raises(CacheError, match="NAME:BASE64"):
            parse_key(text, "SAGE_BINARY_CACHE_TRUSTED_KEYS")


def test_a_staged_tarball_that_would_escape_is_refused(tmp_path):
    import io
    import tarfile

    from sage_build.cache.entry import unpack_staged

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "staged.tar.gz").write_bytes(buffer.getvalue())
    with pytest.raises(CacheError, match="cannot unpack the cached files"):
        unpack_staged(tmp_path / "staged.tar.gz", tmp_path / "a" / "b" / "prefix")
    assert not (tmp_path / "a" / "escaped").exists() and not (tmp_path / "escaped").exists()


def test_the_signing_key_stays_out_of_the_settings_text(keys):
    # a traceback or a log line that shows the settings (or sage-spkg's, which hold them) must not
    # show the secret key, nor the trusted keys' list
    from sage_build.pipeline.spkg import SpkgSettings

    (secret, public), _ = keys
    settings = CacheSettings(urls=("file:///c",), push="file:///c", trusted_keys=(public,), signing_key=secret)
    for text in (repr(settings), str(settings), repr(SpkgSettings(environ={}, cache=settings))):
        assert secret not in text and public not in text, text
        assert "file:///c" in text
