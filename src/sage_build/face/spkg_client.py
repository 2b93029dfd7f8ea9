"""sage-spkg's side of the session worker (issue #19): hand make's call to it, or say there is none.

A make session (the make that runs sage-spkg, found among its parents, with the
``SAGE_MAKE_STARTED`` that the generated Makefile exports) may have one long-lived worker, :mod:`sage_build.face.spkg_worker`, which has
imported everything a package's build needs once and forks a child per package.  sage-spkg
then only starts an interpreter, connects, passes its descriptors, arguments, environment and
working directory, and waits for the child's exit status, which it makes its own.  Without a
worker (the first package of a session, ``SAGE_SPKG_WORKER=no``, a call that is not make's),
sage-spkg runs the package itself, as before.

This module runs before every package on the fast path, so it imports only what the
interpreter has already loaded (``_socket`` and ``_signal`` rather than ``socket`` and
``signal``, whose enums cost more than the rest of the call).
"""

from __future__ import annotations

import _signal
import _socket
import os
import stat
import sys

TYPE_CHECKING = False  # typing's import (with re and collections) would double this module's cost
if TYPE_CHECKING:
    from typing import Mapping

#: ``no`` turns the worker off: every sage-spkg runs its package itself.
SWITCH = "SAGE_SPKG_WORKER"
#: When the top-level make started (the generated Makefile exports it): with that make's process
#: id, the session a worker serves and outlives by nothing.
MAKE_STARTED = "SAGE_MAKE_STARTED"
PROTOCOL = b"sage-spkg-worker/2"
#: The mark of a session that has no worker (beside its ``.seen``): one that could not listen
#: left it, and no later package of the session starts another that would fail the same way.
NO_WORKER = ".off"
#: The most descriptors one message carries (Linux's SCM_MAX_FD is 253).
MAX_FDS = 250
_SOCKET_PATH_MAX = 107  # sun_path, less its final NUL
_TMP_NAME_EXTRA = 32  # what base.atomic.tmp_name adds to a name (a dot, a mark, a pid, a counter)
_FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT)


def make_pid() -> int | None:
    """The make that runs this process: its parent, or its parent's parent when make ran it through
    a shell; None when neither is a make (sage-spkg run by hand, by a script)."""
    pid = os.getppid()
    for _ in range(2):
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                data = stat.read()
        except OSError:
            return None
        name = data[data.find(b"(") + 1:data.rfind(b")")]
        if name == b"make" or name == b"gmake":
            return pid
        pid = int(data[data.rfind(b")") + 2:].split()[1])
    return None


def session_name(environ: Mapping[str, str], src: str, make: int | None) -> str | None:
    """The worker's name for this make session (``make``: its process id) and this copy of
    sage-build, or None outside make."""
    if environ.get(SWITCH) == "no" or make is None:
        return None
    started = environ.get(MAKE_STARTED, "")
    if not started or not started.replace(".", "").isdigit():
        return None
    try:
        tool = os.stat(src)
    except OSError:
        return None
    return f"w{tool.st_dev:x}-{tool.st_ino:x}-{make}-{started}"


def runtime_dir(environ: Mapping[str, str]) -> str | None:
    """The directory of this user's workers, made if need be (mode 0700); None if it is not safe.

    Only its owner may enter it, so only its owner can reach a socket in it; a directory
    another user made or may enter, or a link, is not used."""
    base = environ.get("XDG_RUNTIME_DIR")
    path = os.path.join(base, "sage-build") if base else os.path.join("/tmp", f"sage-build-{os.getuid()}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return path


def worker_base(environ: Mapping[str, str], src: str, make: int | None) -> str | None:
    """The path of this session's worker files without suffix (``.sock``, ``.lock`` ...), or None."""
    name = session_name(environ, src, make)
    directory = runtime_dir(environ) if name else None
    if not directory:
        return None
    base = os.path.join(directory, name)
    # the socket is made under a temporary name beside it first (base.atomic.tmp_name)
    return base if len(base) + len(".sock") + _TMP_NAME_EXTRA <= _SOCKET_PATH_MAX else None


def peer_uid(sock: _socket.socket) -> int:
    """The user id of the process at the other end of a connected Unix socket."""
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # struct ucred: pid, uid, gid
    return int.from_bytes(creds[4:8], sys.byteorder)


def inherited_fds(exclude: int) -> list[int]:
    """The descriptors this process would pass on to a program it runs (its standard streams,
    make's jobserver ...), in order."""
    fds = []
    for entry in os.listdir("/proc/self/fd"):
        fd = int(entry)
        if fd == exclude:
            continue
        try:
            if os.get_inheritable(fd):
                fds.append(fd)
        except OSError:  # the descriptor listdir itself had open
            pass
    return sorted(fds)


def encode_request(argv: list[str], environ: Mapping[str, str], fds: list[int]) -> bytes:
    """The request: NUL-separated fields, the environment's ``KEY=VALUE`` last.

    Names go as the bytes the system gave (the working directory, the arguments, the environment):
    the worker decodes nothing, so a name that is not UTF-8 arrives as it left whatever the locale.
    The file system encoding goes too: a worker whose interpreter decodes names otherwise refuses."""
    mask = os.umask(0)
    os.umask(mask)
    fields = [PROTOCOL, sys.getfilesystemencoding().encode(), os.getcwdb(), b"%d" % mask, b"%d" % os.getpgrp(),
              b"%d" % len(argv), *(os.fsencode(arg) for arg in argv),
              b"%d" % len(fds), *(b"%d" % fd for fd in fds)]
    fields += [os.fsencode(key) + b"=" + os.fsencode(value) for key, value in environ.items()]
    return b"\0".join(fields)


def run_in_worker(argv: list[str], src: str, environ: Mapping[str, str] = os.environ) -> int | None:
    """Run this sage-spkg call (``argv`` without the program) in the session's worker.

    Return its exit code, or None when no worker takes it (the caller runs the package
    itself: nothing has happened yet).  The child's termination by a signal is passed on:
    this process then dies of the same signal, as make expects of the command it ran.
    """
    base = worker_base(environ, src, make_pid())
    if base is None:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(base + ".sock")
        if peer_uid(sock) != os.getuid():
            return None
        fds = inherited_fds(exclude=sock.fileno())
        if len(fds) > MAX_FDS:
            return None
        payload = encode_request(argv, environ, fds)
        message = len(payload).to_bytes(4, "big") + payload
        sent = sock.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                         b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))])
        if sent < len(message):
            sock.sendall(message[sent:])
    except OSError:  # no worker, or one that went away: nothing was started
        sock.close()
        return None
    return _wait_for_child(sock, argv)


def _wait_for_child(sock: _socket.socket, argv: list[str]) -> int | None:
    child = 0
    pending: list[int] = []

    def forward(signum: int, frame: object) -> None:
        # A signal for the whole process group (Ctrl-C) reaches the child itself when it joined
        # ours; one sent to this process alone is passed on.  One that comes before the worker
        # has said which child runs the package is passed on as soon as it has: the child may
        # not have joined our group, or set its handlers, when the signal came.
        if not child:
            pending.append(signum)
        elif signum not in (_signal.SIGINT, _signal.SIGQUIT) or _pgid(child) != os.getpgrp():
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    for signum in _FORWARDED:
        _signal.signal(signum, forward)
    received = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except OSError:
            chunk = b""
        if not chunk:
            break
        received += chunk
        while b"\n" in received:
            line, _, received = received.partition(b"\n")
            kind, _, value = line.partition(b" ")
            if kind == b"P":
                child = int(value)
                for signum in pending:
                    try:
                        os.kill(child, signum)
                    except ProcessLookupError:
                        pass
                pending.clear()
            elif kind == b"R":  # refused before anything ran (e.g. sage-build's code changed)
                sock.close()
                _restore_signals(pending)
                return None
            elif kind == b"X":
                return int(value)
            elif kind == b"S":  # the child said what it had to; this process only dies of it
                _restore_signals()
                try:
                    _signal.signal(int(value), _signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
                os.kill(os.getpid(), int(value))
                return 128 + int(value)
    if not child:  # it ended (or could not fork) before it started anything: run the package here
        sock.close()
        _restore_signals(pending)
        return None
    package = argv[0] if argv else "?"
    print(f"sage-spkg: error: {package}: the session's worker ended before the package was done"
          f" (it was killed?); run make again (SAGE_SPKG_WORKER=no runs every package on its own)",
          file=sys.stderr)
    return 1


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except OSError:
        return -1


def _restore_signals(pending: list[int] | tuple[int, ...] = ()) -> None:
    """Back to the interpreter's handlers; the signals that came meanwhile (``pending``) are this
    process's again: sage-spkg, about to run the package itself, is interrupted or ends."""
    for signum in _FORWARDED:
        _signal.signal(signum, _signal.default_int_handler if signum == _signal.SIGINT else _signal.SIG_DFL)
    for signum in pending:
        os.kill(os.getpid(), signum)


def start_worker(src: str, python: str, script: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Start the session's worker in the background for the packages after this one; return
    whether one was started.

    A session's first package starts none (a session of one package would pay for a worker it
    never uses); it marks the session instead and clears the marks of ended sessions.  The
    second starts it unless one runs or is starting (its lock is held).  The worker gets no
    descriptor of ours: make's output pipe and jobserver stay make's."""
    make = make_pid()
    base = worker_base(environ, src, make)
    if base is None:
        return False
    try:
        os.close(os.open(base + ".seen", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass
    except OSError:
        return False
    else:
        sweep_ended_sessions(os.path.dirname(base))
        return False
    import subprocess

    from sage_build.base.lock import try_lock

    try:
        held = try_lock(base + ".lock")
    except OSError:
        return False
    if held is None:  # the worker lives or is starting
        return False
    try:
        # asked under the lock, which a worker that failed holds until it has left the mark
        if os.path.lexists(base + NO_WORKER):
            return False
    finally:
        os.close(held)
    try:
        with open(base + ".log", "ab") as log:
            subprocess.Popen([python, script, base, str(make), src], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=log, close_fds=True, cwd="/", env=dict(environ))
    except OSError:  # something planted at the log's path: this package runs, as every one without a worker
        return False
    return True


def sweep_ended_sessions(directory: str) -> None:
    """Remove the files of sessions whose make has ended (a killed worker leaves its socket)."""
    for entry in os.listdir(directory):
        parts = entry.split(".", 1)[0].split("-")
        if len(parts) < 4 or not parts[2].isdigit():
            continue
        try:
            os.kill(int(parts[2]), 0)
        except (ProcessLookupError, PermissionError):  # gone, or the id is another user's now
            try:
                os.unlink(os.path.join(directory, entry))
            except OSError:
                pass
