"""configure.py: read the recipes and the system, write the configuration and the Makefile."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sage_build.configure.config import ENABLE_VALUES, SYSTEM_VALUES, Config
from sage_build.base.errors import ConfigureError
from sage_build.recipes.graph import Graph, load_graph
from sage_build.base.layout import Layout
from sage_build.configure.makefile import PackageDecision, render_makefile, update_recipe_hash, write_if_changed
from sage_build.install.manifest import installed_versions
from sage_build.configure.build_plan import learned_durations
from sage_build.recipes.names import resolve, unknown_package_message
from sage_build.recipes.recipe import Kind, Package
from sage_build.configure.system import Detection, detect_declared, detect_python, has_system_check
from sage_build.install.target import query_python
from sage_build.base.commands import inherited_environment
from sage_build.configure.probes import CACHE_FILE, Probes, run_check
from sage_build.recipes.spkg_configure_m4 import Check, load_check, m4_dir_of, tree_macros
from typing import Collection, Mapping


@dataclass
class Options:
    prefix: str | None = None
    python: str | None = None
    upstream_dir: str | None = None
    mirrors: list[str] = field(default_factory=list)
    enable: dict[str, str] = field(default_factory=dict)
    with_system: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    help: bool = False
    system_site_packages: bool = False
    binary_cache: list[str] = field(default_factory=list)
    binary_cache_trusted_keys: list[str] = field(default_factory=list)


def parse_options(argv: list[str]) -> Options:
    """Parse autoconf-style options; ``--opt=value`` and ``--opt value`` both work."""
    options = Options()
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, sep, value = arg.partition("=")

        def needs_value() -> str:
            if sep:
                return value
            if not args or args[0].startswith("--"):
                raise ConfigureError(f"option {name} needs a value, e.g. {name}=VALUE")
            return args.pop(0)

        if arg in ("-h", "--help"):
            options.help = True
        elif arg in ("-q", "--quiet", "--silent"):
            options.quiet = True
        elif name == "--prefix":
            options.prefix = needs_value()
        elif name == "--with-python":
            options.python = needs_value()
        elif name == "--upstream-dir":
            options.upstream_dir = needs_value()
        elif name == "--mirror":
            options.mirrors.append(needs_value())
        elif name == "--with-binary-cache":
            options.binary_cache.append(needs_value())
        elif name == "--with-binary-cache-trusted-key":
            options.binary_cache_trusted_keys.append(needs_value())
        elif arg in ("--enable-system-site-packages", "--disable-system-site-packages"):
            options.system_site_packages = arg.startswith("--enable")
        elif _per_package_option(options, arg, name, value if sep else None):
            pass
        else:
            raise ConfigureError(f"unrecognized option: {arg!r}; try ./configure.py --help")
    return options


# --enable-PKG[=VALUE] / --disable-PKG, --with-system-PKG[=VALUE] / --without-system-PKG:
# (positive prefix, negative prefix, allowed values, the Options field they set)
_PER_PACKAGE = (("--enable-", "--disable-", ENABLE_VALUES, "enable"),
                ("--with-system-", "--without-system-", SYSTEM_VALUES, "with_system"))


def _per_package_option(options: Options, arg: str, name: str, value: str | None) -> bool:
    """Apply a per-package option; False if ``name`` is none."""
    for positive, negative, allowed, field_name in _PER_PACKAGE:
        settings = getattr(options, field_name)
        if name.startswith(positive):
            setting = "yes" if value is None else value
            _check_value(arg, setting, allowed)
            settings[name[len(positive):]] = setting
            return True
        if name.startswith(negative) and value is None:
            settings[name[len(negative):]] = "no"
            return True
    return False


def _check_value(arg: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigureError(f"{arg}: {value!r} is not one of {', '.join(allowed)}")


def _resolve_names(given: dict[str, str], packages: dict[str, Package], option: str) -> dict[str, str]:
    resolved = {}
    for raw, value in given.items():
        name = resolve(raw, packages)
        if name is None:
            raise ConfigureError(f"--{option}-{raw}: {unknown_package_message(raw, packages, 'build/pkgs')}")
        resolved[name] = value
    return resolved


@dataclass
class Result:
    config: Config
    decisions: dict[str, PackageDecision]
    detections: dict[str, Detection]
    makefile: str
    graph: Graph
    warnings: list[str] = field(default_factory=list)  # recipes left out, said even with --quiet
    target_cache: str | None = None   # a new entry of build/make/target-cache.json
    system: dict[str, SystemStatus] = field(default_factory=dict)   # the spkg-configure.m4 packages
    probe_cache: str | None = None    # build/make/config.cache's new text
    # Sage's hint (SAGE_NEED_SYSTEM_PACKAGES): the spkg-configure.m4 packages built from source
    # that the system could provide, standard ones and optional ones
    need_system: list[str] = field(default_factory=list)
    need_system_optional: list[str] = field(default_factory=list)
    # the recipes with our own detection (spkg-configure.yaml, install-requires.txt) built from
    # source: --with-system-PKG=yes would take them from the system once it has them
    could_use_system: list[str] = field(default_factory=list)


def configure(argv: list[str], sage_root: Path) -> Result:
    """Do everything configure does; write nothing until everything succeeded. What it decided
    is returned (the face prints it: ``face.configure_command``)."""
    result = decide(argv, sage_root)
    layout = result.config.layout()  # its paths under build/make do not depend on DESTDIR
    # Everything is decided; now write.
    for name, pkg in result.graph.packages.items():
        update_recipe_hash(layout.hashes_dir, name, pkg.path, pkg.content_hash)
    result.config.write(layout.config_file)
    if result.target_cache:
        write_if_changed(layout.make_dir / "target-cache.json", result.target_cache)
    write_if_changed(layout.makefile, result.makefile)
    if result.probe_cache:
        write_if_changed(layout.make_dir / CACHE_FILE, result.probe_cache)
    return result


def decide(argv: list[str], sage_root: Path, environ: Mapping[str, str] | None = None) -> Result:
    """What configure would write (the configuration, the Makefile), from the recipes as they are
    now; writes nothing (./sage --plan asks it what a reconfigure by make will decide)."""
    sage_root = sage_root.resolve()
    options = parse_options(argv)
    prefix = Path(options.prefix or sage_root / "local").expanduser().absolute()
    upstream_dir = Path(options.upstream_dir).expanduser().absolute() if options.upstream_dir else None
    layout = Layout(sage_root=sage_root, prefix=prefix, upstream_dir=upstream_dir)

    warnings: list[str] = []
    graph = load_graph(layout.pkgs_dir, warnings)
    packages = graph.packages
    enable = _resolve_names(options.enable, packages, "enable")
    with_system = _resolve_names(options.with_system, packages, "with-system")
    macros = tree_macros(m4_dir_of(layout.pkgs_dir))   # read once, not once per file
    checks = {name: check for name, pkg in packages.items()
              if not (pkg.path / "spkg-configure.yaml").is_file() and (check := load_check(pkg.path, name, macros)) is not None}
    for name, value in with_system.items():
        if value != "no" and name not in checks and not has_system_check(packages[name]):
            raise ConfigureError(
                f"--with-system-{name}={value}: package '{name}' has no way to detect a system"
                f" version (no install-requires.txt, no {packages[name].path}/spkg-configure.yaml)"
            )

    python = options.python or sys.executable
    target_cache = layout.make_dir / "target-cache.json"
    target, cache_entry = _cached_query(python, target_cache)

    # The Python checks run in a venv made by the interpreter that makes the prefix's venv
    # (Sage's PYTHON_FOR_VENV): Config.python, a wrapper or a shim as given; a bare name from PATH
    found = shutil.which(python) if options.python and os.sep not in python else None
    interpreter = str(Path(found or python).absolute()) if options.python else sys.executable
    probes = Probes(inherited_environment() if environ is None else environ, layout.make_dir / CACHE_FILE)
    detections = _detect(packages, {n: v for n, v in with_system.items() if n not in checks}, interpreter,
                         probes, target.markers)
    installed = installed_versions(layout, packages)
    system = decide_system(graph, checks, with_system, installed, probes,
                           site_packages=options.system_site_packages, python=interpreter, markers=target.markers)
    refused = system.get("python3")
    if refused is not None and refused.status == "source":
        # python3-venv is made from this interpreter whatever python3's check says: say that the
        # tree asks for another (passagemath wants >= 3.12), and how to give it one
        python_warning = [f"the tree's python3 check ({packages['python3'].path / 'spkg-configure.m4'}) does not"
                          f" accept {interpreter} (Python {target.version}); the prefix's venv is made from it"
                          f" anyway; configure --with-python=PATH with a Python the tree accepts"]
    else:
        python_warning = []
    forced_missing = [
        f"{name}: {detections[name].reason}" for name, value in sorted(with_system.items())
        if value == "force" and name in detections and not detections[name].found
    ] + [f"{name}: {system[name].reason}" + (" (spkg-configure.m4 not understood)" if system[name].status == "not understood" else "")
         for name, value in sorted(with_system.items())
         if value == "force" and name in system and system[name].status in ("source", "not understood")]
    for name, status in system.items():
        detections[name] = Detection(status.status == "system",
                                     status.reason if status.status in ("system", "source") else f"{status.status}: {status.reason}")
    if forced_missing:
        raise ConfigureError(
            "--with-system-PKG=force, but the system does not provide (install them, or drop"
            " --with-system-PKG=force):\n  " + "\n  ".join(sorted(forced_missing))
        )

    decisions = {}
    for name, pkg in packages.items():
        decisions[name] = _decide(pkg, enable.get(name), detections.get(name), name in installed)
    _depcheck(graph, decisions, decided_by_m4=set(system))

    disabled_installed = sorted(name for name, value in enable.items() if value == "no" and name in installed)
    config = Config(
        sage_root=str(sage_root),
        prefix=str(prefix),
        python=interpreter,
        argv=list(argv),
        upstream_dir=str(upstream_dir) if upstream_dir else None,
        mirrors=options.mirrors,
        enable=enable,
        with_system=with_system,
        from_system=sorted(name for name, decision in decisions.items() if decision.from_system),
        system_detection={name: [status.status, status.reason] for name, status in sorted(system.items())},
        system_site_packages=options.system_site_packages or any(
            n in detections and n not in checks and not (packages[n].path / "spkg-configure.yaml").is_file()
            for n, p in decisions.items() if p.from_system),
        python_version=target.version,
        binary_cache=options.binary_cache,
        binary_cache_trusted_keys=options.binary_cache_trusted_keys,
    )
    try:
        makefile = render_makefile(
            graph, decisions, sage_root=sage_root, prefix=prefix, python_version=target.version,
            argv=list(argv), disabled_installed=disabled_installed, durations=learned_durations(layout),
            binary_cache_configured=bool(options.binary_cache),
        )
    except ValueError as error:
        raise ConfigureError(str(error)) from None

    need, need_optional = need_system_packages(graph, checks, system, with_system, decisions,
                                               site_packages=options.system_site_packages)
    could = sorted(name for name, decision in decisions.items()
                   if decision.enabled and not decision.from_system and name not in checks and name not in installed
                   and has_system_check(packages[name]) and with_system.get(name) != "no")
    return Result(config=config, decisions=decisions, detections=detections, makefile=makefile, graph=graph,
                  warnings=warnings + python_warning, target_cache=cache_entry, system=system, probe_cache=probes.cache_text(),
                  need_system=need, need_system_optional=need_optional, could_use_system=could)


def need_system_packages(graph: Graph, checks: dict[str, Check], system: dict[str, SystemStatus],
                         with_system: dict[str, str], decisions: dict[str, PackageDecision], *,
                         site_packages: bool) -> tuple[list[str], list[str]]:
    """Sage's SAGE_NEED_SYSTEM_PACKAGES (m4/sage_spkg_collect.m4), standard and optional: the
    packages with a spkg-configure.m4 built from source whose sage_use_system is yes or force.
    Not those installed in the prefix (they stay), nor a Python package without
    --enable-system-site-packages (its default is no), nor one whose --with-system is no; and
    not one whose spkg-configure.m4 is not understood (a system package would not change it)."""
    standard: list[str] = []
    optional: list[str] = []
    for name in sorted(system):
        status = system[name].status
        if status in ("installed", "not understood") or decisions[name].from_system:
            continue
        default = "no" if checks[name].python_check and not site_packages else "yes"
        if with_system.get(name, default) == "no":
            continue
        (standard if graph.packages[name].type in ("base", "standard") else optional).append(name)
    return standard, optional


def _cached_query(python: str, cache: Path):
    """query_python, remembered while the interpreter file stays the same (configure runs often).

    Returns the description and, when it was asked anew, the cache entry to write."""
    import json

    from sage_build.install.target import TargetPython

    try:
        real = os.path.realpath(python)
        info = os.stat(real)
        key = [python, real, info.st_mtime, info.st_size]
    except OSError:
        return query_python(python), None  # says clearly what is wrong
    try:
        data = json.loads(cache.read_text())
        if data.get("key") == key and data["target"].get("bytecode"):
            return TargetPython(**data["target"]), None
    except (OSError, ValueError, TypeError):
        pass
    target = query_python(python)
    # written with the rest of the configuration, only if configure succeeds
    return target, json.dumps({"key": key, "target": target._asdict()})


def _detect(packages: dict[str, Package], with_system: dict[str, str], python: str, probes: Probes,
            markers: Mapping[str, str]) -> dict[str, Detection]:
    wanted = [packages[n] for n, v in with_system.items() if v != "no"]
    # A recipe's own spkg-configure.yaml wins; else its install-requires.txt asks the target Python.
    declared = [p for p in wanted if (p.path / "spkg-configure.yaml").is_file()]
    detections = detect_python([p for p in wanted if p not in declared], python, probes, markers)
    for pkg in declared:
        detections[pkg.name] = detect_declared(pkg, probes)
    return detections


def _how_built(pkg: Package) -> str:
    """What make will do for an enabled package not taken from the system."""
    if pkg.kind is Kind.WHEEL:
        return "install its wheel"
    if pkg.kind is Kind.PIP:
        return "install with pip (requirements.txt)"
    return "build from source"


def _decide(pkg: Package, enable: str | None, detection: Detection | None, installed: bool) -> PackageDecision:
    if enable is None:
        enable = "yes" if pkg.type in ("base", "standard") else "if_installed"
    if enable == "if_installed":
        enabled = installed
        reason = "installed, kept" if installed else f"{pkg.type}, not enabled: use ./sage -i {pkg.name}"
    else:
        enabled = enable == "yes"
        reason = _how_built(pkg) if enabled else "disabled"
    # Sage's rule: a package sage-build installed in the prefix stays built from source
    # (the spkg-configure.m4 ones are decided so in decide_system already).
    from_system = bool(detection and detection.found) and not installed
    if detection is not None and installed and enabled:
        reason = f"{_how_built(pkg)}: installed in the prefix by sage-build, it stays so" + (
            f" (the system has it: {detection.reason})" if detection.found else "")
    elif from_system:
        reason = f"from system ({detection.reason})"
    elif detection is not None and enabled:
        reason = f"{_how_built(pkg)} (system: {detection.reason})"
    return PackageDecision(name=pkg.name, enabled=enabled, from_system=from_system, reason=reason)


def _depcheck(graph: Graph, decisions: dict[str, PackageDecision], decided_by_m4: Collection[str] = ()) -> None:
    """A package whose dependency is built from source is built from source too (Sage's DEPCHECK):
    the system's copy was built against the system's dependency, not ours. A package decided by
    its spkg-configure.m4 is left as it decided: its SAGE_SPKG_DEPCHECK names the dependencies
    that matter, as in Sage (a package it finds not required needs none)."""
    for name in graph.topological_order(graph.packages):
        decision = decisions[name]
        if not decision.from_system or name in decided_by_m4:
            continue
        normal, _ = graph.dependencies(name)
        built = [d for d in normal if d in decisions and not decisions[d].from_system]
        if built:
            decisions[name] = PackageDecision(
                name=name, enabled=decision.enabled, from_system=False,
                reason=f"build from source: its dependency {built[0]} is built from source (system has it: "
                       f"{decision.reason.removeprefix('from system (').rstrip(')')})",
            )


@dataclass(frozen=True)
class SystemStatus:
    """What spkg-configure.m4 decided for a package: ``system`` (taken from the system),
    ``source`` (built from source), ``not understood`` (built from source: the reader does not
    understand its spkg-configure.m4), ``installed`` (built from source: already installed in the
    prefix by sage-build, it stays so, as in Sage); and why."""
    status: str
    reason: str
    # built from source although the system has it, in a version the check refused (probes.Outcome)
    refused: tuple[str, ...] = ()


def decide_system(graph: Graph, checks: dict[str, Check], with_system: dict[str, str], installed,
                  probes: Probes, *, site_packages: bool, python: str,
                  markers: Mapping[str, str] | None = None) -> dict[str, SystemStatus]:
    """Sage's decisions (m4/sage_spkg_configure.m4) for the packages with a spkg-configure.m4."""
    result: dict[str, SystemStatus] = {}
    python_found: dict[str, Detection] = {}
    if site_packages:
        # one throw-away venv answers for every SAGE_PYTHON_PACKAGE_CHECK (Sage makes one per check)
        wanted = [graph.packages[n] for n, c in checks.items()
                  if c.python_check and graph.packages[n].install_requires and n not in installed
                  and with_system.get(n) != "no"]
        python_found = detect_python(wanted, python, probes, markers)

    def python_check(name: str) -> tuple[bool, str]:
        if not site_packages:
            return False, "a Python package: configure without --enable-system-site-packages builds it"
        found = python_found.get(name)
        if found is None:
            return False, f"no version_requirements.txt for {name}"
        return found.found, found.reason

    # configure.ac's variables that checks read. PYTHON_FOR_VENV is the Python the prefix's venv is
    # made from: in Sage it is empty when python3 is built from source, but sage-build always makes
    # the venv (python3-venv) from `python`, whatever python3's own check decides; a backport that
    # is "not needed with our Python SPKG" (importlib_metadata on 3.11) is needed by this venv.
    # SAGE_BOOTSTRAP_PYTHON runs Sage's own tools.
    context = {"PYTHON_FOR_VENV": lambda: python, "SAGE_BOOTSTRAP_PYTHON": lambda: python,
               "SAGE_PYTHON_CANDIDATE": lambda: python}

    def built(name: str) -> bool:
        if name not in result:
            if name in checks:
                one(name)
            else:
                return True   # no spkg-configure.m4: always built from source
        return result[name].status != "system"

    def one(name: str) -> None:
        check = checks[name]
        setting = with_system.get(name, "no" if check.python_check and not site_packages else "yes")
        if name in installed:
            result[name] = SystemStatus("installed", "installed in the prefix by sage-build; it stays so")
        elif not check.runnable and setting == "force":
            # the check cannot be run: the user's word is the only way to the system's copy
            result[name] = SystemStatus("system", "--with-system-" + name + "=force; its spkg-configure.m4 is not"
                                        " understood (" + "; ".join(check.not_understood[:1]) + "), so unchecked")
        elif not check.runnable:
            result[name] = SystemStatus("not understood", "; ".join(check.not_understood[:2]))
        elif setting == "no" and not check.required:
            why = python_check(name)[1] if check.python_check and name not in with_system else "--with-system-" + name + "=no"
            result[name] = SystemStatus("source", why)
        else:   # a REQUIRED-CHECK runs even with --with-system-PKG=no: the package may not be needed
            result[name] = SystemStatus("source", "checking")   # a cycle in DEPCHECKs builds it
            outcome = run_check(check, probes, dependency_built=built, python_check=python_check,
                                use_system=setting != "no", context=context)
            why = outcome.reason
            if setting == "no" and outcome.install:
                why = python_check(name)[1] if check.python_check and name not in with_system else "--with-system-" + name + "=no"
            if outcome.not_understood and setting == "force":   # as above, found when the check reached it
                result[name] = SystemStatus("system", "--with-system-" + name + "=force; its spkg-configure.m4 is not"
                                            " understood (" + outcome.not_understood + "), so unchecked")
            elif outcome.not_understood:   # the check reached a statement the reader does not understand
                result[name] = SystemStatus("not understood", outcome.not_understood)
            else:
                result[name] = SystemStatus("source" if outcome.install else "system", why,
                                            tuple(outcome.refused) if setting != "no" else ())

    for name in graph.topological_order(checks):
        if name not in result:
            one(name)
    return result
