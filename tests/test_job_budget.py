"""The job budget across packages and inside them (base/jobserver.py): `make -jN` never runs more
than N compilers, whether a recipe's build runs `make -j$SAGE_NUM_THREADS` or a plain `make`."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import add_recipe
from sage_build.base.jobserver import _makeflags_with, build_share

# A "compiler" that records when it ran; six objects a package, 0.4 s each.
FAKE_CC = """#!/bin/sh
start=$(date +%s.%N); sleep 0.4; echo "$start $(date +%s.%N)" >> {log}
"""
OBJECTS = " ".join(f"o{i}" for i in range(6))


def _recipe(tree, name: str, make_command: str, fake_cc: Path) -> None:
    rules = "".join(f"o{i}:\\n\\t{fake_cc} o{i}\\n" for i in range(6))
    add_recipe(tree.root, name, version="1.0", deps="", files={"spkg-install.in": (
        f"printf 'all: {OBJECTS}\\n{rules}' > Makefile\n"
        f"{make_command} all\n"
        f'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share" && echo x > "$SAGE_DESTDIR$SAGE_LOCAL/share/{name}"\n')})


def _peak(log: Path) -> int:
    """The most compilers that ran at once."""
    moments = []
    for line in log.read_text().split("\n"):
        if line.strip():
            start, end = map(float, line.split())
            moments += [(start, 1), (end, -1)]
    running = peak = 0
    for _, step in sorted(moments):  # an end before a start at the same moment
        running += step
        peak = max(peak, running)
    return peak


def _build(tree, tmp_path: Path, commands: dict[str, str], jobs: int) -> int:
    log = tmp_path / "compilers.log"
    fake_cc = tmp_path / "fakecc"
    fake_cc.write_text(FAKE_CC.format(log=log))
    fake_cc.chmod(0o755)
    for name, command in commands.items():
        _recipe(tree, name, command, fake_cc)
    tree.configure()
    tree.make("python3-venv")
    tree.make(*commands, jobs=jobs)
    assert len(log.read_text().split("\n")) - 1 == 6 * len(commands)
    return _peak(log)


@pytest.mark.slow
def test_inner_makes_share_the_budget(tree, tmp_path):
    # Before the budget: each build ran `make -j2` (SAGE_NUM_THREADS was make's N): four compilers.
    peak = _build(tree, tmp_path, {"left": "make -j$SAGE_NUM_THREADS", "right": "${MAKE:-make} -j${MAX_JOBS}"},
                  jobs=2)
    assert peak <= 2


@pytest.mark.slow
def test_a_plain_make_joins_the_jobserver(tree, tmp_path):
    # One package at -j3 runs its plain `make` with the three slots (before: one, the jobserver's
    # pipe was closed in the build).
    assert _build(tree, tmp_path, {"alone": "make"}, jobs=3) == 3


def test_without_a_jobserver_the_share_is_the_budget():
    with build_share({"MAKEFLAGS": "", "SAGE_NUM_THREADS": "5"}) as share:
        assert share == {"SAGE_NUM_THREADS": "5", "CMAKE_BUILD_PARALLEL_LEVEL": "5", "MAX_JOBS": "5"}


def test_the_share_borrows_free_tokens_and_gives_them_back():
    import os

    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"+++")  # make -j5 with one other job running: three tokens free
    try:
        with build_share({"MAKEFLAGS": f"k -j5 --jobserver-auth={read_fd},{write_fd} -- X=1"}) as share:
            assert share["SAGE_NUM_THREADS"] == "4"
            ours = share["MAKEFLAGS"].split()
            assert ours[:2] == ["k", "-j4"] and ours[-2:] == ["--", "X=1"]
            our_read, _ = map(int, ours[2].split("=")[1].split(","))
            os.set_blocking(our_read, False)
            assert os.read(our_read, 10) == b"+++"  # the build's own jobserver: share - 1 tokens
            os.set_blocking(read_fd, False)
            with pytest.raises(BlockingIOError):
                os.read(read_fd, 1)  # borrowed
        assert os.read(read_fd, 10) == b"+++"  # given back
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_makeflags_of_one_job_have_no_jobserver():
    assert _makeflags_with(" -j2 --jobserver-auth=3,4", 1, "7,8").split() == []
    assert _makeflags_with(" -j2 --jobserver-auth=3,4", 2, "7,8").split() == ["-j2", "--jobserver-auth=7,8"]


def test_an_install_borrows_free_tokens_for_its_byte_code_and_gives_them_back():
    import os

    from sage_build.base.jobserver import borrowed

    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"+")  # make -j5, three other jobs running: one token free
    try:
        with borrowed({"MAKEFLAGS": f" -j5 --jobserver-auth={read_fd},{write_fd}"}, 3) as extra:
            assert extra == 1
            os.set_blocking(read_fd, False)
            with pytest.raises(BlockingIOError):
                os.read(read_fd, 1)
        assert os.read(read_fd, 10) == b"+"
        # an install that fails while it compiles gives them back too
        os.set_blocking(read_fd, True)
        os.write(write_fd, b"++")
        with pytest.raises(RuntimeError):
            with borrowed({"MAKEFLAGS": f" -j3 --jobserver-auth={read_fd},{write_fd}"}, 5) as extra:
                assert extra == 2
                raise RuntimeError("a broken member")
        os.set_blocking(read_fd, False)
        assert os.read(read_fd, 10) == b"++"
    finally:
        os.close(read_fd)
        os.close(write_fd)
    with borrowed({"MAKEFLAGS": "", "SAGE_NUM_THREADS": "3"}, 5) as extra:
        assert extra == 2  # no jobserver: what the budget allows
    with borrowed({"MAKEFLAGS": ""}, 5) as extra:
        assert extra == 0


def _compiled_in(tree, name: str) -> str:
    log = (tree.root / f"logs/pkgs/{name}-1.0.log").read_text()
    return next(line.split("] ", 1)[1] for line in log.splitlines() if "] installed " in line)


@pytest.mark.slow
def test_a_big_wheels_byte_code_uses_only_the_free_job_slots(tree, tmp_path):
    """`make -j2`: a big wheel compiles its byte-code in two processes when it is alone, in one
    when another package holds the second slot (before: always two, three processes on two slots)."""
    from conftest import make_wheel

    files = {f"big/m{i}.py": f"X = {i}\n".encode() for i in range(400)}
    wheel = make_wheel(tmp_path / "w", "big", "1.0", files)
    add_recipe(tree.root, "big", version="1.0", tarball=wheel)
    add_recipe(tree.root, "holder", version="1.0", deps="", files={"spkg-install": (
        'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share" && echo x > "$SAGE_DESTDIR$SAGE_LOCAL/share/holder"\n'
        f'for i in $(seq 100); do [ -e "$SAGE_LOCAL/var/lib/sage/installed/big-1.0" ] && exit 0; sleep 0.1; done\n')})
    tree.configure()
    tree.make("python3-venv")
    tree.make("big", jobs=2)
    assert _compiled_in(tree, "big") == "installed big-1.0-py3-none-any.whl (byte-code compiled in 2 processes)"
    tree.make("big-uninstall")
    tree.make("holder", "big", jobs=2)  # holder waits until big is installed: it holds its slot throughout
    assert _compiled_in(tree, "big") == "installed big-1.0-py3-none-any.whl"
    assert tree.python("import big.m399; print(big.m399.X)").stdout.strip() == "399"
