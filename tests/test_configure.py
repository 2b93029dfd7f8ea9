"""configure.py: options, system detection, output, the generated Makefile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, Tree, add_recipe, fake_system_python, python_recipe


def _config(tree):
    return json.loads((tree.root / "build" / "make" / "config.json").read_text())


def test_help_is_autoconf_style(tree):
    result = subprocess.run([sys.executable, str(ROOT / "configure.py"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for option in ("--prefix=DIR", "--with-python=PATH", "--enable-PKG", "--disable-PKG",
                   "--with-system-PKG", "--upstream-dir=DIR", "--mirror=URL"):
        assert option in result.stdout


def test_options_are_recorded(tree, tmp_path):
    add_recipe(tree.root, "opt", type_="optional")
    add_recipe(tree.root, "std")
    tree.configure("--with-python", sys.executable, f"--upstream-dir={tmp_path / 'up'}",
                   "--mirror=http://127.0.0.1:9/a", "--mirror", "http://127.0.0.1:9/b",
                   "--enable-opt", "--disable-std")
    config = _config(tree)
    assert config["prefix"] == str(tree.prefix)
    assert config["python"] == str(sys.executable)
    assert config["upstream_dir"] == str(tmp_path / "up")
    assert config["mirrors"] == ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    assert config["enable"] == {"opt": "yes", "std": "no"}
    makefile = (tree.root / "build/make/Makefile").read_text()
    assert "ENABLED_PACKAGES := opt\n" in makefile


def test_default_prefix_is_local(tree):
    add_recipe(tree.root, "std")
    result = subprocess.run([sys.executable, str(ROOT / "configure.py"), "--quiet"], env=tree.env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert _config(tree)["prefix"] == str(tree.root / "local")


def test_optional_default_is_if_installed(tree):
    add_recipe(tree.root, "opt", type_="optional", version="1.0")
    tree.configure()
    assert "ENABLED_PACKAGES := \n" in (tree.root / "build/make/Makefile").read_text()
    stamp = tree.stamp("opt", "1.0")
    stamp.parent.mkdir(parents=True)
    stamp.write_text("{}")
    tree.configure()
    assert "ENABLED_PACKAGES := opt\n" in (tree.root / "build/make/Makefile").read_text()


@pytest.mark.parametrize("args,message", [
    (["--bogus"], "unrecognized option: '--bogus'"),
    (["--enable-ghost"], "no package 'ghost'"),
    (["--with-system-ghost=yes"], "no package 'ghost'"),
    (["--enable-std=maybe"], "'maybe' is not one of yes, no, if_installed"),
    (["--with-system-std=perhaps"], "'perhaps' is not one of yes, no, force"),
    (["--with-python=/nonexistent/python3"], "cannot run the Python interpreter /nonexistent/python3"),
    (["--with-system-std=yes"], "no way to detect a system version"),
    (["--prefix"], "option --prefix needs a value"),
])
def test_bad_options_fail_and_write_nothing(tree, args, message):
    add_recipe(tree.root, "std")
    result = tree.configure(*args, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert "nothing was written" in result.stderr
    assert not (tree.root / "build" / "make").exists()


def test_bad_recipe_fails_and_keeps_old_configuration(tree):
    add_recipe(tree.root, "std")
    tree.configure()
    before = (tree.root / "build/make/Makefile").read_text()
    add_recipe(tree.root, "broken", deps="ghost")
    result = tree.configure(check=False)
    assert result.returncode == 1
    assert "package 'broken'" in result.stderr and "'ghost'" in result.stderr
    assert (tree.root / "build/make/Makefile").read_text() == before


def _system_recipe(tree, name, checks):
    add_recipe(tree.root, name, version="1.0", files={
        "spkg-configure.yaml": checks, "spkg-install.in": "true\n", "distros/debian.txt": f"lib{name}-dev\n"})


def test_system_detection_present_absent_too_old(tree):
    _system_recipe(tree, "present", "executable: make >= 3.0\n")
    _system_recipe(tree, "tooold", "executable: make >= 999\n")
    _system_recipe(tree, "absent", "executable: no-such-program-here\n")
    _system_recipe(tree, "header", "header: stdio.h\n")
    result = tree.configure("--with-system-present", "--with-system-tooold=yes", "--with-system-absent=yes",
                            "--with-system-header=yes", "--quiet")
    config = _config(tree)
    assert config["from_system"] == ["header", "present"]
    makefile = (tree.root / "build/make/Makefile").read_text()
    assert "inst_present := \n" in makefile  # no stamp: nothing to build
    assert "inst_tooold := $(INST)/tooold-1.0" in makefile
    # the table tells why
    result = tree.configure("--with-system-present", "--with-system-tooold=yes", "--with-system-absent=yes",
                            quiet=False)
    assert "too old (need >= 999)" in result.stdout
    assert "no program 'no-such-program-here'" in result.stdout
    assert "from system (make" in result.stdout


def test_force_fails_naming_every_missing_package(tree):
    _system_recipe(tree, "tooold", "executable: make >= 999\n")
    _system_recipe(tree, "absent", "pkgconfig: no-such-module >= 1\n")
    result = tree.configure("--with-system-tooold=force", "--with-system-absent=force", check=False)
    assert result.returncode == 1
    assert "tooold: make" in result.stderr and "absent: pkg-config module 'no-such-module' not found" in result.stderr \
        or "absent: pkg-config is not installed" in result.stderr
    assert not (tree.root / "build" / "make").exists()


def test_python_system_detection(tree, tmp_path):
    # The "system" Python has packaging 21.0 and jinja2 3.0: present; a too new requirement: too old.
    python, _ = fake_system_python(tmp_path / "system", {"packaging": "21.0", "jinja2": "3.0"})
    add_recipe(tree.root, "packaging", version="1.0", install_requires="packaging >=20")
    add_recipe(tree.root, "jinja2", version="1.0", install_requires="jinja2 >=999")
    add_recipe(tree.root, "nosuch", version="1.0", install_requires="no-such-distribution-xyz")
    result = tree.configure("--with-python", str(python), "--with-system-packaging", "--with-system-jinja2",
                            "--with-system-nosuch", quiet=False)
    config = _config(tree)
    assert config["from_system"] == ["packaging"]
    assert config["system_site_packages"] is True
    assert "does not satisfy jinja2>=999" in result.stdout
    assert "no-such-distribution-xyz is not installed" in result.stdout


def test_table_and_system_install_command(tree):
    _system_recipe(tree, "foo", "executable: no-such-program-here\n")
    add_recipe(tree.root, "opt", type_="optional")
    result = tree.configure(quiet=False)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["package", "kind", "version", "status"]
    assert any(line.startswith("opt") and "use ./sage -i opt" in line for line in lines)
    assert any(line.startswith("foo") and "build from source" in line for line in lines)
    from sage_build.recipes.distros import guess_package_system

    if guess_package_system(os.environ) == "debian":
        assert "apt-get install libfoo-dev" in result.stdout


def test_makefile_targets_and_order(tree):
    python_recipe(tree.root, "base", "1.0", {"base/__init__.py": ""})
    python_recipe(tree.root, "mid", "1.0", {"mid/__init__.py": ""}, deps="$(PYTHON) base")
    python_recipe(tree.root, "top", "1.0", {"top/__init__.py": ""}, deps="$(PYTHON) mid | base")
    tree.configure()
    makefile = (tree.root / "build/make/Makefile").read_text()
    for target in ("top:", "top-no-deps:", "top-uninstall:", "top-clean:", "build:", "download:", "list:"):
        assert f"\n{target}" in makefile
    assert "$(inst_top): $(HASHES)/top $(PYTHON) $(inst_mid) | $(inst_base)" in makefile
    dry = tree.make("-n", "build").stdout
    commands = [line.split()[-1] for line in dry.splitlines() if line.startswith(f"{sys.executable} -S {ROOT}/build/bin/sage-spkg")]
    assert commands == ["python3-venv", "base", "mid", "top"]
    assert "not run" not in dry  # make -n starts no sage-spkg at all (PLUS)
    assert not tree.prefix.exists()  # -n built nothing
    listed = tree.make("list").stdout.split()
    assert listed == ["base", "mid", "top"]


def test_touched_recipe_rebuilds_nothing_changed_recipe_rebuilds(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    tree.configure()
    tree.make("build")
    assert "sage-spkg" not in tree.make("build").stdout
    time.sleep(1.1)
    os.utime(tree.root / "build/pkgs/alpha/type")
    assert "sage-spkg alpha" not in tree.make("build").stdout
    time.sleep(1.1)
    (tree.root / "build/pkgs/alpha/SPKG.rst").write_text("alpha\n=====\n")  # not a build input (#20)
    assert "sage-spkg alpha" not in tree.make("build").stdout
    time.sleep(1.1)
    (tree.root / "build/pkgs/alpha/spkg-check").write_text("true\n")
    assert "sage-spkg alpha" in tree.make("build").stdout


def test_make_q_agrees_that_nothing_is_to_do_after_a_reconfigure(tree):
    # configure re-checks every recipe's hash; that must not make `make -q` (or `make -n`)
    # believe the recipe hashes are out of date.
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    tree.configure()
    tree.make("build")
    time.sleep(1.1)
    tree.configure()
    assert tree.make("-q", "build", check=False).returncode == 0
    assert "sage-spkg" not in tree.make("-n", "build").stdout


def test_reconfigure_repeats_the_last_call(tree):
    add_recipe(tree.root, "opt", type_="optional")
    tree.configure("--enable-opt")
    (tree.root / "build/make/Makefile").unlink()
    result = subprocess.run([str(ROOT / "build/bin/sage-reconfigure"), "--quiet"], env=tree.env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ENABLED_PACKAGES := opt\n" in (tree.root / "build/make/Makefile").read_text()


def test_optional_recipe_with_a_bad_name_is_skipped_with_a_warning(tree):
    # Sage's rule for names (^[a-z0-9_][a-z0-9_.]*$); make cannot take the others as targets.
    add_recipe(tree.root, "std")
    add_recipe(tree.root, "_prereq")
    add_recipe(tree.root, "4ti2", type_="optional")
    add_recipe(tree.root, "_python3.12", type_="optional")
    for bad in ("vic tim", "-victim", "a:b", "x$y", "x#y", "Upper"):
        add_recipe(tree.root, bad, type_="optional")
    add_recipe(tree.root, "exp-tl", type_="experimental")
    result = tree.configure()
    for bad in ("vic tim", "-victim", "a:b", "x$y", "x#y", "Upper", "exp-tl"):
        assert f"build/pkgs/{bad}: skipped" in result.stderr, result.stderr
    assert "rename the directory" in result.stderr
    makefile = (tree.root / "build/make/Makefile").read_text()
    for good in ("std", "_prereq", "4ti2", "_python3.12"):
        assert f"inst_{good} :=" in makefile
    assert "vic" not in makefile and "x$y" not in makefile and "a:b" not in makefile
    # the other recipes stay usable: make parses the generated Makefile, and the top-level
    # Makefile's rule for regenerating it does not break on these directory names either
    assert tree.make("-n", "build").returncode == 0
    tree.top_level()
    top = subprocess.run(["make", "-n", "-C", str(tree.root), "reconfigure"], env=tree.env,
                         capture_output=True, text=True)
    assert top.returncode == 0, top.stderr
    # every tool agrees: the skipped recipe is no package (./sage -i says why)
    result = tree.sage("-i", "a:b", check=False)
    assert result.returncode == 1 and "'a:b' is not a valid package name" in result.stderr


@pytest.mark.parametrize("bad", ["x;y", "x|y"])
def test_an_optional_recipe_named_with_a_make_separator_does_not_break_the_top_level_make(tree, bad):
    """The top-level Makefile's rule for regenerating build/make/Makefile lists every recipe file
    as a prerequisite and drops only the words with ':' or '$': a directory named 'x;y' (';'
    starts a recipe on the rule line) or 'x|y' ('|' starts order-only prerequisites) makes
    'build/pkgs/x' a prerequisite, and every goal (make build, make six) fails with
    'no rule to make .../build/pkgs/x (a missing file)'. Found by the #14 verification."""
    add_recipe(tree.root, "std")
    add_recipe(tree.root, bad, type_="optional")
    result = tree.configure()
    assert f"build/pkgs/{bad}: skipped" in result.stderr, result.stderr
    tree.top_level()
    # the goal every forwarded goal makes first: the generated Makefile, up to date here
    top = subprocess.run(["make", "-C", str(tree.root), str(tree.root / "build" / "make" / "Makefile")],
                         env=tree.env, capture_output=True, text=True)
    assert top.returncode == 0, top.stderr
    assert "missing file" not in top.stderr


def _marker_recipe(tree):
    """A script package whose spkg-install leaves a mark outside the prefix when it really runs."""
    marker = tree.root / "spkg-install-ran"
    add_recipe(tree.root, "scripted", deps="", files={
        "spkg-install": f"touch {marker}\nmkdir -p $SAGE_DESTDIR$SAGE_LOCAL/share\n"
                        "echo x > $SAGE_DESTDIR$SAGE_LOCAL/share/scripted.txt\n"})
    return marker


def test_dry_runs_build_and_install_nothing(tree):
    """make -n, -q and -t run no build (Sage's PLUS, Trac #33125) and answer truthfully (#16)."""
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    marker = _marker_recipe(tree)
    tree.configure()
    inst = tree.prefix / "var/lib/sage/installed"
    dry = tree.make("-n", "build")
    assert "sage-spkg scripted" in dry.stdout and "sage-spkg alpha" in dry.stdout
    assert "not run" not in dry.stdout  # sage-spkg was not even started
    assert not marker.exists() and not tree.prefix.exists()
    # -q: nothing runs, and the answer is "out of date"
    query = tree.make("-q", "build", check=False)
    assert query.returncode == 1, query.stdout + query.stderr
    assert not marker.exists() and not tree.prefix.exists() and query.stdout == ""
    # -t: nothing is built, and no stamp claims a package that was never installed: make -t
    # cannot mark a package installed, and says so
    touch = tree.make("-t", "build", check=False)
    assert touch.returncode != 0 and "neither built nor marked installed" in touch.stderr, touch.stderr
    assert not marker.exists(), touch.stdout
    assert not inst.exists() or not any(inst.iterdir()), sorted(inst.iterdir())
    assert tree.make("-q", "build", check=False).returncode == 1
    # a real build after them builds both
    tree.make("build")
    assert marker.exists() and tree.stamp("alpha", "1.0").exists() and tree.stamp("scripted", "none").exists()
    assert tree.make("-q", "build", check=False).returncode == 0
    # a changed recipe: -q says so, -t does not hide it from the next real build
    marker.unlink()
    time.sleep(1.1)
    (tree.root / "build/pkgs/scripted/spkg-check").write_text("true\n")  # a build input (SPKG.rst is not: #20)
    assert tree.make("-q", "build", check=False).returncode == 1
    tree.make("-t", "build", check=False)
    assert not marker.exists()
    assert tree.make("-q", "build", check=False).returncode == 1
    assert "sage-spkg scripted" in tree.make("build").stdout and marker.exists()


def test_dry_run_uninstall_removes_nothing(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    tree.configure()
    tree.make("build")
    for flag in ("-n", "-q", "-t"):
        tree.make(flag, "alpha-uninstall", check=False)
        assert tree.stamp("alpha", "1.0").exists(), flag
        assert (tree.site_packages() / "alpha" / "__init__.py").exists(), flag


def test_top_level_dry_runs_build_nothing_and_answer(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    marker = _marker_recipe(tree)
    tree.configure()
    run = tree.top_level()
    dry = run("-n", "build")
    assert dry.returncode == 0 and "sage-spkg scripted" in dry.stdout, dry.stdout + dry.stderr
    assert run("-q", "build").returncode == 1
    assert run("-t", "build").returncode != 0
    assert not marker.exists() and not tree.prefix.exists()
    assert not (tree.root / "logs").exists()  # no progress display, no events: nothing ran
    assert run("build").returncode == 0 and marker.exists()
    query = run("-q", "build")
    assert query.returncode == 0, query.stdout + query.stderr
    # a stale Makefile: -n and -q do not configure, -q says so
    time.sleep(1.1)
    makefile = tree.root / "build/make/Makefile"
    before = makefile.stat().st_mtime_ns
    (tree.root / "build/pkgs/alpha/package-version.txt").write_text("1.1\n")
    assert run("-q", "build").returncode == 1
    assert run("-n", "build").returncode == 0
    assert makefile.stat().st_mtime_ns == before


def test_distclean_removes_only_what_configure_generated(tree):
    """A Sage tree tracks build/make/Makefile.in (and more): distclean leaves them (#16)."""
    add_recipe(tree.root, "scripted", deps="", files={"spkg-install": "true\n"})
    # a Makefile.in that says nothing else makes PYTHON_TOOLCHAIN empty (without it configure
    # stops at a KeyError in recipes/graph.py: left to the dependency work)
    tracked = {"build/make/Makefile.in": "# Sage's\nPYTHON_TOOLCHAIN =\n", "build/make/install": "#!/bin/sh\n",
               "build/make/deps": "# deps\n"}
    for rel, text in tracked.items():
        (tree.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree.root / rel).write_text(text)
    tree.configure()
    run = tree.top_level()
    assert (tree.root / "build/make/Makefile").exists() and (tree.root / "build/make/hashes").exists()
    result = run("distclean")
    assert result.returncode == 0, result.stderr
    for rel, text in tracked.items():
        assert (tree.root / rel).read_text() == text, rel
    assert sorted(p.name for p in (tree.root / "build/make").iterdir()) == ["Makefile.in", "deps", "install"]
    # in our own layout, where build/make holds only what configure wrote, it goes
    other = Tree(tree.root.parent / "other")
    add_recipe(other.root, "scripted", deps="", files={"spkg-install": "true\n"})
    other.configure()
    assert other.top_level()("distclean").returncode == 0
    assert not (other.root / "build/make").exists()


def _make_database(tree, **env) -> str:
    make_env = dict(tree.env, **env)
    return subprocess.run(["make", "-pq", "-f", str(tree.root / "build/make/Makefile"), "list"],
                          env=make_env, capture_output=True, text=True).stdout


def test_make_gets_sages_tokens_with_sages_meaning(tree):
    """#16: a make expression's package names stand for stamps (Sage's pkg_deps), file paths and
    FORCE are prerequisites as written, dependencies_check counts when SAGE_CHECK asks for it."""
    add_recipe(tree.root, "isl", deps="", version="1.0")
    add_recipe(tree.root, "pytest", deps="", version="2.0")
    add_recipe(tree.root, "gcc", deps="$(if $(SAGE_ROOT),isl) $(SAGE_ROOT)/build/pkgs/gcc/type FORCE",
               version="3.0", files={"dependencies_check": "pytest\n"})
    tree.configure()
    inst = tree.prefix / "var/lib/sage/installed"
    rule = next(line for line in _make_database(tree).splitlines() if line.startswith(f"{inst}/gcc-3.0:"))
    assert f"{inst}/isl-1.0" in rule and f"{tree.root}/build/pkgs/gcc/type" in rule and " FORCE" in rule
    assert f"{inst}/pytest-2.0" not in rule
    rule = next(line for line in _make_database(tree, SAGE_CHECK="yes").splitlines()
                if line.startswith(f"{inst}/gcc-3.0:"))
    assert f"{inst}/pytest-2.0" in rule


def test_configure_lists_every_broken_recipe_and_leaves_out_optional_ones(tree):
    add_recipe(tree.root, "good", deps="")
    add_recipe(tree.root, "opt", type_="optional", deps="a:b")
    result = tree.configure(check=False)
    assert result.returncode == 0, result.stderr
    assert "opt/dependencies, line 1" in result.stderr and "left out" in result.stderr
    add_recipe(tree.root, "std1", deps="x;y")
    add_recipe(tree.root, "std2", deps="ghost")
    result = tree.configure(check=False)
    assert result.returncode == 1
    assert "3 recipes cannot be used" in result.stderr
    assert "std1/dependencies, line 1" in result.stderr and "'ghost'" in result.stderr
    assert "opt/dependencies, line 1" in result.stderr


def test_summary_names_wheels_counts_the_venv_and_knows_when_make_runs_it(tree):
    from conftest import make_wheel

    python_recipe(tree.root, "srcpkg", "1.0", {"srcpkg/__init__.py": ""})
    wheel = make_wheel(tree.root / "upstream" / "made", "whlpkg", "1.0", {"whlpkg/__init__.py": b""})
    add_recipe(tree.root, "whlpkg", version="1.0", tarball=wheel)
    out = tree.configure(quiet=False).stdout
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("srcpkg", "whlpkg"))}
    assert rows["srcpkg"].endswith("build from source") and rows["whlpkg"].endswith("install its wheel")
    assert "2 packages enabled (make builds 3: these and the virtual environment python3-venv)" in out
    assert "1 to build from source, 1 wheels to install" in out
    assert out.rstrip().endswith("now run `make build`")
    by_make = subprocess.run([sys.executable, str(ROOT / "configure.py"), f"--prefix={tree.prefix}"],
                             env=dict(tree.env, MAKELEVEL="1"), capture_output=True, text=True)
    assert by_make.stdout.rstrip().endswith("make goes on with the build")
