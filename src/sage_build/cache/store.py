"""The binary cache's storage, on dumb storage (#20 item 3): a directory (``file://`` or a plain
path), any static HTTP(S) host (read-only), an S3-compatible store (``s3://bucket/prefix``, boto3).

Layout under the root, the same on every backend::

    v1/<key>.json            the entry's (signed) manifest, written last: its presence means complete
    v1/blobs/<sha256>        the artifacts, content-addressed (a wheel, a staged tree's tarball)

Everything is written once and never overwritten: a directory writes a temporary and links it into
place (the link fails if the name exists), S3 puts with ``If-None-Match: *``. So two pushes of one
key at once are harmless: the second finds the names taken and leaves them, and a reader sees either
no manifest or a whole one whose artifacts are already there.

Every backend is behind :class:`Store`; :func:`open_store` picks one from a URL.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from pathlib import Path
from typing import Iterable, Iterator, Protocol

from sage_build.base.atomic import TMP_MARK, tmp_name
from sage_build.base.errors import CacheError

LAYOUT = "v1"


def manifest_path(key: str) -> str:
    return f"{LAYOUT}/{key}.json"


def blob_path(sha256: str) -> str:
    return f"{LAYOUT}/blobs/{sha256}"


class Store(Protocol):
    """One binary cache. Paths are relative to its root, ``/``-separated (:func:`manifest_path`)."""

    url: str  # as a person may read it: without credentials (display_url)

    def read(self, path: str) -> bytes | None:
        """The object's bytes; None when there is none. CacheError when the store cannot be reached."""

    def exists(self, path: str) -> bool:
        """Whether the object exists."""

    def write_once(self, path: str, data: bytes) -> bool:
        """Write the object unless it exists: True if written, False if it existed (left as it was)."""

    def list(self, prefix: str, recursive: bool = True) -> Iterable[tuple[str, float]]:
        """Every object under ``prefix``: (path, modification time in seconds since the epoch),
        produced as the listing goes (a page at a time from S3), so that a store of any size is
        walked in bounded memory; ``recursive=False``: only the objects directly under it (the
        manifests of ``v1/``, not its blobs)."""

    def delete(self, path: str) -> None:
        """Remove the object (gone already is fine)."""


def display_url(url: str) -> str:
    """A URL without the user name, password and query it may carry (a signed URL's credentials
    are in its query): what logs, events and errors show."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None and not parts.query:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def open_store(url: str) -> Store:
    """The store of a URL: ``file:///dir`` or ``/dir``, ``http(s)://host/path`` (read-only),
    ``s3://bucket/prefix`` (credentials and endpoint as boto3 finds them: ``AWS_*`` variables,
    ``~/.aws``)."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme in ("", "file"):
        path = urllib.parse.unquote(urllib.parse.urlsplit(url).path) if scheme else url
        if not path.startswith("/"):
            raise CacheError(f"binary cache {url!r}: a directory must be an absolute path (file:///dir or /dir)")
        return DirectoryStore(Path(path))
    if scheme in ("http", "https"):
        return HttpStore(url)
    if scheme == "s3":
        return S3Store(url)
    raise CacheError(f"binary cache {display_url(url)!r}: unknown kind of URL; use file:///dir, /dir,"
                     " http(s)://host/path or s3://bucket/prefix")


def has_key(url: str, key: str) -> bool:
    """Whether the cache at ``url`` has a complete entry (its manifest) for ``key``. Says nothing of
    its signature: a pull verifies that. CacheError when the cache cannot be reached."""
    return open_store(url).exists(manifest_path(key))


class DirectoryStore:
    """A directory of the local file system (or a mounted one)."""

    def __init__(self, root: Path):
        self.root = root
        self.url = f"file://{root}"

    def _path(self, path: str) -> Path:
        if path.startswith("/") or ".." in path.split("/"):
            raise CacheError(f"{self.url}: refusing the path {path!r}")
        return self.root / path

    def read(self, path: str) -> bytes | None:
        try:
            return self._path(path).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            if not self.root.is_dir():
                raise CacheError(f"binary cache {self.url}: {self.root} is not a directory") from None
            return None
        except OSError as error:
            raise CacheError(f"binary cache {self.url}: cannot read {path}: {error.strerror}") from None

    def exists(self, path: str) -> bool:
        if not self.root.is_dir():
            raise CacheError(f"binary cache {self.url}: {self.root} is not a directory")
        return self._path(path).is_file()

    def write_once(self, path: str, data: bytes) -> bool:
        target = self._path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                return False
            temporary = tmp_name(target)
            with open(temporary, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.chmod(temporary, 0o644)
                os.link(temporary, target)  # never replaces: the first writer wins
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(temporary)
        except OSError as error:
            raise CacheError(f"binary cache {self.url}: cannot write {path}: {error.strerror}") from None

    def list(self, prefix: str, recursive: bool = True) -> Iterator[tuple[str, float]]:
        base = self._path(prefix)
        if not recursive:
            try:
                entries = os.scandir(base)
            except (FileNotFoundError, NotADirectoryError):
                return
            with entries:
                for entry in entries:
                    try:
                        if entry.is_file(follow_symlinks=False):
                            yield str(Path(entry.path).relative_to(self.root)), entry.stat().st_mtime
                    except FileNotFoundError:  # deleted meanwhile (gc, another gc)
                        continue
            return
        for directory, _, files in os.walk(base):
            for name in files:
                full = Path(directory) / name
                try:
                    mtime = full.stat().st_mtime
                except FileNotFoundError:
                    continue
                yield str(full.relative_to(self.root)), mtime

    def delete(self, path: str) -> None:
        self._path(path).unlink(missing_ok=True)


class HttpStore:
    """Any static HTTP(S) host: read-only (publish to it with what serves it: a directory, S3)."""

    def __init__(self, url: str):
        self.base = url.rstrip("/") + "/"
        self.url = display_url(self.base)

    def _get(self, path: str, method: str = "GET") -> bytes | None:
        import urllib.error  # only when an HTTP cache is used: sage-spkg imports this module
        import urllib.request

        request = urllib.request.Request(self.base + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            if error.code in (404, 410):
                return None
            raise CacheError(f"binary cache {self.url}: {path}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise CacheError(f"binary cache {self.url} cannot be reached: {reason}") from None

    def read(self, path: str) -> bytes | None:
        return self._get(path)

    def exists(self, path: str) -> bool:
        return self._get(path, "HEAD") is not None

    def write_once(self, path: str, data: bytes) -> bool:
        raise CacheError(f"binary cache {self.url}: an HTTP(S) cache is read-only; push to the directory or"
                         " S3 bucket that it serves")

    def list(self, prefix: str, recursive: bool = True) -> list[tuple[str, float]]:
        raise CacheError(f"binary cache {self.url}: an HTTP(S) cache cannot be listed; collect garbage in"
                         " the directory or S3 bucket that it serves")

    def delete(self, path: str) -> None:
        self.list(path)


class S3Store:
    """An S3-compatible store through boto3 (an optional dependency: ``pip install boto3``)."""

    #: Objects a listing request asks for (S3's maximum): one page in memory at a time.
    page_size = 1000

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        if not self.bucket:
            raise CacheError(f"binary cache {url!r}: name the bucket, s3://bucket/prefix")
        try:
            import boto3
            import botocore.exceptions
        except ImportError:
            raise CacheError(f"binary cache {self.url}: S3 needs boto3, which is not installed;"
                             " install it into sage-build's tool environment (.venv/bin/pip install boto3)") from None
        self._errors = botocore.exceptions
        self.client = boto3.client("s3")

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _fail(self, what: str, error: Exception) -> CacheError:
        # the message of botocore names the operation and the code, never the credentials
        return CacheError(f"binary cache {self.url}: {what}: {error}")

    def _code(self, error: Exception) -> str:
        return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))

    def read(self, path: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"].read()
        except self._errors.ClientError as error:
            if self._code(error) in ("NoSuchKey", "404"):
                return None
            raise self._fail(f"cannot read {path}", error) from None
        except self._errors.BotoCoreError as error:
            raise self._fail("cannot be reached", error) from None

    def exists(self, path: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(path))
            return True
        except self._errors.ClientError as error:
            if self._code(error) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise self._fail(f"cannot look up {path}", error) from None
        except self._errors.BotoCoreError as error:
            raise self._fail("cannot be reached", error) from None

    def write_once(self, path: str, data: bytes) -> bool:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(path), Body=data, IfNoneMatch="*")
            return True
        except self._errors.ClientError as error:
            if self._code(error) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise self._fail(f"cannot write {path}", error) from None
        except self._errors.BotoCoreError as error:
            raise self._fail("cannot be reached", error) from None

    def list(self, prefix: str, recursive: bool = True) -> Iterator[tuple[str, float]]:
        options = {"Bucket": self.bucket, "Prefix": self._key(prefix), "PaginationConfig": {"PageSize": self.page_size}}
        if not recursive:
            options["Delimiter"] = "/"  # what is deeper comes as CommonPrefixes, not listed
        try:
            # the paginator asks for the next page when this one is used up (deleting the objects
            # already listed does not disturb its continuation token)
            for page in self.client.get_paginator("list_objects_v2").paginate(**options):
                for item in page.get("Contents", []):
                    rel = item["Key"][len(self.prefix) + 1:] if self.prefix else item["Key"]
                    yield rel, item["LastModified"].timestamp()
        except (self._errors.ClientError, self._errors.BotoCoreError) as error:
            raise self._fail("cannot list", error) from None

    def delete(self, path: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(path))
        except (self._errors.ClientError, self._errors.BotoCoreError) as error:
            raise self._fail(f"cannot delete {path}", error) from None


def is_temporary(path: str) -> bool:
    """A directory store's temporary (a push killed half-way leaves one; gc removes it)."""
    return TMP_MARK in path.rsplit("/", 1)[-1]


def age_days(mtime: float, now: float | None = None) -> float:
    return ((now if now is not None else time.time()) - mtime) / 86400
