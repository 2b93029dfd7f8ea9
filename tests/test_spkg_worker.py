"""The make session's sage-spkg worker (issue #19): used, equal, safe, and gone with its session.

Each test gets its own runtime directory (XDG_RUNTIME_DIR), short enough for a socket path, so
the sessions' files can be checked.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ROOT, Tree, add_recipe, make_wheel
from sage_build.face import spkg_client

# A recipe that holds its sage-spkg until the session's worker listens: the packages after it
# then go to the worker, whatever the load of the machine.
WAIT_FOR_WORKER = ('[ "$SAGE_SPKG_WORKER" = no ] && exit 0; for i in $(seq 200); do ls "$XDG_RUNTIME_DIR"/sage-build/*.sock >/dev/null 2>&1 && exit 0;'
                   ' sleep 0.05; done; echo "no worker came" >&2; exit 1\n')


@pytest.fixture
def runtime(monkeypatch) -> Path:
    monkeypatch.delenv("SAGE_SPKG_WORKER", raising=False)  # these tests are of the worker, whatever the suite's setting
    directory = Path(tempfile.mkdtemp(prefix="sw-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _wheels(tree: Tree, names: list[str]) -> None:
    for name in names:
        wheel = make_wheel(tree.root / "tmp", name, "1.0", {f"{name}/__init__.py": f"NAME = {name!r}\n".encode()})
        add_recipe(tree.root, name, version="1.0", tarball=wheel)


def _session_tree(tree: Tree, later: list[str], *, waiter_deps: str = "$(PYTHON)") -> list[str]:
    """first -> waiter -> each of ``later`` (wheels): the session's first package marks it, the second
    starts the worker and waits for it, the rest go to it."""
    _wheels(tree, ["first", *later])
    add_recipe(tree.root, "waiter", deps=waiter_deps, files={"spkg-install": WAIT_FOR_WORKER})
    for name in later:
        (tree.root / "build/pkgs" / name / "dependencies").write_text("$(PYTHON) waiter\n")
    (tree.root / "build/pkgs/waiter/dependencies").write_text("$(PYTHON) first\n")
    tree.configure()
    tree.make("python3-venv")
    return ["first", "waiter", *later]


def _record_events(tree: Tree) -> dict[str, dict]:
    events = [json.loads(line) for line in (tree.root / "logs/events.jsonl").read_text().splitlines()]
    return {e["package"]: e for e in events if e["event"] == "end" and e["phase"] == "record"}


def _hand_made_client(src: str, fake_make: int, *, say: str = "") -> list[str]:
    """A sage-spkg client of make ``fake_make``, as a command: it hands the package 'probe' to the
    session's worker and exits as the worker says, or with 99 where it would run the package itself
    (after printing ``say``, if given)."""
    return [sys.executable, "-c", (
        f"import os, sys\nsys.path.insert(0, {src!r})\nfrom sage_build.face import spkg_client\n"
        f"spkg_client.make_pid = lambda: {fake_make}\n"
        f"code = spkg_client.run_in_worker(['probe'], {src!r})\n"
        + (f"print({say!r})\n" if say else "") + "os._exit(99 if code is None else code)\n")]


def _take_request(connection: socket.socket) -> None:
    """Read a caller's whole request as a worker does (for a hand-made worker), closing the
    descriptors it passed."""
    head, fds, _, _ = socket.recv_fds(connection, 4, 300)
    for fd in fds:
        os.close(fd)
    size = int.from_bytes(head, "big")
    while size > 0:
        size -= len(connection.recv(size))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read
        return False


def _wait_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_sessions_later_packages_run_in_its_worker_which_ends_with_make(tree, runtime):
    names = _session_tree(tree, ["a", "b", "c", "d"])
    result = tree.make(*names, jobs=2, extra_env={"XDG_RUNTIME_DIR": str(runtime)})
    records = _record_events(tree)
    assert "worker" not in records["first"] and "worker" not in records["waiter"]  # they ran on their own
    workers = {records[name].get("worker") for name in "abcd"}
    assert len(workers) == 1 and None not in workers  # one worker ran all four
    (worker,) = workers
    # the children wrote to make's output through the descriptors they were handed
    for name in "abcd":
        assert f"[{name}-1.0] installed in" in result.stdout
        assert tree.python(f"import {name}; print({name}.NAME)").stdout.strip() == name
    assert _wait_gone(worker), "the worker outlived its make"
    assert _wait_gone(worker) and list((runtime / "sage-build").iterdir()) == []  # nothing left behind


def test_a_worker_installs_what_a_sage_spkg_of_its_own_installs(tmp_path, runtime):
    trees = []
    for mode in ("worker", "no"):
        tree = Tree(tmp_path / mode)
        names = _session_tree(tree, ["a", "b", "c"])
        tree.make(*names, extra_env={"XDG_RUNTIME_DIR": str(runtime), "SAGE_SPKG_WORKER": mode})
        assert ("worker" in _record_events(tree)["c"]) == (mode == "worker")
        trees.append(tree)

    def files(tree: Tree) -> dict[str, bytes]:
        site = tree.site_packages()
        def content(path: Path) -> bytes:
            data = path.read_bytes().replace(str(tree.prefix).encode(), b"PREFIX")
            if path.name == "RECORD":  # byte-code names its source's path: the two prefixes differ
                data = b"".join(line for line in data.splitlines(True) if b"__pycache__" not in line)
            return data

        return {str(p.relative_to(site)): content(p)
                for p in sorted(site.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}

    assert files(trees[0]) == files(trees[1])
    stamps = [sorted(p.name for p in (t.prefix / "var/lib/sage/installed").iterdir()) for t in trees]
    assert stamps[0] == stamps[1]


def test_a_failure_and_a_kill_in_the_worker_are_the_callers(tree, runtime):
    add_recipe(tree.root, "first", deps="$(PYTHON)", files={"spkg-install": "true\n"})
    add_recipe(tree.root, "waiter", deps="$(PYTHON) first", files={"spkg-install": WAIT_FOR_WORKER})
    add_recipe(tree.root, "broken", deps="$(PYTHON) waiter", files={"spkg-install": "echo broken on purpose; exit 3\n"})
    _wheels(tree, ["a"])
    (tree.root / "build/pkgs/a/dependencies").write_text("$(PYTHON) waiter\n")
    tree.configure()
    tree.make("python3-venv")
    failed = tree.make("broken", check=False, extra_env={"XDG_RUNTIME_DIR": str(runtime)})
    assert failed.returncode != 0
    assert "broken on purpose" in failed.stdout + failed.stderr
    events = [json.loads(line) for line in (tree.root / "logs/events.jsonl").read_text().splitlines()]
    assert any(e["package"] == "broken" and e.get("worker") and e.get("outcome") == "failed" for e in events)
    assert not list((tree.prefix / "var/lib/sage/installed").glob("broken-*"))
    # a kill point in a worker's child kills it; its sage-spkg dies of the same signal
    tree.make("waiter-uninstall", "first-uninstall")
    result = tree.make("a", check=False,
                       extra_env={"XDG_RUNTIME_DIR": str(runtime), "SAGE_TEST_KILL_AT": "install-wheel"})
    assert result.returncode != 0
    assert "Killed" in result.stderr, result.stderr
    events = [json.loads(line) for line in (tree.root / "logs/events.jsonl").read_text().splitlines()]
    assert any(e["package"] == "a" and e.get("worker") for e in events)
    assert not tree.stamp("a", "1.0").exists()
    tree.make("a", extra_env={"XDG_RUNTIME_DIR": str(runtime)})  # and the next make installs it
    assert tree.python("import a; print(a.NAME)").stdout.strip() == "a"


def _client_of(package: str, tree: Tree) -> int | None:
    """The sage-spkg of ``package`` in ``tree`` (not another test's, running beside this one)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (any(arg.endswith(b"/sage-spkg") for arg in argv) and package.encode() in argv
                and f"SAGE_ROOT={tree.root}".encode() in environ):
            return int(entry)
    return None


def _slow_make(tree: Tree, runtime: Path, script: str, *, output=subprocess.PIPE) -> subprocess.Popen:
    """Start `make slow` in the background, `slow` being a package that the session's worker runs,
    whose spkg-install is ``script`` (``{marker}`` in it: the path it touches once it runs); return
    the make once that mark exists."""
    marker = tree.root / "slow-started"
    _session_tree(tree, [])
    add_recipe(tree.root, "slow", deps="$(PYTHON) waiter", files={"spkg-install": script.format(marker=marker)})
    tree.configure()
    make = subprocess.Popen(["make", "-f", str(tree.root / "build/make/Makefile"), "slow"],
                            env=dict(tree.env, XDG_RUNTIME_DIR=str(runtime)),
                            stdout=output, stderr=output, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not marker.exists():
        if time.monotonic() > deadline or make.poll() is not None:
            if make.poll() is None:
                os.killpg(make.pid, signal.SIGKILL)
            raise AssertionError(f"slow never started: {make.communicate()}")
        time.sleep(0.05)
    return make


def test_a_killed_sage_spkg_takes_its_child_and_the_childs_commands_with_it(tree, runtime):
    marker = tree.root / "slow-started"
    make = _slow_make(tree, runtime, "echo $$ > {marker}.pid\nsleep 60 &\necho $! > {marker}.sleep\ntouch {marker}\nwait\n")
    try:
        client = _client_of("slow", tree)
        assert client is not None
        events = (tree.root / "logs/events.jsonl").read_text().splitlines()
        child = next(json.loads(e)["run"].split("-")[0] for e in events if '"slow"' in e and '"worker"' in e)
        os.kill(client, signal.SIGKILL)
        _, stderr = make.communicate(timeout=60)
        assert make.returncode != 0
        for pid in (int(child), int(marker.with_suffix(".pid").read_text()),
                    int(Path(f"{marker}.sleep").read_text())):
            assert _wait_gone(pid), f"process {pid} outlived the killed sage-spkg"
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
    assert not list((tree.prefix / "var/lib/sage/installed").glob("slow*"))
    # the next make builds it (the sleep is gone: a quick one now)
    (tree.root / "build/pkgs/slow/spkg-install").write_text("true\n")
    tree.make("slow", extra_env={"XDG_RUNTIME_DIR": str(runtime)})


def test_killing_makes_process_group_leaves_no_process_and_the_next_session_sweeps(tree, runtime):
    make = _slow_make(tree, runtime, "touch {marker}\nsleep 60\n", output=subprocess.DEVNULL)
    events = (tree.root / "logs/events.jsonl").read_text().splitlines()
    worker = next(json.loads(e)["worker"] for e in events if '"slow"' in e and '"worker"' in e)
    os.killpg(make.pid, signal.SIGKILL)  # the terminal closed, the CI job was cancelled
    make.wait()
    assert _wait_gone(worker)
    leftovers = [p.name for p in (runtime / "sage-build").iterdir()]
    assert any(name.endswith(".sock") for name in leftovers)  # a killed worker cannot tidy up
    (tree.root / "build/pkgs/slow/spkg-install").write_text("true\n")
    tree.make("slow", extra_env={"XDG_RUNTIME_DIR": str(runtime)})
    remaining = [p.name for p in (runtime / "sage-build").iterdir()]
    assert not set(leftovers) & set(remaining)  # the next session's first package swept them


def _private_checkout(where: Path) -> Path:
    """A copy of sage-build's code (src, build/bin, configure.py) that shares the tool environment:
    a test may change its code without the other tests' workers seeing it."""
    shutil.copytree(ROOT / "src", where / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "build" / "bin", where / "build" / "bin", symlinks=True)
    for name in ("configure.py", "pyproject.toml", "build/tool-requirements.txt"):
        shutil.copy2(ROOT / name, where / name)
    # the generated Makefile runs the checkout's .venv/bin/python: without the link, the first make
    # made a tool environment of its own (half a minute)
    (where / ".venv").symlink_to(ROOT / ".venv")
    # byte-code now: with PYTHONDONTWRITEBYTECODE every process would compile the copy again
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(where / "src")], check=True)
    return where


def test_a_worker_whose_code_changed_refuses_and_the_session_starts_another(tree, runtime, tmp_path):
    checkout = _private_checkout(tmp_path / "sage-build")
    changed = checkout / "src/sage_build/face/spkg_command.py"  # a module every worker has loaded
    # the third package changes sage-build's code, as a `git pull` in the middle of a build would
    _wheels(tree, ["first", "a", "b", "c"])
    add_recipe(tree.root, "waiter", deps="$(PYTHON) first", files={"spkg-install": WAIT_FOR_WORKER})
    add_recipe(tree.root, "changer", deps="$(PYTHON) waiter", files={"spkg-install": f"echo >> {changed}\n"})
    (tree.root / "build/pkgs/a/dependencies").write_text("$(PYTHON) changer\n")
    (tree.root / "build/pkgs/b/dependencies").write_text("$(PYTHON) a\n")
    (tree.root / "build/pkgs/c/dependencies").write_text("$(PYTHON) b\n")
    env = dict(tree.env, SAGE_BUILD_TOOL_ENV=str(ROOT / ".venv"))
    configured = subprocess.run([sys.executable, str(checkout / "configure.py"), f"--prefix={tree.prefix}", "--quiet"],
                                env=env, capture_output=True, text=True)
    assert configured.returncode == 0, configured.stderr
    assert f"SAGE_BUILD_BIN := {checkout / 'build/bin'}" in (tree.root / "build/make/Makefile").read_text()
    tree.make("python3-venv")
    tree.make("c", extra_env={"XDG_RUNTIME_DIR": str(runtime)})
    records = _record_events(tree)
    old = records["changer"].get("worker")
    assert old  # the first worker ran it
    assert "worker" not in records["a"]  # refused: run by its sage-spkg itself
    assert records["c"].get("worker") != old  # a fresh worker (or none yet), never the stale one
    assert _wait_gone(old)


def test_the_runtime_directory_must_be_this_users_alone(tmp_path):
    base = tmp_path / "xdg"
    base.mkdir()
    assert spkg_client.runtime_dir({"XDG_RUNTIME_DIR": str(base)}) == str(base / "sage-build")
    assert (base / "sage-build").stat().st_mode & 0o777 == 0o700
    os.chmod(base / "sage-build", 0o755)  # others may enter: not used
    assert spkg_client.runtime_dir({"XDG_RUNTIME_DIR": str(base)}) is None
    os.chmod(base / "sage-build", 0o700)
    other = tmp_path / "other"
    other.mkdir()
    (other / "sage-build").symlink_to(base / "sage-build")  # a link planted there: not followed
    assert spkg_client.runtime_dir({"XDG_RUNTIME_DIR": str(other)}) is None
    if os.getuid() == 0:
        os.chown(base / "sage-build", 65534, 65534)  # another user's directory
        assert spkg_client.runtime_dir({"XDG_RUNTIME_DIR": str(base)}) is None


def test_sessions_are_named_only_from_make_and_its_variable(tmp_path):
    src = str(ROOT / "src")
    good = {"SAGE_MAKE_STARTED": "1700000000.123456789"}
    assert spkg_client.session_name(good, src, 123).endswith("-123-1700000000.123456789")
    for bad, make in (({}, 123), (good, None), (dict(good, SAGE_MAKE_STARTED="1/../../etc"), 123),
                      (dict(good, SAGE_MAKE_STARTED=""), 123), (dict(good, SAGE_SPKG_WORKER="no"), 123)):
        assert spkg_client.session_name(bad, src, make) is None
    long = tmp_path / ("d" * 120)
    long.mkdir()
    assert spkg_client.worker_base(dict(good, XDG_RUNTIME_DIR=str(long)), src, 123) is None  # too long for a socket


def test_make_is_found_whether_or_not_it_ran_sage_spkg_through_a_shell(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import sys\nsys.path.insert(0, sys.argv[1])\n"
                     "from sage_build.face.spkg_client import make_pid\nprint(make_pid())\n")
    # a line without the shell's special characters is run by make itself; one with them, by sh -c
    (tmp_path / "Makefile").write_text(
        f"direct:\n\t{sys.executable} {probe} {ROOT / 'src'}\n"
        f"shell:\n\t{sys.executable} {probe} {ROOT / 'src'} && true\n")
    for goal in ("direct", "shell"):
        make = subprocess.Popen(["make", "-s", "-C", str(tmp_path), goal], stdout=subprocess.PIPE, text=True)
        out, _ = make.communicate(timeout=60)
        assert out.strip() == str(make.pid), (goal, out)
    # run by a Python run by a Python (this test's process): no make, whoever ran the test
    nested = subprocess.run([sys.executable, "-c", f"import subprocess, sys; sys.exit(subprocess.run([sys.executable, "
                             f"{str(probe)!r}, {str(ROOT / 'src')!r}]).returncode)"], capture_output=True, text=True)
    assert nested.stdout.strip() == "None", nested


@pytest.mark.skipif(os.getuid() != 0, reason="needs to become another user")
def test_a_worker_serves_no_other_user(tree, runtime):
    """Another user who reaches the socket (a directory made wrongly by hand) gets nothing run."""
    names = _session_tree(tree, [])
    add_recipe(tree.root, "holder", deps="$(PYTHON) waiter", files={"spkg-install": "sleep 3\n"})
    tree.configure()
    make = subprocess.Popen(["make", "-f", str(tree.root / "build/make/Makefile"), *names, "holder"],
                            env=dict(tree.env, XDG_RUNTIME_DIR=str(runtime)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not list((runtime / "sage-build").glob("*.sock")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (path,) = (runtime / "sage-build").glob("*.sock")
        os.chmod(runtime, 0o755)
        os.chmod(runtime / "sage-build", 0o755)
        os.chmod(path, 0o777)
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.setuid(65534)
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(str(path))
                    request = spkg_client.encode_request(["holder"], {"PATH": "/bin"}, [])
                    sock.sendall(len(request).to_bytes(4, "big") + request)
                    sock.settimeout(10)
                    answer = sock.recv(100)
                os.write(writer, b"answer:" + answer)
            except Exception as error:
                os.write(writer, f"error:{error}".encode())
            os._exit(0)
        os.close(writer)
        os.waitpid(pid, 0)
        said = os.read(reader, 1000)
        # closed without a word: the request may not even have been read
        assert said in (b"answer:", b"error:[Errno 104] Connection reset by peer", b"error:[Errno 32] Broken pipe"), said
    finally:
        os.chmod(runtime / "sage-build", 0o700)
        make.wait(timeout=60)
    assert make.returncode == 0
    events = [json.loads(line) for line in (tree.root / "logs/events.jsonl").read_text().splitlines()]
    assert len({e["run"] for e in events if e["package"] == "holder"}) == 1  # make's own run, no other


def test_a_worker_runs_a_sessions_packages_side_by_side(tree, runtime):
    """Two packages under make -j2 each wait for the other to have started: a worker that ran
    its calls one at a time would never let the second start (the scripts give up after 30 s)."""
    _session_tree(tree, [])
    for name, other in (("left", "right"), ("right", "left")):
        add_recipe(tree.root, name, deps="$(PYTHON) waiter", files={"spkg-install": (
            f'touch "$SAGE_ROOT/{name}.started"\n'
            f'for i in $(seq 600); do [ -e "$SAGE_ROOT/{other}.started" ] && exit 0; sleep 0.05; done\n'
            f'echo "{other} never started beside {name}" >&2; exit 1\n')})
    tree.configure()
    tree.make("left", "right", jobs=2, extra_env={"XDG_RUNTIME_DIR": str(runtime)})
    records = _record_events(tree)
    assert records["left"].get("worker") and records["left"]["worker"] == records["right"].get("worker")


def test_a_killed_worker_takes_its_children_and_their_callers_fail_cleanly(tree, runtime):
    make = _slow_make(tree, runtime, "touch {marker}\nsleep 60\n")
    try:
        events = [json.loads(e) for e in (tree.root / "logs/events.jsonl").read_text().splitlines()]
        slow = next(e for e in events if e["package"] == "slow" and e.get("worker"))
        child = int(slow["run"].split("-")[0])
        os.kill(slow["worker"], signal.SIGKILL)  # the OOM killer, a stray pkill
        _, stderr = make.communicate(timeout=60)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
    assert make.returncode != 0
    assert "the session's worker ended before the package was done" in stderr
    assert _wait_gone(child)  # the kernel killed it with its worker
    assert not list((tree.prefix / "var/lib/sage/installed").glob("slow*"))
    (tree.root / "build/pkgs/slow/spkg-install").write_text("true\n")
    tree.make("slow", extra_env={"XDG_RUNTIME_DIR": str(runtime)})
    assert list((tree.prefix / "var/lib/sage/installed").glob("slow*"))


def test_a_worker_sees_its_code_change_even_through_a_linked_source_directory(tmp_path, monkeypatch):
    from sage_build.face.spkg_worker import Worker

    real = tmp_path / "real"
    (real / "sbprobe_pkg").mkdir(parents=True)
    module = real / "sbprobe_pkg" / "__init__.py"
    module.write_text("X = 1\n")
    link = tmp_path / "link"
    link.symlink_to(real)
    monkeypatch.syspath_prepend(str(link))
    import sbprobe_pkg  # noqa: F401  (loaded through the link, as a linked checkout's modules are)

    worker = Worker(str(tmp_path / "w"), os.getpid(), str(link))
    worker.preload()
    assert any(path.endswith("sbprobe_pkg/__init__.py") for path in worker.code_paths)
    assert worker.code_files() == worker.fingerprint
    os.utime(module, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    assert worker.code_files() != worker.fingerprint
    os.close(worker.make)


@pytest.mark.parametrize("targets", [[1, 1026, 1030], [1025, 1030], [3, 1024], [1025]])
def test_a_child_gets_each_descriptor_at_its_number_and_inheritable_even_above_1024(tmp_path, targets):
    """The descriptors a child takes are moved out of the way first (to 1024 and up): a caller's
    descriptor numbered there must neither overwrite another before it is placed nor stay close-on-exec."""
    from sage_build.face.spkg_worker import _take_descriptors

    files = [tmp_path / f"f{i}" for i in range(len(targets))]
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            received = [os.open(f, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600) for f in files]
            inodes = [os.fstat(fd).st_ino for fd in received]
            keep = os.dup(writer)
            pairs = sorted(zip([keep, *received], [keep, *targets]), key=lambda pair: pair[1])  # sorted, as sent
            _take_descriptors([fd for fd, _ in pairs], [target for _, target in pairs])
            report = [(os.fstat(t).st_ino == ino, os.get_inheritable(t)) for t, ino in zip(targets, inodes)]
            os.write(keep, json.dumps(report).encode())
        except BaseException as error:
            os.write(keep if "keep" in dir() else writer, json.dumps(repr(error)).encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    report = json.loads(os.read(reader, 10000))
    os.close(reader)
    assert report == [[True, True]] * len(targets), report


@pytest.mark.parametrize("stdin", ["devnull", "closed"])
def test_a_worker_child_sees_the_callers_umask_environment_and_output_as_its_own(tmp_path, runtime, stdin):
    """umask, odd environment values (not UTF-8, with '='), a lot of output and its last line
    without a newline, stdin closed, an exit code: the same in a worker's child as on its own."""
    probe = ('umask; echo "V=$(printf %s "$V" | od -An -tx1 | tr -d " \\n") W=$W BIG=${#BIG} E=[${E-unset}]"\n'
             'seq 1 50000 | sed "s/^/line /"; seq 1 20000 | sed "s/^/err /" >&2\n'
             'printf "LAST-OUT"; printf "LAST-ERR" >&2; exit 0\n')
    seen = {}
    for mode in ("worker", "no"):
        tree = Tree(tmp_path / mode)
        names = _session_tree(tree, [])
        add_recipe(tree.root, "probe", deps="$(PYTHON) waiter", files={"spkg-install": probe})
        tree.configure()
        env = {os.fsencode(k): os.fsencode(v) for k, v in tree.env.items()}
        env.update({b"XDG_RUNTIME_DIR": os.fsencode(str(runtime)), b"SAGE_SPKG_WORKER": mode.encode(),
                    b"V": b"\xff\xfe caf\xc3\xa9", b"W": b"a=b==c", b"E": b"",
                    **{b"BIG%d" % i: b"x" * 100_000 for i in range(15)}, b"BIG": b"y" * 120_000})
        result = subprocess.run(["make", "-f", str(tree.root / "build/make/Makefile"), *names, "probe"], env=env,
                                stdin=subprocess.DEVNULL, capture_output=True, preexec_fn=lambda: (
                                    os.umask(0o027), stdin == "closed" and os.close(0)))
        assert result.returncode == 0, result.stderr[-3000:]
        assert ("worker" in _record_events(tree)["probe"]) == (mode == "worker")
        log = b"".join(p.read_bytes() for p in (tree.root / "logs").rglob("probe*"))
        seen[mode] = (result.stdout + result.stderr + log).replace(os.fsencode(str(tree.root)), b"ROOT")
        for needle in (b"0027", b"LAST-OUT", b"LAST-ERR", b"line 50000", b"err 20000", b"V=fffe20636166c3a9 W=a=b==c BIG=120000 E=[]"):
            assert needle in seen[mode], (mode, needle)


@pytest.mark.parametrize("how", ["SIGINT to make's group", "SIGTERM to sage-spkg"])
def test_a_signal_while_a_worker_child_runs_interrupts_the_package(tree, runtime, how):
    make = _slow_make(tree, runtime, "touch {marker}\nsleep 30\n")
    try:
        events = [json.loads(e) for e in (tree.root / "logs/events.jsonl").read_text().splitlines()]
        assert any(e["package"] == "slow" and e.get("worker") for e in events)
        started = time.monotonic()
        if how.startswith("SIGINT"):
            os.killpg(make.pid, signal.SIGINT)
        else:
            os.kill(_client_of("slow", tree), signal.SIGTERM)
        stdout, stderr = make.communicate(timeout=60)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
    assert make.returncode != 0
    assert time.monotonic() - started < 20  # not after the sleep
    if how.startswith("SIGINT"):
        assert "[slow-none] interrupted; no stamp was written" in stdout + stderr, stdout + stderr
    assert not list((tree.prefix / "var/lib/sage/installed").glob("slow*"))


def test_a_compilers_version_is_asked_again_when_another_program_answers_to_its_name(tmp_path, monkeypatch):
    """The worker asks the compilers once and its children inherit the answers: a compiler that a
    package of the session installs (Sage's gcc, into local/bin, first on PATH) or a PATH that
    differs must not be answered for by the one the worker saw."""
    from sage_build.cache.key import compiler_version

    def fake(directory: Path, version: str) -> None:
        directory.mkdir(exist_ok=True)
        path = directory / "sbfakecc"
        path.unlink(missing_ok=True)
        path.write_text(f"#!/bin/sh\necho 'sbfakecc {version}'\n")
        path.chmod(0o755)

    old, new = tmp_path / "old", tmp_path / "new"
    fake(old, "1.0")
    monkeypatch.setenv("PATH", f"{old}{os.pathsep}{os.environ['PATH']}")
    assert compiler_version("sbfakecc") == "sbfakecc 1.0"
    fake(new, "2.0")
    monkeypatch.setenv("PATH", f"{new}{os.pathsep}{old}{os.pathsep}{os.environ['PATH']}")
    assert compiler_version("sbfakecc") == "sbfakecc 2.0"  # another program by that name now
    fake(new, "3.0")
    assert compiler_version("sbfakecc") == "sbfakecc 3.0"  # the program replaced (upgraded) in place


def test_a_childs_standard_streams_are_those_a_sage_spkg_of_its_own_would_have(tmp_path):
    """stderr line-buffered (a message is out before the next command writes, or a kill), and the
    error handlers the interpreter picks for the locale (surrogateescape under C and C.UTF-8)."""
    probe = ("import sys; print(repr((sys.stdin.errors, sys.stdout.errors, sys.stdout.line_buffering,"
             " sys.stderr.errors, sys.stderr.line_buffering, sys.stdout.encoding)), file=sys.stderr)")
    code = ("import sys, os\nsys.path.insert(0, sys.argv[1])\n"
            "from sage_build.face.spkg_worker import _reopen_standard_streams\n"
            "_reopen_standard_streams()\n" + probe.replace("; ", "\n") + "\nos._exit(0)\n")
    for env in ({"PATH": os.environ["PATH"]}, {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8"},
                {"PATH": os.environ["PATH"], "PYTHONIOENCODING": "latin-1"}):
        own = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
        child = subprocess.run([sys.executable, "-c", code, str(ROOT / "src")], env=env, capture_output=True, text=True)
        assert child.stderr == own.stderr, env


@pytest.mark.parametrize("exit_with, code, said", [(None, 0, ""), (4, 4, ""), ("gave up on purpose", 1, "gave up on purpose\n"),
                                                   (KeyboardInterrupt, -signal.SIGINT, "KeyboardInterrupt\n")])
def test_a_childs_system_exit_ends_it_as_it_ends_an_interpreter(tmp_path, monkeypatch, exit_with, code, said):
    """sys.exit() is success, sys.exit(N) is N, sys.exit("why") says why and fails, an uncaught
    KeyboardInterrupt kills it with SIGINT after its traceback: as for a sage-spkg of its own."""
    from sage_build.face import spkg_command, spkg_worker

    def main(argv, environ, worker=0):
        if exit_with is KeyboardInterrupt:
            raise KeyboardInterrupt
        raise SystemExit(exit_with)

    monkeypatch.setattr(spkg_command, "main", main)
    errors = tmp_path / "stderr"
    pid = os.fork()
    if pid == 0:
        try:
            err = os.open(errors, os.O_WRONLY | os.O_CREAT, 0o600)
            fds = [os.open(os.devnull, os.O_RDONLY), os.open(os.devnull, os.O_WRONLY), err]
            request = {"worker": os.getppid(), "pgid": os.getpgrp(), "targets": [0, 1, 2], "cwd": os.fsencode(str(tmp_path)),
                       "umask": 0o022, "environ": {b"PATH": os.environb[b"PATH"]}, "argv": ["probe"],
                       "sigmask": signal.pthread_sigmask(signal.SIG_BLOCK, [])}
            spkg_worker._run_child(request, fds, -1)
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == code
    text = errors.read_text()
    assert (text.endswith(said) and "Traceback" in text) if exit_with is KeyboardInterrupt else text == said


def test_two_makes_of_one_tree_at_once_each_with_its_worker(tree, runtime):
    _session_tree(tree, ["a", "b", "c", "d"])
    makes = [subprocess.Popen(["make", "-j2", "-f", str(tree.root / "build/make/Makefile"), *targets],
                              env=dict(tree.env, XDG_RUNTIME_DIR=str(runtime)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for targets in (["a", "b"], ["c", "d"])]
    for make in makes:
        out, err = make.communicate(timeout=120)
        assert make.returncode == 0, out[-3000:] + err[-3000:]
    for name in "abcd":
        assert tree.python(f"import {name}; print({name}.NAME)").stdout.strip() == name
        assert len(list((tree.prefix / "var/lib/sage/installed").glob(f"{name}-*"))) == 1
    events = [json.loads(line) for line in (tree.root / "logs/events.jsonl").read_text().splitlines()]
    workers = {e.get("worker") for e in events if e["package"] in "abcd" and e.get("worker")}
    assert len(workers) >= 1
    for worker in workers:
        assert _wait_gone(worker)
    assert list((runtime / "sage-build").iterdir()) == []


@pytest.mark.parametrize("extra", [200, 300])
def test_a_caller_with_many_descriptors_runs_in_the_worker_or_on_its_own(tree, runtime, extra):
    _session_tree(tree, [])
    add_recipe(tree.root, "probe", deps="$(PYTHON) waiter", files={"spkg-install": "echo probe ran\n"})
    tree.configure()
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(extra)]
    try:
        result = subprocess.run(["make", "-f", str(tree.root / "build/make/Makefile"), "probe"],
                                env=dict(tree.env, XDG_RUNTIME_DIR=str(runtime)), capture_output=True, text=True,
                                pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "probe ran" in result.stdout + result.stderr
    assert ("worker" in _record_events(tree)["probe"]) == (extra <= spkg_client.MAX_FDS - 10)


def test_a_signal_for_sage_spkg_before_its_child_has_started_reaches_the_child(runtime):
    """SIGTERM (sent to sage-spkg alone) that arrives after the request went and before the worker
    said which child runs it must not be lost: the child would build and stamp the package."""
    import threading

    src = str(ROOT / "src")
    env = {"PATH": os.environ["PATH"], "SAGE_MAKE_STARTED": "1700000000.5", "XDG_RUNTIME_DIR": str(runtime)}
    fake_make = os.getpid()
    base = spkg_client.worker_base(env, src, fake_make)
    assert base
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(base + ".sock")
    listener.listen(1)
    client = subprocess.Popen(_hand_made_client(src, fake_make), env=env)
    result = {}

    def serve() -> None:
        connection, _ = listener.accept()
        _take_request(connection)
        time.sleep(0.3)  # the caller waits for "P" with its handlers in place
        client.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        child = subprocess.Popen(["sleep", "30"])
        connection.sendall(b"P %d\n" % child.pid)
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        result["child"] = child.returncode
        connection.sendall(b"S %d\n" % -child.returncode if child.returncode < 0 else b"X 0\n")
        connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join(timeout=30)
    client.wait(timeout=30)
    listener.close()
    assert result["child"] == -signal.SIGTERM
    assert client.returncode == -signal.SIGTERM


def test_a_signal_before_a_refusal_is_not_lost_when_sage_spkg_runs_the_package_itself(runtime):
    src = str(ROOT / "src")
    env = {"PATH": os.environ["PATH"], "SAGE_MAKE_STARTED": "1700000000.5", "XDG_RUNTIME_DIR": str(runtime)}
    fake_make = os.getpid()
    base = spkg_client.worker_base(env, src, fake_make)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(base + ".sock")
    listener.listen(1)
    client = subprocess.Popen(_hand_made_client(src, fake_make, say="ran the package itself"), env=env,
                              stdout=subprocess.PIPE, text=True)
    connection, _ = listener.accept()
    _take_request(connection)
    time.sleep(0.3)
    client.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    connection.sendall(b"R sage-build changed\n")
    out, _ = client.communicate(timeout=30)
    connection.close()
    listener.close()
    assert client.returncode == -signal.SIGTERM and "ran the package itself" not in out


def test_a_ctrl_c_while_the_worker_forks_the_child_is_not_lost(runtime):
    """The child starts with the worker's dispositions (SIGINT ignored) until it has set its own:
    a Ctrl-C in between must still interrupt it."""
    from sage_build.face import spkg_command, spkg_worker

    src = str(ROOT / "src")
    env = {"PATH": os.environ["PATH"], "SAGE_MAKE_STARTED": "1700000000.5", "XDG_RUNTIME_DIR": str(runtime),
           # the worker (a fork of this process) serves a caller whose interpreter started as its own
           **{os.fsdecode(k): os.fsdecode(v) for k, v in spkg_worker.interpreter_settings(os.environb).items()}}
    fake_make = os.getpid()
    base = spkg_client.worker_base(env, src, fake_make)
    worker = os.fork()
    if worker == 0:
        try:
            real_cdll = spkg_worker.ctypes.CDLL

            def slow_cdll(*args, **kwargs):  # the child's first step, made slow: the window
                time.sleep(1)
                return real_cdll(*args, **kwargs)

            spkg_worker.ctypes.CDLL = slow_cdll
            spkg_command.main = lambda argv, environ, worker=0: (time.sleep(3), 0)[1]
            for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
                signal.signal(signum, signal.SIG_IGN)
            server = spkg_worker.Worker(base, fake_make, src)
            server.listen()
            server.serve()
        finally:
            os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(base + ".sock"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        client = subprocess.Popen(_hand_made_client(src, fake_make), env=env, start_new_session=True,
                                  stderr=subprocess.PIPE, text=True)
        time.sleep(0.6)  # the child exists and sleeps in its first step
        os.killpg(client.pid, signal.SIGINT)
        _, stderr = client.communicate(timeout=30)
        assert client.returncode == -signal.SIGINT
        # the child said it (its traceback); its caller dies of the same signal without a word
        assert stderr.count("KeyboardInterrupt") == 1 and "spkg_client" not in stderr, stderr
    finally:
        os.kill(worker, signal.SIGKILL)
        os.waitpid(worker, 0)


@pytest.mark.parametrize("planted", ["file", "stale socket", "directory", "fifo"])
def test_what_is_planted_at_the_sockets_path_makes_sage_spkg_run_the_package_itself(runtime, planted):
    src = str(ROOT / "src")
    env = {"PATH": os.environ["PATH"], "SAGE_MAKE_STARTED": "1700000000.5", "XDG_RUNTIME_DIR": str(runtime)}
    fake_make = os.getpid()
    path = spkg_client.worker_base(env, src, fake_make) + ".sock"
    if planted == "file":
        Path(path).write_text("not a socket\n")
    elif planted == "stale socket":
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
            dead.bind(path)
    elif planted == "directory":
        os.mkdir(path)
    else:
        os.mkfifo(path)
    client = subprocess.run(_hand_made_client(src, fake_make), env=env, timeout=30)
    assert client.returncode == 99


def test_a_wrapped_compilers_version_is_asked_again_when_the_wrapped_one_changes(tmp_path, monkeypatch):
    from sage_build.cache.key import compiler_version

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "sbwrap"
    wrapper.write_text('#!/bin/sh\nexec "$@"\n')
    wrapper.chmod(0o755)
    inner = bin_dir / "sbinnercc"
    for version in ("1.0", "2.0"):
        inner.unlink(missing_ok=True)
        inner.write_text(f"#!/bin/sh\necho 'sbinnercc {version}'\n")
        inner.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        assert compiler_version("sbwrap sbinnercc") == f"sbinnercc {version}"


def test_make_n_q_t_in_a_session_with_a_worker_run_no_package(tree, runtime):
    names = _session_tree(tree, ["a"])
    add_recipe(tree.root, "late", deps="$(PYTHON) a", files={"spkg-install": "echo late ran\n"})
    tree.configure()
    tree.make(*names, extra_env={"XDG_RUNTIME_DIR": str(runtime)})
    makefile = str(tree.root / "build/make/Makefile")
    env = dict(tree.env, XDG_RUNTIME_DIR=str(runtime))
    for flag, ok in (("-n", True), ("-q", False), ("-t", False)):
        result = subprocess.run(["make", flag, "-f", makefile, "late"], env=env, capture_output=True, text=True)
        assert (result.returncode == 0) == ok, (flag, result.stderr)
        assert "late ran" not in result.stdout + result.stderr
        assert not list((tree.prefix / "var/lib/sage/installed").glob("late*"))
    tree.make("late", extra_env={"XDG_RUNTIME_DIR": str(runtime)})
    assert list((tree.prefix / "var/lib/sage/installed").glob("late*"))


@pytest.mark.parametrize("closed", [(2,), (1,), (1, 2)], ids=["stderr", "stdout", "both"])
@pytest.mark.parametrize("mode", ["worker", "no"])
def test_a_package_installs_with_makes_stdout_or_stderr_closed(tree, runtime, mode, closed):
    """sys.stdout or sys.stderr is None then (as under a make run with `>&-`): sage-spkg (the
    package's log echo, its phase lines, its exit, the client's last flush) failed after, or
    before, the package was installed."""
    names = _session_tree(tree, [])
    add_recipe(tree.root, "probe", deps="$(PYTHON) waiter", files={"spkg-install": "echo probe ran\n"})
    tree.configure()

    def close() -> None:
        for fd in closed:
            os.close(fd)

    result = subprocess.run(["make", "-s", "-f", str(tree.root / "build/make/Makefile"), *names, "probe"],
                            env=dict(tree.env, XDG_RUNTIME_DIR=str(runtime), SAGE_SPKG_WORKER=mode),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=close)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert ("worker" in _record_events(tree)["probe"]) == (mode == "worker")
    assert list((tree.prefix / "var/lib/sage/installed").glob("probe*"))
    assert "probe ran" in (tree.root / "logs/pkgs/probe-none.log").read_text()  # the log has what was not shown


@pytest.mark.parametrize("payload", [spkg_client.PROTOCOL + b"\0utf-8\0/\0not a number",
                                     spkg_client.PROTOCOL + b"\0utf-8\0/\0" + b"18", b"partial", b"huge", b"longer"])
def test_a_malformed_or_cut_request_leaves_no_descriptor_of_the_caller_in_the_worker(tmp_path, payload):
    """The worker must not keep a caller's descriptor (make's output pipe: its reader would wait
    for the worker's end) when the request that carried it cannot be read."""
    from sage_build.face.spkg_worker import Worker

    worker = Worker(str(tmp_path / "w"), os.getpid(), str(ROOT / "src"))
    ours, theirs = socket.socketpair()
    reader, writer = os.pipe()
    # partial: announces more than it sends; huge: 4 GB, more than any request may weigh (nothing is
    # kept waiting for it); longer: a whole request and more than it announced
    size = {b"partial": len(payload) + 100, b"huge": (1 << 32) - 1}.get(payload, len(payload))
    if payload == b"longer":
        payload = spkg_client.encode_request(["probe"], {"PATH": "/bin"}, [1])
        size = len(payload)
        payload += b"\0more"
    ours.sendmsg([size.to_bytes(4, "big") + payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, writer.to_bytes(4, sys.byteorder))])
    if payload != b"huge":  # the huge one must be refused without waiting for the caller's end
        ours.shutdown(socket.SHUT_WR)
    os.close(writer)
    fd = theirs.fileno()
    worker.begin(theirs)
    for _ in range(100):  # read as the worker's loop would, to the caller's end
        if fd not in worker.incoming:
            break
        worker.receive(fd)
    assert fd not in worker.incoming  # given up, not waiting for more
    os.set_blocking(reader, False)
    try:
        assert os.read(reader, 1) == b""  # EOF: no writer left
    except BlockingIOError:
        pytest.fail("the worker kept the caller's descriptor")
    finally:
        os.close(reader)
        ours.close()
        os.close(worker.make)


def test_many_packages_side_by_side_in_one_worker(tree, runtime):
    later = [f"p{i}" for i in range(12)]
    names = _session_tree(tree, later)
    result = tree.make(*names, jobs=4, extra_env={"XDG_RUNTIME_DIR": str(runtime)})
    records = _record_events(tree)
    assert all(records[name].get("worker") for name in later)
    for name in later:
        assert f"[{name}-1.0] installed in" in result.stdout
        assert len(list((tree.prefix / "var/lib/sage/installed").glob(f"{name}-*"))) == 1
    assert tree.python("import " + ", ".join(later) + "; print('ok')").stdout.strip() == "ok"


@pytest.fixture(scope="module")
def latin1_locale(tmp_path_factory) -> dict[str, str]:
    """An ISO-8859-1 locale made for the test (this machine has only C and C.UTF-8): there, Python
    decodes file names as Latin-1, not UTF-8."""
    where = tmp_path_factory.mktemp("locale")
    made = subprocess.run(["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(where / "en_US.ISO-8859-1")],
                          capture_output=True)
    env = {"LOCPATH": str(where), "LC_ALL": "en_US.ISO-8859-1"}
    probe = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
                           env=dict(os.environ, **env), capture_output=True, text=True)
    if made.returncode != 0 or probe.stdout.strip() != "iso8859-1":
        pytest.skip(f"no Latin-1 locale could be made here: {made.stderr[-300:]!r}")
    return env


LOCALES = {"C": {"LC_ALL": "C"}, "C, no UTF-8 mode": {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"},
           "C.UTF-8": {"LC_ALL": "C.UTF-8"}, "Latin-1": None}


@pytest.mark.parametrize("locale", list(LOCALES))
def test_a_session_in_a_working_directory_whose_name_is_not_utf8(tree, runtime, locale, request):
    """make run from `caf\\xe9` (Latin-1 bytes): the worker's child must enter the very directory its
    caller was in, whatever the locale decodes the name to."""
    env = LOCALES[locale] or request.getfixturevalue("latin1_locale")
    names = _session_tree(tree, ["a", "b"])
    here = os.path.join(os.fsencode(str(tree.root)), b"caf\xe9")
    os.mkdir(here)
    environ = {**{os.fsencode(k): os.fsencode(v) for k, v in tree.env.items() if k not in ("LANG", "LANGUAGE")
                  and not k.startswith("LC_")},
               b"XDG_RUNTIME_DIR": os.fsencode(str(runtime)), **{k.encode(): v.encode() for k, v in env.items()}}
    environ.pop(b"PYTHONIOENCODING", None)
    result = subprocess.run([b"make", b"-f", os.fsencode(str(tree.root / "build/make/Makefile")), *map(str.encode, names)],
                            cwd=here, env=environ, capture_output=True)
    assert result.returncode == 0, (result.stdout[-2000:] + result.stderr[-3000:]).decode("latin-1")
    records = _record_events(tree)
    assert records["a"].get("worker") and records["b"].get("worker")
    for name in ("a", "b"):
        assert tree.python(f"import {name}; print({name}.NAME)").stdout.strip() == name


@pytest.mark.parametrize("locale", list(LOCALES))
def test_a_request_carries_the_working_directory_and_arguments_as_bytes(tmp_path, locale, request):
    """What the client sends is what the worker reads back, byte for byte, whatever either side's locale."""
    from sage_build.face.spkg_worker import _parse_request

    env = LOCALES[locale] or request.getfixturevalue("latin1_locale")
    here = os.path.join(os.fsencode(str(tmp_path)), b"caf\xe9 \xc3\xa9")
    os.mkdir(here)
    script = (f"import os, sys\nsys.path.insert(0, {str(ROOT / 'src')!r})\nfrom sage_build.face import spkg_client\n"
              "sys.stdout.buffer.write(spkg_client.encode_request([os.fsdecode(b'pkg\\xe9')], os.environ, []))\n")
    sent = subprocess.run([sys.executable, "-c", script], cwd=here, capture_output=True,
                          env={"PATH": os.environ["PATH"], "V": "caf\xe9", **env}).stdout
    parsed = _parse_request(sent)
    assert parsed is not None
    assert parsed["cwd"] == here
    assert [os.fsencode(arg) for arg in parsed["argv"]] == [b"pkg\xe9"]


# The session's first package plants something at the path of the worker's socket (the session's
# .seen mark exists by then: its sage-spkg made it); the second waits until a worker answers there
# or the session is marked as having none, at most 10 s.
PLANT = {
    "directory": 'mkdir "$sock"',
    "file": 'echo not a socket > "$sock"',
    "fifo": 'mkfifo "$sock"',
    "stale socket": 'python3 -c "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" "$sock"',
    "directory at the log": 'mkdir "${sock%.sock}.log"',  # where the worker's stderr goes
}
WAIT_FOR_ANSWER = '''python3 - <<'EOF'
import glob, os, socket, sys, time
(seen,) = glob.glob(os.environ["XDG_RUNTIME_DIR"] + "/sage-build/*.seen")
base = seen[:-len(".seen")]
deadline = time.monotonic() + 10
while time.monotonic() < deadline and not os.path.exists(base + ".off") and not os.path.isdir(base + ".log"):
    try:
        socket.socket(socket.AF_UNIX).connect(base + ".sock")
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
EOF
'''


@pytest.mark.parametrize("planted", list(PLANT))
def test_what_is_planted_at_the_sockets_path_costs_the_session_one_worker_start(tree, runtime, tmp_path, planted):
    checkout = _private_checkout(tmp_path / "sage-build")
    starts = tmp_path / "starts"
    worker_script = checkout / "build/bin/sage-spkg-worker"
    worker_script.write_text(worker_script.read_text().replace(
        "import sys\n", f"import sys\nwith open({str(starts)!r}, 'a') as f: f.write('started\\n')\n", 1))
    add_recipe(tree.root, "first", files={"spkg-install": 'set -e; for seen in "$XDG_RUNTIME_DIR"/sage-build/*.seen; do'
                                                          ' sock="${seen%.seen}.sock"; done\n' + PLANT[planted] + "\n"})
    add_recipe(tree.root, "waiter", deps="$(PYTHON) first", files={"spkg-install": WAIT_FOR_ANSWER})
    later = ["a", "b", "c", "d"]
    _wheels(tree, later)
    for name, before in zip(later, ["waiter", *later]):
        (tree.root / "build/pkgs" / name / "dependencies").write_text(f"$(PYTHON) {before}\n")
    env = dict(tree.env, SAGE_BUILD_TOOL_ENV=str(ROOT / ".venv"))
    configured = subprocess.run([sys.executable, str(checkout / "configure.py"), f"--prefix={tree.prefix}", "--quiet"],
                                env=env, capture_output=True, text=True)
    assert configured.returncode == 0, configured.stderr
    tree.make("python3-venv")
    tree.make("d", extra_env={"XDG_RUNTIME_DIR": str(runtime)})
    for name in later:
        assert tree.python(f"import {name}; print({name}.NAME)").stdout.strip() == name
    # the second package's, and no later one's; none without a log to write to
    assert (starts.read_text().count("started") if starts.exists() else 0) == (planted != "directory at the log")
    records = _record_events(tree)
    # what is not a directory is replaced by the worker's socket; a directory is left alone
    assert all(bool(records[name].get("worker")) == (not planted.startswith("directory")) for name in later)


def test_a_caller_that_sends_its_request_slowly_delays_no_other_call(tree, runtime):
    """A connection that sends half a request and stalls (a stopped or swapped-out sage-spkg, a
    stray client) must not hold up the session's other packages while the worker waits for the rest."""
    _session_tree(tree, ["a", "b"])
    go = tree.root / "go"
    add_recipe(tree.root, "gate", deps="$(PYTHON) waiter", files={"spkg-install": (
        f'touch "{go}.waiting"; for i in $(seq 1200); do [ -e "{go}" ] && exit 0; sleep 0.05; done; exit 1\n')})
    for name in ("a", "b"):
        (tree.root / "build/pkgs" / name / "dependencies").write_text("$(PYTHON) gate\n")
    (tree.root / "build/pkgs/b/dependencies").write_text("$(PYTHON) a\n")
    tree.configure()
    make = subprocess.Popen(["make", "-f", str(tree.root / "build/make/Makefile"), "b"],
                            env=dict(tree.env, XDG_RUNTIME_DIR=str(runtime)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    staller = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{go}.waiting").exists():
            assert time.monotonic() < deadline and make.poll() is None, make.communicate()
            time.sleep(0.05)
        (path,) = (runtime / "sage-build").glob("*.sock")
        staller.connect(str(path))
        staller.sendall((1000).to_bytes(4, "big") + spkg_client.PROTOCOL)  # and nothing more
        time.sleep(0.3)  # the worker has accepted it and waits for the rest
        released = time.monotonic()
        go.touch()
        out, err = make.communicate(timeout=120)
        took = time.monotonic() - released
    finally:
        staller.close()
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
    assert make.returncode == 0, out[-2000:] + err[-2000:]
    records = _record_events(tree)
    assert records["a"].get("worker") and records["b"].get("worker")
    assert took < 5, f"the session's last two packages took {took:.1f} s behind a stalled caller"


def test_a_request_not_whole_in_time_is_dropped_with_the_callers_descriptors(tmp_path):
    from sage_build.face.spkg_worker import Worker

    worker = Worker(str(tmp_path / "w"), os.getpid(), str(ROOT / "src"))
    ours, theirs = socket.socketpair()
    reader, writer = os.pipe()
    ours.sendmsg([(1000).to_bytes(4, "big") + spkg_client.PROTOCOL],
                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS, writer.to_bytes(4, sys.byteorder))])
    os.close(writer)
    try:
        fd = theirs.fileno()
        worker.begin(theirs)
        worker.receive(fd)
        assert fd in worker.incoming  # it waits for the rest, and for nobody else
        worker.incoming[fd].deadline = time.monotonic() - 1  # the caller's time is up
        worker.drop_late_requests()
        assert fd not in worker.incoming
        os.set_blocking(reader, False)
        assert os.read(reader, 1) == b""  # the caller's descriptor is closed in the worker
        ours.settimeout(5)
        assert ours.recv(1) == b""  # and so is its connection: it runs its package itself
    finally:
        os.close(reader)
        ours.close()
        os.close(worker.make)


@pytest.mark.parametrize("where", ["one target", "the whole session"])
def test_a_make_targets_python_settings_reach_the_interpreter_that_runs_its_package(tree, runtime, tmp_path, where):
    """A PYTHONPATH that make exports for one package applies to the interpreter that runs it: a
    worker's child started with the worker's, so that package runs in its own process; the same
    settings for every package keep the worker."""
    site = tmp_path / "site"
    site.mkdir()
    loaded = tmp_path / "loaded"
    (site / "sitecustomize.py").write_text(
        f"import os\nwith open({str(loaded)!r}, 'a') as f:\n    f.write(f'{{os.getpid()}}\\n')\n")
    names = _session_tree(tree, ["probe", "after"])
    (tree.root / "build/pkgs/after/dependencies").write_text("$(PYTHON) probe\n")
    extra = tmp_path / "extra.mk"
    extra.write_text(f"$(inst_probe): export PYTHONPATH := {site}\n" if where == "one target" else "")
    env = dict(tree.env, XDG_RUNTIME_DIR=str(runtime))
    if where == "the whole session":
        env["PYTHONPATH"] = str(site)
    result = subprocess.run(["make", "-f", str(tree.root / "build/make/Makefile"), "-f", str(extra), *names],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    records = _record_events(tree)
    probe = records["probe"].get("worker") or int(records["probe"]["run"].split("-")[0])
    assert str(probe) in loaded.read_text().split()  # the interpreter that ran probe had the target's setting
    assert bool(records["probe"].get("worker")) == (where == "the whole session")
    assert records["after"].get("worker")  # and the worker goes on serving the others


def test_a_worker_started_by_a_package_with_settings_of_its_own_makes_way_for_the_sessions(tree, runtime, tmp_path):
    """The package that starts the session's worker (the second) has make's PYTHONPATH for it
    alone: that worker would refuse every later package. It refuses the next one and ends; that
    package runs itself and starts another, which serves the rest."""
    site = tmp_path / "site"
    site.mkdir()
    names = _session_tree(tree, ["probe"])
    add_recipe(tree.root, "waiter2", deps="$(PYTHON) probe", files={"spkg-install": WAIT_FOR_WORKER})
    _wheels(tree, ["after"])
    (tree.root / "build/pkgs/after/dependencies").write_text("$(PYTHON) waiter2\n")
    tree.configure()
    extra = tmp_path / "extra.mk"
    extra.write_text(f"$(inst_waiter): export PYTHONPATH := {site}\n")
    env = dict(tree.env, XDG_RUNTIME_DIR=str(runtime))
    result = subprocess.run(["make", "-f", str(tree.root / "build/make/Makefile"), "-f", str(extra),
                             *names, "waiter2", "after"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    records = _record_events(tree)
    assert not records["probe"].get("worker")  # refused: the worker had the waiter's PYTHONPATH
    assert records["after"].get("worker")  # a worker with the session's settings served it


@pytest.mark.parametrize("differs", ["encoding", "PYTHONHASHSEED", "PYTHONWARNINGS unset", "LC_ALL"])
def test_a_worker_refuses_a_caller_whose_own_interpreter_would_have_started_otherwise(tmp_path, monkeypatch, differs):
    from sage_build.face.spkg_worker import Worker

    monkeypatch.setenv("PYTHONWARNINGS", "default")
    worker = Worker(str(tmp_path / "w"), os.getpid(), str(ROOT / "src"))
    environ = dict(os.environb)
    request = {"encoding": sys.getfilesystemencoding(), "environ": environ, "argv": ["probe"], "targets": []}
    if differs == "encoding":
        request["encoding"] = "iso8859-1"
    elif differs == "PYTHONHASHSEED":
        environ[b"PYTHONHASHSEED"] = b"7"
    elif differs == "PYTHONWARNINGS unset":
        del environ[b"PYTHONWARNINGS"]
    else:
        environ[b"LC_ALL"] = b"C" if environ.get(b"LC_ALL") != b"C" else b"C.UTF-8"
    ours, theirs = socket.socketpair()
    try:
        worker.start(theirs, request, [])
        ours.settimeout(5)
        assert ours.recv(100).startswith(b"R ")  # nothing forked: the caller runs its package itself
        assert not worker.children
    finally:
        ours.close()
        os.close(worker.make)
