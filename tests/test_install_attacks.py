"""The install's guarantees tried from the attacker's side: hostile member names, links that
lead out of the prefix, the losing side of a race, a zombie's temporaries, names that look
like ours, and collisions kept under SAGE_INSTALL_COLLISIONS=warn."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, copy_prefix, make_wheel, relocate

ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"))


@pytest.fixture
def prefix(clean_prefix, tmp_path) -> Path:
    # The venv's interpreter link and pyvenv.cfg name the copy's own place.
    return copy_prefix(clean_prefix, tmp_path / "prefix")


def site(prefix: Path) -> Path:
    return next((prefix / "lib").glob("python3*/site-packages"))


def install(prefix: Path, *wheels: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sage_build.install", "--prefix", str(prefix), "--bytecode", "none",
         *map(str, wheels)], capture_output=True, text=True, env=env or ENV, **kwargs)


def raw_wheel(directory: Path, name: str, members: dict[str, bytes], *, record_extra: str = "") -> Path:
    """A wheel with members named exactly as given (make_wheel's names, but nothing normalised)."""
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-1.0.dist-info"
    members = dict(members)
    members[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode()
    members[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    rows = []
    for member, content in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        rows.append(f"{member},sha256={digest},{len(content)}")
    rows.append(f"{dist_info}/RECORD,,")
    path = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(rows) + "\n" + record_extra)
    return path


def snapshot(root: Path) -> dict[str, bytes | str]:
    tree: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            tree[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            tree[rel] = path.read_bytes()
    return tree


# -- 1. paths that leave their scheme directory -----------------------------------------------

def _escaping_members(prefix: Path, outside: Path) -> dict[str, dict[str, bytes]]:
    up = "../" * (len(site(prefix).relative_to("/").parts) + 2)
    return {
        "dotdot": {f"victim/{up}{str(outside)[1:]}/dotdot.txt": b"pwned\n"},
        "absolute": {f"{outside}/abs.txt": b"pwned\n"},
        "into-bin": {"victim/../../../../bin/evil": b"#!/bin/sh\necho pwned\n"},
        "data-scheme": {"victim-1.0.data/scripts/../../../evil": b"#!/bin/sh\n"},
        "data-purelib": {"victim-1.0.data/purelib/../../outside.py": b"x = 1\n"},
    }


@pytest.mark.parametrize("case", ["dotdot", "absolute", "into-bin", "data-scheme", "data-purelib"])
def test_a_member_that_leaves_its_scheme_directory_is_refused(prefix, tmp_path, case):
    outside = tmp_path / "outside"
    members = _escaping_members(prefix, outside)[case]
    wheel = raw_wheel(tmp_path / "w", "victim", {"victim/__init__.py": b"", **members})
    before = snapshot(prefix)
    result = install(prefix, wheel)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "outside" in result.stderr and next(iter(members)) in result.stderr, result.stderr
    assert not outside.exists()
    assert snapshot(prefix) == before


def test_an_entry_point_script_name_that_leaves_bin_is_refused(prefix, tmp_path):
    wheel = make_wheel(tmp_path / "w", "victim", "1.0", {"victim/__init__.py": b"def main(): pass\n"},
                       scripts="../../../escaped = victim:main")
    before = snapshot(prefix)
    result = install(prefix, wheel)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "../../../escaped" in result.stderr
    assert not (prefix.parent / "escaped").exists()
    assert snapshot(prefix) == before


def test_a_record_row_that_leaves_the_prefix_is_refused(prefix, tmp_path):
    wheel = raw_wheel(tmp_path / "w", "victim", {"victim/__init__.py": b""},
                      record_extra="../../../../../../etc/passwd,,\n")
    before = snapshot(prefix)
    result = install(prefix, wheel)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "../../../../../../etc/passwd" in result.stderr
    assert snapshot(prefix) == before


def test_a_directory_link_leading_out_of_the_prefix_is_not_written_through(prefix, tmp_path):
    outside = tmp_path / "ssh"
    outside.mkdir()
    (site(prefix) / "victim").symlink_to(outside)
    wheel = make_wheel(tmp_path / "w", "victim", "1.0", {"victim/authorized_keys": b"ssh-rsa attacker\n"})
    result = install(prefix, wheel)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "victim" in result.stderr and str(outside) in result.stderr, result.stderr
    assert list(outside.iterdir()) == []


def test_a_link_inside_the_prefix_is_fine(prefix, tmp_path):
    # venvs have lib64 -> lib; a package may keep its data behind a link that stays inside.
    (site(prefix) / "real").mkdir()
    (site(prefix) / "alias").symlink_to("real")
    wheel = make_wheel(tmp_path / "w", "alias", "1.0", {"alias/data.txt": b"ok\n"})
    result = install(prefix, wheel)
    assert result.returncode == 0, result.stderr
    assert (site(prefix) / "real" / "data.txt").read_bytes() == b"ok\n"


def test_a_prefix_under_a_symlink_installs(clean_prefix, tmp_path):
    # The prefix's own path may go through a link (a home directory on another disk).
    real = tmp_path / "disk" / "prefix"
    real.parent.mkdir()
    shutil.copytree(clean_prefix, real, symlinks=True)
    relocate(clean_prefix, real)
    (tmp_path / "home").symlink_to(tmp_path / "disk")
    linked = tmp_path / "home" / "prefix"
    wheel = make_wheel(tmp_path / "w", "fine", "1.0", {"fine/__init__.py": b"F = 1\n"})
    result = install(linked, wheel)
    assert result.returncode == 0, result.stderr
    assert (site(real) / "fine" / "__init__.py").exists()


def _merge(staging: Path, prefix: Path):
    from sage_build.install.wheel import merge_staging

    return merge_staging(staging, prefix, prefix, installing="victim-1.0",
                         lock_file=prefix / "var/lib/sage/prefix.lock")


@pytest.mark.parametrize("link", ["/etc", "../../../../../../../../etc", "../../.."])
def test_a_staged_link_leading_out_of_the_prefix_is_refused(prefix, tmp_path, link):
    from sage_build.base.errors import InstallError

    staged = tmp_path / "inst" / prefix.relative_to("/")
    (staged / "lib").mkdir(parents=True)
    (staged / "lib" / "libfine.so.1").write_bytes(b"ELF")
    (staged / "lib" / "libfine.so").symlink_to("libfine.so.1")
    (staged / "share").mkdir()
    (staged / "share" / "victim").symlink_to(link)
    before = snapshot(prefix)
    with pytest.raises(InstallError, match="leads out of the prefix") as error:
        _merge(tmp_path / "inst", prefix)
    assert "share/victim" in str(error.value) and link in str(error.value)
    assert snapshot(prefix) == before


def test_a_staged_file_is_not_published_through_a_link_leading_out(prefix, tmp_path):
    from sage_build.base.errors import InstallError

    outside = tmp_path / "outside"
    outside.mkdir()
    (prefix / "share").mkdir(exist_ok=True)
    (prefix / "share" / "victim").symlink_to(outside)
    staged = tmp_path / "inst" / prefix.relative_to("/")
    (staged / "share" / "victim").mkdir(parents=True)
    (staged / "share" / "victim" / "planted").write_bytes(b"x")
    with pytest.raises(InstallError, match="leads out of the prefix"):
        _merge(tmp_path / "inst", prefix)
    assert list(outside.iterdir()) == []


def test_a_staged_link_leading_out_through_another_staged_link_is_refused(prefix, tmp_path):
    """The lexical check of a staged link is fooled by another staged link: ``up -> <prefix>`` is
    inside, and ``x -> up/../outside`` looks inside (``up/..`` cancels lexically) but resolves to
    the prefix's parent. Found by the #14 verification (a recipe's spkg-install planted both,
    exit 0)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    staged = tmp_path / "inst" / prefix.relative_to("/")
    staged_site = staged / site(prefix).relative_to(prefix)
    staged_site.mkdir(parents=True)
    (staged_site / "up").symlink_to(prefix)
    (staged_site / "x").symlink_to("up/../outside")
    try:
        _merge(tmp_path / "inst", prefix)
    except Exception as error:  # the refusal we want
        assert "leads out of the prefix" in str(error)
    published = site(prefix) / "x"
    assert not (published.is_symlink() and os.path.realpath(published) == str(outside)), \
        f"{published} -> {os.readlink(published)} was published and leads out of the prefix to {outside}"


def test_staged_links_inside_the_prefix_are_published(prefix, tmp_path):
    staged = tmp_path / "inst" / prefix.relative_to("/")
    (staged / "lib").mkdir(parents=True)
    (staged / "lib" / "libfine.so.1").write_bytes(b"ELF")
    (staged / "lib" / "libfine.so").symlink_to("libfine.so.1")
    (staged / "lib" / "libabs.so").symlink_to(prefix / "lib" / "libfine.so.1")
    _merge(tmp_path / "inst", prefix)
    assert os.readlink(prefix / "lib" / "libfine.so") == "libfine.so.1"
    assert (prefix / "lib" / "libabs.so").read_bytes() == b"ELF"


# -- 5. names that look like our temporaries ----------------------------------------------------

def test_a_member_named_like_our_temporaries_is_refused(prefix, tmp_path):
    wheel = raw_wheel(tmp_path / "w", "victim", {"ns/.cache.sbtmp-999999-0": b"shipped\n", "ns/v.py": b""})
    before = snapshot(prefix)
    result = install(prefix, wheel)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "ns/.cache.sbtmp-999999-0" in result.stderr and "temporary" in result.stderr
    assert snapshot(prefix) == before


def test_a_directory_named_like_our_temporaries_does_not_break_later_installs(prefix, tmp_path):
    """Only the last part of a member is checked for the mark: ``ns/d.sbtmp-999999-0/file.txt``
    installed, and the sweep then tried to unlink the directory as a dead install's temporary,
    so every later install into ``ns/`` failed with '[Errno 21] Is a directory'. Either refuse
    the member, or let the sweep leave it alone. Found by the #14 verification."""
    wheel = raw_wheel(tmp_path / "w", "victim", {"ns/d.sbtmp-999999-0/file.txt": b"shipped\n", "ns/v.py": b""})
    result = install(prefix, wheel)
    assert "Traceback" not in result.stderr
    if result.returncode != 0:
        assert "ns/d.sbtmp-999999-0" in result.stderr and "temporary" in result.stderr
        return
    other = raw_wheel(tmp_path / "o", "other", {"ns/other.py": b""})
    second = install(prefix, other)
    assert second.returncode == 0, second.stderr
    assert (site(prefix) / "ns" / "d.sbtmp-999999-0" / "file.txt").read_bytes() == b"shipped\n"


# -- 2. the losing side of a race ---------------------------------------------------------------

def _twins(directory: Path, count: int) -> tuple[Path, Path]:
    """Two wheels sharing ``count`` identical files (one in ascending, one in descending member
    order) and one file with different bytes: exactly one of them can be installed."""
    shared = {f"shared/m{i:04d}.txt": f"same {i}\n".encode() for i in range(count)}
    ascending = dict(sorted(shared.items()))
    descending = dict(sorted(shared.items(), reverse=True))
    a = make_wheel(directory / "a", "twin_a", "1.0", {**ascending, "shared/differs.txt": b"a\n"})
    b = make_wheel(directory / "b", "twin_b", "1.0", {"shared/differs.txt": b"b\n", **descending})
    return a, b


@pytest.mark.slow
def test_the_loser_of_a_collision_race_removes_none_of_the_winners_files(clean_prefix, tmp_path):
    a, b = _twins(tmp_path / "wheels", 3000)
    for round_ in range(10):
        prefix = tmp_path / f"round{round_}"
        shutil.copytree(clean_prefix, prefix, symlinks=True)
        relocate(clean_prefix, prefix)
        processes = [subprocess.Popen(
            [sys.executable, "-m", "sage_build.install", "--prefix", str(prefix), "--bytecode", "none", str(w)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV) for w in (a, b)]
        results = [(p.wait(), p.stdout.read()) for p in processes]
        codes = sorted(code for code, _ in results)
        assert codes[0] == 0 and codes[1] != 0, results
        winner = "twin_a" if results[0][0] == 0 else "twin_b"
        record = (site(prefix) / f"{winner}-1.0.dist-info" / "RECORD").read_text().splitlines()
        missing = [row.split(",")[0] for row in record if not (site(prefix) / row.split(",")[0]).exists()]
        assert missing == [], f"round {round_}: {len(missing)} files of the winner {winner} are gone"
        loser = "twin_b" if winner == "twin_a" else "twin_a"
        assert not (site(prefix) / f"{loser}-1.0.dist-info").exists()
        shutil.rmtree(prefix)


def test_a_roll_back_keeps_files_another_record_lists(prefix, tmp_path):
    # Deterministic form of the race: the loser published a file, the winner found it present
    # with the same bytes and listed it; then the loser rolls back.
    from sage_build.install.wheel import roll_back

    target = site(prefix) / "shared" / "m.txt"
    target.parent.mkdir()
    target.write_bytes(b"same\n")
    mine = site(prefix) / "shared" / "only_mine.txt"
    mine.write_bytes(b"mine\n")
    winner = site(prefix) / "winner-1.0.dist-info"
    winner.mkdir()
    (winner / "RECORD").write_text("shared/m.txt,sha256=x,5\nwinner-1.0.dist-info/RECORD,,\n")
    roll_back([str(target), str(mine)], site_dirs=[site(prefix)], lock_file=prefix / "var/lib/sage/prefix.lock")
    assert target.exists() and not mine.exists()


# -- 4. a zombie's temporaries ------------------------------------------------------------------

def test_the_temporaries_of_a_killed_install_left_a_zombie_are_swept(prefix, tmp_path):
    big = make_wheel(tmp_path / "w", "big", "1.0", {f"ns/m{i}.py": b"x = 1\n" for i in range(200)})
    # Killed after staging every file (its temporaries are all there) and never reaped: a zombie.
    dying = subprocess.Popen(
        [sys.executable, "-m", "sage_build.install", "--prefix", str(prefix), "--bytecode", "none", str(big)],
        env=dict(ENV, SAGE_TEST_KILL_AT="install-staged"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = Path(f"/proc/{dying.pid}/stat").read_text().split(")")[-1].split()[0]
        if state == "Z":
            break
        time.sleep(0.02)
    assert state == "Z"
    try:
        left = [p for p in (site(prefix) / "ns").iterdir() if ".sbtmp-" in p.name]
        assert len(left) == 200
        other = make_wheel(tmp_path / "w2", "other", "1.0", {"ns/other.py": b"y = 2\n"})
        result = install(prefix, other)
        assert result.returncode == 0, result.stderr
        assert [p.name for p in (site(prefix) / "ns").iterdir() if ".sbtmp-" in p.name] == []
    finally:
        dying.wait()


def test_a_living_installs_temporaries_are_kept(prefix, tmp_path):
    from sage_build.base import atomic
    from sage_build.install.wheel import cleanup_stale_temporaries

    owners = prefix / "var/lib/sage/locks/owners"
    # This process holds its owner lock: its temporaries are alive, whatever its pid says.
    atomic.hold_owner_lock(owners)
    directory = site(prefix) / "ns"
    directory.mkdir()
    mine = Path(atomic.tmp_name(directory / "x.py"))
    mine.write_bytes(b"being written")
    assert cleanup_stale_temporaries(directory, owners) == 0
    assert mine.exists()


# -- 7. collisions kept under warn ---------------------------------------------------------------

def test_uninstalling_the_owner_of_a_kept_collision_names_the_damaged_package(prefix, tmp_path):
    from sage_build.install.uninstall import render_piprm

    first = make_wheel(tmp_path / "a", "cvfull", "1.0", {"cv2/core.so": b"full\n", "cvfull_libs/lib.so": b"L\n"})
    second = make_wheel(tmp_path / "b", "cvheadless", "1.0", {"cv2/core.so": b"headless\n"})
    assert install(prefix, first).returncode == 0
    result = install(prefix, second, env=dict(ENV, SAGE_INSTALL_COLLISIONS="warn"))
    assert result.returncode == 0, result.stderr
    assert "cv2/core.so" in result.stderr
    # The manifest of the package that installed cvheadless names its wheel: the hint names it.
    installed = prefix / "var/lib/sage/installed"
    installed.mkdir(parents=True, exist_ok=True)
    (installed / "opencv_headless-1.0").write_text(
        '{"files": ["var/lib/sage/wheels/cvheadless-1.0-py3-none-any.whl"]}\n')
    rel = site(prefix).relative_to(prefix)
    piprm = tmp_path / "spkg-piprm"
    piprm.write_text(render_piprm(package="opencv", version="1.0", python=prefix / "bin/python3", prefix=prefix,
                                  distributions=[("cvfull", "1.0", f"{rel}/cvfull-1.0.dist-info")]))
    removed = subprocess.run([str(prefix / "bin/python3"), "-I", "-S", str(piprm)], capture_output=True, text=True)
    assert removed.returncode == 0, removed.stderr
    said = removed.stdout + removed.stderr
    assert "cvheadless" in said and "cv2/core.so" in said and "./sage -f opencv_headless" in said, said
    assert said.count("is damaged") == 1, said  # once, though lib64 leads to lib
    # The other distribution still lists the file: it stays (damaged, and said so).
    assert (site(prefix) / "cv2" / "core.so").exists()


def test_a_kept_collision_is_recorded_with_the_distribution(prefix, tmp_path):
    first = make_wheel(tmp_path / "a", "cvfull", "1.0", {"cv2/core.so": b"full\n"})
    second = make_wheel(tmp_path / "b", "cvheadless", "1.0", {"cv2/core.so": b"headless\n"})
    assert install(prefix, first).returncode == 0
    assert install(prefix, second, env=dict(ENV, SAGE_INSTALL_COLLISIONS="warn")).returncode == 0
    dist_info = site(prefix) / "cvheadless-1.0.dist-info"
    kept = (dist_info / "SAGE_KEPT_COLLISIONS").read_text()
    assert "cv2/core.so" in kept and "cvfull" in kept
    assert "cvheadless-1.0.dist-info/SAGE_KEPT_COLLISIONS" in (dist_info / "RECORD").read_text()
