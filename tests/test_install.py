"""Race-free installs: concurrency, collisions, tampered wheels, crashes, and pip's tree as the oracle."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, copy_prefix, make_wheel


@pytest.fixture
def prefix(clean_prefix, tmp_path) -> Path:
    """A prefix made like sage-build makes it (a venv without pip, described once): a copy of
    the one made for this test process."""
    return copy_prefix(clean_prefix, tmp_path / "prefix")


def install(prefix: Path, *wheels: Path, bytecode: str = "0") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sage_build.install", "--prefix", str(prefix), "--bytecode", bytecode,
         *map(str, wheels)],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
    )


def site(prefix: Path) -> Path:
    return next((prefix / "lib").glob("python3*/site-packages"))


def prefix_content(prefix: Path) -> list[Path]:
    """The prefix's paths, without the locks' bookkeeping (the prefix lock, the owner locks)."""
    return sorted(p.relative_to(prefix) for p in prefix.rglob("*")
                  if not str(p.relative_to(prefix)).startswith(("var/lib/sage/locks", "var/lib/sage/prefix.lock")))


def shared_wheels(directory: Path, count: int) -> list[Path]:
    wheels = []
    for i in range(count):
        files = {
            "ns/__init__.py": b"# shared namespace\n",
            "ns/shared/include/common.h": b"#define COMMON 1\n",
            f"ns/shared/include/p{i}.h": f"#define P{i} {i}\n".encode(),
            f"ns/p{i}/__init__.py": f"VALUE = {i}\n".encode() + b"x = 1\n" * 2000,
        }
        wheels.append(make_wheel(directory, f"p{i}", "1.0", files))
    return wheels


def test_concurrent_installs_of_wheels_sharing_files(prefix, tmp_path):
    wheels = shared_wheels(tmp_path / "wheels", 10)
    for round_ in range(3):
        processes = [
            subprocess.Popen([sys.executable, "-m", "sage_build.install", "--prefix", str(prefix), str(wheel)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
            for wheel in wheels + wheels[:6]  # 16 processes; 6 install a wheel twice at once
        ]
        outputs = [(p.wait(), p.stdout.read()) for p in processes]
        assert all(code == 0 for code, _ in outputs), [out for code, out in outputs if code]
        code = "import ns; " + "; ".join(f"import ns.p{i}" for i in range(10)) + "; print('ok')"
        result = subprocess.run([str(prefix / "bin/python3"), "-c", code], capture_output=True, text=True)
        assert result.stdout.strip() == "ok", result.stderr
        assert (site(prefix) / "ns/shared/include/common.h").read_bytes() == b"#define COMMON 1\n"
        leftovers = [p for p in prefix.rglob("*") if ".sbtmp-" in p.name]
        assert leftovers == []
        if round_ < 2:
            subprocess.run(["rm", "-rf", str(site(prefix) / "ns")] + [str(p) for p in site(prefix).glob("p*.dist-info")])


def test_different_bytes_for_a_shared_path_is_an_error_naming_both(prefix, tmp_path):
    first = make_wheel(tmp_path / "a", "first", "1.0", {"ns/__init__.py": b"one\n", "first.py": b""})
    second = make_wheel(tmp_path / "b", "second", "1.0", {"ns/__init__.py": b"two\n", "second.py": b""})
    assert install(prefix, first).returncode == 0
    result = install(prefix, second)
    assert result.returncode == 1
    assert "second 1.0" in result.stderr and "'first'" in result.stderr and "ns/__init__.py" in result.stderr
    assert (site(prefix) / "ns/__init__.py").read_bytes() == b"one\n"
    assert not (site(prefix) / "second.py").exists()  # nothing of the second wheel was published
    assert not list(site(prefix).glob("second-*"))
    relaxed = subprocess.run(
        [sys.executable, "-m", "sage_build.install", "--prefix", str(prefix), str(second)],
        capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src"), SAGE_INSTALL_COLLISIONS="warn"))
    assert relaxed.returncode == 0
    assert "'first'" in relaxed.stderr and "second 1.0" in relaxed.stderr
    assert (site(prefix) / "ns/__init__.py").read_bytes() == b"one\n"


def test_tampered_wheel_installs_nothing(prefix, tmp_path):
    wheel = make_wheel(tmp_path, "bad", "1.0", {"bad/__init__.py": b"", "bad/z.py": b"evil\n"}, tamper="bad/z.py")
    before = prefix_content(prefix)
    result = install(prefix, wheel)
    assert result.returncode == 1
    assert "bad/z.py does not match the hash in the wheel's RECORD" in result.stderr
    assert prefix_content(prefix) == before


def test_missing_record_or_bad_zip(prefix, tmp_path):
    broken = tmp_path / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    result = install(prefix, broken)
    assert result.returncode == 1 and "is not a valid wheel" in result.stderr
    norecord = tmp_path / "norecord-1.0-py3-none-any.whl"
    with zipfile.ZipFile(norecord, "w") as archive:
        archive.writestr("norecord-1.0.dist-info/METADATA", "Name: norecord\n")
        archive.writestr("norecord-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
    result = install(prefix, norecord)
    assert result.returncode == 1 and "norecord" in result.stderr


def _pyc_without_header_and_path(data: bytes) -> bytes:
    """Byte-code without its 16-byte header (timestamps) and the embedded source path (the prefix)."""
    import marshal
    import types

    def strip(code: types.CodeType) -> types.CodeType:
        consts = tuple(strip(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
        return code.replace(co_filename="", co_consts=consts)

    return marshal.dumps(strip(marshal.loads(data[16:])))


def _tree(path: Path) -> dict[str, bytes]:
    """Files of a prefix; .pyc without their 16-byte header (timestamps differ); RECORD as a set of lines."""
    result = {}
    for file in sorted(path.rglob("*")):
        rel = str(file.relative_to(path))
        if file.is_dir() or rel.startswith("var/") or rel == "pyvenv.cfg" or file.name in ("INSTALLER", "REQUESTED", "direct_url.json"):
            continue
        if rel.startswith(("bin/activate", "bin/Activate", "bin/python")):
            continue  # the venv's own files
        if file.is_symlink():
            result[rel] = b"->" + os.readlink(file).encode()
            continue
        data = file.read_bytes()
        if file.suffix == ".pyc":
            data = _pyc_without_header_and_path(data)
        if file.name == "RECORD":
            # a script's hash depends on its shebang, i.e. on the prefix: compare its name only
            # (pip lists byte-code without a hash; we list it with one: compare names there too)
            lines = sorted(l.split(",")[0] if "/bin/" in l or ".pyc," in l else l for l in data.decode().splitlines()
                           if not l.split(",")[0].endswith(("INSTALLER", "REQUESTED", "direct_url.json")))
            data = "\n".join(lines).encode()
        result[rel] = data
    return result


def test_tree_equals_pips(prefix, tmp_path):
    wheel = make_wheel(tmp_path, "oracle", "1.0", {
        "oracle/__init__.py": b"def main():\n    print('hi')\n",
        "oracle/data.txt": b"data\n",
        "oracle/sub/mod.py": b"X = 1\n",
    }, data={"scripts/oracle-run.sh": b"#!/bin/sh\necho run\n", "headers/oracle.h": b"int o;\n",
             "data/share/oracle/readme": b"r\n", "purelib/extra_mod.py": b"E = 1\n"},
        scripts="oracle-hi=oracle:main")
    assert install(prefix, wheel).returncode == 0, install(prefix, wheel).stderr
    pip_prefix = tmp_path / "pip-prefix"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(pip_prefix)], check=True)
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(pip_prefix / "bin/python3"), "install",
                             "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"pip cannot install into another interpreter here: {result.stderr[-300:]}")
    ours, pips = _tree(prefix), _tree(pip_prefix)
    # shebangs name each prefix's own interpreter; pip's and installer's launchers quote differently
    for tree, root in ((ours, prefix), (pips, pip_prefix)):
        for key in list(tree):
            if key.startswith("bin/oracle"):
                tree[key] = tree[key].replace(str(root).encode(), b"PREFIX").replace(b"'", b'"')
    assert sorted(ours) == sorted(pips)
    for key in ours:
        assert ours[key] == pips[key], key


@pytest.mark.slow
def _start_writing(prefix: Path, wheels: list[Path], env: dict) -> subprocess.Popen:
    """An install of ``wheels``, returned once it has begun to write (its first staged file's
    directory is there) or has ended."""
    process = subprocess.Popen([sys.executable, "-m", "sage_build.install", "--prefix", str(prefix),
                                *map(str, wheels)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (site(prefix) / "ns").exists() and process.poll() is None:
        time.sleep(0.001)
    return process


def test_sigkill_at_random_points_then_rerun_equals_clean_install(prefix, clean_prefix, tmp_path):
    wheels = shared_wheels(tmp_path / "wheels", 4)
    clean = copy_prefix(clean_prefix, tmp_path / "clean")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    # Kill points spread over the part of an install that writes, from the moment it begins
    # (watched, not guessed: the interpreter's start takes what the machine's load makes it) to a
    # little past the time that part took in a whole install here, where a kill must change nothing.
    writing = _start_writing(clean, wheels, env)
    started = time.monotonic()
    assert writing.wait() == 0
    write_time = time.monotonic() - started
    expected = {k: v for k, v in _tree(clean).items()}
    rng = random.Random(1)
    outcomes = []  # what each kill left: nothing yet, part of the install, all of it
    for attempt in range(50):
        process = _start_writing(prefix, wheels, env)
        time.sleep(rng.uniform(0.0, 1.2 * write_time))
        process.send_signal(signal.SIGKILL)
        process.wait()
        records = len(list(site(prefix).glob("p*.dist-info/RECORD")))
        outcomes.append("all" if records == len(wheels) else "part" if records or (site(prefix) / "ns").exists()
                        else "none")
        # no torn file: every published file is complete (only temporaries may be partial)
        for file in site(prefix).rglob("*.h"):
            assert file.read_bytes().startswith(b"#define") and file.read_bytes().endswith(b"\n")
        assert install(prefix, *wheels).returncode == 0
        got = _tree(prefix)
        got = {k.replace(str(prefix), str(clean)): v.replace(str(prefix).encode(), str(clean).encode())
               for k, v in got.items()}
        assert got == expected, attempt
        assert not [p for p in prefix.rglob("*") if ".sbtmp-" in p.name]
        subprocess.run(["rm", "-rf", str(site(prefix) / "ns")] + [str(p) for p in site(prefix).glob("p*.dist-info")])
    # the kills must land inside installs often, or the test shows nothing
    assert outcomes.count("part") >= 8, {kind: outcomes.count(kind) for kind in ("none", "part", "all")}


def test_fsync_option_installs_the_same_tree(prefix, tmp_path):
    wheel = make_wheel(tmp_path, "synced", "1.0", {"synced/__init__.py": b"S = 1\n"})
    result = subprocess.run(
        [sys.executable, "-m", "sage_build.install", "--prefix", str(prefix), str(wheel)],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src"), SAGE_INSTALL_FSYNC="yes"))
    assert result.returncode == 0, result.stderr
    assert (site(prefix) / "synced/__init__.py").read_bytes() == b"S = 1\n"


def _install_api(prefix: Path, wheel: Path, **options):
    from sage_build.install.wheel import install_wheel
    from sage_build.install.target import TargetPython

    target = TargetPython.load(prefix / "var/lib/sage/target-python.json")
    options.setdefault("collisions", "error")
    return install_wheel(wheel, paths=target.paths, python_final=prefix / "bin/python3",
                         python_now=options.pop("python_now", prefix / "bin/python3"), **options)


def test_bytecode_compiled_here_equals_the_prefix_interpreters(tmp_path):
    # Same interpreter build: compiled in this process; the result must be what the prefix's
    # interpreter writes (compared as code objects: the header holds the source's mtime, and
    # the embedded path names each prefix).
    from sage_build.install.target import TargetPython

    modules = {"same/__init__.py": b"A = 1\n", "same/sub/m.py": "# -*- coding: utf-8 -*-\nS = 'é'\n".encode(),
               "same/broken.py": b"def (:\n"}
    wheel = make_wheel(tmp_path / "w", "same", "1.0", modules)
    trees = []
    for here in (True, False):
        prefix = tmp_path / f"p{here}"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
        from sage_build.install.target import query_python

        query_python(prefix / "bin/python3").save(prefix / "var/lib/sage/target-python.json")
        assert TargetPython.load(prefix / "var/lib/sage/target-python.json").compiles_like_us()
        _install_api(prefix, wheel, compile_here=here)
        pycs = sorted(site(prefix).rglob("*.pyc"))
        # magic number and flags (timestamp or hash based), then the code
        trees.append({p.relative_to(prefix).as_posix(): (p.read_bytes()[:8], _pyc_without_header_and_path(p.read_bytes()))
                      for p in pycs})
        record = (site(prefix) / "same-1.0.dist-info/RECORD").read_text()
        assert all(p.relative_to(site(prefix)).as_posix() in record for p in pycs)
    assert sorted(trees[0]) == sorted(trees[1]) and len(trees[0]) == 2  # broken.py has none, as with pip
    assert trees[0] == trees[1]


def test_big_wheel_compiles_in_children_side_by_side(prefix, tmp_path):
    # Two compile children for a big wheel within a job budget of 2: both must have their
    # work before either finishes (each child reads its whole request before it starts).
    log = tmp_path / "children.log"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(
        f"#!{prefix / 'bin/python3'}\n"
        "import io, os, sys, time\n"
        "data = sys.stdin.read()\n"
        f"open({str(log)!r}, 'a').write(f'request {{os.getpid()}}\\n')\n"
        "time.sleep(1)\n"
        f"open({str(log)!r}, 'a').write(f'done {{os.getpid()}}\\n')\n"
        "sys.stdin = io.StringIO(data)\n"
        "exec(sys.argv[2])\n"
    )
    wrapper.chmod(0o755)
    wheel = make_wheel(tmp_path / "w", "big", "1.0", {f"big/m{i}.py": f"X = {i}\n".encode() for i in range(320)})
    _install_api(prefix, wheel, python_now=wrapper, compile_workers=2, compile_here=False)
    assert len(list((site(prefix) / "big" / "__pycache__").glob("m*.pyc"))) == 320
    events = [line.split()[0] for line in log.read_text().splitlines()]
    assert events[:2] == ["request", "request"] and sorted(events) == ["done", "done", "request", "request"]


def test_big_wheel_compiled_here_shares_the_work_with_one_child(prefix, tmp_path):
    # Compiling here within a budget of 2: this process takes one half, a single child the
    # other (one interpreter start fewer than two children), and every .pyc is in RECORD.
    log = tmp_path / "children.log"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(
        f"#!{prefix / 'bin/python3'}\n"
        "import sys\n"
        f"open({str(log)!r}, 'a').write('child\\n')\n"
        "exec(sys.argv[2])\n"
    )
    wrapper.chmod(0o755)
    wheel = make_wheel(tmp_path / "w", "big", "1.0", {f"big/m{i}.py": f"X = {i}\n".encode() for i in range(320)})
    _install_api(prefix, wheel, python_now=wrapper, compile_workers=2, compile_here=True)
    assert log.read_text() == "child\n"
    pycs = sorted((site(prefix) / "big" / "__pycache__").glob("m*.pyc"))
    assert len(pycs) == 320
    record = (site(prefix) / "big-1.0.dist-info/RECORD").read_text()
    assert all(p.relative_to(site(prefix)).as_posix() in record for p in pycs)


def test_temporaries_of_a_dead_install_are_swept(prefix, tmp_path):
    # A killed install leaves ".NAME.sbtmp-PID-N" files; the next install into that directory
    # removes those whose process is gone, and keeps a living process's.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    package = site(prefix) / "swept"
    package.mkdir(parents=True)
    stale = package / f".mod.py.sbtmp-{dead.pid}-0"
    alive = package / f".mod.py.sbtmp-{os.getpid()}-0"
    stale.write_bytes(b"half a fi")
    alive.write_bytes(b"being written")
    wheel = make_wheel(tmp_path / "w", "swept", "1.0", {"swept/__init__.py": b"S = 1\n"})
    result = install(prefix, wheel)
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and alive.exists()


def _rezip(wheel: Path, out: Path, *, extra_for: str = "", tamper_big: bool = False) -> Path:
    """The same wheel, deflated, one member with a long extra field (the local header's size differs
    from the index's), and a member over 16 MiB (streamed instead of read whole)."""
    import base64
    import hashlib

    big_name = "odd/big.bin"
    big = bytes(range(256)) * (17 * 4096 + 3)  # 17 MiB and a bit
    with zipfile.ZipFile(wheel) as source:
        members = [(i, source.read(i)) for i in source.infolist()]
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for info, data in members:
            if info.filename.endswith("/RECORD"):
                digest = base64.urlsafe_b64encode(hashlib.sha256(big).digest()).rstrip(b"=").decode()
                if tamper_big:
                    digest = "B" * len(digest)
                data = data.replace(info.filename.encode() + b",,", f"{big_name},sha256={digest},{len(big)}\n".encode()
                                    + info.filename.encode() + b",,")
                target.writestr(big_name, big)
            new = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            new.external_attr = info.external_attr
            new.compress_type = zipfile.ZIP_DEFLATED
            if info.filename == extra_for:
                new.extra = b"\xfe\xca" + (200).to_bytes(2, "little") + b"x" * 200  # an unknown extra block
            target.writestr(new, data)
    return out


def test_deflated_members_long_extra_fields_and_big_members(prefix, tmp_path):
    wheel = make_wheel(tmp_path / "w", "odd", "1.0", {"odd/__init__.py": b"O = 1\n", "odd/data.txt": b"d" * 5000})
    rezipped = _rezip(wheel, tmp_path / "z" / wheel.name, extra_for="odd/data.txt")
    result = install(prefix, rezipped)
    assert result.returncode == 0, result.stderr
    assert (site(prefix) / "odd/data.txt").read_bytes() == b"d" * 5000
    assert (site(prefix) / "odd/big.bin").read_bytes() == bytes(range(256)) * (17 * 4096 + 3)
    assert "odd/big.bin,sha256=" in (site(prefix) / "odd-1.0.dist-info/RECORD").read_text()


def test_tampered_big_member_installs_nothing(prefix, tmp_path):
    wheel = make_wheel(tmp_path / "w", "odd", "1.0", {"odd/__init__.py": b"O = 1\n"})
    before = prefix_content(prefix)
    result = install(prefix, _rezip(wheel, tmp_path / "z" / wheel.name, tamper_big=True))
    assert result.returncode == 1
    assert "odd/big.bin does not match the hash in the wheel's RECORD" in result.stderr
    assert prefix_content(prefix) == before


def test_member_inflating_beyond_its_declared_size_is_refused(prefix, tmp_path):
    # A member whose index entry claims 10 bytes but which inflates to 1 GiB: refused without
    # inflating it all (the install runs with 700 MB of address space), nothing installed.
    import resource
    import struct as struct_

    wheel = make_wheel(tmp_path / "w", "bomb", "1.0", {"bomb/__init__.py": b"B = 1\n"})
    bombed = tmp_path / "z" / wheel.name
    bombed.parent.mkdir()
    # (level 1: zlib's fastest, still ~1000:1 on zeros; the default level spends seconds on the GiB)
    with zipfile.ZipFile(wheel) as source, \
            zipfile.ZipFile(bombed, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename.endswith("/RECORD"):  # listed, with a hash that is never reached
                content = b"bomb/zeros.bin,sha256=" + b"A" * 43 + b",10\n" + content
            target.writestr(info.filename, content)
        with target.open("bomb/zeros.bin", "w") as member:
            for _ in range(1024):
                member.write(bytes(1 << 20))
    data = bytearray(bombed.read_bytes())
    entry = data.rfind(b"PK\x01\x02", 0, data.rfind(b"bomb/zeros.bin"))  # its central directory entry
    struct_.pack_into("<I", data, entry + 24, 10)  # the uncompressed size it declares
    bombed.write_bytes(bytes(data))
    before = prefix_content(prefix)

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (700 << 20, 700 << 20))

    result = subprocess.run(
        [sys.executable, "-m", "sage_build.install", "--prefix", str(prefix), str(bombed)],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        preexec_fn=limit_memory)
    assert result.returncode == 1
    assert "bomb/zeros.bin" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert prefix_content(prefix) == before


@pytest.mark.parametrize("levels", ["x", "3", "0 -1"])
def test_bad_bytecode_levels_are_a_clear_error_in_both_places(prefix, tmp_path, levels):
    # One parser for --bytecode and SAGE_BYTECODE_LEVELS: the same clear error, no traceback.
    from sage_build.base.errors import InstallError
    from sage_build.install.bytecode import parse_levels

    with pytest.raises(InstallError, match="levels from 0 to 2"):
        parse_levels(levels, "SAGE_BYTECODE_LEVELS")
    wheel = make_wheel(tmp_path, "fine", "1.0", {"fine/__init__.py": b""})
    result = install(prefix, wheel, bytecode=levels)
    assert result.returncode == 1 and "--bytecode" in result.stderr and "Traceback" not in result.stderr
    assert parse_levels("none", "x") == () and parse_levels("0,1", "x") == (0, 1)
