"""The bad-input corpus: one case a file in tests/corpus/, each with the error a person must see.

Every case runs against a copy of one prepared prefix, and checks that the error names the file,
package or value, that no traceback is shown, and that the prefix (and the configuration, when
configure fails) is byte-for-byte what it was.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, Tree, make_sdist, make_wheel

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.stem for p in CORPUS.glob("*.yaml"))
# Bookkeeping that a failed run may leave and that installs nothing: build areas and lock files.
NOT_INSTALLED = ("var/tmp/", "var/lib/sage/locks/", "var/lib/sage/prefix.lock")
# Where the corpus's escaping attacks aim (absolute, or by enough '..' to reach /).  Each test
# process aims them at a place of its own, so that a pytest-xdist worker never sees another's
# attack (or a stale one from an earlier run) and one escape fails one case, not every case.
OWNED = "tmp/sage-build-corpus-owned"
OWNED_HERE = f"{OWNED}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    """A configured tree whose prefix has its venv, made once; cases work on copies at one path."""
    base = tmp_path_factory.mktemp("corpus")
    work = Tree(base / "work")
    (work.root / "build" / "pkgs" / "anchor").mkdir(parents=True)
    (work.root / "build" / "pkgs" / "anchor" / "type").write_text("standard\n")
    work.configure()
    work.make("python3-venv")
    pristine = base / "pristine"
    shutil.copytree(work.root, pristine, symlinks=True)
    return work, pristine


def _snapshot(root: Path) -> dict[str, str]:
    result = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.startswith(NOT_INSTALLED) or rel + "/" in NOT_INSTALLED:
            continue
        if path.is_symlink():
            result[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            result[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            result[rel] = "dir"
    return result


def _tar(path: Path, members: list[dict], truncate: bool = False) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            info = tarfile.TarInfo(member["name"])
            if "symlink" in member:
                info.type, info.linkname = tarfile.SYMTYPE, member["symlink"]
                tar.addfile(info)
            elif "hardlink" in member:
                info.type, info.linkname = tarfile.LNKTYPE, member["hardlink"]
                tar.addfile(info)
            elif member.get("device"):
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
                tar.addfile(info)
            else:
                data = member.get("data", "").encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    if truncate:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


def _zip(path: Path, members: list[dict]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member in members:
            if "zeros" in member:
                with archive.open(member["name"], "w") as stream:
                    chunk = bytes(1 << 20)
                    for _ in range(member["zeros"] // len(chunk)):
                        stream.write(chunk)
            else:
                archive.writestr(member["name"], member.get("data", ""))


def _artifact(spec: dict, upstream: Path) -> Path:
    upstream.mkdir(exist_ok=True)
    path = upstream / spec["name"]
    kind = spec["kind"]
    if kind == "tar":
        _tar(path, spec["members"], spec.get("truncate", False))
    elif kind == "zip":
        _zip(path, spec["members"])
    elif kind == "raw":
        path.write_text(spec["data"])
    elif kind == "sdist":
        made = make_sdist(upstream / "made", "victim", "1.0", {"victim/__init__.py": ""},
                          build_requires=spec.get("build_requires", ""))
        made.rename(path)
    elif kind == "wheel":
        files = {k: v.encode() for k, v in spec["files"].items()}
        data = {k: v.encode() for k, v in spec.get("data", {}).items()}
        made = make_wheel(upstream / "made", spec.get("wheel_name", "victim"), spec.get("wheel_version", "1.0"),
                          files, data=data, tamper=spec.get("tamper"), scripts=spec.get("scripts", ""))
        if spec.get("drop_record"):
            with zipfile.ZipFile(made) as source:
                members = {n: source.read(n) for n in source.namelist() if not n.endswith("RECORD")}
            with zipfile.ZipFile(made, "w") as target:
                for name, content in members.items():
                    target.writestr(name, content)
        made.rename(path)
    return path


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, template):
    work, pristine = template
    spec = yaml.safe_load((CORPUS / f"{case}.yaml").read_text().replace(OWNED, OWNED_HERE))
    owned = Path("/", OWNED_HERE)
    try:
        _run_case(case, spec, work, pristine)
        assert not owned.exists(), f"{case}: an attack wrote {owned}"
    finally:
        shutil.rmtree(owned, ignore_errors=True)


def _run_case(case, spec, work, pristine):
    shutil.rmtree(work.root)
    shutil.copytree(pristine, work.root, symlinks=True)
    for name, files in {"victim": spec["recipe"], **spec.get("extra_recipes", {})}.items():
        recipe = work.root / "build" / "pkgs" / name
        recipe.mkdir(parents=True)
        for filename, text in files.items():
            (recipe / filename).write_text(text)
    if "artifact" in spec:
        path = _artifact(spec["artifact"], work.root / "upstream")
        digest = "0" * 64 if spec["artifact"].get("checksum") == "wrong" else hashlib.sha256(path.read_bytes()).hexdigest()
        pattern = spec["artifact"]["name"].replace("1.0", "VERSION")
        (work.root / "build/pkgs/victim/checksums.ini").write_text(f"tarball={pattern}\nsha256={digest}\n")

    stage = spec["stage"]
    if stage != "configure":
        work.configure()
    prefix_before = _snapshot(work.prefix)
    config_before = _snapshot(work.root / "build" / "make")
    if stage == "configure":
        result = work.configure(*spec.get("args", []), check=False)
    elif stage == "make":
        result = work.make(spec.get("package", "victim"), check=False)
    else:
        result = subprocess.run([sys.executable, str(ROOT / "sage"), "-i", spec.get("package", "victim")],
                                env=work.env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for expected in spec["error"]:
        assert expected in output, f"{case}: {expected!r} not in:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    assert _snapshot(work.prefix) == prefix_before, f"{case}: the prefix changed"
    assert _snapshot(work.root / "build" / "make") == config_before, f"{case}: the configuration changed"


def test_readme_lists_every_case():
    readme = (ROOT / "README.md").read_text()
    missing = [case for case in CASES if f"| `{case}` |" not in readme]
    assert missing == [], f"add these corpus cases to README.md's table: {missing}"
