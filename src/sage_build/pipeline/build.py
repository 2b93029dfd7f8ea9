"""Building a package: PEP 517 wheels, and Sage-style scripts with the sdh_* helpers.

Builds run with the prefix's interpreter (never the tool's) and without
isolation: build dependencies are the recipe's dependencies, already
installed in the prefix.  Nothing here writes into the prefix; wheels stay in
the build directory and a script's files land in the staging directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Callable, Mapping, NamedTuple

from sage_build.base.errors import BuildError
from sage_build.base.layout import source_root, tool_bin_dir
from sage_build.base.makeflags import job_budget
from sage_build.install.target import canonical_name, dist_infos
from sage_build.pipeline.package_log import PackageLog

BIN_DIR = tool_bin_dir()
#: Builds run without network: sage-spkg fetched everything beforehand. Proxies point at a
#: closed port so that a download fails at once instead of hanging, as Sage does.
DEAD_PROXY = "http://127.0.0.1:9"
OFFLINE_ENVIRONMENT = {
    "http_proxy": DEAD_PROXY, "https_proxy": DEAD_PROXY, "ftp_proxy": DEAD_PROXY,
    "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "FTP_PROXY": DEAD_PROXY,
    "no_proxy": "", "NO_PROXY": "", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "UV_OFFLINE": "1",
}
_LEGACY_BACKEND = {"build-backend": "setuptools.build_meta:__legacy__", "requires": ["setuptools>=40.8.0"]}


def build_environment(
    *, sage_root: Path, prefix: Path, local: Path, build_dir: Path, pkg_name: str, pkg_version: str,
    base: Mapping[str, str],
) -> dict[str, str]:
    """The environment of every build command of a package (Sage's sage-env, in short): ``base``
    (the environment sage-spkg was given) with the build's variables.

    ``prefix`` is SAGE_LOCAL as the installed tree sees it; ``local`` is where it is now
    (different only in a staged install), and compilers look there.
    """
    env = dict(base)
    jobs = str(job_budget(base))
    env.update({
        "SAGE_ROOT": str(sage_root),
        "SAGE_LOCAL": str(prefix),
        "SAGE_INST_LOCAL": str(local),
        # Sage's other trees (trees.txt) are the one prefix here
        "SAGE_VENV": str(prefix),
        "SAGE_SHARE": str(prefix / "share"),
        "SAGE_DESTDIR": str(build_dir / "inst"),
        "SAGE_SPKG_WHEELS": str(build_dir / "dist"),
        "SAGE_BUILD_DIR": str(build_dir),
        "SAGE_BUILD_PYTHON": sys.executable,
        "SAGE_BUILD_SRC": str(source_root()),
        "PKG_NAME": pkg_name,
        "PKG_VER": pkg_version,
        "PKG_BASE": pkg_name,
        "SAGE_NUM_THREADS": jobs,
        "CMAKE_BUILD_PARALLEL_LEVEL": jobs,
        "MAX_JOBS": jobs,
        "MAKE": base.get("MAKE", "make"),
        "PATH": os.pathsep.join([str(local / "bin"), str(BIN_DIR), base.get("PATH", "/usr/bin:/bin")]),
        "PKG_CONFIG_PATH": os.pathsep.join(
            p for p in [str(local / "lib" / "pkgconfig"), base.get("PKG_CONFIG_PATH", "")] if p
        ),
        "VIRTUAL_ENV": str(local),
        "PYTHONNOUSERSITE": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # Sage's configure defaults (--disable-editable, wheels on), which sage-build-env exports
        # when unset: passagemath's sagemath_* spkg-install builds nothing without SAGE_WHEELS=yes
        "SAGE_EDITABLE": base.get("SAGE_EDITABLE") or "no",
        "SAGE_WHEELS": base.get("SAGE_WHEELS") or "yes",
    })
    env.update(OFFLINE_ENVIRONMENT)
    include, lib = f"-I{local / 'include'}", f"-L{local / 'lib'} -Wl,-rpath,{prefix / 'lib'}"
    if local != prefix:
        lib += f" -Wl,-rpath-link,{local / 'lib'}"
    # Reproducible objects: the build directory's name does not end up in them.
    prefix_map = f"-ffile-prefix-map={build_dir}=/build/{pkg_name}-{pkg_version}"
    env["CPPFLAGS"] = f"{include} {base.get('CPPFLAGS', '')}".strip()
    env["CFLAGS"] = f"{include} {base.get('CFLAGS', '-O2')} {prefix_map}".strip()
    env["CXXFLAGS"] = f"{include} {base.get('CXXFLAGS', '-O2')} {prefix_map}".strip()
    if local != prefix:
        # .pc files name the final prefix; make pkg-config look under the staging root
        env["PKG_CONFIG_SYSROOT_DIR"] = str(local)[: -len(str(prefix))] if str(local).endswith(str(prefix)) else ""
    env["LDFLAGS"] = f"{lib} {base.get('LDFLAGS', '')}".strip()
    for variable in ("PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV"):
        env.pop(variable, None)
    return env


def read_build_system(source_dir: Path) -> dict:
    """The ``[build-system]`` table of a source tree (the legacy setuptools default without one)."""
    pyproject = source_dir / "pyproject.toml"
    if not pyproject.is_file():
        if not (source_dir / "setup.py").is_file():
            raise BuildError(f"{source_dir} has neither pyproject.toml nor setup.py: not a Python source tree")
        return dict(_LEGACY_BACKEND)
    # imported here: a wheel-kind package reads no pyproject.toml, and tomllib (with datetime)
    # was a tenth of its sage-spkg's start (issue #19)
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(pyproject.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise BuildError(f"{pyproject}: not valid TOML: {error}") from None
    system = data.get("build-system")
    if not system:
        return dict(_LEGACY_BACKEND)
    system = dict(system)
    system.setdefault("requires", [])
    system.setdefault("build-backend", _LEGACY_BACKEND["build-backend"])
    return system


_INSTALLED_QUERY = r"""
import json, sys
from importlib import metadata
print(json.dumps({d.metadata["Name"]: d.version for d in metadata.distributions() if d.metadata["Name"]}))
"""


def installed_distributions(python: Path, site_dirs: list[Path] | None = None) -> dict[str, str]:
    """Canonical name -> version of every distribution the prefix's interpreter sees.

    With ``site_dirs`` (the prefix's own site-packages, when it sees no others) the dist-info
    directory names answer without starting the interpreter."""
    if site_dirs is not None:
        return {canonical_name(name): version for _, name, version in dist_infos(site_dirs)}
    from packaging.utils import canonicalize_name

    result = subprocess.run([str(python), "-c", _INSTALLED_QUERY], capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"cannot list the distributions installed in {python}: {result.stderr.strip()[-500:]}")
    return {canonicalize_name(name): version for name, version in json.loads(result.stdout).items()}


class Unmet(NamedTuple):
    """A requirement the prefix does not satisfy: ``text`` as shown, the distribution's
    normalised ``name``, the version ``found`` (None: not installed) and the ``specifier`` wanted."""
    text: str
    name: str
    found: str | None
    specifier: str


def unmet_requirements(requires: list[str], installed: Mapping[str, str], markers: Mapping[str, str]) -> list[Unmet]:
    """The requirements of ``requires`` that ``installed`` does not satisfy."""
    # Imported here, not at the top: sage-spkg imports this module for every package, and
    # build_wheel calls this while the backend's interpreter starts.
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    unmet = []
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            name = re.split(r"[\s<>=!~;\[(]", line, maxsplit=1)[0]
            unmet.append(Unmet(f"{line} (not a valid requirement)", canonicalize_name(name), None, ""))
            continue
        if req.marker is not None and not req.marker.evaluate(dict(markers, extra="")):
            continue
        name = canonicalize_name(req.name)
        version = installed.get(name)
        if version is None:
            unmet.append(Unmet(f"{req} (not installed)", name, None, str(req.specifier)))
        elif req.specifier and not req.specifier.contains(version, prereleases=True):
            unmet.append(Unmet(f"{req} (found {version})", name, version, str(req.specifier)))
    return unmet


class _LoggedRunner:
    """A pyproject_hooks subprocess runner that sends the backend's output to the package log."""

    def __init__(self, log: PackageLog, env: Mapping[str, str]):
        self.log, self.env = log, env
        self.stopped = False
        self.process: subprocess.Popen | None = None
        self.running = threading.Event()  # set once the backend's process runs (or could not start)

    def __call__(self, cmd, cwd=None, extra_environ=None) -> None:
        env = dict(self.env)
        env.update(extra_environ or {})
        code = self.log.run(cmd, cwd=Path(cwd) if cwd else None, env=env, started=self._on_start)
        if code != 0:
            raise subprocess.CalledProcessError(code, cmd)

    def _on_start(self, process: subprocess.Popen) -> None:
        self.process = process
        if self.stopped:
            process.kill()
        self.running.set()

    def stop(self) -> None:
        """Kill the backend's process (running, or about to start)."""
        self.stopped = True
        if self.process is not None:
            self.process.kill()


def build_wheel(
    source_dir: Path, dist_dir: Path, *, python: Path, env: Mapping[str, str], log: PackageLog,
    markers: Mapping[str, str], advise: Callable[[Unmet], str] | None = None, site_dirs: list[Path] | None = None,
    started: Callable[[], None] | None = None, versions_strict: bool = True,
    config_settings: Mapping[str, str | list[str]] | None = None,
) -> Path:
    """Build a wheel from ``source_dir`` into ``dist_dir`` with PEP 517, no isolation.

    ``advise(unmet)`` says what to do about a build requirement the prefix does not satisfy
    (the recipe to add, a version conflict's ways out), for the error message. ``versions_strict``
    False: a build requirement present at another version is a warning, as for Sage's
    ``sdh_pip_install`` (pip --no-build-isolation checks none); a missing one stays an error. ``site_dirs``: see installed_distributions.
    ``started()`` is called once the backend's process runs: work of this process that would
    delay its start (the interpreter lock is shared) can begin then. ``config_settings``: PEP 517's,
    for the backend (pip's ``-C``).
    """
    from concurrent.futures import ThreadPoolExecutor

    import pyproject_hooks

    system = read_build_system(source_dir)
    runner = _LoggedRunner(log, env)
    hooks = pyproject_hooks.BuildBackendHookCaller(
        str(source_dir), system["build-backend"], backend_path=system.get("backend-path"),
        runner=runner, python_executable=str(python),
    )
    dist_dir.mkdir(parents=True, exist_ok=True)
    try:
        # pyproject_hooks re-raises the backend's warnings: they belong in the package log.
        with warnings.catch_warnings(record=True) as caught, ThreadPoolExecutor(1) as pool:
            warnings.simplefilter("always")
            # The backend's interpreter starts first, and the build requirements are checked
            # while it loads (packaging's parser is slow to import, and this runs at every package);
            # a check that fails stops the backend, and its message is the error.
            building = pool.submit(hooks.build_wheel, str(dist_dir), dict(config_settings) if config_settings else None)
            building.add_done_callback(lambda _: runner.running.set())  # also when no process started
            runner.running.wait()
            if started is not None:
                started()
            try:
                installed = installed_distributions(python, site_dirs)
                _check_requirements(system["requires"], installed, markers, "build-system.requires",
                                    advise, log, versions_strict)
            except BaseException:
                runner.stop()
                raise
            name = building.result()
        for warning in caught:
            log.line(f"warning from the build backend: {warning.message}")
    except pyproject_hooks.BackendUnavailable as error:
        raise BuildError(
            f"the build backend {system['build-backend']!r} cannot be imported by {python}:"
            f" {error.message or error}; add the recipe that provides it to the dependencies"
        ) from None
    except subprocess.CalledProcessError as error:
        # The backend's dynamic requirements are asked only now (one interpreter start less per
        # build): a missing one is the likeliest cause, and deserves the clearer message.
        try:
            dynamic = hooks.get_requires_for_build_wheel(dict(config_settings) if config_settings else None)
        except (subprocess.CalledProcessError, pyproject_hooks.BackendUnavailable):
            dynamic = []
        _check_requirements(dynamic, installed, markers, "the backend's get_requires_for_build_wheel",
                            advise, log, versions_strict)
        raise BuildError(f"the PEP 517 build of {source_dir} failed (exit {error.returncode})") from None
    wheel = dist_dir / name
    if not wheel.is_file():
        raise BuildError(f"the build backend reported {name}, but {wheel} does not exist")
    from sage_build.pipeline.normalize import normalize_wheel  # zipfile & co: only for a wheel we built

    normalize_wheel(wheel, int(env.get("SOURCE_DATE_EPOCH") or source_date_epoch(source_dir)))
    return wheel


def source_date_epoch(source_dir: Path) -> int:
    """The release's time: the newest modification time in the unpacked source (the tarball's)."""
    newest = 0
    for root, _, files in os.walk(source_dir):
        for name in files:
            try:
                newest = max(newest, int(os.lstat(os.path.join(root, name)).st_mtime))
            except OSError:
                continue
    return max(newest, 315532800)  # zip cannot store times before 1980


def _check_requirements(requires, installed, markers, what, advise, log: PackageLog,
                        versions_strict: bool = True) -> None:
    unmet = unmet_requirements(list(requires), installed, markers)
    if not versions_strict:
        for item in unmet:
            if item.found is not None:
                log.line(f"warning: {what}: {item.text}; built anyway, as Sage's"
                         f" pip --no-build-isolation does")
        unmet = [item for item in unmet if item.found is None]
    if not unmet:
        return
    advice = [advise(item) if advise else default_advice(item) for item in unmet]
    raise BuildError(f"{what} is not satisfied in the prefix:\n  " + "\n  ".join(advice))


def default_advice(item: Unmet) -> str:
    return (f"{item.text}: add the recipe that provides it to the package's dependencies, or create one"
            f" (./sage --package create {item.name} --pypi)")


def run_script(script: Path, *, build_dir: Path, env: Mapping[str, str], log: PackageLog, name: str,
               started: Callable[[], None] | None = None) -> None:
    """Run a Sage-style ``spkg-*`` script with bash and the sdh_* helpers, in the build directory.

    ``started()``: as for :func:`build_wheel`, once the script runs."""
    target = build_dir / name
    text = script.read_text()
    helpers = BIN_DIR / "sage-dist-helpers"
    target.write_text(f"#!/usr/bin/env bash\nset -e\n. {_quote(helpers)}\n{text}\n")
    target.chmod(0o755)
    on_start = (lambda _process: started()) if started is not None else None
    code = log.run(["bash", str(target)], cwd=build_dir, env=env, started=on_start)
    if code != 0:
        raise BuildError(f"{name} failed (exit {code})")


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"
