"""./sage --cache index URL (#21 item 4): PEP 503 pages, PEP 691 JSON and PEP 658 metadata of the
cache's wheels, one index per configuration; pip installs from it, checks the #sha256 links, and
resolves from the metadata files alone."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_wheel
from sage_build.cache.store import DirectoryStore
from sage_build.ci.index import build_index, configuration_of

PY311 = {"python": {"implementation": "cpython", "version": "3.11.2", "tag": "cp311-cp311-manylinux_2_36_x86_64"},
         "compiler": "gcc 12"}
#: The tests' entries are unsigned, as a cache of one's own may be (signatures: see the test below).
UNSIGNED = dict(os.environ, SAGE_BINARY_CACHE_TRUST="unsigned")
PY312 = {"python": {"implementation": "cpython", "version": "3.12.1", "tag": "cp312-cp312-manylinux_2_36_x86_64"},
         "compiler": "gcc 12"}


def _entry(cache: Path, package: str, wheel: Path | None, environment: dict, *, time: int = 1,
           name: str | None = None, data: bytes | None = None) -> str:
    """An entry as cache.entry.push writes it: the artifact's blob, then the manifest."""
    data = wheel.read_bytes() if data is None else data
    digest = hashlib.sha256(data).hexdigest()
    (cache / "v1" / "blobs").mkdir(parents=True, exist_ok=True)
    (cache / "v1" / "blobs" / digest).write_bytes(data)
    key = hashlib.sha256(f"{package}{time}{json.dumps(environment)}".encode()).hexdigest()
    manifest = {"format": 1, "key": key, "package": package, "version": "1.0", "tags": [], "time": time,
                "artifacts": [{"name": name or wheel.name, "kind": "wheel", "sha256": digest, "size": len(data)}],
                "inputs": {"environment": environment}}
    (cache / "v1" / f"{key}.json").write_text(json.dumps({"manifest": manifest, "signatures": []}))
    return key


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--no-cache-dir", "--disable-pip-version-check",
                           "--isolated", *args], capture_output=True, text=True)


@pytest.fixture
def cache(tmp_path) -> Path:
    cache = tmp_path / "cache"
    wheels = tmp_path / "wheels"
    _entry(cache, "alpha", make_wheel(wheels / "a", "alpha", "1.0", {"alpha/__init__.py": b"A = 1\n"}), PY311)
    _entry(cache, "beta_pkg", make_wheel(wheels / "b", "Beta_Pkg", "2.0", {"beta_pkg/__init__.py": b"B = 2\n"}), PY311)
    _entry(cache, "alpha", make_wheel(wheels / "c", "alpha", "1.0", {"alpha/__init__.py": b"A = 312\n"}), PY312)
    return cache


def test_pip_installs_from_the_index_of_a_configuration(cache, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "index", f"file://{cache}"],
                            capture_output=True, text=True, env=UNSIGNED)
    assert result.returncode == 0, result.stderr
    c311, c312 = configuration_of({"inputs": {"environment": PY311}}), configuration_of({"inputs": {"environment": PY312}})
    assert c311.startswith("cp311-cp311-manylinux_2_36_x86_64-") and c311 != c312
    assert f"{c311}: 2 wheels; pip install --index-url {(cache / 'index' / c311 / 'simple').as_uri()}/" in result.stdout
    simple = cache / "index" / c311 / "simple"
    assert "beta-pkg" in (simple / "index.html").read_text()   # PEP 503 normalized names
    target = tmp_path / "target"
    installed = _pip("install", "--index-url", simple.as_uri() + "/", "--target", str(target), "alpha", "beta-pkg")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (target / "alpha" / "__init__.py").read_bytes() == b"A = 1\n"   # the 3.11 configuration's build
    assert (target / "beta_pkg" / "__init__.py").exists()
    # the other configuration's index serves its own build of the same file name
    other = tmp_path / "other"
    installed = _pip("install", "--index-url", (cache / "index" / c312 / "simple").as_uri() + "/", "--target",
                     str(other), "alpha")
    assert installed.returncode == 0, installed.stderr
    assert (other / "alpha" / "__init__.py").read_bytes() == b"A = 312\n"
    assert "beta" not in (cache / "index" / c312 / "simple" / "index.html").read_text()


def test_pages_carry_hashes_and_metadata_pip_checks(cache, tmp_path):
    result = build_index(DirectoryStore(cache))
    [c311] = [c for c in result.configurations if c.startswith("cp311")]
    simple = cache / "index" / c311 / "simple"
    page = json.loads((simple / "alpha" / "index.json").read_text())
    assert page["meta"]["api-version"] == "1.1" and page["name"] == "alpha" and page["versions"] == ["1.0"]
    [entry] = page["files"]
    wheel = (simple / "alpha" / entry["url"]).resolve()
    metadata = Path(f"{wheel}.metadata")
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == entry["hashes"]["sha256"]
    assert hashlib.sha256(metadata.read_bytes()).hexdigest() == entry["core-metadata"]["sha256"]
    assert metadata.read_bytes().startswith(b"Metadata-Version: 2.1\nName: alpha\n")
    html_page = (simple / "alpha" / "index.html").read_text()
    assert f'#sha256={entry["hashes"]["sha256"]}"' in html_page
    assert f'data-core-metadata="sha256={entry["core-metadata"]["sha256"]}"' in html_page
    assert json.loads((simple / "index.json").read_text())["projects"] == [{"name": "alpha"}, {"name": "beta-pkg"}]
    # pip resolves from the metadata file (PEP 658), not from the wheel
    url = simple.as_uri() + "/"
    dry = _pip("install", "-v", "--dry-run", "--ignore-installed", "--index-url", url, "alpha")
    assert dry.returncode == 0, dry.stderr
    assert f"Obtaining dependency information for alpha from {metadata.as_uri()}" in dry.stdout
    # an attacker swaps the served wheel: pip refuses it on its #sha256
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    refused = _pip("install", "--index-url", url, "--target", str(tmp_path / "t"), "alpha")
    assert refused.returncode != 0 and "do not match the hashes" in refused.stderr.lower()
    assert not (tmp_path / "t" / "alpha").exists()


def test_hostile_or_broken_entries_are_left_out_with_a_reason(cache, tmp_path):
    (cache / "v1" / ("0" * 64 + ".json")).write_text("{not json")
    wheels = tmp_path / "w"
    _entry(cache, "evil", make_wheel(wheels, "evil", "1.0", {"evil.py": b""}), PY311, name="../../evil-1.0-py3-none-any.whl")
    _entry(cache, "junk", None, PY311, name="junk-1.0-py3-none-any.whl", data=b"not a zip")
    result = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "index", str(cache)],
                            capture_output=True, text=True, env=UNSIGNED)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "0000000000000000000000000000000000000000000000000000000000000000.json: not a manifest" in result.stderr
    assert "'../../evil-1.0-py3-none-any.whl' is not a wheel's file name" in result.stderr
    assert "junk-1.0-py3-none-any.whl: not a wheel pip could read" in result.stderr
    assert not (cache.parent / "evil-1.0-py3-none-any.whl").exists() and not list((cache / "index").rglob("evil*"))
    assert not list((cache / "index").rglob("junk*"))


def test_a_rebuild_drops_what_left_the_cache_and_lists_the_newer_build(cache, tmp_path):
    store = DirectoryStore(cache)
    build_index(store)
    [c311] = [c for c in build_index(store).configurations if c.startswith("cp311")]
    simple = cache / "index" / c311 / "simple"
    assert (simple / "beta-pkg" / "index.html").exists()
    for manifest in (cache / "v1").glob("*.json"):
        if "beta" in manifest.read_text():
            manifest.unlink()   # gc removed the entry
    newer = make_wheel(tmp_path / "n", "alpha", "1.0", {"alpha/__init__.py": b"A = 'newer'\n"})
    _entry(cache, "alpha", newer, PY311, time=5)
    build_index(store)
    assert not (simple / "beta-pkg" / "index.html").exists() and "beta" not in (simple / "index.html").read_text()
    [entry] = json.loads((simple / "alpha" / "index.json").read_text())["files"]
    assert entry["hashes"]["sha256"] == hashlib.sha256(newer.read_bytes()).hexdigest()


def test_an_empty_or_unnamed_cache_is_a_clear_answer(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "index", str(empty)],
                            capture_output=True, text=True, env=UNSIGNED)
    assert result.returncode == 0 and "no wheels in the cache yet" in result.stdout
    result = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "index", ""], capture_output=True, text=True, env=UNSIGNED)
    assert result.returncode != 0 and "SAGE_BINARY_CACHE_PUSH is empty" in result.stderr
    assert "Traceback" not in result.stderr


class MemoryStore:
    """An object store (as S3 is): whole objects, written once unless deleted first."""

    url = "memory://"

    def __init__(self, objects: dict[str, bytes]):
        self.objects = objects

    def read(self, path):
        return self.objects.get(path)

    def exists(self, path):
        return path in self.objects

    def write_once(self, path, data):
        if path in self.objects:
            return False
        self.objects[path] = data
        return True

    def list(self, prefix, recursive=True):
        return [(path, 0.0) for path in self.objects
                if path.startswith(prefix) and (recursive or "/" not in path[len(prefix):])]

    def delete(self, path):
        self.objects.pop(path, None)


def test_an_object_store_gets_its_pages_replaced(cache):
    objects = {str(p.relative_to(cache)): p.read_bytes() for p in cache.rglob("*") if p.is_file()}
    store = MemoryStore(objects)
    first = build_index(store)
    [c311] = [c for c in first.configurations if c.startswith("cp311")]
    page = f"index/{c311}/simple/alpha/index.json"
    assert json.loads(objects[page])["name"] == "alpha"
    objects[page] = b"stale"
    for key in [k for k in objects if k.startswith("v1/") and k.endswith(".json") and b"beta" in objects[k]]:
        del objects[key]
    build_index(store)
    assert json.loads(objects[page])["name"] == "alpha"   # replaced, not kept because it existed
    assert f"index/{c311}/simple/beta-pkg/index.html" not in objects


def test_concurrent_index_builds_leave_whole_pages(cache):
    for _ in range(4):
        runs = [subprocess.Popen([sys.executable, str(ROOT / "sage"), "--cache", "index", str(cache)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=UNSIGNED) for _ in range(3)]
        for run in runs:
            assert run.wait() == 0, run.stderr.read()
            run.stderr.close()
    for page in (cache / "index").rglob("index.json"):
        document = json.loads(page.read_text())   # whole: never a half-written page
        for entry in document.get("files", []):
            wheel = (page.parent / entry["url"]).resolve()
            assert hashlib.sha256(wheel.read_bytes()).hexdigest() == entry["hashes"]["sha256"]
    assert not [p for p in cache.rglob("*") if ".sbtmp" in p.name]


def _uv() -> str | None:
    import shutil

    return shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(_uv() is None, reason="uv is not installed")
def test_uv_installs_from_the_index(cache, tmp_path):
    result = build_index(DirectoryStore(cache))
    [c311] = [c for c in result.configurations if c.startswith("cp311")]
    prefix = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    installed = subprocess.run([_uv(), "pip", "install", "--python", str(prefix / "bin" / "python"), "--no-cache",
                                "--index-url", (cache / "index" / c311 / "simple").as_uri() + "/", "alpha", "beta-pkg"],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    check = subprocess.run([str(prefix / "bin" / "python"), "-c", "import alpha, beta_pkg; print(alpha.A)"],
                           capture_output=True, text=True)
    assert check.stdout == "1\n", check.stderr


def test_the_index_lists_only_entries_signed_by_a_trusted_key(cache, tmp_path):
    from sage_build.cache import trust
    from sage_build.cache.key import canonical_json

    secret, public = trust.generate_key("ci-test-1")
    _, stranger = trust.generate_key("stranger-1")
    signed = make_wheel(tmp_path / "s", "signed_pkg", "1.0", {"signed_pkg/__init__.py": b""})
    key = _entry(cache, "signed_pkg", signed, PY311)
    path = cache / "v1" / f"{key}.json"
    document = json.loads(path.read_text())
    document["signatures"] = [trust.sign(canonical_json(document["manifest"]), secret)]
    path.write_text(json.dumps(document))
    result = subprocess.run([sys.executable, str(ROOT / "sage"), "--cache", "index", str(cache)], capture_output=True,
                            text=True, env=dict(os.environ, SAGE_BINARY_CACHE_TRUSTED_KEYS=f"{stranger} {public}"))
    assert result.returncode == 0, result.stderr
    [c311] = [line.split(":")[0] for line in result.stdout.splitlines() if line.startswith("cp311")]
    projects = json.loads((cache / "index" / c311 / "simple" / "index.json").read_text())["projects"]
    assert projects == [{"name": "signed-pkg"}]   # the unsigned alpha and beta-pkg are left out, and said so
    assert result.stderr.count("is not signed") == 3
