"""Tests of sage_build.unpack: archives are built in tmp_path, no network."""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import tarfile
import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sage_build.base.errors import UnpackError
from sage_build.pipeline.unpack import apply_patches, unpack_source

MTIME = 1_000_000_000


def tar_file(name: str, data: bytes = b"", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, MTIME
    return info, data


def tar_special(name: str, type_: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = type_, linkname, 0o755, MTIME
    return info, None


def make_tar(path: Path, members: list, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def make_zip(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    """members: (name, data, unix mode including the file type, 0 for none)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in members:
            zi = zipfile.ZipInfo(name, date_time=(2020, 1, 2, 3, 4, 6))
            zi.create_system = 3 if mode else 0  # 0: made on MS-DOS/Windows, no Unix mode
            zi.external_attr = mode << 16
            zf.writestr(zi, data)
    return path


def tree(top: Path, exclude: Path | None = None) -> dict[str, tuple[int, bytes | str | None]]:
    """Everything below top (not following links), with type and content, skipping exclude."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if exclude is not None and Path(dirpath) == exclude:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if p == exclude:
                continue
            st_ = p.lstat()
            if stat.S_ISLNK(st_.st_mode):
                content: bytes | str | None = os.readlink(p)
            elif stat.S_ISREG(st_.st_mode):
                content = p.read_bytes()
            else:
                content = None
            result[str(p.relative_to(top))] = (stat.S_IFMT(st_.st_mode), content)
    return result


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    (tmp_path / "build").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim").write_text("keep me")
    return tmp_path


def assert_refused(archive: Path, sandbox: Path, *needles: str, **limits) -> str:
    """Unpacking must fail with a message naming archive and needles, writing nothing anywhere."""
    build = sandbox / "build"
    before = tree(sandbox, exclude=build)
    with pytest.raises(UnpackError) as info:
        unpack_source(archive, build, **limits)
    message = str(info.value)
    assert str(archive) in message
    for needle in needles:
        assert needle in message
    assert tree(sandbox, exclude=build) == before
    assert list(build.iterdir()) == []
    return message


# --- normal archives ---------------------------------------------------------


def test_single_top_dir_becomes_src(sandbox: Path) -> None:
    archive = make_tar(
        sandbox / "pkg-1.0.tar.gz",
        [
            tar_special("pkg-1.0", tarfile.DIRTYPE),
            tar_file("pkg-1.0/configure", b"#!/bin/sh\n", 0o755),
            tar_file("pkg-1.0/setup.py", b"print()\n"),
            tar_file("pkg-1.0/sub/data.txt", b"data"),
        ],
    )
    src = unpack_source(archive, sandbox / "build")
    assert src == sandbox / "build" / "src"
    assert sorted(os.listdir(src)) == ["configure", "setup.py", "sub"]
    assert (src / "sub" / "data.txt").read_bytes() == b"data"
    assert (src / "setup.py").stat().st_mtime == MTIME


def test_several_top_level_entries_go_into_src(sandbox: Path) -> None:
    archive = make_tar(
        sandbox / "flat.tar",
        [tar_file("a.txt", b"a"), tar_file("./b/c.txt", b"c"), tar_special("d", tarfile.DIRTYPE)],
        mode="w",
    )
    src = unpack_source(archive, sandbox / "build")
    assert sorted(os.listdir(src)) == ["a.txt", "b", "d"]
    assert (src / "b" / "c.txt").read_bytes() == b"c"


def test_single_top_level_file_is_not_stripped(sandbox: Path) -> None:
    archive = make_tar(sandbox / "one.tar.bz2", [tar_file("README", b"hi")], mode="w:bz2")
    src = unpack_source(archive, sandbox / "build")
    assert (src / "README").read_bytes() == b"hi"


@pytest.mark.parametrize("suffix,mode", [(".tar", "w"), (".tgz", "w:gz"), (".tar.bz2", "w:bz2"), (".tar.xz", "w:xz")])
def test_compression_formats(sandbox: Path, suffix: str, mode: str) -> None:
    archive = make_tar(sandbox / f"pkg{suffix}", [tar_file("pkg/x", b"x")], mode=mode)
    assert (unpack_source(archive, sandbox / "build") / "x").read_bytes() == b"x"


def test_zip_single_top_dir_and_executable_bit(sandbox: Path) -> None:
    archive = make_zip(
        sandbox / "pkg-2.0.zip",
        [
            ("pkg-2.0/", b"", stat.S_IFDIR | 0o755),
            ("pkg-2.0/configure", b"#!/bin/sh\n", stat.S_IFREG | 0o755),
            ("pkg-2.0/lib/mod.py", b"x = 1\n", stat.S_IFREG | 0o644),
            ("pkg-2.0/nomode.txt", b"n", 0),
            ("pkg-2.0/lib/link.py", b"mod.py", stat.S_IFLNK | 0o777),
        ],
    )
    src = unpack_source(archive, sandbox / "build")
    assert stat.S_IMODE((src / "configure").stat().st_mode) == 0o755
    assert stat.S_IMODE((src / "lib" / "mod.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((src / "nomode.txt").stat().st_mode) == 0o644
    assert os.readlink(src / "lib" / "link.py") == "mod.py"
    assert (src / "lib" / "link.py").read_text() == "x = 1\n"


def test_modes_like_data_filter(sandbox: Path) -> None:
    archive = make_tar(
        sandbox / "modes.tar.gz",
        [
            tar_file("p/configure", b"#!/bin/sh\n", 0o775),
            tar_file("p/setuid", b"", 0o4755),
            tar_file("p/world-writable", b"", 0o666),
            tar_file("p/read-only", b"", 0o444),
            tar_file("p/group-exec-only", b"", 0o610),
        ],
    )
    src = unpack_source(archive, sandbox / "build")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in src.iterdir()}
    assert modes == {
        "configure": 0o755,
        "setuid": 0o755,
        "world-writable": 0o644,
        "read-only": 0o644,
        "group-exec-only": 0o600,
    }


def test_links_inside_the_tree_are_kept(sandbox: Path) -> None:
    archive = make_tar(
        sandbox / "links.tar.gz",
        [
            tar_file("p/lib/libfoo.so.1", b"elf"),
            tar_special("p/lib/libfoo.so", tarfile.SYMTYPE, "libfoo.so.1"),
            tar_special("p/include/up", tarfile.SYMTYPE, "../lib"),
            tar_special("p/copy", tarfile.LNKTYPE, "p/lib/libfoo.so.1"),
        ],
    )
    src = unpack_source(archive, sandbox / "build")
    assert (src / "lib" / "libfoo.so").read_bytes() == b"elf"
    assert (src / "include" / "up" / "libfoo.so.1").read_bytes() == b"elf"
    assert (src / "copy").stat().st_ino == (src / "lib" / "libfoo.so.1").stat().st_ino


# --- refusals ----------------------------------------------------------------

# An absolute member's target: one of this process's own, so that pytest-xdist workers never share it.
EVIL = f"/tmp/sage-build-evil-{os.getpid()}"

REFUSED_TARS = {
    "absolute path": ([tar_file("p/ok", b"ok"), tar_file(EVIL, b"x")], f"'{EVIL}'", "absolute"),
    "dotdot": ([tar_file("p/ok", b"ok"), tar_file("p/../../outside/evil", b"x")], "'p/../../outside/evil'", "'..'"),
    "escaping symlink": ([tar_special("p/l", tarfile.SYMTYPE, "../../outside")], "'p/l'", "outside the source tree"),
    "absolute symlink": ([tar_special("p/l", tarfile.SYMTYPE, "/etc/passwd")], "'p/l'", "absolute"),
    # After the top directory is stripped, ../p/y leaves src/.
    "symlink escaping after strip": ([tar_special("p/x", tarfile.SYMTYPE, "../p/y")], "'p/x'", "outside"),
    "symlink through symlink": (
        [tar_special("p/a/b", tarfile.SYMTYPE, ".."), tar_special("p/a/c", tarfile.SYMTYPE, "b/../..")],
        "'p/a/c'",
        "outside",
    ),
    "write below symlink": (
        [tar_special("p/l", tarfile.SYMTYPE, "."), tar_file("p/l/f", b"x")],
        "'p/l/f'",
        "below a symbolic link",
    ),
    "escaping hardlink": ([tar_special("p/h", tarfile.LNKTYPE, "../outside/victim")], "'p/h'", "outside"),
    "absolute hardlink": ([tar_special("p/h", tarfile.LNKTYPE, "/etc/passwd")], "'p/h'", "outside"),
    "hardlink to later file": (
        [tar_special("p/h", tarfile.LNKTYPE, "p/f"), tar_file("p/f", b"f")],
        "'p/h'",
        "regular file earlier",
    ),
    "character device": ([tar_special("p/null", tarfile.CHRTYPE)], "'p/null'", "device file"),
    "block device": ([tar_special("p/sda", tarfile.BLKTYPE)], "'p/sda'", "device file"),
    "fifo": ([tar_special("p/pipe", tarfile.FIFOTYPE)], "'p/pipe'", "FIFO"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_TARS))
def test_unsafe_tar_is_refused(sandbox: Path, case: str) -> None:
    members, entry, problem = REFUSED_TARS[case]
    archive = make_tar(sandbox / "evil.tar.gz", members)
    message = assert_refused(archive, sandbox, entry, problem)
    assert "unsafe" in message
    assert not Path(EVIL).exists()


@pytest.mark.parametrize(
    "name,mode,data,needles",
    [
        ("/abs.txt", stat.S_IFREG | 0o644, b"x", ("'/abs.txt'", "absolute")),
        ("p/../../outside/evil", stat.S_IFREG | 0o644, b"x", ("'p/../../outside/evil'", "'..'")),
        ("p/l", stat.S_IFLNK | 0o777, b"../../outside", ("'p/l'", "outside")),
        ("p/fifo", stat.S_IFIFO | 0o644, b"", ("'p/fifo'", "FIFO")),
    ],
)
def test_unsafe_zip_is_refused(sandbox: Path, name: str, mode: int, data: bytes, needles: tuple[str, ...]) -> None:
    archive = make_zip(sandbox / "evil.zip", [("p/ok", b"ok", stat.S_IFREG | 0o644), (name, data, mode)])
    assert_refused(archive, sandbox, *needles)


def test_truncated_tar_gz(sandbox: Path) -> None:
    archive = make_tar(sandbox / "t.tar.gz", [tar_file("p/a", os.urandom(200_000)), tar_file("p/b", b"b")])
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) * 2 // 3])
    assert_refused(archive, sandbox, "corrupt or truncated", "download again")


def test_truncated_zip(sandbox: Path) -> None:
    archive = make_zip(sandbox / "t.zip", [("p/a", os.urandom(10_000), stat.S_IFREG | 0o644)])
    archive.write_bytes(archive.read_bytes()[:5000])
    assert_refused(archive, sandbox, "corrupt or truncated", "download again")


def test_corrupt_zip_data_removes_partial_src(sandbox: Path) -> None:
    """The index is fine, the second file's data is not: found while extracting."""
    archive = sandbox / "bad.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("p/good", b"good")
        zf.writestr("p/bad", b"A" * 1000)
    archive.write_bytes(archive.read_bytes().replace(b"A" * 1000, b"B" * 1000))
    assert_refused(archive, sandbox, "corrupt or truncated", "download again")


def test_write_failure_removes_partial_src(sandbox: Path) -> None:
    archive = make_tar(sandbox / "long.tar", [tar_file("p/ok", b"ok"), tar_file("p/" + "x" * 300, b"x")], mode="w")
    assert_refused(archive, sandbox, "x" * 300)


@pytest.mark.parametrize("name", ["pkg-1.0.rar", "pkg-1.0.tar.zst", "pkg-1.0-py3-none-any.whl"])
def test_unknown_format(sandbox: Path, name: str) -> None:
    archive = sandbox / name
    archive.write_bytes(b"whatever")
    message = assert_refused(archive, sandbox)
    assert "unknown archive format" in message or "wheel" in message


def test_bomb_total_size(sandbox: Path) -> None:
    archive = make_tar(sandbox / "big.tar.gz", [tar_file("p/a", b"0" * 5000)])
    assert_refused(archive, sandbox, "5000 bytes", "limit of 1000", max_total_size=1000)


def test_bomb_ratio(sandbox: Path) -> None:
    archive = make_tar(sandbox / "zeros.tar.xz", [tar_file("p/zeros", bytes(4 * 1024**2))], mode="w:xz")
    assert_refused(archive, sandbox, "times")
    assert unpack_source(archive, sandbox / "build", max_ratio=None).joinpath("zeros").stat().st_size == 4 * 1024**2


def test_src_must_not_exist(sandbox: Path) -> None:
    archive = make_tar(sandbox / "p.tar.gz", [tar_file("p/a", b"a")])
    (sandbox / "build" / "src").mkdir()
    (sandbox / "build" / "src" / "mine").write_text("mine")
    with pytest.raises(UnpackError, match="already exists"):
        unpack_source(archive, sandbox / "build")
    assert os.listdir(sandbox / "build" / "src") == ["mine"]


def test_build_dir_must_exist(sandbox: Path) -> None:
    archive = make_tar(sandbox / "p.tar.gz", [tar_file("p/a", b"a")])
    with pytest.raises(UnpackError, match="does not exist"):
        unpack_source(archive, sandbox / "nonexistent")
    assert not (sandbox / "nonexistent").exists()


def test_missing_archive(sandbox: Path) -> None:
    with pytest.raises(UnpackError, match="missing.tar.gz"):
        unpack_source(sandbox / "missing.tar.gz", sandbox / "build")
    assert list((sandbox / "build").iterdir()) == []


# --- patches -----------------------------------------------------------------

needs_patch = pytest.mark.skipif(shutil.which("patch") is None, reason="the 'patch' program is not installed")

PATCH_1 = """\
--- a/hello.txt
+++ b/hello.txt
@@ -1 +1 @@
-hello
+hello world
"""
PATCH_2 = """\
--- a/hello.txt
+++ b/hello.txt
@@ -1 +1,2 @@
-hello world
+hello world!
+goodbye
"""


@needs_patch
def test_patches_applied_in_order(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_text("hello\n")
    (tmp_path / "01-world.patch").write_text(PATCH_1)
    (tmp_path / "02-goodbye.patch").write_text(PATCH_2)
    lines: list[str] = []
    apply_patches(src, [tmp_path / "01-world.patch", tmp_path / "02-goodbye.patch"], log=lines.append)
    assert (src / "hello.txt").read_text() == "hello world!\ngoodbye\n"
    assert any("01-world.patch" in line for line in lines)
    assert any("hello.txt" in line for line in lines)


@needs_patch
def test_failing_patch_names_itself(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_text("hello\n")
    (tmp_path / "02-goodbye.patch").write_text(PATCH_2)
    with pytest.raises(UnpackError) as info:
        apply_patches(src, [tmp_path / "02-goodbye.patch"])
    message = str(info.value)
    assert "02-goodbye.patch" in message
    assert "hello.txt" in message  # patch's own output


def test_missing_patch_file(tmp_path: Path) -> None:
    with pytest.raises(UnpackError, match="nope.patch"):
        apply_patches(tmp_path, [tmp_path / "nope.patch"])


# --- property: no name ever escapes ------------------------------------------

ESCAPE = "<ESCAPE>"  # replaced by the absolute path of the sandbox's outside/ directory
components = st.one_of(
    st.sampled_from(["..", ".", "", "a", "b", "p", "é", "\u202e", "日本", "x" * 260, ESCAPE]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6),
)
paths = st.lists(components, min_size=1, max_size=5).map("/".join)
entries = st.lists(
    st.tuples(st.sampled_from(["file", "dir", "symlink", "hardlink"]), paths, paths), min_size=1, max_size=8
)


def build_random_archive(path: Path, items: list[tuple[str, str, str]], outside: str) -> None:
    def fix(name: str) -> str:
        return name.replace(ESCAPE, outside)

    if path.suffix == ".zip":
        with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
            warnings.simplefilter("ignore")  # duplicate names are part of the test
            for kind, name, target in items:
                name = fix(name) or "."
                mode = {"dir": stat.S_IFDIR | 0o755, "symlink": stat.S_IFLNK | 0o777}.get(kind, stat.S_IFREG | 0o644)
                zi = zipfile.ZipInfo(name)
                zi.create_system, zi.external_attr = 3, mode << 16
                zf.writestr(zi, fix(target).encode() if kind == "symlink" else b"data")
        return
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, target in items:
            info = tarfile.TarInfo(fix(name))
            info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}.get(
                kind, tarfile.LNKTYPE
            )
            info.linkname = fix(target) if kind in ("symlink", "hardlink") else ""
            data = b"data" if kind == "file" else b""
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=entries, use_zip=st.booleans())
def test_random_names_never_escape(items: list[tuple[str, str, str]], use_zip: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Path(tmp)
        build = sandbox / "build"
        build.mkdir()
        (sandbox / "outside").mkdir()
        (sandbox / "outside" / "victim").write_text("keep me")
        archive = sandbox / ("random.zip" if use_zip else "random.tar.gz")
        build_random_archive(archive, items, str(sandbox / "outside"))
        before = tree(sandbox, exclude=build)
        try:
            src = unpack_source(archive, build)
        except UnpackError:
            assert list(build.iterdir()) == []
        else:
            real_src = os.path.realpath(src)
            for dirpath, dirnames, filenames in os.walk(src):
                for name in dirnames + filenames:
                    path = os.path.join(dirpath, name)
                    try:
                        os.stat(path)
                    except OSError as exc:
                        if exc.errno == errno.ELOOP:
                            continue  # a link loop leads nowhere (realpath would report nonsense for it)
                    resolved = os.path.realpath(path)
                    assert resolved == real_src or resolved.startswith(real_src + os.sep), (name, resolved)
        assert tree(sandbox, exclude=build) == before
