"""A distribution that pip (not sage-build) installed in the prefix: `./sage -i` replaces it as
pip would, `./sage --uninstall` says how to remove it; its RECORD cannot reach outside the prefix."""

import base64
import hashlib
import subprocess
import sys

from conftest import Tree, make_wheel, python_recipe

_PIP_INSTALL = """
import sys
from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile
site, wheel, scripts, data, python = sys.argv[1:]
destination = SchemeDictionaryDestination(
    {"purelib": site, "platlib": site, "scripts": scripts, "data": data, "headers": data}, python, "posix")
with WheelFile.open(wheel) as source:
    install(source, destination, {"INSTALLER": b"pip\\n"})
"""


def _pip_install(tree: Tree, wheel) -> None:
    """What `pip install` leaves in the prefix: the wheel's files and INSTALLER 'pip'."""
    subprocess.run([sys.executable, "-c", _PIP_INSTALL, str(tree.site_packages()), str(wheel),
                    str(tree.prefix / "bin"), str(tree.prefix), str(tree.prefix / "bin/python")], check=True)


def _built_then_removed(tmp_path) -> Tree:
    tree = Tree(tmp_path / "root")
    python_recipe(tree.root, "tabulate", "1.0", {"tabulate/__init__.py": "x = 1\n"})
    tree.configure()
    tree.make("build")
    tree.sage("--uninstall", "tabulate")
    return tree


def test_install_replaces_what_pip_installed_and_uninstall_says_how(tmp_path):
    tree = _built_then_removed(tmp_path)
    _pip_install(tree, make_wheel(tmp_path / "w", "tabulate", "0.9",
                                  {"tabulate/__init__.py": b"x = 0\n", "tabulate/old_only.py": b""}))
    refused = tree.sage("--uninstall", "tabulate", check=False)
    assert refused.returncode == 1
    assert "tabulate 0.9 is in the prefix, installed by pip" in refused.stderr
    assert "-m pip uninstall tabulate" in refused.stderr and "./sage -i tabulate" in refused.stderr

    installed = tree.sage("-i", "tabulate")
    assert "replacing tabulate 0.9, which pip installed" in installed.stdout
    site = tree.site_packages()
    assert not (site / "tabulate-0.9.dist-info").exists() and not (site / "tabulate/old_only.py").exists()
    assert (site / "tabulate/__init__.py").read_text() == "x = 1\n"
    assert (site / "tabulate-1.0.dist-info/INSTALLER").read_text() == "sage-build\n"
    tree.sage("--uninstall", "tabulate")
    assert not (site / "tabulate").exists()


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def test_a_foreign_record_cannot_remove_outside_the_prefix_or_anothers_files(tmp_path):
    tree = _built_then_removed(tmp_path)
    python_recipe(tree.root, "keeper", "1.0", {"keeper/__init__.py": "", "shared/__init__.py": ""})
    tree.configure()
    tree.sage("-i", "keeper")
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    site = tree.site_packages()
    _pip_install(tree, make_wheel(tmp_path / "w", "tabulate", "0.9", {"tabulate/__init__.py": b"x = 0\n"}))
    record = site / "tabulate-0.9.dist-info/RECORD"
    relative_outside = "../" * len(site.relative_to(tmp_path).parts) + "outside.txt"
    record.write_text(record.read_text() + _record_line(relative_outside, b"precious\n") + "\n"
                      + _record_line("shared/__init__.py", b"") + "\n")
    tree.sage("-i", "tabulate")
    assert outside.read_text() == "precious\n"
    assert (site / "shared/__init__.py").exists(), "keeper's file went with the foreign distribution"
    assert (site / "tabulate/__init__.py").read_text() == "x = 1\n"


def test_a_foreign_distribution_without_record_is_a_clear_error_and_stays(tmp_path):
    tree = _built_then_removed(tmp_path)
    _pip_install(tree, make_wheel(tmp_path / "w", "tabulate", "0.9", {"tabulate/__init__.py": b"x = 0\n"}))
    site = tree.site_packages()
    (site / "tabulate-0.9.dist-info/RECORD").unlink()
    failed = tree.make("tabulate", check=False)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "which pip installed in the prefix, could not be removed" in output and "Traceback" not in output
    assert (site / "tabulate/__init__.py").read_text() == "x = 0\n"
