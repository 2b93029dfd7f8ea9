"""install/manifest.py, in process: the stamp's round trip and the installed versions."""

from __future__ import annotations

import json
import os

from sage_build import __version__
from sage_build.base.atomic import TMP_MARK
from sage_build.base.layout import Layout
from sage_build.install.manifest import installed_versions, read_manifest, stale_wheels, write_manifest


def _layout(tmp_path) -> Layout:
    return Layout(sage_root=tmp_path / "root", prefix=tmp_path / "local")


def test_write_then_read_round_trip(tmp_path):
    layout = _layout(tmp_path)
    files = ["var/lib/sage/wheels/b-1.0-py3-none-any.whl", "bin/a", "share/z"]
    stamp = write_manifest(layout, "pkg", "1.0.p0", files, test_result="passed")
    assert stamp == tmp_path / "local" / "var/lib/sage/installed/pkg-1.0.p0"
    data = read_manifest(stamp)
    assert data["package_name"] == "pkg"
    assert data["package_version"] == "1.0.p0"
    assert data["files"] == sorted(files)
    assert data["test_result"] == "passed"
    assert data["sage_version"] == f"sage-build {__version__}"
    assert set(data) >= {"install_date", "system_uname"}
    assert data["system_uname"].split() == [word for field in os.uname() for word in field.split()]
    assert json.loads(stamp.read_text()) == data  # Sage's JSON, nothing else in the file
    assert [p for p in os.listdir(stamp.parent) if TMP_MARK in p] == []


def test_write_replaces_a_previous_stamp(tmp_path):
    layout = _layout(tmp_path)
    write_manifest(layout, "pkg", "1.0", ["old"])
    stamp = write_manifest(layout, "pkg", "1.0", ["new"])
    assert read_manifest(stamp)["files"] == ["new"]


def test_empty_missing_and_broken_manifests(tmp_path):
    empty = tmp_path / "empty-1.0"
    empty.write_text("")
    assert read_manifest(empty) == {"files": []}  # Sage writes empty stamps for old installs
    blank = tmp_path / "blank-1.0"
    blank.write_text("\n  \n")
    assert read_manifest(blank) == {"files": []}
    assert read_manifest(tmp_path / "missing-1.0") == {}
    broken = tmp_path / "broken-1.0"
    broken.write_text('{"files": ["a"')
    assert read_manifest(broken) == {"files": []}


def test_installed_versions_with_dashes_in_names_and_the_journal_ignored(tmp_path):
    layout = _layout(tmp_path)
    installed = layout.installed_dir
    installed.mkdir(parents=True)
    for entry in ("python3-venv-3.11", "python3-3.11.7", "foo-bar-2.0.p1", "foo-1.0", "other-9", "plain"):
        (installed / entry).write_text("")
    layout.removing_dir.mkdir()
    (layout.removing_dir / "gone-1.0").write_text("")
    names = ["python3-venv", "python3", "foo-bar", "foo", "gone", "absent"]
    assert installed_versions(layout, names) == {
        "python3-venv": "3.11",
        "python3": "3.11.7",
        "foo-bar": "2.0.p1",
        "foo": "1.0",
    }
    # only the names asked for
    assert installed_versions(layout, ["foo"]) == {"foo": "1.0"}
    # a longest-name-first match: 'foo' must not claim foo-bar's stamp
    (installed / "foo-1.0").unlink()
    assert installed_versions(layout, ["foo", "foo-bar"]) == {"foo-bar": "2.0.p1"}


def test_installed_versions_without_a_prefix(tmp_path):
    assert installed_versions(_layout(tmp_path), ["foo"]) == {}


def test_stale_wheels_names_wheels_whose_distribution_is_gone(tmp_path):
    layout = _layout(tmp_path)
    site = tmp_path / "site-packages"
    (site / "kept_dist-1.0.dist-info").mkdir(parents=True)
    (site / "Upper-2.0.dist-info").mkdir()
    stamp = write_manifest(layout, "pkg", "1.0", [
        "var/lib/sage/wheels/kept_dist-1.0-py3-none-any.whl",
        "var/lib/sage/wheels/upper-2.0-py3-none-any.whl",   # case differs from the dist-info
        "var/lib/sage/wheels/gone-3.0-py3-none-any.whl",
        "share/not-a-wheel.txt",
    ])
    assert stale_wheels(layout, stamp, site) == ["gone-3.0-py3-none-any.whl"]


def test_write_manifest_starts_no_process(tmp_path, monkeypatch):
    """platform.uname() runs `uname -p` for the processor: a fork of sage-spkg per package."""
    import subprocess

    def refuse(*args, **kwargs):
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(os, "fork", refuse)
    import platform

    platform._uname_cache = None  # a cached answer would hide the call
    write_manifest(_layout(tmp_path), "pkg", "1.0", [])
