"""Step 1 of the per-package pipeline: get a package's upstream file, verified.

Sources are tried in a fixed order (the ``upstream/`` cache, mirrors, the
package index pip is configured with, the recipe's ``upstream_url``, Debian's
source archive) and the first file that matches the recipe's checksums wins.
A file is downloaded under a temporary name and only renamed to its final
name after it verified, so ``upstream/`` never holds a half or wrong file
under a name the next run would trust.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from sage_build import __version__
from sage_build.recipes.checksums import (  # compute_checksums and verify: re-exported (see __all__)
    _mismatch,
    _no_checksum_error,
    _wanted,
    compute_checksums,
    verify,
)
from sage_build.base.atomic import replacing
from sage_build.base.commands import inherited_environment, output_of
from sage_build.base.errors import FetchError
from sage_build.base.lock import locked

__all__ = [
    "IndexConfig",
    "Source",
    "compute_checksums",
    "fetch",
    "find_on_index",
    "list_project_files",
    "verify",
]

T = TypeVar("T")

_CHUNK = 1 << 20
_USER_AGENT = f"sage-build/{__version__}"
_SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
# Seconds to wait before retry n is _RETRY_DELAY * n (tests set it to 0).
_RETRY_DELAY = 0.5
# The system's apt configuration we derive deb-src entries from (tests point it elsewhere).
_APT_ETC = Path("/etc/apt")


@dataclass(frozen=True)
class Source:
    """One place a file is fetched from, e.g. ``Source("mirror", "https://m/x.tar.gz")``."""

    kind: str  # "upstream/", "mirror", "index", "find-links", "upstream_url", "debian"
    location: str

    def describe(self) -> str:
        return f"{self.kind} {self.location}"


# ---------------------------------------------------------------------------
# pip's index configuration

_PIP_DEFAULT_INDEX = "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"
_TRUE = {"1", "true", "yes", "on", "y", "t"}


def _parse_pip_config(text: str) -> dict[str, str]:
    """``pip config list`` output -> {key: value}, command sections overriding global."""
    layers: dict[str, dict[str, str]] = {"global": {}, "install": {}, "download": {}}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        section, dot, option = key.strip().partition(".")
        if not sep or not dot or section not in layers:
            continue  # ":env:" entries: we read the environment ourselves
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip().strip("'\"")
        layers[section][option] = str(value)
    # pip download reads [global] then its own section; [install] is what people usually set.
    return {**layers["global"], **layers["install"], **layers["download"]}


@dataclass(frozen=True)
class IndexConfig:
    """The package indexes and find-links locations pip would use."""

    index_urls: tuple[str, ...]  # index-url first, then extra-index-urls
    find_links: tuple[str, ...] = ()

    @classmethod
    def from_pip(cls, python: str = sys.executable) -> IndexConfig:
        """Ask ``python -m pip`` for its configuration, honouring ``PIP_INDEX_URL``,
        ``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS`` and ``PIP_NO_INDEX`` (the
        environment wins, as in pip). Without an index-url, pip's default index is
        asked from pip itself. Cached per process (per python and ``PIP_*`` environment).
        """
        # pip reads them in the child: the cache key is what it will see
        pip_env = tuple(sorted((k, v) for k, v in inherited_environment().items() if k.startswith("PIP_")))
        return _index_config_from_pip(python, pip_env)


@functools.cache
def _index_config_from_pip(python: str, pip_env: tuple[tuple[str, str], ...]) -> IndexConfig:
    env = dict(pip_env)

    def run(*args: str) -> str:
        command = [python, *args]
        return output_of(command, timeout=120,
                         error=lambda why: FetchError(f"cannot ask pip for its index ({' '.join(command)}: {why})"))

    config = _parse_pip_config(run("-m", "pip", "config", "list"))
    for option in ("index-url", "extra-index-url", "find-links", "no-index"):
        value = env.get("PIP_" + option.upper().replace("-", "_"))
        if value is not None:
            config[option] = value

    find_links = tuple(config.get("find-links", "").split())
    if config.get("no-index", "").strip().lower() in _TRUE:
        return IndexConfig((), find_links)
    index_url = config.get("index-url", "").strip()
    if not index_url:
        index_url = run("-c", _PIP_DEFAULT_INDEX).strip()
    extra = tuple(u for u in config.get("extra-index-url", "").split() if u != index_url)
    return IndexConfig((index_url, *extra), find_links)


# ---------------------------------------------------------------------------
# Transfers


class _Failed(Exception):
    """One source or index page failed; the message is the reason recorded for it."""

    def __init__(self, reason: str, not_found: bool = False) -> None:
        super().__init__(reason)
        self.not_found = not_found


def _local_path(url: str) -> Path | None:
    """The local path a plain path or file:// URL names, None for a remote URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return None
        return Path(urllib.parse.unquote(parts.path))  # urllib.request.url2pathname on POSIX
    if parts.scheme == "":
        return Path(url.split("#", 1)[0])
    return None


def _join(base: str, *names: str) -> str:
    local = _local_path(base)
    if local is not None and "://" not in base:
        return str(local.joinpath(*names))
    return base.rstrip("/") + "/" + "/".join(urllib.parse.quote(n) for n in names)


def _transient(exc: BaseException) -> bool:
    import http.client
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    return isinstance(
        exc, (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException)
    )


def _reason(exc: BaseException, timeout: float) -> _Failed:
    import urllib.error

    if isinstance(exc, _Failed):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        return _Failed(f"HTTP {exc.code} {exc.reason}".rstrip(), not_found=exc.code in (404, 410))
    inner = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(inner, TimeoutError):
        return _Failed(f"timed out after {timeout:g} s")
    return _Failed(f"{type(inner).__name__}: {inner}" if not isinstance(inner, str) else inner)


def _retrying(action: Callable[[], T], timeout: float, retries: int) -> T:
    import http.client

    for attempt in range(retries + 1):
        try:
            return action()
        except (OSError, ValueError, http.client.HTTPException, _Failed) as exc:
            if attempt < retries and _transient(exc):
                time.sleep(_RETRY_DELAY * (attempt + 1))
                continue
            failed = _reason(exc, timeout)
            if attempt:
                failed = _Failed(f"{failed} (after {attempt + 1} attempts)", failed.not_found)
            raise failed from exc
    raise AssertionError("unreachable")


def _open(url: str, timeout: float, accept: str | None = None, start: int = 0) -> http.client.HTTPResponse:
    import urllib.request  # with http.client and ssl: only when something is downloaded

    headers = {"User-Agent": _USER_AGENT}
    if accept:
        headers["Accept"] = accept
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url.split("#", 1)[0], headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - URLs from config


def _stderr_is_terminal() -> bool:
    """The callers' default for a progress bar: standard error is a terminal (it may be closed:
    sys.stderr is None then)."""
    return sys.stderr is not None and sys.stderr.isatty()


def _copy_stream(src: BinaryIO, dst: BinaryIO, total: int | None, desc: str, progress: bool) -> int:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
            file=sys.stderr, leave=False,
        )
    done = 0
    try:
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
            done += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return done


def _download(url: str, part: Path, *, timeout: float, retries: int, progress: bool, desc: str) -> None:
    """Write the file at ``url`` (remote, file:// or a path) to ``part``."""
    local = _local_path(url)
    if local is not None:
        if not local.is_file():
            raise _Failed("no such file", not_found=True)
        try:
            shutil.copyfile(local, part)
        except OSError as exc:
            raise _Failed(f"cannot copy: {exc}") from exc
        return

    import http.client
    import urllib.error

    def attempt() -> None:
        # An interrupted download resumes where it stopped (HTTP Range); a server that
        # ignores the range sends the whole file again. The checksum decides in the end.
        have = part.stat().st_size if part.exists() else 0
        try:
            response = _open(url, timeout, start=have)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:
                return  # nothing left to send
            raise
        with response:
            resumed = bool(have) and response.status == 206
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with open(part, "ab" if resumed else "wb") as out:
                got = _copy_stream(response, out, total, desc, progress)
            if total is not None and got != total:
                raise http.client.IncompleteRead(b"", total - got)

    _retrying(attempt, timeout, retries)


def download_url(url: str, dest: Path, *, timeout: float = 60, retries: int = 2, progress: bool | None = None) -> Path:
    """Download ``url`` to ``dest`` (temporary name, then rename) when no checksum is known yet:
    for ./sage --package create/update, which compute the checksum afterwards."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if progress is None:
        progress = _stderr_is_terminal()
    try:
        with replacing(dest) as part:
            _download(url.split("#", 1)[0], Path(part), timeout=timeout, retries=retries, progress=progress,
                      desc=dest.name)
    except _Failed as failure:
        raise FetchError(f"cannot download {url}: {failure}") from None
    return dest


def _read(url: str, *, timeout: float, retries: int, accept: str | None = None) -> tuple[bytes, str, str]:
    """(body, content type, final URL) of an index or find-links page."""

    def attempt() -> tuple[bytes, str, str]:
        with _open(url, timeout, accept) as response:
            return response.read(), response.headers.get("Content-Type", ""), response.geturl()

    return _retrying(attempt, timeout, retries)


# ---------------------------------------------------------------------------
# Package indexes (PEP 503 HTML, PEP 691 JSON) and find-links


def _anchors(text: str) -> tuple[str | None, list[str]]:
    """An HTML page's ``<base href>`` (or None) and its ``<a href>`` values, in order."""
    import html.parser

    class AnchorParser(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.base: str | None = None
            self.hrefs: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            href = dict(attrs).get("href")
            if not href:
                return
            if tag == "base" and self.base is None:
                self.base = href
            elif tag == "a":
                self.hrefs.append(href)

    parser = AnchorParser()
    parser.feed(text)
    parser.close()
    return parser.base, parser.hrefs


def _filename(url: str) -> str:
    return urllib.parse.unquote(posixpath.basename(urllib.parse.urlsplit(url).path))


def _parse_html(text: str, page_url: str) -> list[tuple[str, str]]:
    page_base, hrefs = _anchors(text)
    base = urllib.parse.urljoin(page_url, page_base) if page_base else page_url
    links = []
    for href in hrefs:
        url = urllib.parse.urljoin(base, href)
        if name := _filename(url):
            links.append((name, url))
    return links


def _parse_json(data: bytes, page_url: str) -> list[tuple[str, str]]:
    links = []
    for entry in json.loads(data).get("files", []):
        url = urllib.parse.urljoin(page_url, entry["url"])
        hashes = entry.get("hashes") or {}
        algo = "sha256" if "sha256" in hashes else next(iter(hashes), None)
        if algo and "#" not in url:
            url += f"#{algo}={hashes[algo]}"
        links.append((entry["filename"], url))
    return links


def _parse_page(body: bytes, content_type: str, page_url: str) -> list[tuple[str, str]]:
    mime, _, params = content_type.partition(";")
    try:
        if mime.strip().lower() == _SIMPLE_JSON:
            return _parse_json(body, page_url)
        charset = re.search(r"charset=([\w-]+)", params)
        return _parse_html(body.decode(charset.group(1) if charset else "utf-8", "replace"), page_url)
    except (ValueError, KeyError, TypeError, LookupError) as exc:
        raise _Failed(f"cannot parse the index page: {exc}") from exc


def _list_dir(directory: Path) -> list[tuple[str, str]]:
    directory = directory.resolve()
    return [(p.name, p.as_uri()) for p in sorted(directory.iterdir()) if p.is_file()]


def _local_page(path: Path) -> list[tuple[str, str]]:
    """A local index page: a directory (its index.html, else its files) or an HTML file."""
    path = path.resolve()
    page = path / "index.html" if path.is_dir() else path
    if path.is_dir() and not page.is_file():
        return _list_dir(path)
    try:
        body = page.read_bytes()
    except OSError as exc:
        raise _Failed(f"cannot read: {exc}") from exc
    return _parse_page(body, "text/html", page.as_uri())


def _project_page(index_url: str, name: str, *, timeout: float, retries: int) -> tuple[str, list[tuple[str, str]]]:
    """(page location, its (filename, url) links); _Failed(not_found) if the index lacks the project."""
    canonical = canonicalize_name(name)
    local = _local_path(index_url)
    if local is not None:
        for candidate in dict.fromkeys((canonical, name)):
            if (local / candidate).is_dir():
                return str(local / candidate), _local_page(local / candidate)
        raise _Failed(f"project not on this index ({local / canonical} does not exist)", not_found=True)
    page_url = index_url.rstrip("/") + "/" + urllib.parse.quote(canonical) + "/"
    try:
        body, content_type, final_url = _read(
            page_url, timeout=timeout, retries=retries, accept=f"{_SIMPLE_JSON}, text/html;q=0.1"
        )
    except _Failed as exc:
        if exc.not_found:
            raise _Failed(f"{exc} (project not on this index)", not_found=True) from exc
        raise
    return page_url, _parse_page(body, content_type, final_url)


def _find_links_page(link: str, *, timeout: float, retries: int) -> list[tuple[str, str]]:
    local = _local_path(link)
    if local is not None:
        if not local.exists():
            raise _Failed("no such file or directory", not_found=True)
        return _list_dir(local) if local.is_dir() else _local_page(local)
    body, content_type, final_url = _read(link, timeout=timeout, retries=retries)
    return _parse_page(body, content_type, final_url)


def _lookup(
    filename: str, name: str, index: IndexConfig, *, timeout: float, retries: int, sha256: str | None = None
) -> Iterator[tuple[Source, str | None, str, bool]]:
    """Yield (where, url, "", False) for each listing of ``filename`` (or, with ``sha256``, of the
    file the index lists with that hash under another name) and (where, None, reason, absent)
    where it is not found; ``absent`` tells "not there" from "could not look"."""
    for index_url in index.index_urls:
        try:
            page, links = _project_page(index_url, name, timeout=timeout, retries=retries)
        except _Failed as exc:
            where = Source("index", _join(index_url, canonicalize_name(name), ""))
            yield where, None, str(exc), exc.not_found
            continue
        yield from _offered("index", page, links, filename, sha256)
    for link in index.find_links:
        local = _local_path(link)
        if local is not None and local.is_dir():
            # A directory: look for the file itself rather than list a possibly huge directory.
            target = local / filename
            if target.is_file():
                yield Source("find-links", str(target)), target.resolve().as_uri(), "", False
            else:
                yield Source("find-links", str(target)), None, "no such file", True
            continue
        try:
            links = _find_links_page(link, timeout=timeout, retries=retries)
        except _Failed as exc:
            yield Source("find-links", link), None, str(exc), exc.not_found
            continue
        yield from _offered("find-links", link, links, filename, sha256)



def _offered(kind: str, page: str, links, filename: str, sha256: str | None = None):
    """The sources a listing page (an index's project page, a find-links page) offers for
    ``filename``, or the page itself as a miss when it does not list it.  A recipe may name its
    file otherwise than the index does (Sage's ``Babel-2.18.0-py3-none-any.whl`` for the index's
    normalized ``babel-2.18.0-...``, ``py3-none-any`` for ``py2.py3-none-any``): the listing's
    ``#sha256=`` identifies the same file, which is verified again after the download."""
    urls = [url for fname, url in links if fname == filename]
    if not urls and sha256:
        urls = [url for _, url in links if url_hashes(url).get("sha256") == sha256.lower()]
    if not urls:
        yield Source(kind, page), None, f"{filename} not listed", True
    for url in urls:
        yield Source(kind, url.split("#", 1)[0]), url, "", False

def _raise_if_all_failed(what: str, failures: list[str], hits: int) -> None:
    if not hits and failures:
        raise FetchError(f"cannot read the package index for {what}:\n  " + "\n  ".join(failures))


def find_on_index(filename: str, name: str, index: IndexConfig, timeout: float = 60) -> list[str]:
    """URLs (with any ``#sha256=`` fragment) where the index(es) or find-links list
    ``filename`` for project ``name``. Raises FetchError only if nothing was found
    and some index or find-links location could not be read."""
    urls: list[str] = []
    failures: list[str] = []
    for where, url, reason, absent in _lookup(filename, name, index, timeout=timeout, retries=2):
        if url is not None:
            urls.append(url)
        elif not absent:
            failures.append(f"{where.describe()}: {reason}")
    _raise_if_all_failed(name, failures, len(urls))
    return list(dict.fromkeys(urls))


def _project_of(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[0]
        return parse_sdist_filename(filename)[0]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def list_project_files(name: str, index: IndexConfig, timeout: float = 60) -> list[tuple[str, str]]:
    """Every (filename, url) the index(es) list for project ``name``, plus the files
    of that project in find-links. Index pages may be PEP 503 HTML or PEP 691 JSON."""
    files: dict[tuple[str, str], None] = {}
    failures: list[str] = []
    for index_url in index.index_urls:
        try:
            _, links = _project_page(index_url, name, timeout=timeout, retries=2)
        except _Failed as exc:
            if not exc.not_found:
                failures.append(f"index {index_url}: {exc}")
            continue
        files.update(dict.fromkeys(links))
    canonical = canonicalize_name(name)
    for link in index.find_links:
        try:
            links = _find_links_page(link, timeout=timeout, retries=2)
        except _Failed as exc:
            if not exc.not_found:
                failures.append(f"find-links {link}: {exc}")
            continue
        files.update(dict.fromkeys((f, u) for f, u in links if _project_of(f) == canonical))
    _raise_if_all_failed(name, failures, len(files))
    return list(files)


def url_hashes(url: str) -> dict[str, str]:
    """The hashes an index link carries in its fragment (``#sha256=...``), by algorithm."""
    fragment = urllib.parse.urlsplit(url).fragment
    return {
        k.lower(): v.lower()
        for k, v in urllib.parse.parse_qsl(fragment)
        if k.lower() in hashlib.algorithms_guaranteed
    }


# ---------------------------------------------------------------------------
# Debian's source archive


def _deb822_paragraphs(text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, None
        elif line[0] in " \t" and key is not None:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()


def _deb_src_lines(etc: Path, keydir: Path) -> list[str]:
    """deb-src lines for the archives the system's ``deb`` entries use."""
    lines: list[str] = []

    def add(options: list[str], uri: str, suite: str, components: list[str]) -> None:
        opts = f"[{' '.join(options)}] " if options else ""
        lines.append(" ".join(["deb-src", f"{opts}{uri}", suite, *components]))

    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for n, fields in enumerate(_deb822_paragraphs(path.read_text(errors="replace"))):
            if fields.get("enabled", "yes").lower() == "no":
                continue
            if not {"deb", "deb-src"} & set(fields.get("types", "").split()):
                continue
            options = []
            signed_by = fields.get("signed-by", "")
            if "BEGIN PGP" in signed_by:
                # One-line entries only take key files, so an inline key goes into our temp dir.
                key = keydir / f"{path.stem}-{n}.asc"
                armored = signed_by.strip().splitlines()
                key.write_text("\n".join("" if s == "." else s for s in armored) + "\n")
                options.append(f"signed-by={key}")
            elif signed_by:
                options.append("signed-by=" + ",".join(signed_by.split()))
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    add(options, uri, suite, fields.get("components", "").split())

    one_line = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if not path.is_file():
            continue
        for raw in path.read_text(errors="replace").splitlines():
            words = raw.split("#", 1)[0].split()
            if not words or words[0] not in ("deb", "deb-src"):
                continue
            words = words[1:]
            options: list[str] = []
            if words and words[0].startswith("["):
                joined = " ".join(words)
                inside, _, rest = joined[1:].partition("]")
                options = [o for o in inside.split() if not o.startswith("arch=")]
                words = rest.split()
            if len(words) >= 2:
                add(options, words[0], words[1], words[2:])
    return [line for line in dict.fromkeys(lines) if "cdrom:" not in line]


def _apt_messages(proc: subprocess.CompletedProcess[str]) -> str:
    text = proc.stderr + proc.stdout
    messages = [line for line in text.splitlines() if line[:2] in ("E:", "W:")]
    return "; ".join(messages[-5:]) or text.strip()[-500:] or f"exit status {proc.returncode}"


def _debian_fill(
    apt_get: str, debian_source: str, tarball: str, wanted: Mapping[str, str], part: Path, timeout: float
) -> None:
    """Download ``debian_source``'s source files with a private apt setup; copy the tarball to ``part``."""
    with tempfile.TemporaryDirectory(prefix="sage-build-apt-") as tmp:
        root = Path(tmp)
        for sub in ("lists/partial", "cache/archives/partial", "keys", "download"):
            (root / sub).mkdir(parents=True)
        lines = _deb_src_lines(_APT_ETC, root / "keys")
        if not lines:
            raise _Failed(f"no deb entries in {_APT_ETC}/sources.list or sources.list.d to derive deb-src from")
        sources = root / "sources.list"
        sources.write_text("\n".join(lines) + "\n")
        # Everything apt writes goes into our temp dir, so the system is not changed
        # and no root or lock is needed.
        cmd = [
            apt_get, "-q",
            "-o", f"Dir::Etc::SourceList={sources}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={root / 'lists'}",
            "-o", f"Dir::Cache={root / 'cache'}",
            "-o", "Debug::NoLocking=1",
            "-o", "Acquire::Languages=none",
            "-o", f"Acquire::http::Timeout={max(1, int(timeout))}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # As root apt downloads as user _apt, who cannot write into our private 0700 dir.
            cmd += ["-o", "APT::Sandbox::User=root"]
        env = inherited_environment(LC_ALL="C")
        limit = max(120.0, timeout * 10)
        try:
            proc = subprocess.run(
                [*cmd, "update"], capture_output=True, text=True, env=env, timeout=limit
            )
            if proc.returncode != 0:
                raise _Failed(f"apt-get update failed: {_apt_messages(proc)}")
            proc = subprocess.run(
                [*cmd, "source", "--download-only", debian_source],
                capture_output=True, text=True, env=env, timeout=limit, cwd=root / "download",
            )
        except subprocess.TimeoutExpired as exc:
            raise _Failed(f"apt-get timed out after {limit:g} s") from exc
        except OSError as exc:
            raise _Failed(f"cannot run apt-get: {exc}") from exc
        if proc.returncode != 0:
            raise _Failed(f"apt-get source --download-only {debian_source} failed: {_apt_messages(proc)}")
        downloaded = sorted(p for p in (root / "download").iterdir() if p.is_file())
        chosen = root / "download" / tarball
        if not chosen.is_file():
            # Debian renames upstream tarballs (<src>_<version>.orig.tar.*); the content
            # is often the same, so accept any downloaded file with the recipe's checksums.
            chosen = next((p for p in downloaded if _mismatch(p, wanted) is None), chosen)
        if not chosen.is_file():
            names = ", ".join(p.name for p in downloaded) or "nothing"
            raise _Failed(f"apt-get downloaded {names}; none is {tarball} or has its checksum")
        try:
            shutil.copyfile(chosen, part)
        except OSError as exc:
            raise _Failed(f"cannot copy {chosen.name}: {exc}") from exc


# ---------------------------------------------------------------------------
# fetch


@dataclass(frozen=True)
class _Candidate:
    source: Source
    fill: Callable[[Path], None]  # writes the file to the given path or raises _Failed
    url_hashes: Mapping[str, str]  # hashes an index lists for the file, checked as well


def fetch(
    tarball: str,
    expected: Mapping[str, str],
    *,
    package: str,
    upstream_dir: Path,
    mirrors: Sequence[str] = (),
    index: IndexConfig | None = None,
    index_name: str | None = None,
    upstream_url: str | None = None,
    debian_source: str | None = None,
    progress: bool | None = None,
    timeout: float = 60,
    retries: int = 2,
) -> Path:
    """Return ``upstream_dir/tarball``, verified against ``expected``, fetching it if needed.

    Order: the file already in ``upstream_dir`` (a bad one is moved aside to
    ``<tarball>.bad-<timestamp>``); each mirror (``<mirror>/<tarball>``, then
    ``<mirror>/spkg/upstream/<package>/<tarball>``); if ``index_name`` is given,
    the package index(es) and find-links from ``index`` (default: pip's); then
    ``upstream_url``; then Debian's source archive for ``debian_source``.
    Raises FetchError listing every place tried and why it failed.
    """
    if not tarball or "/" in tarball or tarball in (".", "..") or "\0" in tarball:
        raise FetchError(f"{package}: tarball name {tarball!r} is not a plain file name")
    wanted = _wanted(expected)
    if not wanted:
        raise _no_checksum_error(tarball, package)
    upstream_dir = Path(upstream_dir)
    final = upstream_dir / tarball
    tried: list[tuple[Source, str]] = []
    mismatched = False

    cached = Source("upstream/", str(final))
    if final.is_file():
        bad = _mismatch(final, wanted)
        if bad is None:
            return final
        aside = final.with_name(f"{tarball}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while aside.exists():
            aside = final.with_name(f"{tarball}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
            n += 1
        os.replace(final, aside)
        tried.append((cached, f"{_describe_mismatch(bad)}; moved aside to {aside.name}"))
        mismatched = True
    else:
        tried.append((cached, "not present"))

    show = _stderr_is_terminal() if progress is None else progress

    def from_url(url: str) -> Callable[[Path], None]:
        return lambda part: _download(
            url, part, timeout=timeout, retries=retries, progress=show, desc=tarball
        )

    def candidates() -> Iterator[_Candidate]:
        for mirror in mirrors:
            for url in (_join(mirror, tarball), _join(mirror, "spkg", "upstream", package, tarball)):
                yield _Candidate(Source("mirror", url), from_url(url), {})
        if index_name:
            try:
                config = index if index is not None else IndexConfig.from_pip()
            except FetchError as exc:
                tried.append((Source("index", f"for {index_name}"), str(exc)))
            else:
                if not config.index_urls and not config.find_links:
                    tried.append((Source("index", f"for {index_name}"), "no index configured (pip --no-index)"))
                for where, url, reason, _ in _lookup(
                    tarball, index_name, config, timeout=timeout, retries=retries, sha256=wanted.get("sha256")
                ):
                    if url is None:
                        tried.append((where, reason))
                    else:
                        yield _Candidate(where, from_url(url), url_hashes(url))
        if upstream_url:
            yield _Candidate(Source("upstream_url", upstream_url), from_url(upstream_url), {})
        if debian_source:
            where = Source("debian", f"apt-get source {debian_source}")
            apt_get = shutil.which("apt-get")
            if apt_get is None:
                tried.append((where, "skipped: apt-get not found"))
            else:
                yield _Candidate(
                    where,
                    lambda part: _debian_fill(apt_get, debian_source, tarball, wanted, part, timeout),
                    {},
                )

    upstream_dir.mkdir(parents=True, exist_ok=True)
    # One partial file per tarball, kept when a download is interrupted (Ctrl-C, a killed
    # process) so the next fetch resumes it; the lock keeps two fetches of it apart.
    part = upstream_dir / f".{tarball}.part"
    with locked(upstream_dir / f".{tarball}.lock"):
        return _fetch_candidates(candidates(), part, final, wanted, tried, package, tarball, upstream_dir,
                                 mismatched)


def _fetch_candidates(candidates, part: Path, final: Path, wanted, tried, package: str, tarball: str,
                      upstream_dir: Path, mismatched: bool) -> Path:
    """Try each source in turn; the first file that verifies becomes ``final``."""
    if final.exists() and _mismatch(final, wanted) is None:
        return final  # another process fetched it while we waited for the lock
    for candidate in candidates:
        listed = candidate.url_hashes.get("sha256")
        if listed and "sha256" in wanted and listed != wanted["sha256"]:
            # No need to download what the index already says is a different file.
            tried.append((candidate.source, f"the index lists sha256 {listed}, the recipe expects {wanted['sha256']}"))
            mismatched = True
            continue
        try:
            candidate.fill(part)
            bad = _mismatch(part, wanted)
            if bad is not None:
                mismatched = True
                raise _Failed(_describe_mismatch(bad))
            bad = _mismatch(part, candidate.url_hashes) if candidate.url_hashes else None
            if bad is not None:
                raise _Failed(f"does not match the hash the index lists ({_describe_mismatch(bad)})")
            os.replace(part, final)
            return final
        except _Failed as exc:
            tried.append((candidate.source, str(exc)))
            part.unlink(missing_ok=True)  # wrong bytes or a dead source: start afresh next time

    lines = [f"  {where.describe()}: {reason}" for where, reason in tried]
    hint = (
        f"To build offline, put {tarball} into {upstream_dir}/ or pass --mirror "
        f"with a URL or directory that holds it."
    )
    if mismatched:
        hint += (
            f" If the recipe's checksum is wrong, run `./sage --package fix-checksum {package}`."
        )
    raise FetchError(
        f"cannot fetch {tarball} for package {package}; tried:\n" + "\n".join(lines) + "\n" + hint
    )


def _describe_mismatch(bad: tuple[str, str, str]) -> str:
    algo, want, got = bad
    return f"checksum mismatch: {algo} expected {want}, got {got}"
