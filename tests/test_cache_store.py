"""The binary cache's storage (#20 item 3): write-once objects, the manifest's presence means
complete, concurrent writers harmless, bad URLs and unreachable caches told clearly."""

from __future__ import annotations

import http.server
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from sage_build.base.errors import CacheError
from sage_build.cache.store import blob_path, display_url, has_key, manifest_path, open_store


def test_a_directory_store_writes_once_and_never_replaces(tmp_path):
    for url in (f"file://{tmp_path}/c", str(tmp_path / "c")):
        store = open_store(url)
        assert store.write_once(blob_path("ab"), b"first") in (True, False)
    store = open_store(f"file://{tmp_path}/c")
    assert store.read(blob_path("ab")) == b"first"
    assert store.write_once(blob_path("ab"), b"second") is False
    assert store.read(blob_path("ab")) == b"first"
    assert store.read(blob_path("cd")) is None
    assert not has_key(f"file://{tmp_path}/c", "k") and store.write_once(manifest_path("k"), b"{}")
    assert has_key(f"file://{tmp_path}/c", "k")
    assert not [p for p in (tmp_path / "c").rglob("*") if ".sbtmp-" in p.name]


def test_concurrent_writers_of_one_name_leave_one_whole_object(tmp_path):
    store = open_store(str(tmp_path))
    for round_ in range(20):
        payloads = [bytes([i]) * 200_000 for i in range(8)]
        with ThreadPoolExecutor(8) as pool:
            won = list(pool.map(lambda data: store.write_once(f"v1/blobs/r{round_}", data), payloads))
        assert won.count(True) == 1
        assert store.read(f"v1/blobs/r{round_}") == payloads[won.index(True)]
    assert not [p for p in tmp_path.rglob("*") if ".sbtmp-" in p.name]


@pytest.mark.parametrize("url, message", [
    ("relative/dir", "must be an absolute path"),
    ("ftp://host/c", "unknown kind of URL"),
    ("s3:///prefix", "name the bucket"),
])
def test_a_bad_url_is_refused_clearly(url, message):
    with pytest.raises(CacheError, match=message):
        open_store(url)


def test_a_missing_directory_is_an_error_not_a_miss(tmp_path):
    with pytest.raises(CacheError, match="is not a directory"):
        has_key(str(tmp_path / "nowhere"), "k")


def test_paths_cannot_leave_the_store(tmp_path):
    store = open_store(str(tmp_path / "c"))
    with pytest.raises(CacheError, match="refusing the path"):
        store.write_once("v1/../../escape", b"x")
    assert not (tmp_path / "escape").exists()


def test_credentials_never_show(tmp_path):
    assert display_url("https://user:s3cret@cache.example/x") == "https://cache.example/x"
    assert display_url("https://cache.example:8443/x?X-Amz-Signature=s3cret") == "https://cache.example:8443/x"
    assert display_url("file:///srv/cache") == "file:///srv/cache"
    with pytest.raises(CacheError) as error:
        has_key("http://user:s3cret@127.0.0.1:9/x", "k")  # nothing listens on port 9
    assert "s3cret" not in str(error.value) and "cannot be reached" in str(error.value)


def test_an_http_store_reads_a_directory_served_statically(tmp_path):
    store = open_store(str(tmp_path))
    store.write_once(manifest_path("k1"), b'{"x": 1}')
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        assert has_key(url, "k1") and not has_key(url, "k2")
        assert open_store(url).read(manifest_path("k1")) == b'{"x": 1}'
        with pytest.raises(CacheError, match="read-only"):
            open_store(url).write_once(manifest_path("k3"), b"")
    finally:
        server.shutdown()
