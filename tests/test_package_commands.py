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
    assert (recipe / "dependencies").read_text() == "$(PYTHON) alpha | $(PYTHON_TOOLCHAIN)\n"
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
