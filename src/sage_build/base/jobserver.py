"""The job budget inside a package build: a share of make's jobserver.

`make -jN` hands each sage-spkg one job slot (and a jobserver of N-1 more tokens in MAKEFLAGS'
``--jobserver-auth``). A build used to get N for itself (``SAGE_NUM_THREADS``, ninja's and cmake's
``CMAKE_BUILD_PARALLEL_LEVEL``, ``MAX_JOBS``), so `make -j32` could run 32 x 32 compilers. Now:

* its build **borrows** the tokens that are free in make's jobserver when it starts (without
  waiting, up to N-1) and holds them until it ends: its share is ``1 + borrowed`` (its own slot plus
  the borrowed ones), and the shares of all running builds add up to at most N;
* the tools that do not speak the jobserver get the share as a number (``SAGE_NUM_THREADS``,
  ``CMAKE_BUILD_PARALLEL_LEVEL``, ``MAX_JOBS``, ``-j`` in MAKEFLAGS);
* the tools that do (a recipe's ``make``, ``$(MAKE)`` sub-makes) get a jobserver of their own with
  exactly the share: a pipe holding ``share - 1`` tokens, named in MAKEFLAGS' ``--jobserver-auth``
  and passed to the build's processes (:func:`open_fds`).

An install borrows the same way, for as long as it compiles a big wheel's byte-code in several
processes (:func:`borrowed`).

Borrowed tokens go back to make when the build ends, also on an error; a SIGKILLed build loses
them (make then runs that session with fewer slots). Reading make's pipe without blocking needs a
file description of our own, from Linux's /proc/self/fd; where there is none the share is one
job (never over the budget). Without make's jobserver (`make -j1`, sage-spkg
run by hand) nothing changes: the budget is :func:`makeflags.job_budget`. Portage's steve and
Spack 1.x's installer share one jobserver between packages the same way.

Standard library only (run by every sage-spkg).
"""

from __future__ import annotations

import os
import re
import stat
from contextlib import contextmanager
from typing import Iterator, Mapping

from sage_build.base.makeflags import job_budget

_AUTH = re.compile(r"--jobserver-(?:auth|fds)=(\S+)")
_JOBS = re.compile(r"(^|\s)-j\s*\d*(?=\s|$)")


def jobserver_auth(makeflags: str) -> str:
    """make's ``--jobserver-auth`` value ('R,W' or 'fifo:PATH'), else ''."""
    match = _AUTH.search(makeflags)
    return match.group(1) if match else ""


def open_fds(environ: Mapping[str, str]) -> tuple[int, ...]:
    """The jobserver's pipe ends that MAKEFLAGS names and this process has open: what a child
    must inherit (subprocess closes every other descriptor) to share the jobserver."""
    match = re.fullmatch(r"(\d+),(\d+)", jobserver_auth(environ.get("MAKEFLAGS", "")))
    if not match:
        return ()
    fds = (int(match.group(1)), int(match.group(2)))
    return fds if all(map(_is_pipe, fds)) else ()


def _is_pipe(fd: int) -> bool:
    """Whether ``fd`` is open here and a pipe (make closes its jobserver in a line without '+':
    the number may then be another file of ours)."""
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


def _ends(auth: str) -> tuple[str, int | str] | None:
    """Where to read tokens from (a path to open on its own) and where to give them back."""
    if auth.startswith("fifo:"):
        return auth[len("fifo:"):], auth[len("fifo:"):]
    match = re.fullmatch(r"(-?\d+),(-?\d+)", auth)
    if not match or int(match.group(1)) < 0:
        return None
    read_fd, write_fd = int(match.group(1)), int(match.group(2))
    if not (_is_pipe(read_fd) and _is_pipe(write_fd)):
        return None
    # An open file description of our own (non-blocking without changing make's): Linux's /proc.
    return f"/proc/self/fd/{read_fd}", write_fd


def _borrow(read_path: str, want: int) -> bytes:
    if want <= 0:
        return b""
    try:
        fd = os.open(read_path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return b""
    try:
        return os.read(fd, want)
    except (BlockingIOError, InterruptedError):
        return b""
    finally:
        os.close(fd)


def _give_back(write_end: int | str, tokens: bytes) -> None:
    if not tokens:
        return
    if isinstance(write_end, int):
        os.write(write_end, tokens)
        return
    fd = os.open(write_end, os.O_WRONLY)
    try:
        os.write(fd, tokens)
    finally:
        os.close(fd)


@contextmanager
def _tokens(ends: tuple[str, int | str], want: int) -> Iterator[bytes]:
    """Up to ``want`` tokens free in make's jobserver now (``ends``: see :func:`_ends`), given back
    at the end, also on an error."""
    read_path, write_end = ends
    tokens = _borrow(read_path, want)
    try:
        yield tokens
    finally:
        _give_back(write_end, tokens)


def _makeflags_with(makeflags: str, jobs: int, auth: str) -> str:
    """MAKEFLAGS with make's -jN and jobserver replaced by ours (none for one job)."""
    words = _AUTH.sub("", _JOBS.sub(r"\1", makeflags)).split()
    letters = words.pop(0) if words and not words[0].startswith("-") else ""
    ours = [f"-j{jobs}", f"--jobserver-auth={auth}"] if jobs > 1 else []
    return f"{letters} " + " ".join(ours + words)


@contextmanager
def build_share(environ: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """While a build runs: the variables that give it its share of the job budget (to update its
    environment with). See the module's documentation."""
    budget = job_budget(environ)
    makeflags = environ.get("MAKEFLAGS", "")
    ends = _ends(jobserver_auth(makeflags)) if budget > 1 else None
    if ends is None:
        jobs = str(budget)
        yield {"SAGE_NUM_THREADS": jobs, "CMAKE_BUILD_PARALLEL_LEVEL": jobs, "MAX_JOBS": jobs}
        return
    with _tokens(ends, budget - 1) as tokens:
        share = 1 + len(tokens)
        pipe = os.pipe()
        try:
            os.write(pipe[1], b"+" * (share - 1))
            jobs = str(share)
            yield {"SAGE_NUM_THREADS": jobs, "CMAKE_BUILD_PARALLEL_LEVEL": jobs, "MAX_JOBS": jobs,
                   "MAKEFLAGS": _makeflags_with(makeflags, share, f"{pipe[0]},{pipe[1]}")}
        finally:
            for fd in pipe:
                os.close(fd)


@contextmanager
def borrowed(environ: Mapping[str, str], want: int) -> Iterator[int]:
    """Up to ``want`` jobs more than the one a sage-spkg has, for a while (an install compiling a
    big wheel's byte-code, #19): the tokens free in make's jobserver now, given back at the end;
    without make's jobserver, what the budget allows. Yields how many it got."""
    want = max(0, min(want, job_budget(environ) - 1))
    ends = _ends(jobserver_auth(environ.get("MAKEFLAGS", ""))) if want else None
    if ends is None:
        yield want
        return
    with _tokens(ends, want) as tokens:
        yield len(tokens)
