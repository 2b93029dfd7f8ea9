"""Fixtures: distribution trees of tiny packages that the tests build themselves (no network)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

EXAMPLES = ROOT.parent / "shared" / "examples" / "sage-recipes"


# gfortran's spkg-configure.m4 in its shape (the fragments its stand-in asks for), its messages
# left out: tests of the reader and of the probes read it
GFORTRAN_FILE = """SAGE_SPKG_CONFIGURE([gfortran], [
    AC_REQUIRE([SAGE_SPKG_CONFIGURE_GCC])
    AC_REQUIRE([AC_PROG_FC])
    AC_FC_FREEFORM([SAGE_HAVE_FC_FREEFORM=yes], [SAGE_HAVE_FC_FREEFORM=no])
    AS_VAR_IF(SAGE_HAVE_FC_FREEFORM, [no], [AS_VAR_SET(sage_spkg_install_gfortran, [yes])])
    if test "x$sage_spkg_install_gcc" = "xyes" -o x$SAGE_INSTALL_GCC = xexists; then
        sage_spkg_install_gfortran=no
    elif test $enable_gcc_version_check = yes; then
        AS_CASE(["$FC"], [*gfortran*], [
            GFORTRAN_VERSION="`$FC -dumpversion`"
            AS_CASE(["$GFORTRAN_VERSION.0"],
                [[[0-3]].*|4.[[0-7]].*], [sage_spkg_install_gfortran=yes],
                [1[[7-9]].*], [sage_spkg_install_gfortran=yes])])
    fi
])"""

# A PEP 517 backend in ~40 lines of standard library: enough to build wheels of the tests'
# own packages with the prefix's interpreter and no network.
TINY_BACKEND = '''
import base64, hashlib, json, os, zipfile

def _meta():
    meta = {}
    for line in open("tiny.cfg"):
        key, _, value = line.partition("=")
        meta[key.strip()] = value.strip()
    return meta

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    meta = _meta()
    if meta.get("fail"):
        raise SystemExit("tiny backend: failing as asked: " + meta["fail"])
    name, version = meta["name"], meta["version"]
    dist_info = "%s-%s.dist-info" % (name, version)
    filename = "%s-%s-py3-none-any.whl" % (name, version)
    records = []
    def add(zf, arcname, data):
        zf.writestr(arcname, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        records.append("%s,sha256=%s,%d" % (arcname, digest, len(data)))
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        for root, dirs, files in sorted(os.walk("pkg")):
            dirs.sort()
            for f in sorted(files):
                path = os.path.join(root, f)
                add(zf, os.path.relpath(path, "pkg"), open(path, "rb").read())
        requires = "".join("Requires-Dist: %s\\n" % r.strip() for r in meta.get("requires", "").split(",") if r.strip())
        add(zf, dist_info + "/METADATA", ("Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n%s" % (name, version, requires)).encode())
        add(zf, dist_info + "/WHEEL", b"Wheel-Version: 1.0\\nGenerator: tiny\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
        if meta.get("script"):
            add(zf, dist_info + "/entry_points.txt", ("[console_scripts]\\n%s\\n" % meta["script"]).encode())
        if config_settings:   # what the frontend passed (pip's -C), for the tests to see
            add(zf, "tiny_config_settings_%s.json" % name, json.dumps(config_settings, sort_keys=True).encode())
        records.append(dist_info + "/RECORD,,")
        zf.writestr(dist_info + "/RECORD", "\\n".join(records) + "\\n")
    return filename
'''


def make_sdist(directory: Path, name: str, version: str, files: dict[str, str], *,
               requires: str = "", build_requires: str = "", fail: str = "", script: str = "") -> Path:
    """A tiny sdist ``<name>-<version>.tar.gz`` built by the in-tree backend."""
    directory.mkdir(parents=True, exist_ok=True)
    top = f"{name}-{version}"
    members = {
        "pyproject.toml": textwrap.dedent(f"""\
            [build-system]
            requires = [{', '.join(repr(r.strip()) for r in build_requires.split(',') if r.strip())}]
            build-backend = "tiny_backend"
            backend-path = ["_backend"]
            """),
        "_backend/tiny_backend.py": TINY_BACKEND,
        "tiny.cfg": f"name={name}\nversion={version}\nrequires={requires}\nfail={fail}\nscript={script}\n",
    }
    members.update({f"pkg/{path}": text for path, text in files.items()})
    archive = directory / f"{top}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path, text in sorted(members.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return archive


def make_wheel(directory: Path, name: str, version: str, files: dict[str, bytes], *,
               data: dict[str, bytes] | None = None, scripts: str = "", tamper: str | None = None,
               tag: str = "py3-none-any") -> Path:
    """A wheel built by hand (RECORD included); ``tamper`` names a member whose RECORD hash is wrong."""
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    path = directory / f"{name}-{version}-{tag}.whl"
    members = dict(files)
    for key, value in (data or {}).items():
        members[f"{name}-{version}.data/{key}"] = value
    members[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    members[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: " + tag.encode() + b"\n"
    if scripts:
        members[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{scripts}\n".encode()
    record = []
    for member, content in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        if member == tamper:
            digest = "A" * len(digest)
        record.append(f"{member},sha256={digest},{len(content)}")
    record.append(f"{dist_info}/RECORD,,")
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if member.endswith(".sh") else 0o644) << 16
            archive.writestr(info, content)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return path


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def add_recipe(root: Path, name: str, *, type_: str = "standard", version: str | None = None,
               deps: str = "$(PYTHON)", tarball: Path | None = None, files: dict[str, str] | None = None,
               install_requires: str | None = None) -> Path:
    """Write a recipe; with ``tarball``, put it into upstream/ and record its sha256."""
    recipe = root / "build" / "pkgs" / name
    recipe.mkdir(parents=True, exist_ok=True)
    (recipe / "type").write_text(type_ + "\n")
    (recipe / "dependencies").write_text(deps + "\n")
    if version is not None:
        (recipe / "package-version.txt").write_text(version + "\n")
    if tarball is not None:
        upstream = root / "upstream"
        upstream.mkdir(exist_ok=True)
        target = upstream / tarball.name
        if tarball != target:
            target.write_bytes(tarball.read_bytes())
        pattern = tarball.name.replace(version, "VERSION") if version else tarball.name
        (recipe / "checksums.ini").write_text(f"tarball={pattern}\nsha256={sha256(target)}\n")
    if install_requires is not None:
        (recipe / "install-requires.txt").write_text(install_requires + "\n")
    for path, text in (files or {}).items():
        (recipe / path).parent.mkdir(parents=True, exist_ok=True)
        (recipe / path).write_text(text)
    return recipe


def python_recipe(root: Path, name: str, version: str, files: dict[str, str], *, deps: str = "$(PYTHON)",
                  type_: str = "standard", **sdist_options) -> Path:
    sdist = make_sdist(root / "upstream", name, version, files, **sdist_options)
    return add_recipe(root, name, version=version, deps=deps, tarball=sdist, type_=type_,
                      install_requires=f"{name} >={version}")


class Tree:
    """A distribution tree in a temporary directory, configured against the test's Python."""

    def __init__(self, root: Path):
        self.root = root
        self.prefix = root / "local"
        (root / "build" / "pkgs").mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, SAGE_ROOT=str(self.root))
        # the tests may run under `make test`: their makes are not sub-makes of it
        for variable in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "V", "DESTDIR", "SAGE_MAKE_STARTED"):
            env.pop(variable, None)
        return env

    def configure(self, *args: str, check: bool = True, quiet: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, str(ROOT / "configure.py"), f"--prefix={self.prefix}", *(["--quiet"] if quiet else []),
             *args],
            env=self.env, capture_output=True, text=True,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"configure failed:\n{result.stdout}\n{result.stderr}")
        return result

    def make(self, *targets: str, check: bool = True, jobs: int = 1, extra_env=None) -> subprocess.CompletedProcess:
        env = dict(self.env, **(extra_env or {}))
        result = subprocess.run(
            ["make", f"-j{jobs}", "-f", str(self.root / "build" / "make" / "Makefile"), *targets],
            env=env, capture_output=True, text=True,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"make {' '.join(targets)} failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}")
        return result

    def top_level(self):
        """Link the repository's top-level Makefile, configure.py and build/bin into this tree, as a
        distribution tree links sage-build; return a runner of ``make -C TREE ARGS...``."""
        for name in ("Makefile", "configure.py"):
            if not (self.root / name).exists():
                (self.root / name).symlink_to(ROOT / name)
        if not (self.root / "build" / "bin").exists():
            (self.root / "build" / "bin").symlink_to(ROOT / "build" / "bin")
        return lambda *args: subprocess.run(["make", "-C", str(self.root), *args], env=self.env,
                                            capture_output=True, text=True)

    def sage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, str(ROOT / "sage"), *args], env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"./sage {' '.join(args)} failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}")
        return result

    def python(self, code: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.prefix / "bin" / "python3"), "-c", code], capture_output=True, text=True)

    def stamp(self, name: str, version: str) -> Path:
        return self.prefix / "var" / "lib" / "sage" / "installed" / f"{name}-{version}"

    def site_packages(self) -> Path:
        return next((self.prefix / "lib").glob("python3*/site-packages"))


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "root")


@pytest.fixture(scope="session")
def clean_prefix(tmp_path_factory) -> Path:
    """A prefix made like sage-build makes it (a venv without pip, described once), made once per
    test process: tests install into copies of it (:func:`copy_prefix`)."""
    from sage_build.install.target import query_python

    prefix = tmp_path_factory.mktemp("clean") / "prefix"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    query_python(prefix / "bin" / "python3").save(prefix / "var/lib/sage/target-python.json")
    return prefix


def copy_prefix(original: Path, copy: Path) -> Path:
    """A copy of a prefix (links kept) whose descriptions name the copy."""
    shutil.copytree(original, copy, symlinks=True)
    return relocate(original, copy)


def relocate(original: Path, copy: Path) -> Path:
    """A copied prefix's descriptions (the venv's pyvenv.cfg, target-python.json) name the copy."""
    for rel in ("pyvenv.cfg", "var/lib/sage/target-python.json"):
        path = copy / rel
        path.write_text(path.read_text().replace(str(original), str(copy)))
    return copy


def pytest_collection_modifyitems(session, config, items):
    """The tests marked slow first (in their order), the rest after them.

    Under `make test` (pytest-xdist, --dist worksteal) the longest tests then start at once
    and the short ones fill the other workers around them, instead of a long test starting
    last and running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def fake_system_python(root: Path, dists: dict[str, str]) -> tuple[Path, Path]:
    """A Python installation of its own, made of the test interpreter's binary (copied) and
    standard library (linked), whose site-packages holds ``dists`` (name: version, each a
    module ``name`` with ``__version__``): a "system" Python for --with-python. A venv of the
    test's own interpreter would not do: a venv made from a venv sees the base installation.
    Returns the interpreter and its site-packages directory."""
    base = Path(sys.base_prefix)
    short = f"python{sys.version_info.major}.{sys.version_info.minor}"
    binary = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    site = Path(subprocess.run([str(binary), "-I", "-c", "import site, sys; print(site.getsitepackages([sys.argv[1]])[0])",
                                str(root)], capture_output=True, text=True, check=True).stdout.strip())

    def mirror(source: Path, target: Path) -> None:
        """Link source's entries into target; directories on the way to ``site`` are made, not linked."""
        target.mkdir(parents=True, exist_ok=True)
        for entry in source.iterdir():
            if entry.name in ("site-packages", "dist-packages"):
                continue
            if site == target / entry.name or (target / entry.name) in site.parents:
                mirror(entry, target / entry.name)
            elif not (target / entry.name).exists():
                (target / entry.name).symlink_to(entry)

    for libdir in ("lib", "lib64"):
        if (base / libdir).is_dir():
            mirror(base / libdir, root / libdir)
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, root / "bin" / short)
    (root / "bin" / "python3").symlink_to(short)
    site.mkdir(parents=True, exist_ok=True)
    for name, version in dists.items():
        add_fake_distribution(site, name, version)
    return root / "bin" / "python3", site


def add_fake_distribution(site: Path, name: str, version: str, *, module: bool = True) -> None:
    """An installed distribution ``name`` (its dist-info, with top_level.txt) and, if
    ``module``, its module."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    if module:
        (site / f"{name}.py").write_text(f"__version__ = {version!r}\n")
