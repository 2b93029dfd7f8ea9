"""./sage --package: list, properties, dependencies, download, fix-checksum, create, update."""

from __future__ import annotations

import json

import pytest

from conftest import add_recipe, make_sdist, python_recipe, sha256


@pytest.fixture
def configured(tree):
    python_recipe(tree.root, "alpha", "1.0", {"alpha/__init__.py": ""})
    python_recipe(tree.root, "beta", "2.0", {"beta/__init__.py": ""}, deps="$(PYTHON) alpha | $(PYTHON_TOOLCHAIN)")
    add_recipe(tree.root, "opt", type_="optional", files={"distros/debian.txt": "python3-opt\n",
                                                           "SPKG.rst": "opt\n===\n\nLicense\n-------\n\nMIT\n"})
    tree.configure()
    return tree


def test_list_filters_and_json(configured):
    tree = configured
    assert tree.sage("--package", "list").stdout.split() == ["alpha", "beta", "opt"]
    assert tree.sage("--package", "list", ":optional:").stdout.split() == ["opt"]
    assert tree.sage("--package", "list", ":standard:").stdout.split() == ["alpha", "beta"]
    assert tree.sage("--package", "list", "--has-file", "SPKG.rst").stdout.split() == ["opt"]
    assert tree.sage("--package", "list", ":installed:").stdout.split() == []
    data = json.loads(tree.sage("--package", "list", "--format", "json").stdout)
    assert [d["name"] for d in data] == ["alpha", "beta", "opt"]
    tree.make("alpha")
    assert tree.sage("--package", "list", ":installed:").stdout.split() == ["alpha"]


def test_properties_json(configured):
    props = json.loads(configured.sage("--package", "properties", "beta", "opt", "--format", "json").stdout)
    beta = props["beta"]
    assert beta["kind"] == "normal" and beta["type"] == "standard" and beta["version"] == "2.0"
    assert beta["tarball"] == "beta-2.0.tar.gz"
    assert beta["checksums"]["sha256"] == sha256(configured.root / "upstream" / "beta-2.0.tar.gz")
    assert beta["dependencies"]["normal"] == ["python3-venv", "alpha"]
    assert props["opt"]["distros"] == {"debian": ["python3-opt"]}
    assert props["opt"]["license"] == "MIT"
    plain = configured.sage("--package", "properties", "beta").stdout
    assert "kind_beta='normal'" in plain


def test_dependencies(configured):
    assert configured.sage("--package", "dependencies", "beta").stdout.strip() == "beta: python3-venv alpha"
    out = configured.sage("--package", "dependencies", "--recursive", "beta").stdout.strip()
    assert out == "beta: alpha"


def test_unknown_package(configured):
    result = configured.sage("--package", "properties", "ghost", check=False)
    assert result.returncode == 1 and "no such package: ghost" in result.stderr


def test_download_and_fix_checksum(configured):
    tree = configured
    recipe = tree.root / "build/pkgs/alpha"
    good = (recipe / "checksums.ini").read_text()
    (recipe / "checksums.ini").write_text("tarball=alpha-VERSION.tar.gz\nsha256=" + "1" * 64 + "\n")
    result = tree.sage("--package", "download", "alpha", check=False)
    assert result.returncode == 1 and "fix-checksum" in result.stderr
    # the mismatching cached file was moved aside; put it back and fix the recipe
    bad = next((tree.root / "upstream").glob("alpha-1.0.tar.gz.bad-*"))
    bad.rename(tree.root / "upstream" / "alpha-1.0.tar.gz")
    tree.sage("--package", "fix-checksum", "alpha")
    assert (recipe / "checksums.ini").read_text() == good
    assert "alpha-1.0.tar.gz" in tree.sage("--package", "download", "alpha").stdout


def test_download_all_continue_summarises_failures(configured):
    tree = configured
    (tree.root / "upstream" / "beta-2.0.tar.gz").unlink()
    result = tree.sage("--package", "download", "--all", "--on-error=continue", check=False)
    assert result.returncode == 1
    assert "1 of 3 packages could not be downloaded" in result.stderr
    assert "beta:" in result.stderr


def _local_index(root, files):
    """A PEP 503 index in a directory, served through file:// URLs."""
    simple = root / "simple"
    for project, paths in files.items():
        page = simple / project
        page.mkdir(parents=True)
        links = "".join(f'<a href="{p.as_uri()}#sha256={sha256(p)}">{p.name}</a>\n' for p in paths)
        (page / "index.html").write_text(f"<html><body>{links}</body></html>")
    return simple


def test_create_and_update_from_index(configured, tmp_path, monkeypatch):
    tree = configured
    v1 = make_sdist(tmp_path / "files", "zeta", "1.0", {"zeta/__init__.py": ""}, requires="alpha")
    v2 = make_sdist(tmp_path / "files", "zeta", "1.1", {"zeta/__init__.py": ""}, requires="alpha")
    # the sdists need PKG-INFO for create to read the metadata
    import io
    import tarfile

    for path, version in ((v1, "1.0"), (v2, "1.1")):
        with tarfile.open(path) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
        with tarfile.open(path, "w:gz") as tar:
            for member, data in members:
                tar.addfile(member, io.BytesIO(data))
            info = f"Metadata-Version: 2.1\nName: zeta\nVersion: {version}\nSummary: Z\nLicense: MIT\nRequires-Dist: alpha\n"
            member = tarfile.TarInfo(f"zeta-{version}/PKG-INFO")
            member.size = len(info)
            tar.addfile(member, io.BytesIO(info.encode()))
    index = _local_index(tmp_path, {"zeta": [v1, v2]})
    tree_env = {"PIP_INDEX_URL": index.as_uri(), "PIP_CONFIG_FILE": "/dev/null", "PIP_FIND_LINKS": "",
                "PIP_EXTRA_INDEX_URL": ""}
    for key, value in tree_env.items():
        monkeypatch.setenv(key, value)
    tree.sage("--package", "create", "zeta", "--pypi", "--version", "1.0")
    recipe = tree.root / "build/pkgs/zeta"
    assert (recipe / "package-version.txt").read_text() == "1.0\n"
    assert (recipe / "checksums.ini").read_text() == f"tarball=zeta-VERSION.tar.gz\nsha256={sha256(v1)}\n"
    assert (recipe / "install-requires.txt").read_text() == "zeta >=1.0\n"
    assert (recipe / "dependencies").read_text().splitlines()[0] == "$(PYTHON) alpha | $(PYTHON_TOOLCHAIN)"
    assert "MIT" in (recipe / "SPKG.rst").read_text()
    tree.sage("--package", "update", "zeta", "1.1")
    assert (recipe / "checksums.ini").read_text() == f"tarball=zeta-VERSION.tar.gz\nsha256={sha256(v2)}\n"
    tree.configure()
    tree.make("zeta")
    assert tree.python("import zeta").returncode == 0


def test_list_into_a_closed_pipe_is_quiet(configured):
    """`./sage --package list --format json | head -c 10`: no BrokenPipeError traceback (#16)."""
    import subprocess
    import sys

    from conftest import ROOT

    for _ in range(30):
        add_recipe(configured.root, f"filler{_}", type_="optional")
    shell = f"'{sys.executable}' '{ROOT / 'sage'}' --package list --format json | head -c 10 >/dev/null"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], env=configured.env,
                            capture_output=True, text=True)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.stderr == ""


def test_license_is_the_text_without_the_list_marker(tree):
    """SPKG.rst's License section as Sage writes it: a bullet list, several lines, several licenses (#16)."""
    spkg = ("gmp: Library\n=============\n\nDescription\n-----------\n\nGMP.\n\nLicense\n-------\n\n"
            "-  LGPL V3\n\n\nUpstream Contact\n----------------\n\n-  http://example.org\n")
    add_recipe(tree.root, "gmpish", files={"SPKG.rst": spkg})
    add_recipe(tree.root, "two", files={"SPKG.rst": "two\n===\n\nLicense\n-------\n\n* GPL v2+\n* BSD\n"})
    add_recipe(tree.root, "wrapped", files={"SPKG.rst": "wrapped\n=======\n\nLicense\n-------\n\n"
                                            "Modified BSD, with the\nexception below.\n\nOther\n-----\n"})
    add_recipe(tree.root, "upper", files={"SPKG.rst": "upper\n=====\n\nLICENSE\n=======\n\nApache-2.0\n"})
    tree.configure()
    props = json.loads(tree.sage("--package", "properties", "gmpish", "two", "wrapped", "upper",
                                 "--format", "json").stdout)
    assert props["gmpish"]["license"] == "LGPL V3"
    assert props["two"]["license"] == "GPL v2+; BSD"
    assert props["wrapped"]["license"] == "Modified BSD, with the exception below."
    assert props["upper"]["license"] == "Apache-2.0"


def _sdist_with_metadata(directory, name, version, metadata, *, build_requires="", setup_py_only=False):
    """A fixture-backend sdist with PKG-INFO (``metadata``: extra header lines); ``setup_py_only``:
    without pyproject.toml, as a project that has only setup.py."""
    import io
    import tarfile

    path = make_sdist(directory, name, version, {f"{name}/__init__.py": ""}, build_requires=build_requires)
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members:
            if setup_py_only and member.name.endswith("/pyproject.toml"):
                continue
            tar.addfile(member, io.BytesIO(data))
        info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: S\nLicense: MIT\n{metadata}"
        member = tarfile.TarInfo(f"{name}-{version}/PKG-INFO")
        member.size = len(info.encode())
        tar.addfile(member, io.BytesIO(info.encode()))
    return path


def _use_index(monkeypatch, index):
    for key, value in {"PIP_INDEX_URL": index.as_uri(), "PIP_CONFIG_FILE": "/dev/null", "PIP_FIND_LINKS": "",
                       "PIP_EXTRA_INDEX_URL": ""}.items():
        monkeypatch.setenv(key, value)


def test_create_reads_markers_and_build_requires(configured, tmp_path, monkeypatch):
    """#23 item 1: markers for any supported Python kept, Windows-only and extras dropped,
    build-system.requires order-only after $(PYTHON_TOOLCHAIN), missing recipes named with the command."""
    tree = configured
    files = tmp_path / "files"
    tq = _sdist_with_metadata(files, "tq", "4.0", (
        'Requires-Dist: alpha\n'
        'Requires-Dist: colorama; platform_system == "Windows"\n'
        'Requires-Dist: winonly; sys_platform == "win32"\n'
        'Requires-Dist: gamma; python_version < "3.11"\n'
        'Requires-Dist: pytest; extra == "test"\n'), build_requires="setuptools>=61, hatchling")
    gamma = _sdist_with_metadata(files, "gamma", "0.5", "", setup_py_only=True)
    _use_index(monkeypatch, _local_index(tmp_path, {"tq": [tq], "gamma": [gamma]}))
    result = tree.sage("--package", "create", "tq", "--pypi")
    recipe = tree.root / "build/pkgs/tq"
    deps = (recipe / "dependencies").read_text()
    assert deps.splitlines()[0] == "$(PYTHON) alpha gamma | $(PYTHON_TOOLCHAIN) setuptools hatchling"
    assert 'gamma; python_version < "3.11"' in deps
    assert "colorama" not in deps.splitlines()[0] and "winonly" not in deps.splitlines()[0]
    assert "pytest" not in deps.splitlines()[0]
    assert "./sage --package create gamma --pypi" in result.stderr
    assert "./sage --package create setuptools --pypi" in result.stderr
    assert "alpha" not in result.stderr
    assert not (tree.root / "build/pkgs/gamma").exists()


def test_create_with_deps_creates_requirements_recursively(configured, tmp_path, monkeypatch):
    tree = configured
    files = tmp_path / "files"
    top = _sdist_with_metadata(files, "top", "1.0", "Requires-Dist: mid\n")
    mid = _sdist_with_metadata(files, "mid", "2.0", "Requires-Dist: leaf>=1\n")
    leaf = _sdist_with_metadata(files, "leaf", "3.0", "Requires-Dist: top\n", setup_py_only=True)
    add_recipe(tree.root, "setuptools", version="1")
    _use_index(monkeypatch, _local_index(tmp_path, {"top": [top], "mid": [mid], "leaf": [leaf]}))
    tree.sage("--package", "create", "top", "--pypi", "--with-deps")
    pkgs = tree.root / "build/pkgs"
    assert (pkgs / "top/dependencies").read_text().splitlines()[0] == "$(PYTHON) mid | $(PYTHON_TOOLCHAIN)"
    assert (pkgs / "mid/dependencies").read_text().splitlines()[0] == "$(PYTHON) leaf | $(PYTHON_TOOLCHAIN)"
    assert (pkgs / "leaf/dependencies").read_text().splitlines()[0] == \
        "$(PYTHON) top | $(PYTHON_TOOLCHAIN) setuptools"
    assert (pkgs / "leaf/package-version.txt").read_text() == "3.0\n"


def test_create_with_deps_is_all_or_nothing_and_passes_over_releases_it_cannot_build(configured, tmp_path,
                                                                                     monkeypatch):
    """A requirement the index does not have: as pip backtracks, an older release of the recipe that
    needs it is tried; when none fits, the recipes this run made go again (else configure refuses
    the whole tree: a standard recipe depending on one that does not exist)."""
    tree = configured
    files = tmp_path / "files"
    top = _sdist_with_metadata(files, "top", "1.0", "Requires-Dist: mid>=1\n")
    mid_new = _sdist_with_metadata(files, "mid", "2.0", "Requires-Dist: ghost>=1\n")
    mid_old = _sdist_with_metadata(files, "mid", "1.5", "")
    lone = _sdist_with_metadata(files, "lone", "1.0", "Requires-Dist: mid>=2\n")
    _use_index(monkeypatch, _local_index(tmp_path, {"top": [top], "mid": [mid_new, mid_old], "lone": [lone]}))
    before = sorted(p.name for p in (tree.root / "build/pkgs").iterdir())
    # mid>=2 cannot be had (its only such release needs ghost): nothing is left behind
    result = tree.sage("--package", "create", "lone", "--pypi", "--with-deps", "--type", "standard", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "mid 2.0 needs ghost>=1, which cannot be had" in result.stderr
    assert "No release of lone could be created" in result.stderr and "The tree is as before" in result.stderr
    assert sorted(p.name for p in (tree.root / "build/pkgs").iterdir()) == before
    tree.configure()
    # top accepts mid 1.5: it is taken, and said so
    made = tree.sage("--package", "create", "top", "--pypi", "--with-deps", "--type", "standard")
    assert "trying an older release of mid" in made.stderr
    assert (tree.root / "build/pkgs/mid/package-version.txt").read_text() == "1.5\n"
    tree.configure()
    tree.make("top")
    assert tree.python("import top, mid").returncode == 0

def test_create_checks_the_name_first_says_how_to_enable_and_writes_project_urls(configured, tmp_path, monkeypatch):
    """#23 item 5: an existing recipe or a bad name is refused before the index is asked; an optional
    recipe comes with the commands that enable it; SPKG.rst names the project URLs."""
    tree = configured
    files = tmp_path / "files"
    web = _sdist_with_metadata(files, "web", "1.0", "Home-page: https://web.example/\n"
                               "Project-URL: Source, https://web.example/src\n")
    _use_index(monkeypatch, _local_index(tmp_path, {"web": [web]}))
    for name, said in (("Alpha", "exists already"), ("not a name!", "is not a project name")):
        result = tree.sage("--package", "create", name, "--pypi", check=False)
        assert result.returncode == 1 and said in result.stderr, result.stderr
        assert "./sage --package" in result.stderr
    assert not list((tree.root / "upstream").glob("web*"))
    result = tree.sage("--package", "create", "web", "--pypi")
    assert "./configure.py --enable-web" in result.stdout and "./sage -i web" in result.stdout
    rst = (tree.root / "build/pkgs/web/SPKG.rst").read_text()
    assert "Upstream Contact\n----------------\n\n-  Home page: https://web.example/\n-  Source: https://web.example/src\n" in rst
    import shutil

    shutil.rmtree(tree.root / "build/pkgs/web")
    result = tree.sage("--package", "create", "web", "--pypi", "--type", "standard")
    assert "--enable-web" not in result.stdout
    assert (tree.root / "build/pkgs/web/type").read_text() == "standard\n"


def test_update_refreshes_every_file_that_names_the_version(configured, tmp_path, monkeypatch):
    """#23 item 5: install-requires.txt / version_requirements.txt and requirements.txt pins follow."""
    tree = configured
    files = tmp_path / "files"
    v1 = _sdist_with_metadata(files, "eta", "1.0", "")
    v2 = _sdist_with_metadata(files, "eta", "1.10", "")
    _use_index(monkeypatch, _local_index(tmp_path, {"eta": [v1, v2]}))
    tree.sage("--package", "create", "eta", "--pypi", "--version", "1.0")
    recipe = tree.root / "build/pkgs/eta"
    (recipe / "version_requirements.txt").write_text("# eta 1.0 needs a fix\neta >=1.0, <2\n")
    tree.sage("--package", "update", "eta", "1.10")
    assert (recipe / "package-version.txt").read_text() == "1.10\n"
    assert (recipe / "install-requires.txt").read_text() == "eta >=1.10\n"
    assert (recipe / "version_requirements.txt").read_text() == "# eta 1.0 needs a fix\neta >=1.10, <2\n"
    assert f"sha256={sha256(v2)}" in (recipe / "checksums.ini").read_text()
    pinned = add_recipe(tree.root, "pinned", type_="optional", version="2.0",
                        files={"requirements.txt": "pinned ==2.0\nother ==2.0\n"})
    tree.sage("--package", "update", "pinned", "2.1")
    assert (pinned / "requirements.txt").read_text() == "pinned ==2.1\nother ==2.0\n"
    result = tree.sage("--package", "update", "eta", "9.9", check=False)
    assert result.returncode == 1 and "./sage --package update eta 9.9" in result.stderr
    assert (recipe / "package-version.txt").read_text() == "1.10\n"


def test_a_version_conflict_is_explained_and_update_takes_a_range(configured, tmp_path, monkeypatch):
    """#23 item 2: which requirement, the version the distribution has, who else needs it, and
    the commands that resolve it; `update PKG '>=2'` finds the newest release that fits."""
    tree = configured
    python_recipe(tree.root, "needy", "1.0", {"needy/__init__.py": ""}, build_requires="alpha>=2",
                  deps="$(PYTHON) | $(PYTHON_TOOLCHAIN) alpha")
    tree.configure()
    failed = tree.make("needy", check=False)
    assert failed.returncode != 0
    log = (tree.root / "logs/pkgs/needy-1.0.log").read_text()
    assert "alpha>=2 (found 1.0): a version conflict: the distribution has alpha 1.0 (recipe alpha;" \
           " beta needs it too), needy wants alpha>=2." in log
    assert "./sage --package update alpha '>=2'" in log and "./sage --package update needy VERSION" in log

    files = tmp_path / "files"
    releases = [_sdist_with_metadata(files, "alpha", v, "") for v in ("1.0", "2.0", "2.1", "3.0a1")]
    _use_index(monkeypatch, _local_index(tmp_path, {"alpha": releases}))
    result = tree.sage("--package", "update", "alpha", ">=2,<3")
    assert "the newest release of alpha in >=2,<3 is 2.1" in result.stdout   # not the pre-release
    assert (tree.root / "build/pkgs/alpha/package-version.txt").read_text() == "2.1\n"
    for bad, message in ((">=9", "no release of alpha on the index fits >=9 (the newest: 1.0, 2.0, 2.1)"),
                         (">=2,,<", "is not a version range")):
        refused = tree.sage("--package", "update", "alpha", bad, check=False)
        assert refused.returncode == 1 and message in refused.stderr and "Traceback" not in refused.stderr
    assert (tree.root / "build/pkgs/alpha/package-version.txt").read_text() == "2.1\n"
    tree.configure()
    tree.make("needy")
    assert tree.python("import needy").returncode == 0


def test_create_source_wheel_or_sdist(configured, tmp_path, monkeypatch):
    """#23 item 1: --source wheel makes a wheel recipe from the pure-Python wheel, --source sdist
    insists on the sdist; a project without that kind of file is a clear error."""
    from conftest import make_wheel

    tree = configured
    files = tmp_path / "files"
    both = [_sdist_with_metadata(files, "theta", "1.0", ""),
            make_wheel(files, "theta", "1.0", {"theta/__init__.py": b"kind = 'wheel'\n"})]
    wheel_only = [make_wheel(files, "iota", "2.0", {"iota/__init__.py": b""})]
    _use_index(monkeypatch, _local_index(tmp_path, {"theta": both, "iota": wheel_only}))
    tree.sage("--package", "create", "theta", "--pypi", "--source", "wheel", "--type", "standard")
    recipe = tree.root / "build/pkgs/theta"
    assert (recipe / "checksums.ini").read_text().startswith("tarball=theta-VERSION-py3-none-any.whl\n")
    assert "PYTHON_TOOLCHAIN" not in (recipe / "dependencies").read_text()
    tree.configure()
    tree.make("theta")
    assert tree.python("import theta; assert theta.kind == 'wheel'").returncode == 0
    refused = tree.sage("--package", "create", "iota", "--pypi", "--source", "sdist", check=False)
    assert refused.returncode == 1 and "has no sdist of iota; try --source wheel" in refused.stderr
    assert not (tree.root / "build/pkgs/iota").exists()


def test_create_takes_a_rust_projects_platform_wheels_as_sections(configured, tmp_path, monkeypatch):
    """A project built with maturin (cargo and the crates' registry needed to build it) gets, as
    passagemath's rpds_py, a section per Linux/macOS wheel of this Python; sage-spkg installs the
    one this machine supports; other Pythons' and Windows' wheels are not listed."""
    import platform as machine_platform
    import sys

    from conftest import make_wheel

    tree = configured
    files = tmp_path / "files"
    cp = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    arch = machine_platform.machine()
    sdist = _sdist_with_metadata(files, "rusty", "1.0", "", build_requires="maturin>=1")
    wheels = {tag: make_wheel(files, "rusty", "1.0", {"rusty/__init__.py": f"tag = {tag!r}\n".encode()}, tag=tag)
              for tag in (f"{cp}-{cp}-manylinux_2_17_{arch}", f"{cp}-{cp}-macosx_11_0_arm64",
                          f"{cp}-{cp}-win_amd64", f"cp39-cp39-manylinux_2_17_{arch}")}
    _use_index(monkeypatch, _local_index(tmp_path, {"rusty": [sdist, *wheels.values()]}))
    made = tree.sage("--package", "create", "rusty", "--pypi", "--type", "standard")
    assert "builds with maturin (Rust): its recipe installs its 2 platform wheel(s)" in made.stdout
    recipe = tree.root / "build/pkgs/rusty"
    checksums = (recipe / "checksums.ini").read_text()
    listed = {tag for tag, path in wheels.items() if f"[{path.name}]" in checksums}
    assert listed == {f"{cp}-{cp}-manylinux_2_17_{arch}", f"{cp}-{cp}-macosx_11_0_arm64"}
    linux = wheels[f"{cp}-{cp}-manylinux_2_17_{arch}"]
    assert f"[{linux.name}]\ntarball={linux.name}\nsha256={sha256(linux)}\n" in checksums
    assert "PYTHON_TOOLCHAIN" not in (recipe / "dependencies").read_text().splitlines()[0]
    tree.configure()
    tree.make("rusty")
    assert tree.python(f"import rusty; assert rusty.tag == {f'{cp}-{cp}-manylinux_2_17_{arch}'!r}").returncode == 0
    # update lists the new release's wheels for the same Python, in the same way
    newer = make_wheel(files / "2", "rusty", "2.0", {"rusty/__init__.py": b"tag = 'two'\n"},
                       tag=f"{cp}-{cp}-manylinux_2_17_{arch}")
    _use_index(monkeypatch, _local_index(tmp_path / "i2", {"rusty": [sdist, *wheels.values(), newer]}))
    tree.sage("--package", "update", "rusty", "2.0")
    assert (recipe / "checksums.ini").read_text() == f"[{newer.name}]\ntarball={newer.name}\nsha256={sha256(newer)}\n"
    refused = tree.sage("--package", "update", "rusty", "3.0", check=False)
    assert refused.returncode == 1 and "no platform wheel of rusty 3.0 for Python" in refused.stderr
    assert (recipe / "package-version.txt").read_text() == "2.0\n"
    # --source sdist insists on building it
    (tree.root / "build/pkgs/rusty").rename(tmp_path / "rusty-recipe")
    tree.sage("--package", "create", "rusty", "--pypi", "--source", "sdist")
    assert (recipe / "checksums.ini").read_text().startswith("tarball=rusty-VERSION.tar.gz\n")
