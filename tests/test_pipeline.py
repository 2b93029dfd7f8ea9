"""The whole pipeline on tiny packages: sage-spkg through the generated Makefile."""

from __future__ import annotations

import json

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, add_recipe, make_sdist, make_wheel, python_recipe


def test_build_installs_wheels_and_records_only_the_wheel(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": "VALUE = 'alpha'\n"}, script="alpha-hello=alpha:main")
    python_recipe(tree.root, "beta", "2.0", {"beta/__init__.py": "from alpha import VALUE\n"},
                  deps="$(PYTHON) alpha | $(PYTHON_TOOLCHAIN)", requires="alpha")
    tree.configure()
    tree.make("build")
    result = tree.python("import beta; print(beta.VALUE)")
    assert result.stdout.strip() == "alpha", result.stderr
    manifest = json.loads(tree.stamp("beta", "2.0").read_text())
    assert manifest["package_name"] == "beta"
    assert manifest["package_version"] == "2.0"
    assert manifest["files"] == ["var/lib/sage/wheels/beta-2.0-py3-none-any.whl"]
    assert (tree.prefix / manifest["files"][0]).is_file()
    piprm = tree.prefix / "var/lib/sage/scripts/beta/spkg-piprm"
    assert piprm.is_file() and piprm.stat().st_mode & 0o111
    installer = next(tree.site_packages().glob("beta-2.0.dist-info")) / "INSTALLER"
    assert installer.read_text() == "sage-build\n"
    # A second run is a no-op.
    again = tree.make("build")
    assert "sage-spkg" not in again.stdout


def _installed_files(tree):
    return sorted(str(p.relative_to(tree.prefix)) for p in tree.prefix.rglob("*")
                  if p.is_file() and "var/tmp" not in str(p) and not p.name.endswith(".lock"))


def test_checksum_mismatch_installs_nothing(tree):
    recipe = python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    (recipe / "checksums.ini").write_text("tarball=alpha-VERSION.tar.gz\nsha256=" + "0" * 64 + "\n")
    tree.configure()
    tree.make("python3-venv")
    before = _installed_files(tree)
    result = tree.make("alpha", check=False)
    assert result.returncode != 0
    assert "fix-checksum" in result.stderr + result.stdout
    assert "0" * 64 in result.stderr + result.stdout
    assert not tree.stamp("alpha", "1.0").exists()
    assert _installed_files(tree) == before


def test_build_failure_keeps_old_version_and_shows_log_tail(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": "V = 1\n"})
    tree.configure()
    tree.make("build")
    python_recipe(tree.root, "alpha", "2.0", {"alpha/__init__.py": "V = 2\n"}, fail="compiler exploded")
    tree.configure()
    result = tree.make("build", check=False)
    assert result.returncode != 0
    assert "failed in phase 'build'" in result.stderr
    assert "compiler exploded" in result.stderr  # the log tail
    assert "logs/pkgs/alpha-2.0.log" in result.stderr
    assert "To reproduce: make alpha" in result.stderr
    assert not tree.stamp("alpha", "2.0").exists()
    assert tree.stamp("alpha", "1.0").exists()
    assert tree.python("import alpha; print(alpha.V)").stdout.strip() == "1"


def test_upgrade_removes_old_version(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": "V = 1\n", "alpha/old.py": ""})
    tree.configure()
    tree.make("build")
    python_recipe(tree.root, "alpha", "2.0", {"alpha/__init__.py": "V = 2\n"})
    tree.configure()
    tree.make("build")
    site = tree.site_packages()
    assert tree.python("import alpha; print(alpha.V)").stdout.strip() == "2"
    assert not (site / "alpha" / "old.py").exists()
    assert not list(site.glob("alpha-1.0.dist-info"))
    assert not tree.stamp("alpha", "1.0").exists()
    assert not (tree.prefix / "var/lib/sage/wheels/alpha-1.0-py3-none-any.whl").exists()


def test_spkg_piprm_removes_the_package(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": "", "alpha/sub/mod.py": ""},
                  script="alpha-hello=alpha:main")
    tree.configure()
    tree.make("python3-venv")
    before = set(_installed_files(tree))
    tree.make("alpha")
    assert (tree.prefix / "bin" / "alpha-hello").exists()
    piprm = tree.prefix / "var/lib/sage/scripts/alpha/spkg-piprm"
    result = subprocess.run([str(piprm)], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert tree.python("import alpha").returncode != 0
    assert not (tree.prefix / "bin" / "alpha-hello").exists()
    left = set(_installed_files(tree)) - before
    # only sage-build's own records of the package remain (stamp, wheel, scripts dir)
    assert all(p.startswith("var/lib/sage/") for p in left), left


def test_unsafe_archive_is_refused(tree):
    import io
    import tarfile

    bad = tree.root / "upstream" / "evil-1.0.tar.gz"
    bad.parent.mkdir(parents=True)
    with tarfile.open(bad, "w:gz") as tar:
        data = b"owned"
        info = tarfile.TarInfo("evil-1.0/../../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    add_recipe(tree.root, "evil", version="1.0", tarball=bad, install_requires="evil")
    tree.configure()
    result = tree.make("evil", check=False)
    assert result.returncode != 0
    assert "failed in phase 'unpack'" in result.stderr
    assert "escaped.txt" in result.stderr
    assert not list(tree.root.parent.rglob("escaped.txt"))


def test_script_package_installs_through_staging(tree):
    add_recipe(tree.root, "clib", version="1.0", deps="", files={
        "spkg-install.in": (
            'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/lib" "$SAGE_DESTDIR$SAGE_LOCAL/include"\n'
            'echo "int x;" > "$SAGE_DESTDIR$SAGE_LOCAL/include/clib.h"\n'
            'echo lib > "$SAGE_DESTDIR$SAGE_LOCAL/lib/libclib.so.1"\n'
            'ln -s libclib.so.1 "$SAGE_DESTDIR$SAGE_LOCAL/lib/libclib.so"\n'
            'test -n "$MAKE" && test -n "$SAGE_ROOT" && test "$PKG_NAME" = clib\n'
        )})
    tree.configure()
    tree.make("build")
    assert (tree.prefix / "include" / "clib.h").read_text() == "int x;\n"
    assert os.readlink(tree.prefix / "lib" / "libclib.so") == "libclib.so.1"
    manifest = json.loads(tree.stamp("clib", "1.0").read_text())
    assert manifest["files"] == ["include/clib.h", "lib/libclib.so", "lib/libclib.so.1"]
    tree.make("clib-uninstall")
    assert not (tree.prefix / "include" / "clib.h").exists()
    assert not (tree.prefix / "lib" / "libclib.so").exists()
    assert not tree.stamp("clib", "1.0").exists()


def test_script_that_installs_nothing_is_an_error(tree):
    add_recipe(tree.root, "lazy", version="1.0", deps="", files={"spkg-install.in": "echo did nothing\n"})
    tree.configure()
    result = tree.make("lazy", check=False)
    assert result.returncode != 0
    assert "installed nothing" in result.stderr
    assert not tree.stamp("lazy", "1.0").exists()


def test_sdh_pip_install_builds_a_wheel_that_sage_spkg_installs(tree):
    sdist = make_sdist(tree.root / "upstream", "gamma", "1.0", {"gamma/__init__.py": "G = 3\n"})
    add_recipe(tree.root, "gamma", version="1.0", tarball=sdist, files={"spkg-install.in": "cd src\nsdh_pip_install .\n"})
    tree.configure()
    tree.make("build")
    assert tree.python("import gamma; print(gamma.G)").stdout.strip() == "3"
    manifest = json.loads(tree.stamp("gamma", "1.0").read_text())
    assert manifest["files"] == ["var/lib/sage/wheels/gamma-1.0-py3-none-any.whl"]


def test_sdh_pip_install_takes_a_build_requirement_at_another_version_as_sage_does(tree):
    """passagemath's gmpy2 asks setuptools<80 and the tree has 83: Sage's sdh_pip_install (pip
    --no-build-isolation) builds it; so do we, with a warning. A missing requirement stays an error,
    and a recipe built by sage-build itself stays strict (the version-conflict message, #23)."""
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    sdist = make_sdist(tree.root / "upstream", "gamma", "1.0", {"gamma/__init__.py": "G = 3\n"},
                       build_requires="alpha<1")
    add_recipe(tree.root, "gamma", version="1.0", tarball=sdist, deps="$(PYTHON) alpha",
               files={"spkg-install.in": "cd src\nsdh_pip_install .\n"})
    sdist = make_sdist(tree.root / "upstream", "strict", "1.0", {"strict/__init__.py": ""}, build_requires="alpha<1")
    add_recipe(tree.root, "strict", version="1.0", tarball=sdist, deps="$(PYTHON) alpha")
    sdist = make_sdist(tree.root / "upstream", "lacking", "1.0", {"lacking/__init__.py": ""}, build_requires="ghost")
    add_recipe(tree.root, "lacking", version="1.0", tarball=sdist, files={"spkg-install.in": "cd src\nsdh_pip_install .\n"})
    tree.configure()
    tree.make("gamma")
    assert "warning: build-system.requires: alpha<1 (found 1.0); built anyway" in \
        (tree.root / "logs/pkgs/gamma-1.0.log").read_text()
    assert tree.python("import gamma").returncode == 0
    assert tree.make("strict", check=False).returncode != 0
    assert "a version conflict" in (tree.root / "logs/pkgs/strict-1.0.log").read_text()
    assert tree.make("lacking", check=False).returncode != 0
    assert "ghost (not installed): add the recipe that provides it" in (tree.root / "logs/pkgs/lacking-1.0.log").read_text()


def test_wheel_package_and_none_package(tree):
    built = make_sdist(tree.root / "tmp", "delta", "1.0", {"delta/__init__.py": ""})
    # build a wheel with the tiny backend directly: a wheel package installs it as it is
    import tarfile

    with tarfile.open(built) as tar:
        tar.extractall(tree.root / "tmp")
    src = tree.root / "tmp" / "delta-1.0"
    out = tree.root / "tmp" / "dist"
    out.mkdir()
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, '_backend'); import tiny_backend;"
                    f"tiny_backend.build_wheel({str(out)!r})"], cwd=src, check=True)
    wheel = next(out.glob("*.whl"))
    add_recipe(tree.root, "delta", version="1.0", tarball=wheel)
    add_recipe(tree.root, "meta", deps="delta")
    tree.configure()
    tree.make("build")
    assert tree.python("import delta").returncode == 0
    assert json.loads(tree.stamp("meta", "none").read_text())["files"] == []


def test_sage_i_installs_dependencies_and_optional(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    python_recipe(tree.root, "opt", "1.0", {"opt/__init__.py": "import alpha\n"}, deps="$(PYTHON) alpha",
                  type_="optional")
    tree.configure()
    result = tree.sage("-i", "opt")
    assert "opt is optional" in result.stdout
    assert tree.python("import opt").returncode == 0
    assert tree.stamp("alpha", "1.0").exists()
    # it stays enabled after reconfiguring (if_installed)
    tree.configure()
    assert "ENABLED_PACKAGES := alpha opt" in (tree.root / "build/make/Makefile").read_text()


def _built_alpha(tree) -> tuple[Path, int]:
    """A tree with package alpha built: its stamp and the stamp's mtime."""
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    tree.configure()
    tree.make("build")
    stamp = tree.stamp("alpha", "1.0")
    return stamp, stamp.stat().st_mtime_ns


def test_sage_f_reinstalls(tree):
    stamp, first = _built_alpha(tree)
    (tree.site_packages() / "alpha" / "__init__.py").unlink()  # damage it
    tree.sage("-f", "alpha")
    assert stamp.stat().st_mtime_ns > first
    assert tree.python("import alpha").returncode == 0


def test_force_reaches_the_sub_make_of_the_top_level_makefile(tree):
    # ./sage -f from the repository goes through the top-level Makefile, whose sub-make
    # would not see make's -W; SAGE_FORCE is a variable and does reach it.
    stamp, first = _built_alpha(tree)
    tree.top_level()
    run = lambda *args: subprocess.run(["make", "-C", str(tree.root), *args], env=tree.env,
                                       capture_output=True, text=True)
    assert run("alpha").returncode == 0
    assert stamp.stat().st_mtime_ns == first  # up to date: nothing rebuilt
    result = run("SAGE_FORCE=alpha", "alpha")
    assert result.returncode == 0, result.stderr
    assert stamp.stat().st_mtime_ns > first


def test_unknown_package_errors(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    tree.configure()
    result = tree.sage("-i", "nosuch", check=False)
    assert result.returncode == 1 and "no package 'nosuch'" in result.stderr
    assert "Traceback" not in result.stderr


def test_pip_package_is_resolved_pinned_and_installed(tree, tmp_path):
    # A local find-links directory stands in for the index: no network.
    links = tmp_path / "links"
    sdist = make_sdist(tmp_path / "s", "epsilon", "1.0", {"epsilon/__init__.py": "E = 5\n"})
    import tarfile

    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "s")
    links.mkdir()
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, '_backend'); import tiny_backend;"
                    f"tiny_backend.build_wheel({str(links)!r})"], cwd=tmp_path / "s" / "epsilon-1.0", check=True)
    add_recipe(tree.root, "epsilon", files={"requirements.txt": "epsilon==1.0\n"})
    tree.configure()
    env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(links), "PIP_CONFIG_FILE": os.devnull}
    tree.make("build", extra_env=env)
    assert tree.python("import epsilon; print(epsilon.E)").stdout.strip() == "5"
    lock = next((tree.root / "upstream" / "pip").glob("epsilon-*/requirements.lock"))
    assert lock.read_text().startswith("epsilon-1.0-py3-none-any.whl --hash=sha256:")
    manifest = json.loads(tree.stamp("epsilon", "none").read_text())
    assert manifest["files"] == ["var/lib/sage/wheels/epsilon-1.0-py3-none-any.whl"]
    # pinned: a rebuild works without the find-links directory
    import shutil

    shutil.rmtree(links)
    tree.sage("-f", "epsilon")
    assert tree.python("import epsilon").returncode == 0


def test_job_budget_follows_make():
    from sage_build.base.makeflags import job_budget

    assert job_budget({"MAKEFLAGS": " -j3 --jobserver-auth=3,4"}) == 3
    assert job_budget({"MAKEFLAGS": "k -j12 --jobserver-auth=fifo:/tmp/x"}) == 12
    assert job_budget({"MAKEFLAGS": "", "SAGE_NUM_THREADS": "5"}) == 5
    assert job_budget({}) == 1


def test_builds_see_the_job_budget_keep_build_and_check(tree):
    add_recipe(tree.root, "tool", version="1.0", deps="", files={
        "spkg-install.in": ('echo "jobs=$SAGE_NUM_THREADS cmake=$CMAKE_BUILD_PARALLEL_LEVEL"\n'
                            'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/share" && echo x > "$SAGE_DESTDIR$SAGE_LOCAL/share/tool"\n'),
        "spkg-check.in": "echo checking tool; test -d src\n"})
    tree.configure()
    tree.make("python3-venv")
    result = tree.make("tool", jobs=3, extra_env={"SAGE_KEEP_BUILT_SPKGS": "yes", "SAGE_CHECK": "yes"})
    log = (tree.root / "logs/pkgs/tool-1.0.log").read_text()
    assert "jobs=3 cmake=3" in log
    assert "checking tool" in log
    assert json.loads(tree.stamp("tool", "1.0").read_text())["test_result"] == "passed"
    assert (tree.prefix / "var/tmp/sage/build/tool-1.0/src").is_dir()  # -s / SAGE_KEEP_BUILT_SPKGS
    assert result.returncode == 0


def test_sage_python_and_shell_use_the_prefix(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": "A = 7\n"})
    tree.configure()
    tree.make("build")
    result = tree.sage("--python", "-c", "import alpha, sys; print(alpha.A, sys.prefix)")
    assert result.stdout.split() == ["7", str(tree.prefix)]
    shell = subprocess.run([sys.executable, str(ROOT / "sage"), "-sh", "-c", "echo $SAGE_LOCAL; command -v python3"],
                           env=dict(tree.env, SHELL="/bin/bash"), capture_output=True, text=True)
    assert shell.stdout.split() == [str(tree.prefix), str(tree.prefix / "bin" / "python3")]


_LATER_MODULES = ("installer", "jinja2", "packaging.requirements", "pyproject_hooks")
_PRELOADED = ("installer",)


def test_sage_spkg_starts_without_the_later_phases_modules_and_preloads_them():
    """sage-spkg starts once per package: installer, jinja2 and packaging's requirement parser
    (60-70 ms together) are not on every package's start-up path; installer loads in a background
    thread (the build loads the others while the backend starts); spkg-piprm is rendered without
    jinja2 (issue #19), so nothing loads it."""
    code = f"""
import sys
from pathlib import Path
import sage_build.pipeline.spkg as spkg
print(sorted(m for m in {_LATER_MODULES!r} if m in sys.modules))
spkg.preload().join()
print(sorted(m for m in {_PRELOADED!r} if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.splitlines()
    assert before == "[]"
    assert after == repr(sorted(_PRELOADED))
    assert "jinja2" not in after


def test_exit_now_flushes_the_standard_streams_and_keeps_the_code():
    code = ("import sys; from sage_build.base.quick_exit import exit_now; print('x' * 1000, end='');"
            " sys.stderr.write('done'); exit_now(3)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as under make
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**env, "PYTHONPATH": str(ROOT / "src")})
    assert result.returncode == 3
    assert result.stdout == "x" * 1000
    assert result.stderr == "done"


# What a wheel-kind package's sage-spkg does not need (issue #19): argparse for make's one-word
# call, the dependency graph, unpacking, TOML, packaging's parsers, jinja2 for spkg-piprm.
_NOT_ON_THE_WHEEL_PATH = ("argparse", "sage_build.recipes.graph", "sage_build.pipeline.unpack", "tarfile",
                          "tomllib", "packaging.tags", "packaging.version", "jinja2", "platform")


def test_a_wheel_kind_package_loads_only_what_it_needs(tree):
    wheel = make_wheel(tree.root / "tmp", "lean", "1.0", {"lean/__init__.py": b"L = 1\n"})
    add_recipe(tree.root, "lean", version="1.0", tarball=wheel)
    tree.configure()
    tree.make("python3-venv")
    result = tree.make("lean", extra_env={"PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.split("|")[2].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:") and line.count("|") == 2}
    assert "sage_build.pipeline.spkg" in imported and "installer" in imported  # the report is read
    assert sorted(m for m in _NOT_ON_THE_WHEEL_PATH if m in imported) == []
    assert tree.python("import lean; print(lean.L)").stdout.strip() == "1"
    assert (tree.prefix / "var/lib/sage/scripts/lean/spkg-piprm").is_file()


def test_make_s_one_word_call_reads_its_arguments_as_argparse_does():
    from sage_build.face.spkg_command import make_call_arguments, parse_arguments

    for name in ("six", "python3-venv", "a.b_c", "x y"):
        assert vars(make_call_arguments(name)) == vars(parse_arguments([name]))
