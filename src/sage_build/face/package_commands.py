"""./sage --package download / fix-checksum / create / update: commands that fetch and edit recipes."""

from __future__ import annotations

import email.parser
import re
import sys
import tarfile
import zipfile
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from sage_build.pipeline import fetch as fetching
from sage_build.configure.config import load_config
from sage_build.base.errors import FetchError, RecipeError, SageBuildError
from sage_build.base.layout import TreeLayout
from sage_build.recipes.recipe import Kind, Package, load_package, load_packages, parse_checksums


def run(args, root: Path) -> int:
    pkgs_dir = TreeLayout(root).pkgs_dir
    if args.command == "download":
        return download(args, root, pkgs_dir)
    if args.command == "fix-checksum":
        for name in args.packages:
            fix_checksum(_load(pkgs_dir, name), _upstream_dir(root))
        return 0
    if args.command == "create":
        if not args.pypi:
            raise SageBuildError("only `--pypi` recipes can be made automatically; write the others by hand")
        path = create_from_index(args.name, pkgs_dir, _upstream_dir(root), version=args.version, pkg_type=args.type)
        print(f"created {path}; review its dependencies and SPKG.rst")
        return 0
    if args.command == "update":
        update(_load(pkgs_dir, args.package), args.version, _upstream_dir(root))
        return 0
    if args.command == "verify-reproducible":
        results = [verify_reproducible(_load(pkgs_dir, name), root) for name in args.packages]
        return 0 if all(results) else 1
    return 1


def verify_reproducible(pkg: Package, root: Path) -> bool:
    """Build the package's wheel twice, in two build directories at two times; compare the bytes."""
    import hashlib
    import os
    import subprocess
    import tempfile
    import time

    from sage_build.base.layout import tool_bin_dir

    if not pkg.is_python:
        raise SageBuildError(f"{pkg.name} is not a Python package: there is no wheel to compare")
    with tempfile.TemporaryDirectory(prefix=f"sage-repro-{pkg.name}-") as tmp:
        wheels = []
        for attempt in ("first", "second"):
            out = Path(tmp) / attempt / "out"
            env = dict(os.environ, SAGE_BUILD_DIR=str(Path(tmp) / attempt / "build-dir-of-the-" / attempt))
            command = [str(tool_bin_dir() / "sage-spkg"), "--build-only", str(out), pkg.name]
            result = subprocess.run(command, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise SageBuildError(f"building {pkg.name} failed:\n{result.stderr[-3000:]}")
            wheels.append(sorted(out.glob("*.whl")))
            if attempt == "first":
                time.sleep(1.5)  # a later clock: timestamps must not leak into the wheel
        identical = True
        for first, second in zip(*wheels):
            a, b = first.read_bytes(), second.read_bytes()
            if a == b:
                print(f"{first.name}: reproducible (sha256 {hashlib.sha256(a).hexdigest()})")
                continue
            identical = False
            print(f"{first.name}: NOT reproducible; members that differ:")
            for member in _differing_members(first, second):
                print(f"  {member}")
        return identical


def _differing_members(first: Path, second: Path) -> list[str]:
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        names = sorted(set(a.namelist()) | set(b.namelist()))
        differ = []
        for name in names:
            if name not in a.namelist() or name not in b.namelist():
                differ.append(f"{name} (only in one)")
            elif a.read(name) != b.read(name):
                differ.append(f"{name} (content)")
            elif a.getinfo(name).date_time != b.getinfo(name).date_time:
                differ.append(f"{name} (time stamp)")
        return differ or ["(the archives differ in their zip metadata)"]


def _load(pkgs_dir: Path, name: str) -> Package:
    if not (pkgs_dir / name / "type").is_file():
        raise SageBuildError(f"there is no package '{name}' in {pkgs_dir}")
    return load_package(pkgs_dir / name)


def _upstream_dir(root: Path) -> Path:
    try:
        return load_config(root).layout().upstream
    except SageBuildError:
        return TreeLayout(root).upstream


def _mirrors(root: Path) -> list[str]:
    try:
        return load_config(root).mirrors
    except SageBuildError:
        return []


def fetch_package(pkg: Package, upstream: Path, mirrors: list[str]) -> Path | None:
    """Download and verify a package's tarball (None for packages without one)."""
    if pkg.tarball is None:
        return None
    return fetching.fetch(
        pkg.tarball, pkg.checksums, package=pkg.name, upstream_dir=upstream, mirrors=mirrors,
        index_name=(pkg.distribution_name or pkg.name) if pkg.is_python else None,
        upstream_url=pkg.upstream_url, debian_source=pkg.debian_source,
    )


def download(args, root: Path, pkgs_dir: Path) -> int:
    packages = load_packages(pkgs_dir)
    names = sorted(packages) if args.all else args.packages
    if not names:
        raise SageBuildError("name packages to download, or pass --all")
    unknown = [n for n in names if n not in packages]
    if unknown:
        raise SageBuildError(f"no such package: {', '.join(unknown)}")
    upstream, mirrors = _upstream_dir(root), _mirrors(root)
    failed: dict[str, str] = {}
    for name in names:
        pkg = packages[name]
        try:
            if pkg.kind is Kind.PIP:
                path = _download_pip(pkg, root, upstream)
            else:
                path = fetch_package(pkg, upstream, mirrors)
        except SageBuildError as error:
            if args.on_error == "stop":
                raise
            failed[name] = str(error)
            print(f"{name}: FAILED", file=sys.stderr)
            continue
        print(f"{name}: {path if path else 'nothing to download'}")
    if failed:
        print(f"\n{len(failed)} of {len(names)} packages could not be downloaded:", file=sys.stderr)
        for name, reason in failed.items():
            print(f"  {name}: {reason.splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


def _download_pip(pkg: Package, root: Path, upstream: Path):
    from sage_build.base.layout import Layout
    from sage_build.pipeline.package_log import PackageLog
    from sage_build.pipeline.spkg import fetch_pip_package
    from sage_build.install.target import query_python

    config = load_config(root)
    target = query_python(config.python)
    layout = Layout(sage_root=root, prefix=Path(config.prefix), upstream_dir=upstream)
    with PackageLog(layout.logs_dir / f"{pkg.name}-download.log", pkg.name, echo=False) as log:
        files = fetch_pip_package(pkg, layout, target, log)
    return files[0].parent if files else None


def write_checksums(pkg_path: Path, tarball_pattern: str, sha256: str) -> None:
    """Rewrite checksums.ini with a new sha256, keeping upstream_url and debian_source."""
    path = pkg_path / "checksums.ini"
    old = parse_checksums(path.read_text(), str(path)) if path.exists() else {}
    lines = [f"tarball={tarball_pattern}", f"sha256={sha256}"]
    for key in ("upstream_url", "debian_source"):
        if key in old:
            lines.append(f"{key}={old[key]}")
    path.write_text("\n".join(lines) + "\n")


def fix_checksum(pkg: Package, upstream: Path) -> None:
    if pkg.tarball is None:
        raise RecipeError(f"package '{pkg.name}' has no tarball in {pkg.path}/checksums.ini")
    file = upstream / pkg.tarball
    if not file.is_file():
        raise SageBuildError(f"{file} does not exist: put the file there (or download it) first")
    sums = fetching.compute_checksums(file)
    write_checksums(pkg.path, pkg.tarball_pattern, sums["sha256"])
    print(f"{pkg.name}: sha256={sums['sha256']} written to {pkg.path}/checksums.ini")


def update(pkg: Package, version: str, upstream: Path) -> None:
    (pkg.path / "package-version.txt").write_text(version + "\n")
    if pkg.tarball_pattern is None:
        return
    upstream_version = re.sub(r"\.p\d+$", "", version)
    tarball = pkg.tarball_pattern.replace("VERSION", upstream_version)
    file = upstream / tarball
    if not file.is_file():
        if not pkg.is_python:
            raise SageBuildError(f"put {tarball} into {upstream}, then run ./sage --package fix-checksum {pkg.name}")
        index = fetching.IndexConfig.from_pip()
        urls = fetching.find_on_index(tarball, pkg.distribution_name or pkg.name, index)
        if not urls:
            raise FetchError(f"the package index has no file {tarball}")
        fetching.download_url(urls[0], file)
    write_checksums(pkg.path, pkg.tarball_pattern, fetching.compute_checksums(file)["sha256"])
    print(f"{pkg.name}: now version {version}")


def _recipe_name(distribution: str) -> str:
    return canonicalize_name(distribution).replace("-", "_")


def create_from_index(name: str, pkgs_dir: Path, upstream: Path, *, version: str | None = None,
                      pkg_type: str = "optional") -> Path:
    """A new recipe from the package index: version, sha256, install-requires, dependencies."""
    index = fetching.IndexConfig.from_pip()
    files = fetching.list_project_files(name, index)
    if not files:
        raise FetchError(f"the package index has no project {name!r}")
    candidates: dict[Version, dict[str, str]] = {}
    for filename, url in files:
        try:
            if filename.endswith(".whl"):
                _, ver, _, tags = parse_wheel_filename(filename)
                if not any(t.abi == "none" and t.platform == "any" for t in tags):
                    continue
                kind = "wheel"
            elif filename.endswith((".tar.gz", ".zip")):
                _, ver = parse_sdist_filename(filename)
                kind = "sdist"
            else:
                continue
        except (InvalidVersion, ValueError):
            continue
        if ver.is_prerelease or ver.is_devrelease:
            continue
        candidates.setdefault(ver, {})[kind] = (filename, url)
    if version:
        chosen = Version(version)
        if chosen not in candidates:
            raise FetchError(f"{name} {version} has no sdist or pure-Python wheel on the index")
    else:
        if not candidates:
            raise FetchError(f"{name} has no released sdist or pure-Python wheel on the index")
        chosen = max(candidates)
    kind = "sdist" if "sdist" in candidates[chosen] else "wheel"
    filename, url = candidates[chosen][kind]
    file = upstream / filename
    if not file.is_file():
        fetching.download_url(url, file)
    metadata = _read_metadata(file)
    dist_name = metadata.get("Name", name)
    recipe = pkgs_dir / _recipe_name(dist_name)
    if recipe.exists():
        raise SageBuildError(f"{recipe} exists already; use ./sage --package update")
    recipe.mkdir(parents=True)
    (recipe / "type").write_text(pkg_type + "\n")
    (recipe / "package-version.txt").write_text(f"{chosen}\n")
    pattern = filename.replace(str(chosen), "VERSION")
    write_checksums(recipe, pattern, fetching.compute_checksums(file)["sha256"])
    (recipe / "install-requires.txt").write_text(f"{dist_name} >={chosen}\n")
    deps = []
    for line in metadata.get_all("Requires-Dist") or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and "extra" in str(req.marker):
            continue
        deps.append(_recipe_name(req.name))
    toolchain = "" if kind == "wheel" else " | $(PYTHON_TOOLCHAIN)"
    (recipe / "dependencies").write_text(f"$(PYTHON) {' '.join(deps)}{toolchain}\n".replace("  ", " "))
    summary = metadata.get("Summary", "")
    license_text = metadata.get("License-Expression") or metadata.get("License") or "see the upstream project"
    home = metadata.get("Home-page") or ""
    (recipe / "SPKG.rst").write_text(
        f"{dist_name}: {summary}\n{'=' * (len(dist_name) + len(summary) + 2)}\n\n"
        f"Description\n-----------\n\n{summary}\n\nLicense\n-------\n\n{license_text.splitlines()[0]}\n\n"
        f"Upstream Contact\n----------------\n\n{home}\n"
    )
    return recipe


def _read_metadata(file: Path):
    text = None
    if file.name.endswith(".whl"):
        with zipfile.ZipFile(file) as archive:
            for member in archive.namelist():
                if member.endswith(".dist-info/METADATA"):
                    text = archive.read(member).decode(errors="replace")
    elif file.name.endswith(".zip"):
        with zipfile.ZipFile(file) as archive:
            members = sorted((m for m in archive.namelist() if m.endswith("PKG-INFO")), key=len)
            text = archive.read(members[0]).decode(errors="replace") if members else None
    else:
        with tarfile.open(file) as archive:
            members = sorted((m for m in archive.getmembers() if m.name.endswith("PKG-INFO")), key=lambda m: len(m.name))
            if members:
                text = archive.extractfile(members[0]).read().decode(errors="replace")
    if text is None:
        raise SageBuildError(f"{file} holds no metadata (PKG-INFO / METADATA)")
    return email.parser.Parser().parsestr(text)
