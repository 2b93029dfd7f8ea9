"""Tests of sage_build.fetch; everything is served from 127.0.0.1 or file:// URLs."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import sage_build.pipeline.fetch as fetch_mod
from sage_build.base.errors import ChecksumError, FetchError
from sage_build.pipeline.fetch import (
    IndexConfig,
    compute_checksums,
    fetch,
    find_on_index,
    list_project_files,
    verify,
)

TARBALL = "foo-1.0.tar.gz"
CONTENT = b"the real foo 1.0 tarball\n" * 100
SHA256 = hashlib.sha256(CONTENT).hexdigest()
EXPECTED = {"sha256": SHA256}


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    delay: float = 0.0
    # Replies served before this one (e.g. a 503 first, then the file).
    before: list[Reply] = field(default_factory=list)


class Server:
    """A local HTTP server: files under ``root`` plus per-path ``replies``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.replies: dict[str, Reply] = {}
        self.json_pages: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []  # (path, Accept header)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.requests.append((self.path, self.headers.get("Accept", "")))
                reply = server.reply_for(self.path, self.headers.get("Accept", ""))
                try:
                    time.sleep(reply.delay)
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval keeps shutdown() (each test's teardown) fast.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def reply_for(self, path: str, accept: str) -> Reply:
        if path in self.json_pages and "json" in accept:
            return Reply(body=self.json_pages[path], content_type=fetch_mod._SIMPLE_JSON)
        reply = self.replies.get(path)
        if reply is not None:
            return reply.before.pop(0) if reply.before else reply
        local = self.root / urllib.request.url2pathname(path.split("?")[0].lstrip("/"))
        if local.is_dir():
            local = local / "index.html"
        if local.is_file():
            ctype = "text/html" if local.suffix == ".html" else "application/octet-stream"
            return Reply(body=local.read_bytes(), content_type=ctype)
        return Reply(status=404, body=b"not found", content_type="text/plain")

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    srv = Server(root)
    yield srv
    srv.close()


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    return tmp_path / "upstream"


@pytest.fixture(autouse=True)
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_mod, "_RETRY_DELAY", 0)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def leftovers(upstream: Path) -> list[str]:
    return sorted(p.name for p in upstream.glob(".*part*")) if upstream.exists() else []


# ---------------------------------------------------------------------------
# checksums


@pytest.mark.skipif(not Path("/usr/bin/cksum").exists(), reason="/usr/bin/cksum not installed")
@pytest.mark.parametrize("size", [0, 1, 255, 256, 70_000, 3_000_001])
def test_cksum_matches_usr_bin_cksum(tmp_path: Path, size: int) -> None:
    path = write(tmp_path / "data", os.urandom(size))
    out = subprocess.run(["/usr/bin/cksum", str(path)], capture_output=True, text=True, check=True)
    assert compute_checksums(path)["cksum"] == out.stdout.split()[0]


def test_compute_checksums_all_in_one(tmp_path: Path) -> None:
    path = write(tmp_path / TARBALL, CONTENT)
    sums = compute_checksums(path)
    assert sums["sha256"] == SHA256
    assert sums["sha1"] == hashlib.sha1(CONTENT).hexdigest()
    assert sums["md5"] == hashlib.md5(CONTENT).hexdigest()
    assert set(sums) == {"sha256", "sha1", "md5", "cksum"}


def test_verify_mismatch_message(tmp_path: Path) -> None:
    path = write(tmp_path / TARBALL, CONTENT)
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        verify(path, {"sha256": wrong}, package="foo")
    message = str(info.value)
    assert str(path) in message
    assert "sha256" in message and wrong in message and SHA256 in message
    assert "./sage --package fix-checksum foo" in message


def test_verify_legacy_sums_only(tmp_path: Path) -> None:
    path = write(tmp_path / TARBALL, CONTENT)
    sums = compute_checksums(path)
    legacy = {k: sums[k] for k in ("sha1", "md5", "cksum")}
    verify(path, legacy)
    for algo in legacy:
        with pytest.raises(ChecksumError, match=algo):
            verify(path, {**legacy, algo: "12345"})


def test_sha256_takes_precedence_over_legacy(tmp_path: Path) -> None:
    path = write(tmp_path / TARBALL, CONTENT)
    verify(path, {"sha256": SHA256, "md5": "stale"})


def test_no_checksum_is_an_error(tmp_path: Path, upstream: Path) -> None:
    path = write(tmp_path / TARBALL, CONTENT)
    with pytest.raises(ChecksumError, match="tarball pattern without a checksum"):
        verify(path, {})
    with pytest.raises(ChecksumError, match="without a checksum"):
        fetch(TARBALL, {}, package="foo", upstream_dir=upstream)


# ---------------------------------------------------------------------------
# cache and mirrors


def test_cached_good_file_used_without_network(server: Server, upstream: Path) -> None:
    write(upstream / TARBALL, CONTENT)
    got = fetch(
        TARBALL, EXPECTED, package="foo", upstream_dir=upstream, mirrors=[server.url],
        index=IndexConfig((server.url + "/simple",), ()), index_name="foo",
        upstream_url=server.url + "/" + TARBALL,
    )
    assert got == upstream / TARBALL
    assert server.requests == []


def test_cached_bad_file_moved_aside_and_refetched(server: Server, upstream: Path) -> None:
    write(upstream / TARBALL, b"corrupt")
    write(server.root / TARBALL, CONTENT)
    got = fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream, mirrors=[server.url])
    assert got.read_bytes() == CONTENT
    aside = list(upstream.glob(TARBALL + ".bad-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"corrupt"
    assert leftovers(upstream) == []


def test_mirror_sage_layout(server: Server, upstream: Path) -> None:
    write(server.root / "spkg/upstream/foo" / TARBALL, CONTENT)
    got = fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream, mirrors=[server.url + "/"])
    assert got.read_bytes() == CONTENT
    assert server.paths() == ["/" + TARBALL, "/spkg/upstream/foo/" + TARBALL]


def test_first_mirror_wins(server: Server, tmp_path: Path, upstream: Path) -> None:
    write(server.root / "a" / TARBALL, CONTENT)
    write(server.root / "b" / TARBALL, CONTENT)
    fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream,
          mirrors=[server.url + "/a", server.url + "/b"])
    assert server.paths() == ["/a/" + TARBALL]


def test_404_on_first_mirror_then_second(server: Server, upstream: Path) -> None:
    write(server.root / "b" / TARBALL, CONTENT)
    got = fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream,
                mirrors=[server.url + "/a", server.url + "/b"])
    assert got.read_bytes() == CONTENT
    assert server.paths() == ["/a/" + TARBALL, "/a/spkg/upstream/foo/" + TARBALL, "/b/" + TARBALL]


def test_wrong_bytes_then_file_url_mirror(server: Server, tmp_path: Path, upstream: Path) -> None:
    write(server.root / TARBALL, b"something else")
    write(server.root / "spkg/upstream/foo" / TARBALL, b"also wrong")
    good = tmp_path / "mirror"
    write(good / TARBALL, CONTENT)
    got = fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream,
                mirrors=[server.url, good.as_uri()])
    assert got.read_bytes() == CONTENT
    assert leftovers(upstream) == []


def test_plain_directory_mirror_and_upstream_url(server: Server, tmp_path: Path, upstream: Path) -> None:
    write(tmp_path / "plain" / "spkg/upstream/foo" / TARBALL, CONTENT)
    assert fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream,
                 mirrors=[str(tmp_path / "plain")]).read_bytes() == CONTENT
    (upstream / TARBALL).unlink()
    write(server.root / "dl" / TARBALL, CONTENT)
    assert fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream,
                 upstream_url=f"{server.url}/dl/{TARBALL}").read_bytes() == CONTENT


def test_transient_5xx_is_retried(server: Server, upstream: Path) -> None:
    server.replies["/" + TARBALL] = Reply(body=CONTENT, before=[Reply(status=503)])
    got = fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream, mirrors=[server.url], retries=1)
    assert got.read_bytes() == CONTENT
    assert server.paths() == ["/" + TARBALL] * 2


def test_all_fail_names_every_place(server: Server, tmp_path: Path, upstream: Path) -> None:
    write(server.root / "bad" / TARBALL, b"wrong bytes")
    server.replies["/broken/" + TARBALL] = Reply(status=500)
    missing_dir = tmp_path / "nothing-here"
    with pytest.raises(FetchError) as info:
        fetch(
            TARBALL, EXPECTED, package="foo", upstream_dir=upstream,
            mirrors=[server.url + "/m", missing_dir.as_uri()],
            index=IndexConfig((server.url + "/simple",), (str(tmp_path),)), index_name="foo",
            upstream_url=server.url + "/broken/" + TARBALL, retries=1,
        )
    message = str(info.value)
    for place in [
        f"upstream/ {upstream / TARBALL}: not present",
        f"mirror {server.url}/m/{TARBALL}: HTTP 404",
        f"mirror {server.url}/m/spkg/upstream/foo/{TARBALL}: HTTP 404",
        f"mirror {missing_dir.as_uri()}/{TARBALL}: no such file",
        f"index {server.url}/simple/foo/: HTTP 404",
        f"find-links {tmp_path / TARBALL}: no such file",
        f"upstream_url {server.url}/broken/{TARBALL}: HTTP 500",
    ]:
        assert place in message
    assert "after 2 attempts" in message
    assert "--mirror" in message and str(upstream) in message
    assert leftovers(upstream) == []
    assert not (upstream / TARBALL).exists()


def test_wrong_bytes_everywhere_hints_fix_checksum(server: Server, upstream: Path) -> None:
    write(server.root / TARBALL, b"wrong bytes")
    with pytest.raises(FetchError) as info:
        fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream, mirrors=[server.url])
    message = str(info.value)
    assert f"mirror {server.url}/{TARBALL}: checksum mismatch: sha256 expected {SHA256}" in message
    assert "fix-checksum foo" in message
    assert leftovers(upstream) == [] and not (upstream / TARBALL).exists()


def test_timeout_then_next_source(server: Server, upstream: Path) -> None:
    server.replies["/slow/" + TARBALL] = Reply(body=CONTENT, delay=1.0)
    write(server.root / "fast" / TARBALL, CONTENT)
    start = time.monotonic()
    got = fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream, timeout=0.2, retries=0,
                mirrors=[server.url + "/slow", server.url + "/fast"])
    assert got.read_bytes() == CONTENT
    assert time.monotonic() - start < 1.0


def test_timeout_reported(server: Server, upstream: Path) -> None:
    server.replies["/" + TARBALL] = Reply(body=CONTENT, delay=1.0)
    with pytest.raises(FetchError, match=r"mirror .*foo-1\.0\.tar\.gz: timed out after 0\.2 s"):
        fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream, timeout=0.2, retries=0,
              upstream_url=server.url + "/" + TARBALL, mirrors=[server.url])
    assert leftovers(upstream) == []


def test_progress_bar_on_stderr(server: Server, upstream: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(server.root / TARBALL, CONTENT)
    fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream, mirrors=[server.url], progress=True)
    assert TARBALL in capsys.readouterr().err


def test_a_download_with_standard_error_closed(server: Server, upstream: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A process started with its stderr closed has sys.stderr None (make run with `2>&-`):
    the default progress decision must not ask it whether it is a terminal."""
    write(server.root / TARBALL, CONTENT)
    monkeypatch.setattr(sys, "stderr", None)
    assert fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream, mirrors=[server.url]).read_bytes() == CONTENT
    got = fetch_mod.download_url(server.url + "/" + TARBALL, tmp_path / "again" / TARBALL)
    assert got.read_bytes() == CONTENT


def test_tarball_must_be_a_file_name(upstream: Path) -> None:
    with pytest.raises(FetchError, match="not a plain file name"):
        fetch("../evil.tar.gz", EXPECTED, package="foo", upstream_dir=upstream)


# ---------------------------------------------------------------------------
# package indexes


SDIST = "My_Pkg-1.0.tar.gz"
SDIST_BYTES = b"my-pkg sdist\n" * 50
SDIST_SHA = hashlib.sha256(SDIST_BYTES).hexdigest()


def make_simple_index(root: Path, listed_sha: str = SDIST_SHA) -> Path:
    """root/simple/my-pkg/index.html with relative links into root/files/."""
    write(root / "files" / SDIST, SDIST_BYTES)
    write(root / "files" / "My_Pkg-0.9.tar.gz", b"old")
    page = (
        "<!DOCTYPE html><html><body>\n"
        '<a href="../../files/My_Pkg-0.9.tar.gz">My_Pkg-0.9.tar.gz</a>\n'
        f'<a href="../../files/{SDIST}#sha256={listed_sha}">{SDIST}</a>\n'
        "</body></html>\n"
    )
    write(root / "simple" / "my-pkg" / "index.html", page.encode())
    return root / "simple"


@pytest.mark.parametrize("kind", ["http", "file", "path"])
def test_index_pep503_relative_urls(kind: str, server: Server, tmp_path: Path, upstream: Path) -> None:
    simple = make_simple_index(server.root)
    index_url = {"http": server.url + "/simple/", "file": simple.as_uri(), "path": str(simple)}[kind]
    index = IndexConfig((index_url,), ())
    got = fetch(SDIST, {"sha256": SDIST_SHA}, package="my_pkg", upstream_dir=upstream,
                index=index, index_name="My.Pkg")
    assert got.read_bytes() == SDIST_BYTES
    if kind == "http":
        assert server.paths() == ["/simple/my-pkg/", "/files/" + SDIST]
        assert "application/vnd.pypi.simple.v1+json" in server.requests[0][1]
    urls = find_on_index(SDIST, "my-pkg", index)
    assert len(urls) == 1 and urls[0].endswith(f"/files/{SDIST}#sha256={SDIST_SHA}")
    assert [f for f, _ in list_project_files("MY_PKG", index)] == ["My_Pkg-0.9.tar.gz", SDIST]


def test_index_fragment_checked_with_legacy_sums(server: Server, upstream: Path) -> None:
    make_simple_index(server.root, listed_sha="f" * 64)
    legacy = {"md5": hashlib.md5(SDIST_BYTES).hexdigest()}
    with pytest.raises(FetchError, match="does not match the hash the index lists"):
        fetch(SDIST, legacy, package="my_pkg", upstream_dir=upstream,
              index=IndexConfig((server.url + "/simple",), ()), index_name="my-pkg")
    assert leftovers(upstream) == []


def test_index_fragment_mismatch_skips_download(server: Server, upstream: Path) -> None:
    make_simple_index(server.root, listed_sha="f" * 64)
    with pytest.raises(FetchError, match=f"the index lists sha256 {'f' * 64}, the recipe expects {SDIST_SHA}"):
        fetch(SDIST, {"sha256": SDIST_SHA}, package="my_pkg", upstream_dir=upstream,
              index=IndexConfig((server.url + "/simple",), ()), index_name="my-pkg")
    assert server.paths() == ["/simple/my-pkg/"]


def test_second_index_used_when_first_lacks_project(server: Server, upstream: Path) -> None:
    make_simple_index(server.root / "two")
    index = IndexConfig((server.url + "/one/simple", server.url + "/two/simple"), ())
    got = fetch(SDIST, {"sha256": SDIST_SHA}, package="my_pkg", upstream_dir=upstream,
                index=index, index_name="my-pkg")
    assert got.read_bytes() == SDIST_BYTES


def test_index_pep691_json(server: Server, upstream: Path) -> None:
    write(server.root / "pkgs" / SDIST, SDIST_BYTES)
    server.json_pages["/simple/my-pkg/"] = json.dumps({
        "meta": {"api-version": "1.0"},
        "name": "my-pkg",
        "files": [{"filename": SDIST, "url": f"../../pkgs/{SDIST}", "hashes": {"sha256": SDIST_SHA}}],
    }).encode()
    index = IndexConfig((server.url + "/simple",), ())
    assert list_project_files("my-pkg", index) == [(SDIST, f"{server.url}/pkgs/{SDIST}#sha256={SDIST_SHA}")]
    got = fetch(SDIST, {"sha256": SDIST_SHA}, package="my_pkg", upstream_dir=upstream,
                index=index, index_name="my-pkg")
    assert got.read_bytes() == SDIST_BYTES


def test_find_links_directory(tmp_path: Path, upstream: Path) -> None:
    links = tmp_path / "wheels"
    write(links / SDIST, SDIST_BYTES)
    write(links / "my_pkg-1.0-py3-none-any.whl", b"wheel")
    write(links / "other-2.0.tar.gz", b"other")
    index = IndexConfig((), (str(links),))
    got = fetch(SDIST, {"sha256": SDIST_SHA}, package="my_pkg", upstream_dir=upstream,
                index=index, index_name="my-pkg")
    assert got.read_bytes() == SDIST_BYTES
    assert sorted(f for f, _ in list_project_files("my-pkg", index)) == [
        SDIST, "my_pkg-1.0-py3-none-any.whl"
    ]


def test_find_links_html_page(server: Server, upstream: Path) -> None:
    write(server.root / "dl" / SDIST, SDIST_BYTES)
    write(server.root / "links.html", f'<a href="dl/{SDIST}">{SDIST}</a>'.encode())
    index = IndexConfig((), (server.url + "/links.html",))
    assert find_on_index(SDIST, "my-pkg", index) == [f"{server.url}/dl/{SDIST}"]


def test_unreachable_index_is_an_error_for_lookups() -> None:
    with pytest.raises(FetchError, match="cannot read the package index"):
        find_on_index(SDIST, "my-pkg", IndexConfig(("http://127.0.0.1:9/simple",), ()), timeout=2)


# ---------------------------------------------------------------------------
# pip configuration


@pytest.fixture
def clean_pip_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("PIP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # pip then reads no config file
    return monkeypatch


def test_parse_pip_config() -> None:
    text = (
        ":env:.find-links='/ignored'\n"
        "global.index-url='http://a.invalid/simple'\n"
        "global.extra-index-url='file:///x/simple file:///y/simple'\n"
        "install.index-url='http://b.invalid/simple'\n"
        "global.find-links='/w1\\n/w2'\n"
    )
    config = fetch_mod._parse_pip_config(text)
    assert config["index-url"] == "http://b.invalid/simple"
    assert config["extra-index-url"].split() == ["file:///x/simple", "file:///y/simple"]
    assert config["find-links"].split() == ["/w1", "/w2"]


def test_from_pip_env(clean_pip_env: pytest.MonkeyPatch) -> None:
    clean_pip_env.setenv("PIP_INDEX_URL", "http://idx.invalid/simple")
    clean_pip_env.setenv("PIP_EXTRA_INDEX_URL", "file:///e1/simple file:///e2/simple")
    clean_pip_env.setenv("PIP_FIND_LINKS", "/links/a /links/b")
    assert IndexConfig.from_pip(sys.executable) == IndexConfig(
        ("http://idx.invalid/simple", "file:///e1/simple", "file:///e2/simple"),
        ("/links/a", "/links/b"),
    )
    clean_pip_env.setenv("PIP_NO_INDEX", "1")
    assert IndexConfig.from_pip(sys.executable) == IndexConfig((), ("/links/a", "/links/b"))


def test_from_pip_config_file_and_env_wins(clean_pip_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nindex-url = http://conf.invalid/simple\n"
        "extra-index-url =\n    file:///c1/simple\n    file:///c2/simple\n"
        "find-links = /conf/links\n"
    )
    clean_pip_env.setenv("PIP_CONFIG_FILE", str(conf))
    assert IndexConfig.from_pip(sys.executable) == IndexConfig(
        ("http://conf.invalid/simple", "file:///c1/simple", "file:///c2/simple"), ("/conf/links",)
    )
    clean_pip_env.setenv("PIP_EXTRA_INDEX_URL", "file:///env/simple")
    assert IndexConfig.from_pip(sys.executable).index_urls == (
        "http://conf.invalid/simple", "file:///env/simple"
    )


def test_from_pip_default_index_asked_from_pip(clean_pip_env: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pip")
    from pip._internal.models.index import PyPI

    clean_pip_env.setenv("PIP_EXTRA_INDEX_URL", "file:///e/simple")
    assert IndexConfig.from_pip(sys.executable) == IndexConfig((PyPI.simple_url, "file:///e/simple"), ())


# ---------------------------------------------------------------------------
# Debian


def test_deb_src_lines_from_system_style_config(tmp_path: Path) -> None:
    etc = tmp_path / "apt"
    write(etc / "sources.list.d" / "debian.sources", (
        "Types: deb\n"
        "# a comment\n"
        "URIs: http://mirror.invalid/debian\n"
        "Suites: stable stable-updates\n"
        "Components: main contrib\n"
        "Signed-By: /usr/share/keyrings/archive.gpg\n"
        "\n"
        "Types: deb\n"
        "URIs: http://other.invalid/deb\n"
        "Suites: stable\n"
        "Components: main\n"
        "Signed-By:\n"
        " -----BEGIN PGP PUBLIC KEY BLOCK-----\n"
        " .\n"
        " AAAA\n"
        " -----END PGP PUBLIC KEY BLOCK-----\n"
        "\n"
        "Types: deb\n"
        "Enabled: no\n"
        "URIs: http://disabled.invalid/\n"
        "Suites: x\n"
        "Components: main\n"
    ).encode())
    write(etc / "sources.list", (
        "# comment\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://third.invalid/debian stable main # trailing\n"
        "deb cdrom:[Debian]/ stable main\n"
    ).encode())
    keys = tmp_path / "keys"
    keys.mkdir()
    lines = fetch_mod._deb_src_lines(etc, keys)
    key = keys / "debian-1.asc"
    assert lines == [
        "deb-src [signed-by=/usr/share/keyrings/archive.gpg] http://mirror.invalid/debian stable main contrib",
        "deb-src [signed-by=/usr/share/keyrings/archive.gpg] http://mirror.invalid/debian stable-updates main contrib",
        f"deb-src [signed-by={key}] http://other.invalid/deb stable main",
        "deb-src [signed-by=/k.gpg] http://third.invalid/debian stable main",
    ]
    assert key.read_text().splitlines()[:3] == ["-----BEGIN PGP PUBLIC KEY BLOCK-----", "", "AAAA"]


def test_debian_skipped_without_apt_get(monkeypatch: pytest.MonkeyPatch, upstream: Path) -> None:
    monkeypatch.setattr(fetch_mod.shutil, "which", lambda name: None)
    with pytest.raises(FetchError, match=r"debian apt-get source libyaml: skipped: apt-get not found"):
        fetch(TARBALL, EXPECTED, package="foo", upstream_dir=upstream, debian_source="libyaml")


LIBYAML = "libyaml_0.2.5.orig.tar.gz"
LIBYAML_SHA256 = "fa240dbf262be053f3898006d502d514936c818e422afdcf33921c63bed9bf2e"


@pytest.mark.network
def test_debian_source_archive(tmp_path: Path) -> None:
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not installed")
    keys = tmp_path / "keys"
    keys.mkdir()
    lines = fetch_mod._deb_src_lines(fetch_mod._APT_ETC, keys)
    if not lines:
        pytest.skip("the system's apt configuration has no deb entries")
    words = lines[0].split("]")[-1].split() if "[" in lines[0] else lines[0].split()[1:]
    release = f"{words[0].rstrip('/')}/dists/{words[1]}/Release"
    try:
        urllib.request.urlopen(release, timeout=10).close()
    except OSError as exc:
        pytest.skip(f"Debian's archive cannot be reached ({release}): {exc}")
    got = fetch(LIBYAML, {"sha256": LIBYAML_SHA256}, package="libyaml",
                upstream_dir=tmp_path / "upstream", debian_source="libyaml", progress=False)
    assert got == tmp_path / "upstream" / LIBYAML
    assert hashlib.sha256(got.read_bytes()).hexdigest() == LIBYAML_SHA256


def test_interrupted_download_resumes_with_a_range_request(tmp_path, monkeypatch):
    import hashlib
    import http.server
    import threading

    monkeypatch.setattr(fetch_mod, "_RETRY_DELAY", 0)
    payload = bytes(range(256)) * 4000  # 1 MB
    seen: list[str | None] = []

    class Flaky(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            wanted = self.headers.get("Range")
            seen.append(wanted)
            if wanted is None:
                # the first answer promises everything and breaks off half-way
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.connection.close()
                return
            start = int(wanted.split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Length", str(len(payload) - start))
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
            self.end_headers()
            self.wfile.write(payload[start:])

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/big-1.0.tar.gz"
        path = fetch_mod.fetch("big-1.0.tar.gz", {"sha256": hashlib.sha256(payload).hexdigest()}, package="big",
                                  upstream_dir=tmp_path, upstream_url=url, progress=False, retries=2)
    finally:
        server.shutdown()
    assert path.read_bytes() == payload
    assert seen[0] is None and seen[1] == f"bytes={len(payload) // 2}-"
    assert not list(tmp_path.glob(".big-1.0.tar.gz.part*"))


@pytest.mark.parametrize("recipe_name", ["my_pkg-1.0.tar.gz", "My.Pkg-1.0.tar.gz"])
def test_index_file_of_another_name_found_by_its_sha256(recipe_name: str, server: Server, upstream: Path) -> None:
    """Sage's recipes may name a file otherwise than the index does (Babel-2.18.0-py3-none-any.whl
    for babel-2.18.0-..., sortedcontainers' py3-none-any for py2.py3-none-any): the listed
    sha256 finds it; it is stored under the recipe's name, verified."""
    make_simple_index(server.root)
    got = fetch(recipe_name, {"sha256": SDIST_SHA}, package="my_pkg", upstream_dir=upstream,
                index=IndexConfig((server.url + "/simple",), ()), index_name="my-pkg")
    assert got == upstream / recipe_name and got.read_bytes() == SDIST_BYTES


def test_index_file_of_another_name_and_another_sha256_is_not_taken(server: Server, upstream: Path) -> None:
    make_simple_index(server.root)
    with pytest.raises(FetchError, match="my_pkg-1.0.tar.gz not listed"):
        fetch("my_pkg-1.0.tar.gz", {"sha256": "e" * 64}, package="my_pkg", upstream_dir=upstream,
              index=IndexConfig((server.url + "/simple",), ()), index_name="my-pkg")
    assert "/files/" + SDIST not in server.paths()
