"""base/layout.py, in process: every path, staging under DESTDIR, stamps of '<name>-<version>'."""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT
from sage_build.base import layout as layout_module
from sage_build.base.layout import Layout


def test_every_path_in_place():
    layout = Layout(sage_root=Path("/src/tree"), prefix=Path("/opt/sage/local"))
    var = Path("/opt/sage/local/var/lib/sage")
    assert layout.staged(Path("/opt/sage/local/bin")) == Path("/opt/sage/local/bin")
    assert layout.local == Path("/opt/sage/local")
    assert layout.var_sage == var
    assert layout.installed_dir == var / "installed"
    assert layout.removing_dir == var / "installed" / ".removing"
    assert layout.wheels_dir == var / "wheels"
    assert layout.scripts_dir == var / "scripts"
    assert layout.lock_file == var / "prefix.lock"
    assert layout.target_file == var / "target-python.json"
    assert layout.build_root == Path("/opt/sage/local/var/tmp/sage/build")
    assert layout.pkgs_dir == Path("/src/tree/build/pkgs")
    assert layout.make_dir == Path("/src/tree/build/make")
    assert layout.hashes_dir == Path("/src/tree/build/make/hashes")
    assert layout.config_file == Path("/src/tree/build/make/config.json")
    assert layout.logs_dir == Path("/src/tree/logs/pkgs")
    assert layout.events_file == Path("/src/tree/logs/events.jsonl")
    assert layout.upstream == Path("/src/tree/upstream")
    assert layout.python == Path("/opt/sage/local/bin/python3")
    assert layout.stamp("foo", "1.0") == var / "installed" / "foo-1.0"
    assert layout.log_file("foo", "1.0") == Path("/src/tree/logs/pkgs/foo-1.0.log")


def test_every_prefix_path_is_staged_under_destdir_and_the_tree_is_not():
    layout = Layout(sage_root=Path("/src/tree"), prefix=Path("/opt/sage/local"), destdir=Path("/stage"))
    staged_var = Path("/stage/opt/sage/local/var/lib/sage")
    assert layout.staged(Path("/opt/sage/local/lib/x.py")) == Path("/stage/opt/sage/local/lib/x.py")
    assert layout.prefix == Path("/opt/sage/local")  # what the installed tree will see
    assert layout.local == Path("/stage/opt/sage/local")
    assert layout.var_sage == staged_var
    assert layout.installed_dir == staged_var / "installed"
    assert layout.removing_dir == staged_var / "installed" / ".removing"
    assert layout.wheels_dir == staged_var / "wheels"
    assert layout.scripts_dir == staged_var / "scripts"
    assert layout.lock_file == staged_var / "prefix.lock"
    assert layout.target_file == staged_var / "target-python.json"
    assert layout.python == Path("/stage/opt/sage/local/bin/python3")
    assert layout.build_root == Path("/stage/opt/sage/local/var/tmp/sage/build")
    assert layout.stamp("foo", "1.0") == staged_var / "installed" / "foo-1.0"
    # the source tree is never staged
    assert layout.pkgs_dir == Path("/src/tree/build/pkgs")
    assert layout.config_file == Path("/src/tree/build/make/config.json")
    assert layout.events_file == Path("/src/tree/logs/events.jsonl")


def test_build_dir_and_upstream_overrides():
    layout = Layout(sage_root=Path("/src/tree"), prefix=Path("/p"), upstream_dir=Path("/mirror"),
                    build_dir=Path("/fast/build"))
    assert layout.build_root == Path("/fast/build")
    assert layout.upstream == Path("/mirror")


def test_installed_stamps_and_removal_journal_match_name_dash_version(tmp_path):
    layout = Layout(sage_root=tmp_path / "root", prefix=tmp_path / "local")
    assert layout.installed_stamps("foo") == []  # no prefix yet
    assert layout.removal_journal("foo") == []
    layout.removing_dir.mkdir(parents=True)
    for entry in ("foo-1.0", "foo-2.0.p1", "foo-none", "foo-bar-1.0", "foo-", "foo-x1", "foobar-1.0",
                  "python3-venv-3.11", "python3-3.11.7"):
        (layout.installed_dir / entry).write_text("")
    (layout.removing_dir / "foo-0.9").write_text("")
    (layout.removing_dir / "foo-bar-0.9").write_text("")
    installed = layout.installed_dir
    assert layout.installed_stamps("foo") == [installed / "foo-1.0", installed / "foo-2.0.p1", installed / "foo-none"]
    assert layout.installed_stamps("foo-bar") == [installed / "foo-bar-1.0"]
    assert layout.installed_stamps("python3") == [installed / "python3-3.11.7"]
    assert layout.installed_stamps("python3-venv") == [installed / "python3-venv-3.11"]
    assert layout.removal_journal("foo") == [layout.removing_dir / "foo-0.9"]
    assert layout.removal_journal("foo-bar") == [layout.removing_dir / "foo-bar-0.9"]
    assert layout.installed_stamps(".removing") == []


def test_roots(tmp_path):
    from sage_build.face import settings

    assert layout_module.tool_root() == ROOT
    assert layout_module.source_root() == ROOT / "src"
    assert (layout_module.source_root() / "sage_build" / "base" / "layout.py").is_file()
    assert settings.sage_root({}) == ROOT
    assert settings.sage_root({"SAGE_ROOT": str(tmp_path)}) == tmp_path.resolve()


def test_the_face_reads_sage_build_dir_and_destdir():
    from sage_build.configure.config import Config
    from sage_build.face import settings

    config = Config(sage_root="/src/tree", prefix="/opt/sage/local", python="python3")
    assert settings.layout_of(config, environ={}).build_root == Path("/opt/sage/local/var/tmp/sage/build")
    layout = settings.layout_of(config, environ={"SAGE_BUILD_DIR": "/fast/build", "DESTDIR": "/stage"})
    assert layout.build_root == Path("/fast/build") and layout.destdir == Path("/stage")
    assert settings.layout_of(config, "/other", environ={"DESTDIR": "/stage"}).destdir == Path("/other")
