"""The installed manifest, ``var/lib/sage/installed/<pkg>-<version>``: the make stamp.

Sage's JSON format.  For a Python package ``files`` lists only the wheel
(``var/lib/sage/wheels/<wheel>``); the files the wheel installed are known to
its RECORD, and removed by the package's spkg-piprm.  While a package is being removed its
manifest is in ``installed/.removing/`` (the removal journal: see :mod:`sage_build.uninstall`),
where nothing that lists installed packages looks.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sage_build import __version__
from sage_build.base.atomic import write_atomic
from sage_build.base.layout import Layout


def write_manifest(layout: Layout, name: str, version: str, files: list[str], test_result: str = "") -> Path:
    """Write the stamp last: it exists only if everything before it succeeded."""
    data = {
        "package_name": name,
        "package_version": version,
        "install_date": time.strftime("%a %b %d %H:%M:%S %Z %Y"),
        # as `uname -snrvm`: platform.uname() would also ask for the processor, which runs
        # `uname -p` in a child process on Linux, every package (issue #19)
        "system_uname": " ".join(os.uname()),
        "sage_version": f"sage-build {__version__}",
        "test_result": test_result,
        "files": sorted(files),
    }
    stamp = layout.stamp(name, version)
    write_atomic(stamp, (json.dumps(data, indent=4) + "\n").encode())
    return stamp


def read_manifest(stamp: Path) -> dict:
    """A manifest's content; an empty one (Sage writes those for old installs) reads as no files."""
    try:
        text = stamp.read_text()
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {"files": []}
    try:
        return json.loads(text)
    except ValueError:
        return {"files": []}


def installed_versions(layout: Layout, names) -> dict[str, str]:
    """Package name -> installed version, for the given package names."""
    try:
        entries = os.listdir(layout.installed_dir)
    except FileNotFoundError:
        return {}
    found: dict[str, str] = {}
    names = set(names)
    for entry in entries:
        # Names may contain '-', versions rarely: try every split point, longest name first.
        parts = entry.split("-")
        for i in range(len(parts) - 1, 0, -1):
            name = "-".join(parts[:i])
            if name in names:
                found[name] = "-".join(parts[i:])
                break
    return found


def stale_wheels(layout: Layout, stamp: Path, site_packages: Path) -> list[str]:
    """The wheels a manifest lists whose distribution is no longer installed (e.g. `pip uninstall`)."""
    from packaging.utils import parse_wheel_filename

    missing = []
    for rel in read_manifest(stamp).get("files", []):
        if not rel.endswith(".whl"):
            continue
        name, version, _, _ = parse_wheel_filename(Path(rel).name)
        dist_info = site_packages / f"{str(name).replace('-', '_')}-{version}.dist-info"
        if not dist_info.is_dir() and not any(
            p.name.lower() == dist_info.name.lower() for p in site_packages.glob("*.dist-info")
        ):
            missing.append(Path(rel).name)
    return missing
