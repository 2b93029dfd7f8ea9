"""The binary cache on an S3-compatible store (#20 items 3, 7): moto's server, started here; the
tests skip cleanly without moto or boto3."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT

pytest.importorskip("boto3", reason="S3 needs boto3 (pip install boto3)")
pytest.importorskip("moto.server", reason="the S3 tests need moto's server (pip install 'moto[server]')")

from sage_build.base.errors import CacheError  # noqa: E402
from sage_build.cache.entry import make_manifest, pull, push  # noqa: E402
from sage_build.cache.settings import CacheSettings  # noqa: E402
from sage_build.cache.store import has_key, manifest_path, open_store  # noqa: E402
from sage_build.cache.trust import generate_key  # noqa: E402


@pytest.fixture
def s3(monkeypatch, tmp_path):
    """A moto S3 server on a free port, its bucket, and the environment boto3 reads."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "s3cr3t-testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        import boto3

        boto3.client("s3").create_bucket(Bucket="cache")
        yield env
    finally:
        server.terminate()
        server.wait()


def test_push_and_pull_through_s3_write_once(s3, tmp_path):
    secret, public = generate_key("ci-1")
    url = "s3://cache/sage"
    artifacts = [("base-1.0-py3-none-any.whl", "wheel", b"wheel bytes" * 1000)]
    manifest = make_manifest("c" * 64, "base", "1.0", {}, artifacts, [])
    assert not has_key(url, "c" * 64)
    assert push(open_store(url), manifest, artifacts, secret)
    assert has_key(url, "c" * 64)
    pulled = pull(url, "c" * 64, "base", tmp_path / "out", CacheSettings(urls=(url,), trusted_keys=(public,)))
    assert pulled.wheels[0].read_bytes() == b"wheel bytes" * 1000
    # write-once: If-None-Match: * keeps the first manifest
    store = open_store(url)
    before = store.read(manifest_path("c" * 64))
    assert store.write_once(manifest_path("c" * 64), b"other") is False
    assert store.read(manifest_path("c" * 64)) == before
    # concurrent pushes of one new key: the entry is whole and verifies. S3 lets one of them write
    # the manifest; moto's server checks If-None-Match and then writes, without a lock, so there two
    # may both write (one whole signed manifest replacing another): this asserts no more than what
    # the emulator gives. (A directory store's one winner: test_cache_store's concurrent writers.)
    other = [("mid-1.0-py3-none-any.whl", "wheel", b"mid" * 5000)]
    with ThreadPoolExecutor(6) as pool:
        won = list(pool.map(lambda _: push(open_store(url), make_manifest("d" * 64, "mid", "1.0", {}, other, []),
                                           other, secret), range(6)))
    assert won.count(True) >= 1
    assert pull(url, "d" * 64, "mid", tmp_path / "out2",
                CacheSettings(urls=(url,), trusted_keys=(public,))).wheels[0].read_bytes() == b"mid" * 5000
    assert {p for p, _ in store.list("v1/")} >= {manifest_path("c" * 64), manifest_path("d" * 64)}


def test_an_unreachable_s3_store_is_an_error_without_credentials(s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(CacheError) as error:
        has_key("s3://cache/sage", "c" * 64)
    assert "s3cr3t" not in str(error.value) and "s3://cache/sage" in str(error.value)


@pytest.mark.slow
def test_make_build_pushes_to_s3_and_another_tree_pulls_everything(s3, tmp_path):
    from test_binary_cache import _from_cache, _tree

    secret_dir = tmp_path / "keys"
    subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "keygen", "ci-1", str(secret_dir)], check=True,
                   capture_output=True)
    public = (secret_dir / "ci-1.public").read_text().strip()
    first = _tree(tmp_path / "one")
    first.make("build", extra_env=dict(s3, SAGE_BINARY_CACHE_PUSH="s3://cache/dist",
                                       SAGE_BINARY_CACHE_SIGNING_KEY=str(secret_dir / "ci-1.secret")))
    assert "s3cr3t" not in (first.root / "logs/events.jsonl").read_text()
    assert "pushed to s3://cache/dist" in (first.root / "logs/pkgs/base-1.0.log").read_text()
    second = _tree(tmp_path / "two", prefix=tmp_path / "two" / "local", recipes_from=first)
    env = dict(s3, SAGE_BINARY_CACHE="s3://cache/dist", SAGE_BINARY_CACHE_TRUSTED_KEYS=public)
    second.make("base", "mid", extra_env=dict(env, SAGE_BINARY_CACHE_MODE="only"))
    assert _from_cache(second) == {"base", "mid"}
    assert second.python("import mid, base").returncode == 0


def test_gc_pages_through_an_s3_store_reading_one_manifest_at_a_time(s3, tmp_path):
    """gc of a bucket walks its listing a page at a time (the manifests first, without the blobs),
    reads a kept entry's manifest as it comes, and deletes what no kept entry names."""
    import time as clock

    from sage_build.cache.gc import collect_garbage

    url = "s3://cache/gc"
    keys = [f"{i:x}" * 64 for i in range(12)]  # sorted as S3 lists them: 000..., 111..., ...
    blobs = {}
    for key in keys:
        artifacts = [(f"p{key[0]}-1.0-py3-none-any.whl", "wheel", f"only {key[0]}".encode()),
                     ("shared-1.0-py3-none-any.whl", "wheel", b"shared by all")]
        manifest = make_manifest(key, "p", "1.0", {}, artifacts, [])
        assert push(open_store(url), manifest, artifacts)
        blobs[key] = manifest["artifacts"][0]["sha256"]
    shared = manifest["artifacts"][1]["sha256"]
    keep = set(keys[:2])
    store = open_store(url)
    store.page_size = 5
    calls: list[str] = []
    store.client.meta.events.register("before-parameter-build.s3.ListObjectsV2",
                                      lambda params, **_: calls.append(f"list {params.get('Delimiter', '')}"))
    reading = store.read
    store.read = lambda path: calls.append(f"read {path}") or reading(path)

    dry = collect_garbage(store, keep, 1, dry_run=True, now=clock.time() + 2 * 86400)
    assert sorted(dry.entries) == sorted(keys[2:]) and sorted(dry.artifacts) == sorted(blobs[k] for k in keys[2:])
    manifest_pages = [i for i, call in enumerate(calls) if call == "list /"]
    reads = [i for i, call in enumerate(calls) if call.startswith("read ")]
    # 12 manifests and the blobs/ common prefix, 5 a page: 3 pages; each manifest read (a kept
    # one for its artifacts, another to see whether it is a kept key's prefix-key entry) before
    # the next page is asked for
    assert len(manifest_pages) == 3 and len(reads) == 12, calls
    assert sum(read < manifest_pages[1] for read in reads) == 5, calls
    assert sum(read < manifest_pages[2] for read in reads) == 10, calls
    assert all(call == "list " for call in calls[manifest_pages[-1] + 1:] if call.startswith("list")), calls
    assert not any("blobs" in call for call in calls if call.startswith("read")), calls

    result = collect_garbage(store, keep, 1, now=clock.time() + 2 * 86400)
    assert sorted(result.entries) == sorted(keys[2:]) and result.kept == 2
    left = {path for path, _ in open_store(url).list("v1/")}
    assert left == {manifest_path(k) for k in keep} | {f"v1/blobs/{blobs[k]}" for k in keep} | {f"v1/blobs/{shared}"}
    # through the command, everything old and unkept goes (grace 0), kept entries stay
    roots = tmp_path / "roots"
    roots.write_text(f"{keys[0]}\n")
    done = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "gc", url, "--keep", str(roots),
                           "--grace", "0"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    left = {path for path, _ in open_store(url).list("v1/")}
    assert left == {manifest_path(keys[0]), f"v1/blobs/{blobs[keys[0]]}", f"v1/blobs/{shared}"}, left
