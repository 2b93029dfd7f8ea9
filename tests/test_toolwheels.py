"""The tool's own wheels: pinned by hash, stored by `make download`, enough to make the tool
environment again with no index (after `make distclean`)."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest

from conftest import ROOT
from sage_build.face.toolwheels import read_pins, render_pins

CLOSED = "http://127.0.0.1:9"  # nothing listens on the discard port: every connection is refused


def _offline(env: dict[str, str]) -> dict[str, str]:
    """``env`` with no index: pip's configuration and find-links dropped, the index and the
    proxies pointed at a closed port."""
    env = {k: v for k, v in env.items() if not k.startswith("PIP_") and "proxy" not in k.lower()}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL=f"{CLOSED}/simple/", PIP_RETRIES="0", PIP_TIMEOUT="2",
               http_proxy=CLOSED, https_proxy=CLOSED, HTTP_PROXY=CLOSED, HTTPS_PROXY=CLOSED)
    return env


def test_the_pins_cover_pyproject_and_read_back():
    pins = read_pins((ROOT / "build/tool-requirements.txt").read_text())
    names = {name for name, _ in pins}
    # the build backend of the editable install and every dependency, test extra included
    assert {"setuptools", "packaging", "wheel", "installer", "jinja2", "pyyaml", "tqdm",
            "pyproject-hooks", "pytest", "hypothesis"} <= names
    assert all(len(digests) >= 1 for digests in pins.values())
    assert read_pins(render_pins(pins)) == pins


@pytest.mark.slow
@pytest.mark.network
def test_tool_env_from_stored_wheels_with_no_index_and_tampered_wheel_refused(tmp_path):
    wheels = tmp_path / "tool-wheels"
    env = dict(os.environ, SAGE_BUILD_TOOL_WHEELS=str(wheels))
    for variable in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(variable, None)
    # `make download`'s step for the tool itself, from pip's configured index
    stored = subprocess.run(["make", "-C", str(ROOT), "tool-wheels"], env=env, capture_output=True, text=True)
    if stored.returncode != 0 and "HTTP" in stored.stderr + stored.stdout and not wheels.exists():
        pytest.skip(f"pip's index cannot be reached: {stored.stderr[-500:]}")
    assert stored.returncode == 0, stored.stdout + stored.stderr
    pins = read_pins((ROOT / "build/tool-requirements.txt").read_text())
    assert len(list(wheels.glob("*.whl"))) == len(pins)

    # a fresh tool environment (as after `make distclean`) with no index reachable
    venv = tmp_path / "venv"
    made = subprocess.run([sys.executable, str(ROOT / "src/sage_build/bootstrap.py")],
                          env=_offline(dict(env, SAGE_BUILD_TOOL_ENV=str(venv))), capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert "trying pip's index" not in made.stderr
    check = subprocess.run([str(venv / "bin/python"), "-c",
                            "import sage_build, jinja2, yaml, tqdm, installer, pyproject_hooks, pytest, setuptools;"
                            "print(sage_build.__file__)"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == str(ROOT / "src/sage_build/__init__.py")  # editable: the sources

    # one stored wheel with other bytes: refused by its hash, nothing installed from it
    victim = next(w for w in wheels.glob("tqdm-*.whl"))
    victim.write_bytes(victim.read_bytes() + b"\0")
    bad = tmp_path / "venv-bad"
    refused = subprocess.run([sys.executable, str(ROOT / "src/sage_build/bootstrap.py")],
                             env=_offline(dict(env, SAGE_BUILD_TOOL_ENV=str(bad))), capture_output=True, text=True)
    assert refused.returncode != 0
    assert "DO NOT MATCH THE HASHES" in refused.stderr and "tqdm" in refused.stderr, refused.stderr
    assert not list(bad.glob("lib/python*/site-packages/tqdm"))
    assert not (bad / ".sage-build-deps").exists()


def test_the_tool_interpreter_refreshes_a_stale_environment_before_going_on(tmp_path, monkeypatch):
    # ./sage starts the tool environment's interpreter directly: a stamp that no longer matches
    # the pins (after a `git pull`) must still make it refresh the environment first.
    from sage_build import bootstrap

    stamp = tmp_path / ".sage-build-deps"
    monkeypatch.setattr(bootstrap, "TOOL_ENV", Path(sys.prefix))
    monkeypatch.setattr(bootstrap, "_STAMP", stamp)
    refreshed = []

    def ensure_tool_env(quiet: bool = False):
        refreshed.append(True)
        raise SystemExit("refreshed")

    monkeypatch.setattr(bootstrap, "ensure_tool_env", ensure_tool_env)
    stamp.write_text(bootstrap._wanted_stamp() + "\n")
    bootstrap.ensure_tool_python()  # fresh and inside: goes on
    assert refreshed == []
    stamp.write_text("an older pin file's hash\n")
    with pytest.raises(SystemExit, match="refreshed"):
        bootstrap.ensure_tool_python()
    assert refreshed == [True]
