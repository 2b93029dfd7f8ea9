"""build_wheel: the PEP 517 call and the check of the build requirements that runs beside it."""

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sage_build.pipeline.build import build_wheel
from sage_build.base.errors import BuildError
from sage_build.base.atomic import owner_alive
from sage_build.pipeline.package_log import PackageLog

SLOW_BACKEND = textwrap.dedent("""
    import os, time

    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        with open(os.environ["PID_FILE"], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(60)
        raise SystemExit("not stopped")
""")


def _source(tmp_path: Path, requires: str) -> Path:
    source = tmp_path / "src"
    (source / "_backend").mkdir(parents=True)
    (source / "_backend" / "slow_backend.py").write_text(SLOW_BACKEND)
    (source / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["{requires}"]\nbuild-backend = "slow_backend"\nbackend-path = ["_backend"]\n')
    return source


def test_an_unmet_build_requirement_stops_the_backend_already_running(tmp_path):
    pid_file = tmp_path / "backend.pid"
    env = dict(os.environ, PID_FILE=str(pid_file))
    empty_site = tmp_path / "site"
    empty_site.mkdir()
    started = time.monotonic()
    with PackageLog(tmp_path / "log", "victim-1.0", echo=False) as log:
        with pytest.raises(BuildError, match="no-such-backend>=1 .not installed."):
            build_wheel(_source(tmp_path, "no-such-backend>=1"), tmp_path / "dist", python=Path(sys.executable),
                        env=env, log=log, markers={}, site_dirs=[empty_site])
    assert time.monotonic() - started < 30  # the backend sleeps 60 s unless it is stopped
    if pid_file.exists():  # it had started: it must be gone
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 5
        while owner_alive(None, pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not owner_alive(None, pid)
    assert not list((tmp_path / "dist").glob("*.whl"))
