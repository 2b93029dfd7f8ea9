"""install/uninstall.py, in process: remove_files and the removal journal (no scripts, no subprocess)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sage_build.base.layout import Layout
from sage_build.install import uninstall as uninstall_module
from sage_build.install.manifest import write_manifest
from sage_build.install.uninstall import begin_removal, remove_files, uninstall

KEPT_DIRS = ("bin", "include", "lib", "share", "var", "etc", "var/lib/sage/wheels")


def _files(local: Path, rels) -> None:
    for rel in rels:
        path = local / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)


def test_remove_files_deepest_first_then_the_directories_left_empty(tmp_path, monkeypatch):
    local = tmp_path / "local"
    listed = ["share/pkg/b.txt", "share/pkg/sub/deeper/a.txt", "bin/tool", "share/pkg/sub/c.txt",
              "lib/python3/site-packages/pkg/__init__.py"]
    _files(local, listed + ["share/other/keep.txt", "lib/python3/site-packages/other.py"])
    removed = []
    real_unlink = Path.unlink

    def unlink(self, missing_ok=False):
        removed.append(str(self.relative_to(local)))
        return real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    remove_files(Layout(sage_root=local, prefix=local), listed)
    depths = [rel.count("/") for rel in removed]
    assert sorted(removed) == sorted(listed)
    assert depths == sorted(depths, reverse=True), removed
    assert not (local / "share/pkg").exists()  # emptied directories go, up to ...
    assert not (local / "lib/python3/site-packages/pkg").exists()
    assert (local / "share").is_dir()  # ... the prefix's own directories
    assert (local / "bin").is_dir()
    assert (local / "share/other/keep.txt").read_text() == "share/other/keep.txt"  # not listed: kept
    assert (local / "lib/python3/site-packages/other.py").exists()


def test_remove_files_keeps_the_prefixs_own_directories_even_when_empty(tmp_path):
    local = tmp_path / "local"
    listed = [f"{d}/only-file" for d in KEPT_DIRS]
    _files(local, listed)
    remove_files(Layout(sage_root=local, prefix=local), listed)
    for directory in KEPT_DIRS:
        assert (local / directory).is_dir(), directory
        assert os.listdir(local / directory) in ([], ["lib"], ["sage"], ["wheels"]), directory
    assert local.is_dir()
    # var/lib/sage/wheels is kept, so var/lib/sage with it; nothing else is left
    assert sorted(str(p.relative_to(local)) for p in local.rglob("*")) == sorted(
        ["bin", "include", "lib", "share", "var", "etc", "var/lib", "var/lib/sage", "var/lib/sage/wheels"])


def test_remove_files_refuses_paths_outside_the_prefix(tmp_path):
    local = tmp_path / "local"
    (local / "bin").mkdir(parents=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret").write_text("precious")
    (local / "share").mkdir()
    (local / "share" / "link").symlink_to(elsewhere)  # a directory link leading out
    (local / "bin" / "tool").symlink_to(outside)      # a file link leading out: the link itself goes
    remove_files(Layout(sage_root=local, prefix=local), ["../outside.txt", str(outside), "share/link/secret", "bin/tool", "bin/missing"])
    assert outside.read_text() == "precious"
    assert (elsewhere / "secret").read_text() == "precious"
    assert not (local / "bin" / "tool").is_symlink()
    assert (local / "share" / "link").is_symlink()


def test_remove_files_leaves_listed_directories_with_content(tmp_path):
    local = tmp_path / "local"
    _files(local, ["share/data/a", "share/data/b"])
    remove_files(Layout(sage_root=local, prefix=local), ["share/data", "share/data/a"])
    assert (local / "share/data/b").exists()
    assert not (local / "share/data/a").exists()


def _installed(tmp_path, name="foo", version="1.0", files=("share/foo/data.txt", "bin/foo")) -> Layout:
    layout = Layout(sage_root=tmp_path / "root", prefix=tmp_path / "local")
    _files(layout.local, files)
    write_manifest(layout, name, version, list(files))
    return layout


def test_begin_removal_moves_every_stamp_into_the_journal(tmp_path):
    layout = _installed(tmp_path)
    write_manifest(layout, "foo", "0.9", [])
    moved = begin_removal(layout, "foo")
    assert moved == {layout.stamp("foo", "0.9"): layout.removing_dir / "foo-0.9",
                     layout.stamp("foo", "1.0"): layout.removing_dir / "foo-1.0"}
    assert layout.installed_stamps("foo") == []
    assert layout.removal_journal("foo") == [layout.removing_dir / "foo-0.9", layout.removing_dir / "foo-1.0"]
    assert (layout.local / "bin/foo").exists()  # no file goes yet


def test_uninstall_removes_files_stamp_and_journal_under_the_exclusive_lock(tmp_path, monkeypatch):
    layout = _installed(tmp_path)
    (layout.scripts_dir / "foo").mkdir(parents=True)
    held = []
    real_remove_files = uninstall_module.remove_files

    def remove_files_checking_the_lock(removing_from, files):
        fd = os.open(layout.lock_file, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            held.append(False)
        except BlockingIOError:
            held.append(True)
        finally:
            os.close(fd)
        return real_remove_files(removing_from, files)

    monkeypatch.setattr(uninstall_module, "remove_files", remove_files_checking_the_lock)
    said = []
    assert uninstall(layout, "foo", say=said.append) is True
    assert held == [True]
    assert not (layout.local / "bin/foo").exists()
    assert not (layout.local / "share/foo").exists()
    assert not layout.stamp("foo", "1.0").exists()
    assert layout.removal_journal("foo") == []
    assert not (layout.scripts_dir / "foo").exists()
    assert uninstall(layout, "foo", say=said.append) is False  # nothing left to do


def test_uninstall_completes_a_removal_a_kill_cut_short(tmp_path):
    layout = _installed(tmp_path)
    begin_removal(layout, "foo")
    (layout.local / "bin/foo").unlink()  # the killed run got this far
    assert uninstall(layout, "foo", say=lambda _: None) is True
    assert not (layout.local / "share/foo").exists()
    assert layout.removal_journal("foo") == []


def test_uninstall_stamp_only_keeps_the_files(tmp_path):
    layout = _installed(tmp_path)
    said = []
    assert uninstall(layout, "foo", stamp_only=True, say=said.append) is True
    assert layout.installed_stamps("foo") == []
    assert (layout.local / "bin/foo").read_text() == "bin/foo"
    assert said == ["foo: removed the stamp only (-k); the files stay"]
    assert uninstall(layout, "foo", stamp_only=True, say=said.append) is False


def _jinja2_piprm(**values) -> str:
    """spkg-piprm as jinja2 renders its template (what render_piprm did before issue #19)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("sage_build.install", "templates"),
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return env.get_template("spkg-piprm.j2").render(
        package=values["package"], version=values["version"], python=str(values["python"]),
        prefix=str(values["prefix"]), distributions=[list(d) for d in values["distributions"]],
        removed_nothing=uninstall_module.PIPRM_REMOVED_NOTHING)


HOSTILE_PIPRMS = [
    dict(package="six", version="1.17.0", python=Path("/p/bin/python3"), prefix=Path("/p"),
         distributions=[("six", "1.17.0", "lib/python3.11/site-packages/six-1.17.0.dist-info")]),
    # quotes, HTML's specials, braces, non-ASCII, backslashes: escaped as jinja2's tojson does
    dict(package="a_b", version="1.0.post1+local", python=Path("/o'd \"dir\"/{{x}}/bin/python3"),
         prefix=Path("/o'd \"dir\"/<&>/{{ package }}/préfixe\\x"),
         distributions=[("n'a<m>e&", "2", "lib/python3.11/site-packages/{% raw %}.dist-info"),
                        ("z", "3", "lib/ü\\\"/z-3.dist-info")]),
    dict(package="empty", version="0", python=Path("/p/bin/python3"), prefix=Path("/p"), distributions=[]),
]


def test_render_piprm_is_what_jinja2_renders(tmp_path):
    for values in HOSTILE_PIPRMS:
        ours = uninstall_module.render_piprm(**values)
        assert ours == _jinja2_piprm(**values)
        assert str(values["prefix"]) in ours or "\\" in str(values["prefix"]) or "'" in str(values["prefix"])
        compile(ours, "spkg-piprm", "exec")  # a Python program, whatever the values


def test_render_piprm_needs_no_jinja2():
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from sage_build.install.uninstall import render_piprm;"
            "render_piprm(package='p', version='1', python=Path('/p/bin/python3'), prefix=Path('/p'),"
            " distributions=[('p', '1', 'x')]); print('jinja2' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(uninstall_module.__file__).parents[2])})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_render_piprm_refuses_a_template_it_cannot_render(tmp_path, monkeypatch):
    import pytest

    from sage_build.base.errors import UninstallError

    templates = tmp_path / "templates"
    templates.mkdir()
    fake_module = tmp_path / "uninstall.py"
    monkeypatch.setattr(uninstall_module, "__file__", str(fake_module))
    values = HOSTILE_PIPRMS[0]
    for text, message in (("{{ nope }}\n", "'nope' is undefined"), ("{% if x %}{% endif %}\n", "only"),
                          ("{{ package | upper }}\n", "only")):
        (templates / uninstall_module.PIPRM_TEMPLATE).write_text(text)
        with pytest.raises(UninstallError, match=message):
            uninstall_module.render_piprm(**values)
