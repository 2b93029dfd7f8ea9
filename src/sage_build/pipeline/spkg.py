"""sage-spkg: one package through the pipeline.

fetch -> unpack -> build -> uninstall the old version -> install -> record -> (check).
The old version is removed only after the new one built, its stamp first (into the
removal journal: see :mod:`sage_build.uninstall`); the new stamp (manifest) is written
last, so it exists only if everything before it succeeded.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, NamedTuple, TextIO

from sage_build.cache.record import write_record
from sage_build.cache.settings import CacheSettings
from sage_build.base.atomic import TMP_MARK, hold_owner_lock, move_atomic, tmp_name, write_atomic
from sage_build.pipeline.build import Unmet, default_advice, build_environment, build_wheel, run_script, source_date_epoch
from sage_build.recipes.checksums import verified_cached
from sage_build.configure.config import Config
from sage_build.base.errors import BuildError, FetchError, InstallError, RecipeError, SageBuildError
from sage_build.base.killpoint import reach
from sage_build.base.layout import Layout, tool_bin_dir, tool_root
from sage_build.base import events
from sage_build.base.events import record_event
from sage_build.pipeline.package_log import PackageLog
from sage_build.base.jobserver import borrowed, build_share
from sage_build.base.makeflags import job_budget
from sage_build.install.manifest import read_manifest, write_manifest
from sage_build.recipes.recipe import PYTHON_PSEUDO, Kind, Package, load_packages
from sage_build.install.target import TargetPython, query_python, set_system_site_packages
from sage_build.install.uninstall import PIPRM, foreign_distributions, remove_foreign, render_piprm, uninstall

if TYPE_CHECKING:
    from sage_build.cache.entry import Pulled  # imported when a build pulls or pushes (#19)


MAINTAINER_SCRIPTS = ("spkg-preinst", "spkg-postinst", "spkg-prerm", "spkg-postrm")


class PhaseFailed(SageBuildError):
    def __init__(self, phase: str, error: Exception):
        self.phase, self.error = phase, error
        super().__init__(f"phase '{phase}': {error}")


class SpkgSettings(NamedTuple):
    """What the command tells one sage-spkg run (``face.spkg_command`` reads it from its arguments
    and the environment, once); nothing in the pipeline reads the environment itself."""

    environ: Mapping[str, str]  # the environment the build's commands start from
    keep_build: bool = False  # keep the build directory (-s, SAGE_KEEP_BUILT_SPKGS=yes)
    check: str = ""  # run spkg-check: "yes", "warn" (a failure is reported, the package stays), "" no
    session: str = ""  # the build session (sage-progress) the events belong to
    plan_file: Path | None = None  # the reasons of the session's plan: {package: reason} in JSON
    quiet: bool = False  # a progress display replaces our lines (they stay in the log)
    echo: bool = False  # build output reaches the terminal as well as the log
    echo_warnings: bool = False  # only its warning lines do (sage-progress off a terminal, V=0)
    # As written (SAGE_BYTECODE_LEVELS): the install phase parses it, so a bad value fails that phase.
    bytecode_levels: str = "0"
    collisions: str = "error"  # what an install does with another package's file (install_wheel)
    cache: CacheSettings = CacheSettings()  # binary caches to pull from and push to (#20)
    worker: int = 0  # the process id of the session worker that runs this package (#19), if one does
    # A pull ahead of the build order (#20): only from a binary cache, nothing on a miss; this file
    # then says so to make (the generated Makefile's PULLED directory).
    pull_ahead: Path | None = None
    # Where the lines shown go: the face's standard output, None when there is none (a make run
    # with its output closed, `>&-`: the package still builds, its lines go to its log only).
    output: TextIO | None = None
    terminal: bool = False  # ``output`` is a terminal: each phase's first line is shown there
    progress: bool = False  # a download shows its progress on standard error (a terminal)


class Spkg:
    """Runs one package through the pipeline."""

    def __init__(self, config: Config, layout: Layout, pkg: Package, settings: SpkgSettings, *,
                 reason: str = "", build_only: Path | None = None):
        self.config, self.layout, self.pkg = config, layout, pkg
        self.settings = settings
        self.build_only = build_only
        self.version = pkg.stamp_version
        self.tag = f"{pkg.name}-{self.version}"
        self.keep_build = settings.keep_build
        self.check = bool(settings.check)
        self.log_path = layout.log_file(pkg.name, self.version)
        self.log = PackageLog(self.log_path, self.tag, echo=settings.echo, stream=settings.output,
                              echo_warnings=settings.echo_warnings)
        self.events = layout.events_file
        self.reason = reason or _reason_from_plan(pkg.name, settings.plan_file) or _local_reason(layout, pkg)
        self.event_fields = {"package": pkg.name, "version": self.version, "log": str(self.log_path),
                             "session": settings.session,
                             "run": f"{os.getpid()}-{time.time():.3f}"}
        if settings.worker:
            self.event_fields["worker"] = settings.worker
        self.build_dir = layout.build_root / self.tag
        self._preloading: threading.Thread | None = None

    @contextlib.contextmanager
    def phase(self, name: str):
        start = time.time()
        self.log.line(f"--- {name} ---", always=not self.log.echo and self.settings.terminal
                      and not self.settings.quiet)
        record_event(self.events, **self.event_fields, phase=name, event=events.START, time=start, reason=self.reason)
        try:
            yield
        except BaseException as error:
            record_event(self.events, **self.event_fields, phase=name, event=events.END, outcome=events.FAILED,
                         start=start, time=time.time(), duration=time.time() - start, error=str(error))
            if isinstance(error, SageBuildError):
                self.log.line(f"Error: {error}")
                raise PhaseFailed(name, error) from error
            if isinstance(error, OSError):
                self.log.line(f"Error: {error}")
                raise PhaseFailed(name, error) from error
            raise
        record_event(self.events, **self.event_fields, phase=name, event=events.END, outcome=events.OK,
                     start=start, time=time.time(), duration=time.time() - start)

    # -- the pipeline ---------------------------------------------------------

    def run(self) -> Path | None:
        """The package's stamp; None for a pull ahead that found nothing to pull."""
        os.truncate(self.log_path, 0)  # a fresh log per build (under the package lock)
        try:
            if self.pkg.name == PYTHON_PSEUDO:
                return self._make_venv()
            return self._run()
        finally:
            self.log.close()

    def _make_venv(self) -> Path:
        with self.phase(events.INSTALL):
            command = [self.config.python, "-m", "venv", "--without-pip"]
            if self.config.system_site_packages:
                command.append("--system-site-packages")
            if self.log.run(command + [str(self.layout.local)]) != 0:
                raise BuildError(f"could not make the virtual environment {self.layout.local} with {self.config.python}")
            if self.layout.destdir is not None:
                _unstage_venv(self.layout)
            for directory in (self.layout.wheels_dir, self.layout.scripts_dir, self.layout.removing_dir):
                directory.mkdir(parents=True, exist_ok=True)
            target = _as_installed(query_python(self.layout.python), self.layout)
            target.save(self.layout.target_file)
        with self.phase(events.RECORD):
            return write_manifest(self.layout, self.pkg.name, self.version, [])

    def _run(self) -> Path | None:
        target = self._target()
        # configure's --enable-system-site-packages may have changed since the venv was made
        if set_system_site_packages(self.layout.local, self.config.system_site_packages):
            self.log.line(f"{self.layout.local / 'pyvenv.cfg'}: include-system-site-packages ="
                          f" {'true' if self.config.system_site_packages else 'false'}, as configured")
        shutil.rmtree(self.build_dir, ignore_errors=True)
        self.build_dir.mkdir(parents=True)
        env = build_environment(
            sage_root=self.layout.sage_root, prefix=self.layout.prefix, local=self.layout.local,
            build_dir=self.build_dir, pkg_name=self.pkg.name, pkg_version=self.version,
            base=self.settings.environ,
        )
        staging = self.build_dir / "inst"
        # The key needs the whole graph and the compiler's version: computed only when a cache is
        # used (#19: no per-package cost for a build without one)
        key = self._cache_key(target) if self.build_only is None and self.settings.cache.used else None
        pulls = key is not None and self.settings.cache.pulls and not self._check_needs_a_build()
        pulled = self._pull(key, staging) if pulls else None
        if pulled is None and self.settings.pull_ahead is not None:
            # nothing to pull: make builds it in its dependencies' order
            shutil.rmtree(self.build_dir, ignore_errors=True)
            return None
        if pulled is None:
            wheels = self._fetch_unpack_build(target, env)
        else:
            wheels = pulled.wheels
        if self.build_only is not None:
            return self._hand_over(wheels)
        self._check_built(wheels, staging)
        with self.phase(events.UNINSTALL_OLD):
            previous = self._keep_previous()
            reach("uninstall-keep")
            if not uninstall(self.layout, self.pkg.name, say=self.log.line):
                # no stamp: what an install from before stamps left, Sage's spkg-legacy-uninstall removes
                self._maintainer_script("spkg-legacy-uninstall", env)
            self._replace_foreign(wheels, target)
        files, distributions = self._install(wheels, staging, previous, target, env)
        test_result = self._check(env) if pulled is None else self._not_checked()
        with self.phase(events.RECORD):
            self._record_scripts(distributions)
            reach("record-scripts")
            # this build's key and what it installed (push checks that the stamp is this build's);
            # none when it has no key, so that push never takes an older build's
            write_record(self.layout.cache_record(self.pkg.name, self.version), key, self.layout.local, files)
            stamp = write_manifest(self.layout, self.pkg.name, self.version, files, test_result)
            reach("record-manifest")
            if self.settings.pull_ahead is not None:
                self._say_pulled_ahead(self.settings.pull_ahead)
        if pulled is None and key is not None and self.settings.cache.push:
            self._push(files)
        if not self.keep_build:
            shutil.rmtree(self.build_dir, ignore_errors=True)
        return stamp

    # -- the binary cache (#20) ---------------------------------------------------------

    def _cache_key(self, target: TargetPython):
        """This build's binary-cache key (cache.key), recorded with the stamp; None if it cannot be
        computed and no cache is used (a build never fails for a key it does not need)."""
        from sage_build.cache.key import package_keys
        from sage_build.configure.build_plan import enabled_in_makefile
        from sage_build.recipes.graph import load_graph_remembered

        try:
            graph = load_graph_remembered(self.layout.pkgs_dir)
            enabled = enabled_in_makefile(self.layout) if self.layout.makefile.is_file() else None
            keys = package_keys(self.config, graph, target, self.settings.environ, enabled=enabled,
                                names=[self.pkg.name])
            return keys.get(self.pkg.name)
        except (SageBuildError, OSError) as error:
            if self.settings.cache.used:
                raise PhaseFailed(events.FETCH, error) from error
            return None

    def _pull(self, key, staging: Path) -> Pulled | None:
        """The fetch phase from the binary caches: the first that has the key, verified. A miss, an
        unreachable cache or an entry refused is a line of the log in ``auto`` mode (the package
        then builds), an error in ``only`` mode."""
        from sage_build.base.errors import CacheError
        from sage_build.cache.entry import pull, unpack_staged
        from sage_build.cache.store import display_url

        cache = self.settings.cache
        problems = []
        # what the install and record phases import loads meanwhile (reading and hashing the
        # artifacts mostly waits for the disk); a miss only wasted a thread (preload's description)
        self._preload()
        with self.phase(events.FETCH):
            for url in cache.urls:
                try:
                    # the key, then (a staged tree that could not be relocated) the prefix key
                    pulled = next(filter(None, (pull(url, candidate, self.pkg.name, self.build_dir / "cache", cache)
                                                for candidate in key.candidates)), None)
                    if pulled is not None and pulled.staged is not None:
                        unpack_staged(pulled.staged, staging / self.layout.prefix.relative_to(self.layout.prefix.anchor),
                                      pulled.manifest.get("relocation"), self.layout.prefix)
                except CacheError as error:
                    shutil.rmtree(staging, ignore_errors=True)  # nothing of a refused entry is installed
                    problems.append(str(error))
                    self.log.line(f"Warning: binary cache: {error}", always=not self.settings.quiet)
                    continue
                if pulled is None:
                    problems.append(f"{display_url(url)} has no entry of key {key.key}"
                                    + (" nor of its prefix key" if key.prefix_key else ""))
                    continue
                self.log.line(f"from the binary cache {pulled.url} (key {pulled.manifest['key']})",
                              always=not self.settings.quiet)
                self.event_fields["cache"] = pulled.url
                return pulled
            if cache.mode == "only" and self.settings.pull_ahead is None:  # a pull ahead: its build says it
                raise CacheError(f"{self.pkg.name}: SAGE_BINARY_CACHE_MODE=only and no binary cache has it:\n  "
                                 + "\n  ".join(problems) + f"\n(./sage --cache key {self.pkg.name} --explain"
                                 " lists what its key is made of)")
            self.log.line(f"not in a binary cache (key {key.key[:16]}...): building it")
        return None

    def _say_pulled_ahead(self, marker: Path) -> None:
        """Tell make that this package was pulled ahead of the build order (its stamp is written
        first: a kill in between makes the package's own rule find it built meanwhile). The
        markers of earlier sessions, one directory each, go once they are a day old."""
        write_atomic(marker, b"")  # (it makes the session's directory)
        for other in marker.parent.parent.iterdir():
            with contextlib.suppress(OSError):
                if other != marker.parent and time.time() - other.stat().st_mtime > 86400:
                    shutil.rmtree(other)

    def _check_needs_a_build(self) -> bool:
        """SAGE_CHECK=yes asks that a package's spkg-check run and pass here; a pulled package has
        no build directory to run it in, so in ``auto`` mode a package with a test suite builds
        from source (``only`` builds nothing: it is pulled, untested, and says so)."""
        if self.settings.check != "yes" or self.settings.cache.mode == "only" or not self.pkg.script_path("spkg-check"):
            return False
        self.log.line("SAGE_CHECK=yes: building from source rather than pulling from a binary cache, so that"
                      " its spkg-check runs")
        return True

    def _not_checked(self) -> str:
        """A pulled package's tests, asked for but not run: the log and its events say so."""
        if self.check and self.pkg.script_path("spkg-check"):
            self.log.line("tests not run: from the binary cache (spkg-check needs the build directory)",
                          always=not self.settings.quiet)
            self.event_fields["check"] = "not run: from the binary cache"
        return ""

    def _push(self, files: list[str]) -> None:
        """After a local build, publish it to SAGE_BINARY_CACHE_PUSH; a failure is a warning."""
        from sage_build.base.errors import CacheError
        from sage_build.cache.entry import push_installed

        try:
            said = push_installed(self.layout, self.pkg, self.settings.cache)
        except (CacheError, OSError) as error:
            said = f"not pushed: {error}"
        self.log.line(f"binary cache: {said}", always=not self.settings.quiet)

    def _replace_foreign(self, wheels: list[Path], target: TargetPython) -> None:
        """What another installer (``pip install`` in the prefix) put there of the distributions
        about to be installed goes first, as pip and uv replace an installed version; else every
        file of it would be a collision. A staged install starts from an empty tree: nothing to do."""
        if self.layout.destdir is not None:
            return
        sites = [Path(target.paths[key]) for key in ("purelib", "platlib")]
        for wheel in wheels:
            project = wheel.name.split("-", 1)[0]   # a wheel file name starts with its distribution's
            for dist in foreign_distributions(sites, project):
                self.log.line(f"replacing {dist.name} {dist.version}, which {dist.installer} installed in"
                              f" the prefix, as pip would")
                remove_foreign(self.layout, dist, work_dir=self.build_dir, say=self.log.line)

    def _target(self) -> TargetPython:
        try:
            return TargetPython.load(self.layout.target_file)
        except FileNotFoundError:
            raise SageBuildError(
                f"the prefix {self.layout.local} has no virtual environment yet: run `make {PYTHON_PSEUDO}`"
                f" (make {self.pkg.name} does it first)"
            ) from None

    def _fetch_unpack_build(self, target: TargetPython, env: dict) -> list[Path]:
        """The fetch, unpack and build phases; the wheels built (a script may build none)."""
        dist_dir = self.build_dir / "dist"
        with self.phase(events.FETCH):
            # a checksums.ini with a wheel per platform: this target's (or the sdist, a normal build)
            self.pkg = self.pkg.for_target(target.tags)
            sources = self._fetch(target)
        kind = self.pkg.kind
        if kind in (Kind.NORMAL, Kind.SCRIPT):
            with self.phase(events.UNPACK):
                self._unpack(sources)
            env.setdefault("SOURCE_DATE_EPOCH", str(source_date_epoch(self.build_dir / "src")))
        with self.phase(events.BUILD):
            self._build(kind, sources, target, env, dist_dir)
            wheels = sorted(dist_dir.glob("*.whl")) if dist_dir.is_dir() else []
            if kind is not Kind.WHEEL:
                self._relocate(wheels, target, env)
        return wheels

    def _relocate(self, wheels: list[Path], target: TargetPython, env: dict) -> None:
        """RUNPATHs into the prefix become $ORIGIN-relative (cache.relocate): the wheel then serves
        any prefix from a binary cache, and installs here the same."""
        from sage_build.cache.relocate import relocate_wheel
        from sage_build.pipeline.normalize import normalize_wheel

        platlib = _final_paths(target, self.layout)["platlib"]
        for wheel in wheels:
            changed = relocate_wheel(wheel, self.layout.prefix, platlib)
            if changed:
                normalize_wheel(wheel, int(env.get("SOURCE_DATE_EPOCH") or time.time()))
                self.log.line(f"relocated {wheel.name}: RUNPATH of {', '.join(changed)} relative to $ORIGIN")

    def _hand_over(self, wheels: list[Path]) -> Path:
        """--build-only: the wheels go to the directory asked for; nothing is installed."""
        if not wheels:
            raise PhaseFailed(events.BUILD, BuildError("--build-only: the build produced no wheel"))
        self.build_only.mkdir(parents=True, exist_ok=True)
        for wheel in wheels:
            shutil.copy2(wheel, self.build_only / wheel.name)
            self.log.line(f"built {self.build_only / wheel.name}")
        if not self.keep_build:
            shutil.rmtree(self.build_dir, ignore_errors=True)
        return self.build_only / wheels[0].name

    def _check_built(self, wheels: list[Path], staging: Path) -> None:
        """A build that succeeded but made nothing to install fails its build phase after all."""
        kind = self.pkg.kind
        # Sage's meta packages (_bootstrap, _recommended...: no version, "Nothing to do") exist
        # for their dependencies; a recipe with a version is meant to install something.
        if self.pkg.version is None:
            return
        if kind in (Kind.NORMAL, Kind.SCRIPT) and not self.pkg.is_python and not wheels \
                and not any(p.is_file() or p.is_symlink() for p in staging.rglob("*")):
            raise PhaseFailed(events.BUILD, BuildError(
                "the build succeeded but installed nothing: its spkg-install must install into"
                " $SAGE_DESTDIR (sdh_make_install does) or store a wheel"))
        if kind is Kind.NORMAL and self.pkg.is_python and not wheels and "spkg-install" in self.pkg.scripts \
                and not any(p.is_file() or p.is_symlink() for p in staging.rglob("*")):
            # Its own spkg-install chose to install nothing on this platform (Sage's appnope:
            # "Not OS X, skipping"); as in Sage, the package counts as installed.
            self.log.line("spkg-install built no wheel and installed nothing: the package is installed empty")
            return
        if kind in (Kind.NORMAL, Kind.WHEEL, Kind.PIP) and self.pkg.is_python and not wheels:
            raise PhaseFailed(events.BUILD, BuildError("the build produced no wheel"))

    def _install(self, wheels: list[Path], staging: Path, previous: dict | None, target: TargetPython,
                 env: dict) -> tuple[list[str], list[tuple[str, str, str]]]:
        """The install phase: the maintainer scripts around the wheels and the staged files; the
        previous version is put back if it fails before anything new reached the prefix.
        Returns the manifest's files and the installed distributions."""
        files: list[str] = []
        distributions = []
        published: list[str] = []  # what of the new version reached the prefix
        from sage_build.install.wheel import install_wheel, merge_staging  # preloaded meanwhile: see preload()

        with self.phase(events.INSTALL), self._restore_on_failure(previous, target, published):
            self._maintainer_script("spkg-preinst", env)
            for wheel in wheels:
                stored = self._store_wheel(wheel)
                reach("install-stored")
                try:
                    installed = install_wheel(
                        stored, paths=_final_paths(target, self.layout),
                        python_final=self.layout.python_final, python_now=self.layout.python,
                        destdir=self.layout.destdir, lock_file=self.layout.lock_file,
                        **self._install_options(target),
                    )
                except BaseException:
                    stored.unlink(missing_ok=True)  # no manifest will name it
                    raise
                reach("install-wheel")
                self.log.line(f"installed {stored.name}" + (f" (byte-code compiled in {installed.compiled_in}"
                                                            " processes)" if installed.compiled_in > 1 else ""))
                published.append(stored.name)
                files.append(str(stored.relative_to(self.layout.local)))
                distributions.append((installed.name, installed.version,
                                      str(installed.dist_info.relative_to(self.layout.local))))
            if staging.exists():
                published.append("staged files")
            files += merge_staging(staging, self.layout.prefix, self.layout.local, installing=self.tag,
                                   lock_file=self.layout.lock_file)
            reach("install-merged")
            self._maintainer_script("spkg-postinst", env)
        return files, distributions

    def _check(self, env: dict) -> str:
        """The check phase (spkg-check, when asked): the manifest's test result ("passed", "failed"
        under SAGE_CHECK=warn, "" when not run)."""
        if not self.check:
            return ""
        if not self.pkg.script_path("spkg-check"):
            self.log.line(f"Package {self.pkg.name} has no test suite.")
            return ""
        with self.phase(events.CHECK):
            try:
                with build_share(env) as share:  # a test suite's make -j: its share too
                    run_script(self.pkg.script_path("spkg-check"), build_dir=self.build_dir, env={**env, **share},
                               log=self.log, name="spkg-check")
                return "passed"
            except BuildError as error:
                if self.settings.check != "warn":
                    raise
                # SAGE_CHECK=warn, as in Sage: the failure is reported, the package stays installed
                self.log.line(f"Warning: Failures testing package {self.pkg.name} (ignored): {error}")
                return "failed"

    # -- phases -----------------------------------------------------------------

    def _fetch(self, target: TargetPython) -> list[Path]:
        pkg = self.pkg
        if pkg.kind is Kind.PIP:
            return fetch_pip_package(pkg, self.layout, target, self.log, self.settings.environ)
        if pkg.tarball is None:
            return []
        cached = self.layout.upstream / pkg.tarball
        if verified_cached(cached, pkg.checksums):
            self.log.line(f"using {cached} (checksum verified)")
            return [cached]
        # urllib and friends: only when a file must be fetched
        from sage_build.pipeline import fetch as fetching
        path = fetching.fetch(
            pkg.tarball, pkg.checksums, package=pkg.name, upstream_dir=self.layout.upstream,
            mirrors=self.config.mirrors, index_name=(pkg.distribution_name or pkg.name) if pkg.is_python else None,
            upstream_url=pkg.upstream_url, debian_source=pkg.debian_source, progress=self.settings.progress,
        )
        self.log.line(f"using {path} (checksum verified)")
        return [path]

    def _unpack(self, sources: list[Path]) -> None:
        # tarfile & co: imported by the packages that unpack something, not by a wheel-kind one
        from sage_build.pipeline.unpack import apply_patches, unpack_source

        if sources:
            _copy_recipe_files(self.pkg.path, self.build_dir)
            src = unpack_source(sources[0], self.build_dir)
        else:
            src = self.build_dir / "src"
            if (self.pkg.path / "src").exists():
                _copy_recipe_src(self.pkg.path / "src", src)
            else:
                src.mkdir()
        patches = sorted((self.pkg.path / "patches").glob("*.patch")) if self.pkg.has_patches else []
        if patches:
            apply_patches(src, patches, log=self.log.line)

    def _build(self, kind: Kind, sources: list[Path], target: TargetPython, env: dict, dist_dir: Path) -> None:
        dist_dir.mkdir(exist_ok=True)
        if kind is Kind.WHEEL:
            self._build_share(kind, sources, target, env, dist_dir)
            return
        # The build's share of make's job budget (base.jobserver), held while it runs.
        with build_share(env) as share:
            self._build_share(kind, sources, target, {**env, **share}, dist_dir)

    def _build_share(self, kind: Kind, sources: list[Path], target: TargetPython, env: dict, dist_dir: Path) -> None:
        if kind is Kind.WHEEL:
            wheel = sources[0]
            if not target.supports_wheel(wheel.name):
                raise BuildError(f"{wheel.name} does not fit the target Python {target.version} ({target.tags[0]} ...)")
            shutil.copy2(wheel, dist_dir / wheel.name)
        elif kind is Kind.PIP:
            for source in sources:
                if source.name.endswith(".whl"):
                    shutil.copy2(source, dist_dir / source.name)
                else:
                    from sage_build.pipeline.unpack import unpack_source

                    unpacked = self.build_dir / f"sdist-{source.name}"
                    unpacked.mkdir()
                    src = unpack_source(source, unpacked)
                    build_wheel(src, dist_dir, python=self.layout.python, env=env, log=self.log,
                                markers=target.markers, advise=self._advise,
                                site_dirs=self._site_dirs(target), started=self._preload)
        elif kind in (Kind.NORMAL, Kind.SCRIPT):
            scripts = [s for s in ("spkg-build", "spkg-install") if self.pkg.script_path(s)]
            if scripts:
                for script in scripts:
                    run_script(self.pkg.script_path(script), build_dir=self.build_dir, env=env, log=self.log,
                               name=script, started=self._preload)
            else:
                build_wheel(self.build_dir / "src", dist_dir, python=self.layout.python, env=env, log=self.log,
                            markers=target.markers, advise=self._advise,
                            site_dirs=self._site_dirs(target), started=self._preload)

    def _preload(self) -> None:
        """Once the build's first process runs: see :func:`preload`."""
        if self._preloading is None:
            self._preloading = preload()

    def _site_dirs(self, target: TargetPython) -> list[Path] | None:
        """The prefix's site-packages as written now, when it sees no others (no system site)."""
        if self.config.system_site_packages:
            return None
        return [self.layout.staged(Path(p)) for p in dict.fromkeys(_final_paths(target, self.layout)[k]
                                                                    for k in ("purelib", "platlib"))]

    @functools.cached_property
    def _recipes(self) -> dict[str, Package]:
        return load_packages(self.layout.pkgs_dir)

    def _recipe_for(self, distribution: str) -> str | None:
        """The recipe that provides a Python distribution (normalised name)."""
        from packaging.utils import canonicalize_name

        for name, pkg in self._recipes.items():
            if pkg.distribution_name and canonicalize_name(pkg.distribution_name) == distribution:
                return name
            if canonicalize_name(name) == distribution:
                return name
        return None

    def _advise(self, unmet: Unmet) -> str:
        """What to do about a build requirement the prefix does not satisfy, with the commands."""
        recipe = self._recipe_for(unmet.name)
        if recipe is None:
            return default_advice(unmet)
        me = self.pkg.name
        if unmet.found is None:
            return f"{unmet.text}: add '{recipe}' to the recipe's dependencies (build/pkgs/{me}/dependencies)"
        others = sorted(name for name, pkg in self._recipes.items()
                        if name not in (me, recipe) and recipe in pkg.dependencies.tokens())
        also = f"; {', '.join(others[:8])}{' ...' if len(others) > 8 else ''} need{'s' if len(others) == 1 else ''} it too" \
            if others else ""
        return (f"{unmet.text}: a version conflict: the distribution has {unmet.name} {unmet.found}"
                f" (recipe {recipe}{also}), {me} wants {unmet.name}{unmet.specifier}.\n"
                f"    Either take the newest release of {recipe} that fits:"
                f" ./sage --package update {recipe} '{unmet.specifier}'"
                + (" (what needs it is rebuilt with it)" if others else "")
                + f"\n    or a release of {me} that accepts {unmet.name} {unmet.found}:"
                  f" ./sage --package update {me} VERSION")

    def _store_wheel(self, wheel: Path) -> Path:
        """Move a built wheel into var/lib/sage/wheels: never half a wheel there.

        From another file system it is copied under a marked temporary name first, which this
        process's owner lock covers; a killed store's temporary goes with the next store's sweep."""
        from sage_build.install.wheel import cleanup_stale_temporaries

        if TMP_MARK in wheel.name:  # the sweep would take the stored wheel for a dead store's temporary
            raise InstallError(f"{wheel.name}: a name sage-build keeps for its temporary files ('{TMP_MARK}')")
        wheels_dir, owners_dir = self.layout.wheels_dir, self.layout.owners_dir
        wheels_dir.mkdir(parents=True, exist_ok=True)
        hold_owner_lock(owners_dir)  # before our temporary exists, so that no sweep takes it for dead
        cleanup_stale_temporaries(wheels_dir, owners_dir)
        stored = wheels_dir / wheel.name
        move_atomic(wheel, stored)
        return stored

    def _keep_previous(self) -> dict | None:
        """Before the old version goes, set its wheels, files, scripts and stamp aside, so that a
        failed install (a full disk ...) can put it back.  Nothing in the prefix changes (a kill
        here leaves the old version whole, stamp and wheel): wheels and other files are
        hard-linked (copied across file systems), the files into a staging tree laid out as
        merge_staging expects.  Only installed versions count: a journal entry (a removal that a
        kill interrupted) describes a package no longer whole."""
        stamps = self.layout.installed_stamps(self.pkg.name)
        if not stamps:
            return None
        keep = self.build_dir / "previous"
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        files_root = keep / "files"
        staged_prefix = files_root / self.layout.prefix.relative_to(self.layout.prefix.anchor)
        wheels = []
        for stamp in stamps:
            for rel in read_manifest(stamp).get("files", []):
                source = self.layout.local / rel
                if rel.endswith(".whl") and source.is_file():
                    _link_or_copy(source, keep / source.name)
                    wheels.append(keep / source.name)
                elif os.path.lexists(source) and not (source.is_dir() and not source.is_symlink()):
                    dest = staged_prefix / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    _link_or_copy(source, dest)
        scripts = self.layout.scripts_dir / self.pkg.name
        if scripts.is_dir():
            shutil.copytree(scripts, keep / "scripts", symlinks=True)
        return {"stamps": {stamp: stamp.read_bytes() for stamp in stamps}, "wheels": wheels, "keep": keep,
                "files": files_root if files_root.exists() else None}

    @contextlib.contextmanager
    def _restore_on_failure(self, previous: dict | None, target: TargetPython, published: list):
        """``published`` is non-empty once anything of the new version reached the prefix."""
        try:
            yield
        except BaseException:
            if previous is not None and not published:
                self._restore_previous(previous, target)
            elif previous is not None:
                self.log.line("part of the new version was installed: the previous version was not put back")
            raise

    def _restore_previous(self, previous: dict, target: TargetPython) -> None:
        from sage_build.install.wheel import install_wheel, merge_staging

        try:
            for wheel in previous["wheels"]:
                stored = self._store_wheel(wheel)
                install_wheel(stored, paths=_final_paths(target, self.layout),
                              python_final=self.layout.python_final, python_now=self.layout.python,
                              destdir=self.layout.destdir, lock_file=self.layout.lock_file,
                              **self._install_options(target))
            if previous["files"] is not None:
                merge_staging(previous["files"], self.layout.prefix, self.layout.local, installing=self.tag,
                              lock_file=self.layout.lock_file)
            if (previous["keep"] / "scripts").is_dir():
                shutil.copytree(previous["keep"] / "scripts", self.layout.scripts_dir / self.pkg.name,
                                symlinks=True, dirs_exist_ok=True)
            for stamp, data in previous["stamps"].items():
                write_atomic(stamp, data)
        except (SageBuildError, OSError) as error:
            self.log.line(f"could not put the previous version back either: {error}")
            return
        self.log.line("the install failed; the previous version was put back")

    def _install_options(self, target: TargetPython) -> dict:
        """What install_wheel is told besides the wheel and the prefix, from the settings."""
        from sage_build.install.bytecode import parse_levels

        return {"bytecode_levels": parse_levels(self.settings.bytecode_levels, "SAGE_BYTECODE_LEVELS"),
                "collisions": self.settings.collisions, "compile_workers": job_budget(self.settings.environ),
                "borrow_jobs": functools.partial(borrowed, self.settings.environ),
                "compile_here": target.compiles_like_us()}

    def _maintainer_script(self, script: str, env: dict) -> None:
        path = self.pkg.script_path(script)
        if path is not None:
            run_script(path, build_dir=self.build_dir, env=env, log=self.log, name=script)

    def _record_scripts(self, distributions: list[tuple[str, str, str]]) -> None:
        directory = self.layout.scripts_dir / self.pkg.name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        if distributions:
            text = render_piprm(package=self.pkg.name, version=self.version,
                                python=self.layout.python_final, prefix=self.layout.prefix,
                                distributions=distributions)
            write_atomic(directory / PIPRM, text.encode(), mode=0o755)
        helpers = tool_bin_dir() / "sage-dist-helpers"
        for script in MAINTAINER_SCRIPTS:
            path = self.pkg.script_path(script)
            if path is not None:
                body = f"#!/usr/bin/env bash\nset -e\n. '{helpers}'\n{path.read_text()}\n"
                write_atomic(directory / script, body.encode(), mode=0o755)

    def failure_report(self, failure: PhaseFailed) -> str:
        lines = self.log.tail(120)
        return (
            f"\n{'*' * 72}\nError: {self.tag} failed in phase '{failure.phase}':\n  {failure.error}\n"
            f"Log file: {self.log_path}\n--- last lines of the log ---\n{lines}\n{'*' * 72}\n"
            f"To reproduce: make {self.pkg.name}   (or: {tool_root()}/build/bin/sage-spkg -s"
            f" {self.pkg.name}, which keeps the build directory {self.build_dir})\n"
        )


def _copy_recipe_files(recipe: Path, dest: Path) -> None:
    """Sage's sage-spkg copies a package's whole recipe directory into its build directory before
    it unpacks the tarball (``cp -RLp``, links resolved): a spkg-install may run a file beside it
    (passagemath's matplotlib: ``python3 make-setup-config.py``). A recipe's ``src`` would clash
    with the unpacked source: left out. (A script package gets only its ``src``, as in Sage.)"""
    for entry in sorted(recipe.iterdir()):
        if entry.name == "src":
            continue
        try:
            if entry.is_dir():
                shutil.copytree(entry, dest / entry.name, dirs_exist_ok=True)
            else:
                shutil.copy2(entry, dest / entry.name)
        except (OSError, shutil.Error) as error:
            raise RecipeError(f"{entry}: cannot copy it into the build directory {dest} ({error});"
                              f" fix or remove it (a link that leads nowhere?)") from None


def _copy_recipe_src(source: Path, dest: Path) -> None:
    """A recipe's ``src`` (a script package's source, often a link into the tree's pkgs/) copied
    into the build directory, links kept; a relative link that leads out of ``src`` (passagemath's
    ``sage -> ../../src/sage``, ``bin/sage-env-config -> ../../../src/bin/...``) would dangle in
    the copy, so it becomes an absolute link to where it leads in the tree (Sage's sage-spkg
    links the whole directory instead; copying keeps the build's own files out of the tree)."""
    real = source.resolve()
    shutil.copytree(real, dest, symlinks=True)
    for directory, dirs, files in os.walk(dest):
        for name in dirs + files:
            link = Path(directory, name)
            if not link.is_symlink():
                continue
            target = os.readlink(link)
            if os.path.isabs(target):
                continue
            original = real / link.relative_to(dest)
            lands = Path(os.path.normpath(original.parent / target))
            if lands != real and real not in lands.parents:
                link.unlink()
                link.symlink_to(lands)


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest, follow_symlinks=False)
    except OSError:  # another file system
        shutil.copy2(source, dest, follow_symlinks=False)


def _unstage_venv(layout: Layout) -> None:
    """A venv made under DESTDIR names its staged path; make it name the final prefix."""
    staged, final = str(layout.local), str(layout.prefix)
    candidates = [layout.local / "pyvenv.cfg", *layout.bin_dir.glob("activate*"),
                  *layout.bin_dir.glob("Activate*")]
    for path in candidates:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if staged in text:
            path.write_text(text.replace(staged, final))


def _reason_from_plan(name: str, plan_file: Path | None) -> str | None:
    """The reason the build's plan gave (sage-progress writes it before running make)."""
    if not plan_file:
        return None
    try:
        return json.loads(Path(plan_file).read_text()).get(name)
    except (OSError, ValueError):
        return None


def _local_reason(layout: Layout, pkg: Package) -> str:
    """Why this package builds, from its own stamps (without the dependency graph)."""
    stamps = layout.installed_stamps(pkg.name)
    if not stamps:
        return "not installed"
    if layout.stamp(pkg.name, pkg.stamp_version) not in stamps:
        return "version changed"
    return "recipe changed, a build dependency was rebuilt, or forced"


def _as_installed(target: TargetPython, layout: Layout) -> TargetPython:
    """The target as the installed tree sees it: a venv made under DESTDIR describes the final
    prefix (the packager's package is unpacked there), not the staging directory."""
    if layout.destdir is None:
        return target
    staged, final = str(layout.local), str(layout.prefix)

    def unstage(value: str) -> str:
        return final + value[len(staged):] if value == staged or value.startswith(staged + "/") else value

    return target._replace(executable=unstage(target.executable), prefix=unstage(target.prefix),
                           paths={key: unstage(value) for key, value in target.paths.items()})


def _final_paths(target: TargetPython, layout: Layout) -> dict[str, str]:
    """The target's scheme paths as the installed tree sees them (without DESTDIR)."""
    if layout.destdir is None:
        return dict(target.paths)
    staged = str(layout.destdir)
    return {k: v[len(staged):] if v.startswith(staged + "/") else v for k, v in target.paths.items()}


def fetch_pip_package(pkg: Package, layout: Layout, target: TargetPython, log: PackageLog,
                      environ: Mapping[str, str]) -> list[Path]:
    """Resolve a pip package's requirements with pip (run in ``environ``, less PIP_NO_INDEX); pin
    them (with hashes) for offline rebuilds."""
    from sage_build.pipeline import fetch as fetching
    requirements_hash = hashlib.sha256("\n".join(pkg.requirements).encode()).hexdigest()[:16]
    directory = layout.upstream / "pip" / f"{pkg.name}-{requirements_hash}"
    lock = directory / "requirements.lock"
    if lock.is_file():
        files = []
        for line in lock.read_text().splitlines():
            filename, _, digest = line.partition(" --hash=sha256:")
            path = directory / filename
            if path.is_file() and fetching.compute_checksums(path)["sha256"] == digest.strip():
                files.append(path)
            else:
                files = []
                break
        if files:
            log.line(f"using the pinned files of {lock}")
            return files
    tmp = Path(tmp_name(directory))  # marked: a leftover of a killed run is recognisable
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    requirements = tmp / "requirements.txt"
    requirements.write_text("\n".join(pkg.requirements) + "\n")
    pip = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--dest", str(tmp),
           "-r", str(requirements)]
    env = {k: v for k, v in environ.items() if k not in ("PIP_NO_INDEX",)}
    code = log.run(pip + ["--only-binary", ":all:", "--python-version", target.short_version], env=env)
    if code != 0:
        log.line("no wheel fits every requirement; fetching the source distributions instead")
        code = log.run(pip + ["--no-deps", "--no-binary", ":all:", "--no-build-isolation"], env=env)
    if code != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FetchError(f"pip could not download the requirements of {pkg.path}/requirements.txt (see the log)")
    files = sorted(p for p in tmp.iterdir() if p.name != "requirements.txt")
    lines = [f"{p.name} --hash=sha256:{fetching.compute_checksums(p)['sha256']}" for p in files]
    (tmp / "requirements.lock").write_text("\n".join(lines) + "\n")
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(tmp, directory)
    return [directory / p.name for p in files]


def preload() -> threading.Thread:
    """Import what the install and record phases need, in a background thread.

    sage-spkg runs once per package, and these imports (installer and what it needs) are
    a noticeable share of a small package's time when made in line (bench/README.md,
    "Measurements behind the design").  Started once the build's process runs
    (the backend's interpreter, a script), they overlap with it, as sage-spkg only waits for it
    then.  (Started earlier, they would delay that process: this thread would hold the
    interpreter lock that the thread starting it needs, again and again.)  A phase that needs
    a module imports it as usual (waiting for this thread if it is half-way), so a failure here
    changes nothing.
    """
    def load() -> None:
        import importlib

        try:
            importlib.import_module("sage_build.install.wheel")
        except Exception:  # the phase that needs it reports it
            pass

    thread = threading.Thread(target=load, name="preload")
    thread.start()
    return thread
