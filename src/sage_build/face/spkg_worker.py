"""The session worker (issue #19): one long-lived process per make session that forks sage-spkg.

A package's own work is tens of milliseconds; starting an interpreter and importing what a
build needs (installer, packaging, our modules) was most of sage-spkg's time, paid once per
package.  The worker pays it once per make session (the model: Bazel's persistent workers,
Gradle's daemon, a zygote): it imports everything, then forks one child per sage-spkg
(:mod:`sage_build.face.spkg_client`), which takes the caller's descriptors, arguments,
environment, working directory and umask and runs :func:`sage_build.face.spkg_command.main`
as sage-spkg would have.  A fork shares nothing with its siblings: installs run side by
side as before, each under its own package lock, and make's job budget is untouched (each
child stands for one sage-spkg that make counts).

What keeps it safe:

- Its socket is in a directory only this user may enter (``spkg_client.runtime_dir``), and
  both ends check the other's user id (``SO_PEERCRED``).
- It dies with its session: it watches the top-level make (a pidfd) and ends when make has
  ended and its last child has; it also ends after an hour without work.
- A child dies with its caller and with the worker: when a sage-spkg ends before its child
  (SIGKILL), the worker kills the child with SIGKILL, which is exactly the kill a sage-spkg
  of its own would have taken (the kill-point tests cover every step of it); the kernel
  kills the children of a killed worker (``PR_SET_PDEATHSIG``), and their callers fail.
- The child joins its caller's process group, so Ctrl-C and make's signals reach it as they
  reached sage-spkg.
- It serves only the code it loaded: when a file of sage-build's own modules or the tool
  environment's pins change, it refuses the next call (the caller runs the package itself),
  stops taking calls and ends, and the session's next package starts a fresh one.  So does a
  worker that refuses a caller whose interpreter settings are make's own: the package that
  started it had settings of its own (make's PYTHONPATH for that target alone).

Run by ``build/bin/sage-spkg-worker BASE MAKE_PID SRC`` (MAKE_PID: the session's make); ``BASE`` is
``spkg_client.worker_base``.
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import importlib
import io
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Mapping

from sage_build.base.atomic import move_atomic, tmp_name
from sage_build.base.lock import try_lock
from sage_build.face import spkg_client

#: What a build may import, loaded before the first call; a module that cannot be imported
#: here (an optional dependency) is imported by the child as usual, or reported by it.
PRELOAD = (
    "sage_build.face.spkg_command",
    "sage_build.pipeline.spkg",
    "sage_build.pipeline.build",
    "sage_build.pipeline.fetch",
    "sage_build.pipeline.unpack",
    "sage_build.pipeline.normalize",
    "sage_build.install.wheel",
    "sage_build.install.bytecode",
    "sage_build.install.manifest",
    "sage_build.recipes.graph",
    "sage_build.configure.build_plan",
    "sage_build.cache.entry",
    "sage_build.cache.key",
    "sage_build.cache.store",
    "sage_build.cache.relocate",
    "sage_build.cache.trust",
    "cryptography.exceptions",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "cryptography.hazmat.primitives.serialization",
    "installer.scripts",
    "packaging.utils",
    "packaging.version",
    "packaging.tags",
    "concurrent.futures",
    "subprocess",
    "tarfile",
    "zipfile",
    "encodings.cp437",  # the codec of a zip member's name without the UTF-8 flag: else each child loads it
    "shutil",
    "filecmp",
    "csv",
    "base64",
    "tomllib",
    "jinja2",
)
IDLE_SECONDS = 3600
#: How long a caller may take to send its request (it sends it at once: one that takes longer is
#: stopped or gone, and its connection is closed; the others are served meanwhile).
REQUEST_SECONDS = 10
#: The most a request may weigh (its environment, mostly: a few kB, 1.6 MB in a test).
REQUEST_MAX = 1 << 26
#: What a caller or its process group may send its child (the ones the worker ignores among them).
_CHILD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP,
                  signal.SIGTTIN, signal.SIGTTOU}
_PR_SET_PDEATHSIG = 1
#: The locale's variables: an interpreter reads them as it starts (its encodings), as PYTHON*.
_LOCALE_VARIABLES = (b"LC_ALL", b"LC_CTYPE", b"LANG", b"LOCPATH")


def interpreter_settings(environ: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    """The part of an environment that an interpreter applies as it starts and a forked child
    cannot take on afterwards: ``PYTHON*`` (PYTHONPATH, PYTHONHASHSEED, PYTHONWARNINGS ...) and the
    locale.  A caller whose settings differ from the worker's runs its package in its own process."""
    return {key: value for key, value in environ.items() if key.startswith(b"PYTHON") or key in _LOCALE_VARIABLES}


def _settings_of(pid: int) -> dict[bytes, bytes] | None:
    """The interpreter settings in a process's environment as it started (``/proc/PID/environ``)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            entries = environ.read().split(b"\0")
    except OSError:
        return None
    return interpreter_settings(dict(entry.partition(b"=")[::2] for entry in entries if b"=" in entry))


class Worker:
    """The listening socket, the calls in progress, and the code they run."""

    def __init__(self, base: str, make_pid: int, src: str) -> None:
        self.base = base
        self.src = os.path.realpath(src)
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, caller's connection)
        self.callers: dict[int, int] = {}  # connection's fd -> child's pidfd
        self.incoming: dict[int, _Incoming] = {}  # connection's fd -> its request, while it is read
        self.listener: socket.socket | None = None
        self.make = os.pidfd_open(make_pid)
        self.fingerprint: dict[str, tuple[int, int]] = {}
        self.code_paths: list[str] = []
        self.last_work = time.monotonic()
        self.session_ended = False
        self.trees: set[bytes] = set()  # the SAGE_ROOTs whose recipe graph this worker has loaded
        self.settings = interpreter_settings(os.environb)  # as the worker's interpreter started
        # make's own (None: not readable), which a package has unless make set others for it
        self.session_settings = _settings_of(make_pid)

    def listen(self) -> None:
        path = self.base + ".sock"
        temporary = tmp_name(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(temporary)
        os.chmod(temporary, 0o600)
        listener.listen(64)
        try:
            move_atomic(temporary, path)  # replaces the socket of a worker that was killed, a file
        except OSError:  # a directory, say: not ours to remove
            listener.close()
            os.unlink(temporary)
            raise
        self.socket_inode = os.stat(path).st_ino
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.make, selectors.EVENT_READ, "make")

    def preload(self) -> None:
        for name in PRELOAD:
            try:
                importlib.import_module(name)
            except Exception:
                pass
        try:
            # A binary cache's key asks each compiler for its version: once a session, not a package
            # (the children inherit the answers; a child whose CC differs asks its own).
            from sage_build.cache.key import compilers

            compilers(os.environ)
        except Exception:
            pass
        files = [getattr(module, "__file__", None) for module in list(sys.modules.values())]
        self.code_paths = [f for f in files if f and os.path.realpath(f).startswith(self.src + os.sep)]
        self.code_paths.append(os.path.join(sys.prefix, ".sage-build-deps"))
        self.fingerprint = self.code_files()

    def code_files(self) -> dict[str, tuple[int, int]]:
        """sage-build's loaded modules and the tool environment's stamp, with their mtime and size."""
        found = {}
        for path in self.code_paths:
            try:
                info = os.stat(path)
            except OSError:
                continue
            found[path] = (info.st_mtime_ns, info.st_size)
        return found

    def stop_listening(self) -> None:
        if self.listener is None:
            return
        self.selector.unregister(self.listener)
        try:
            if os.stat(self.base + ".sock").st_ino == self.socket_inode:  # not a successor's
                os.unlink(self.base + ".sock")
        except OSError:
            pass
        self.listener.close()
        self.listener = None

    def serve(self) -> None:
        while self.listener is not None or self.children:
            now = time.monotonic()
            timeout = None if self.children else max(0.0, IDLE_SECONDS - (now - self.last_work))
            if self.incoming:
                first = max(0.0, min(incoming.deadline for incoming in self.incoming.values()) - now)
                timeout = first if timeout is None else min(timeout, first)
            events = self.selector.select(timeout)
            self.drop_late_requests()
            if not events and not self.children and not self.incoming \
                    and time.monotonic() - self.last_work >= IDLE_SECONDS:
                break  # idle too long
            for key, _ in events:
                # An event of this batch whose file was closed by an earlier one (a child and its
                # caller ending together), its number perhaps taken again since: not ours any more.
                if self.selector.get_map().get(key.fd) is not key:
                    continue
                if key.data == "accept" and self.listener is not None:
                    self.accept()
                elif key.data == "make":
                    self.selector.unregister(self.make)
                    self.session_ended = True
                    self.stop_listening()
                elif key.data == "child":
                    self.child_ended(key.fd)
                elif key.data == "caller":
                    self.caller_left(key.fd)
                elif key.data == "request":
                    self.receive(key.fd)
        for fd in list(self.incoming):  # their callers find the connection closed: they run their packages
            self.drop_request(fd)
        self.stop_listening()
        # The session's files go with it; a worker that ends while make runs (idle, or its code
        # changed) leaves the session's mark, so that the next package starts a fresh one.
        for suffix in (".seen", ".lock", ".log") if self.session_ended else (".log",):
            try:
                if suffix != ".log" or os.path.getsize(self.base + suffix) == 0:
                    os.unlink(self.base + suffix)
            except OSError:
                pass

    def accept(self) -> None:
        assert self.listener is not None
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return
        self.begin(connection)

    def begin(self, connection: socket.socket) -> None:
        """Take a caller's connection: its request is read as it comes (:meth:`receive`)."""
        if spkg_client.peer_uid(connection) != os.getuid():
            connection.close()
            return
        # The request is read as it comes, beside the other calls: a caller that sends slowly
        # (stopped, swapped out) holds up nobody but itself.
        connection.setblocking(False)
        self.incoming[connection.fileno()] = _Incoming(connection, time.monotonic() + REQUEST_SECONDS)
        self.selector.register(connection, selectors.EVENT_READ, "request")

    def receive(self, fd: int) -> None:
        """Read what a caller sent of its request; run it once it is whole."""
        incoming = self.incoming[fd]
        try:
            data, fds, _, _ = socket.recv_fds(incoming.connection, 1 << 16, spkg_client.MAX_FDS)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        incoming.fds += fds
        incoming.data += data
        size = int.from_bytes(incoming.data[:4], "big") if len(incoming.data) >= 4 else REQUEST_MAX
        if data and len(incoming.data) < 4 + size <= 4 + REQUEST_MAX:
            return  # more to come
        connection, fds = incoming.connection, incoming.fds
        self.selector.unregister(connection)
        del self.incoming[fd]
        try:
            # cut off (the caller went), too big, or more than it announced: not a request
            request = _parse_request(bytes(incoming.data[4:])) if len(incoming.data) == 4 + size else None
        except (ValueError, IndexError, UnicodeDecodeError):
            request = None
        if request is None or len(request["targets"]) != len(fds):
            for descriptor in fds:  # the caller's (make's output pipe among them): not ours to keep
                os.close(descriptor)
            connection.close()
            return
        connection.setblocking(True)
        try:
            self.start(connection, request, fds)
        except Exception:
            traceback.print_exc()
            connection.close()

    def drop_late_requests(self) -> None:
        now = time.monotonic()
        for fd in [fd for fd, incoming in self.incoming.items() if incoming.deadline <= now]:
            self.drop_request(fd)

    def drop_request(self, fd: int) -> None:
        incoming = self.incoming.pop(fd)
        self.selector.unregister(incoming.connection)
        for descriptor in incoming.fds:
            os.close(descriptor)
        incoming.connection.close()

    def start(self, connection: socket.socket, request: dict, fds: list[int]) -> None:
        """Run a whole request: a child for it, or a refusal."""
        try:
            if self.code_files() != self.fingerprint:
                _refuse(connection, b"sage-build changed")
                self.stop_listening()
                return
            if request["encoding"] != sys.getfilesystemencoding():
                # the child would read the caller's names (arguments, the environment as str)
                # otherwise than the caller's own interpreter: the caller runs its package itself
                _refuse(connection, b"another file system encoding")
                return
            if interpreter_settings(request["environ"]) != self.settings:
                # e.g. a make target's own PYTHONPATH or PYTHONWARNINGS: the child is an interpreter
                # that started with the worker's; the caller's own interpreter started with them
                _refuse(connection, b"other Python or locale settings")
                if interpreter_settings(request["environ"]) == self.session_settings:
                    # The package that started this worker had settings of its own (make's
                    # PYTHONPATH for that target alone), the caller has make's: this worker would
                    # refuse every package after it. It makes way: the caller, running its package
                    # itself, or the next package, starts one with the session's settings.
                    self.stop_listening()
                return
            request["worker"] = os.getpid()
            # The child starts with the worker's dispositions (SIGINT ignored): a signal that comes
            # before it has set its own waits, blocked, instead of being lost (a blocked signal is
            # never discarded as ignored); the child unblocks it once its handlers are in place.
            request["sigmask"] = signal.pthread_sigmask(signal.SIG_BLOCK, _CHILD_SIGNALS)
            try:
                pid = os.fork()
                if pid == 0:
                    try:
                        _run_child(request, fds, self.make)
                    finally:  # nothing a child raises may return it into the worker's loop
                        os._exit(1)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, request["sigmask"])
        finally:
            for fd in fds:
                os.close(fd)
        self.last_work = time.monotonic()
        pidfd = os.pidfd_open(pid)
        connection.settimeout(None)
        self.children[pidfd] = (pid, connection)
        self.callers[connection.fileno()] = pidfd
        self.selector.register(pidfd, selectors.EVENT_READ, "child")
        self.selector.register(connection, selectors.EVENT_READ, "caller")
        try:
            connection.sendall(b"P %d\n" % pid)
        except OSError:
            pass  # the caller is gone: caller_left kills the child
        root = request["environ"].get(b"SAGE_ROOT", b"")
        if root not in self.trees:  # while the child runs: the next ones inherit the tree's graph
            self.trees.add(root)
            from sage_build.face.spkg_command import remember_tree

            # the caller's file system encoding is ours (checked above)
            remember_tree({os.fsdecode(k): os.fsdecode(v) for k, v in request["environ"].items()})

    def child_ended(self, pidfd: int) -> None:
        pid, connection = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        del self.callers[connection.fileno()]
        try:
            self.selector.unregister(connection)
        except KeyError:  # the caller had left (caller_left)
            pass
        try:
            connection.sendall(b"S %d\n" % -code if code < 0 else b"X %d\n" % code)
        except OSError:
            pass
        connection.close()
        self.last_work = time.monotonic()

    def caller_left(self, fd: int) -> None:
        """The caller sent something or went away: it never sends after its request, so it died."""
        pidfd = self.callers[fd]
        pid, connection = self.children[pidfd]
        try:
            data = connection.recv(1)
        except OSError:
            data = b""
        if data:
            return
        # As if the sage-spkg that asked had been killed, which is what happened to it; the
        # commands it ran (a build backend, a script) go too, where a sage-spkg of its own would
        # have left them running.
        doomed = _descendants(pid)
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        for descendant in doomed:
            try:
                os.kill(descendant, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.selector.unregister(connection)  # child_ended reaps the child and closes it


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid``, from the process table."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def _refuse(connection: socket.socket, why: bytes) -> None:
    """Tell a caller to run its package itself (nothing was started), if it still listens."""
    try:
        connection.sendall(b"R " + why + b"\n")
    except OSError:
        pass
    connection.close()


class _Incoming:
    """A request while it is read: what came so far, the descriptors that came with it, and when
    its caller's time is up."""

    def __init__(self, connection: socket.socket, deadline: float) -> None:
        self.connection = connection
        self.deadline = deadline
        self.data = bytearray()
        self.fds: list[int] = []


def _parse_request(payload: bytes) -> dict | None:
    """A request's fields (``spkg_client.encode_request``), or None if it is not one."""
    fields = payload.split(b"\0")
    if fields[0] != spkg_client.PROTOCOL:
        return None
    # The names stay bytes (the directory, the environment); the arguments are decoded as the
    # caller's interpreter did, which start() checks is this one's way (``encoding``).
    encoding, cwd, umask, pgid, count = fields[1].decode("ascii"), fields[2], int(fields[3]), int(fields[4]), int(fields[5])
    argv = [os.fsdecode(arg) for arg in fields[6:6 + count]]
    at = 6 + count
    fd_count = int(fields[at])
    targets = [int(fd) for fd in fields[at + 1:at + 1 + fd_count]]
    if len(targets) != fd_count:
        return None
    environ = {}
    for entry in fields[at + 1 + fd_count:]:
        key, _, value = entry.partition(b"=")
        environ[key] = value
    return {"encoding": encoding, "cwd": cwd, "umask": umask, "pgid": pgid, "argv": argv, "targets": targets,
            "environ": environ}


def _run_child(request: dict, fds: list[int], make_pidfd: int) -> None:
    """In the forked child: become the caller's sage-spkg, run the package, exit."""
    code = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != request["worker"]:  # the worker died before the line above
            os._exit(1)
        try:
            os.setpgid(0, request["pgid"])
        except OSError:  # the caller's group is in another session: its signals are forwarded
            pass
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN,
                       signal.SIGTTOU, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        _take_descriptors(fds, request["targets"])
        os.chdir(request["cwd"])
        os.umask(request["umask"])
        os.environb.clear()
        os.environb.update(request["environ"])
        sys.argv = ["sage-spkg", *request["argv"]]
        _reopen_standard_streams()
        # what came meanwhile arrives now, where the caller's streams are this process's
        signal.pthread_sigmask(signal.SIG_SETMASK, request["sigmask"])
        gc.enable()
        from sage_build.face.spkg_command import main

        code = main(request["argv"], os.environ, worker=request["worker"])
    except SystemExit as exit:  # as the interpreter ends: None is success, anything else is said
        if exit.code is None or isinstance(exit.code, int):
            code = exit.code or 0
        else:
            try:
                if sys.stderr is not None:
                    print(exit.code, file=sys.stderr)
            except Exception:
                pass
            code = 1
    except BaseException as error:
        traceback.print_exc()
        if isinstance(error, KeyboardInterrupt):  # as the interpreter ends then: killed by SIGINT
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
    from sage_build.base.quick_exit import exit_now

    exit_now(code)


def _take_descriptors(received: list[int], targets: list[int]) -> None:
    """Give the caller's descriptors their numbers, and close every other one (the worker's
    socket, other callers' connections: a child holding them would keep them open)."""
    # above every target: placing one must not overwrite another not yet placed, nor be a no-op
    # dup2 that would leave it close-on-exec
    above = max([1023, *targets]) + 1
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, above) for fd in received]
    keep = set(moved)
    for entry in os.listdir("/proc/self/fd"):
        fd = int(entry)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    for fd, target in zip(moved, targets):
        os.dup2(fd, target, inheritable=True)
    for fd in moved:
        if fd not in targets:
            os.close(fd)


def _reopen_standard_streams() -> None:
    """The streams an interpreter of its own would open: stderr line-buffered whatever it is
    (a message is out before a command writes after it, or a kill), the others when a terminal;
    the error handlers the interpreter chose for the locale (surrogateescape under C and C.UTF-8)."""
    def stream(fd: int, mode: str, original, errors: str, line_buffering: bool = False):
        try:
            os.fstat(fd)
        except OSError:
            return None
        raw = io.open(fd, mode + "b", buffering=0 if mode == "w" else -1, closefd=False)
        buffered = io.BufferedWriter(raw) if mode == "w" else raw
        return io.TextIOWrapper(buffered, encoding=getattr(original, "encoding", None) or sys.getfilesystemencoding(),
                                errors=getattr(original, "errors", None) or errors,
                                line_buffering=mode == "w" and (line_buffering or raw.isatty()), write_through=False)

    sys.stdin = stream(0, "r", sys.__stdin__, "strict")
    sys.stdout = stream(1, "w", sys.__stdout__, "strict")
    sys.stderr = stream(2, "w", sys.__stderr__, "backslashreplace", line_buffering=True)


def main(argv: list[str] | None = None) -> int:
    base, make_pid, src = argv if argv is not None else sys.argv[1:]
    # One worker a session: its lock is held for its whole life.
    if try_lock(base + ".lock") is None:
        return 0
    # Ctrl-C and job control reach make's whole process group, this process too: they are
    # for the children, and the session ends with make.
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(signum, signal.SIG_IGN)
    try:
        worker = Worker(base, int(make_pid), src)
    except (ProcessLookupError, ValueError):  # make has ended already
        return 0
    gc.disable()
    worker.preload()
    gc.collect()
    gc.freeze()  # what the imports made is shared with every child and never scanned again
    # The socket appears once everything is loaded: until then a package runs on its own rather
    # than waiting for the imports.
    try:
        worker.listen()
    except OSError as error:
        # Every later package of the session would start a worker that fails the same way: the
        # mark (left while the lock is held) tells them to run on their own at once.
        print(f"sage-spkg-worker: cannot listen at {base}.sock: {error.strerror or error}; this make"
              f" session's packages run in their own processes", file=sys.stderr)
        try:
            os.close(os.open(base + spkg_client.NO_WORKER, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError:
            pass
        return 1
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
