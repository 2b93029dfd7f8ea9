"""Reading package recipes in SageMath's file-per-fact format.

A recipe is a directory ``build/pkgs/<name>/``; only directories holding a
``type`` file are packages (as in Sage).  Everything any tool knows about a
recipe comes from :func:`load_package`, and the kind of a package is decided
by :func:`package_kind` alone.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from sage_build.base.errors import RecipeError

#: The pseudo-package that makes the prefix's virtual environment ($(PYTHON)).  Defined here, not
#: in graph.py, so that sage-spkg, which needs the name but no graph, does not import the graph.
PYTHON_PSEUDO = "python3-venv"
TYPES = ("base", "standard", "optional", "experimental")
CHECKSUM_KEYS = ("sha256", "sha1", "md5", "cksum")
SCRIPT_NAMES = (
    "spkg-install", "spkg-build", "spkg-check",
    "spkg-preinst", "spkg-postinst", "spkg-prerm", "spkg-postrm",
)
_MAKE_VARIABLE = re.compile(r"^\$\(([A-Za-z_][A-Za-z0-9_]*)\)$")
_PACKAGE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
# Sage's rule for the name of a recipe directory: make takes it as a target and a variable name
# (a space, ':', '$', '#' or a leading '-' breaks the Makefile).
_RECIPE_NAME = re.compile(r"^[a-z0-9_][a-z0-9_.]*$")
_PATCH_LEVEL = re.compile(r"\.p\d+$")  # package-version.txt's .pN: not the upstream version
_HEX = re.compile(r"[0-9a-fA-F]+")
_VERSION_TEXT = re.compile(r"[A-Za-z0-9_.+~-]+")
_SDH_PIP = re.compile(r"\bsdh_(pip_install|setup_bdist_wheel|store_and_pip_install_wheel|pip_editable_install)\b")


class Kind(enum.Enum):
    """How a package is obtained; see :func:`package_kind`."""

    PIP = "pip"        # requirements.txt: resolved and fetched with pip
    WHEEL = "wheel"    # upstream tarball is a wheel: installed as it is
    NORMAL = "normal"  # upstream tarball built by a script or, for a Python sdist, by PEP 517
    SCRIPT = "script"  # no tarball, only an spkg-install script
    NONE = "none"      # nothing to build (only metadata such as distros/)


class Dependencies(NamedTuple):
    """The parsed first lines of ``dependencies`` and of the extra dependency files, as written.

    Entries are tokens (see :func:`parse_dependency_line`): package names, make variables
    (``$(BLAS)``), make expressions (``$(findstring isl,$(SAGE_BUILT_PACKAGES))``), file paths
    (``$(SAGE_ROOT)/pkgs/sage-conf/setup.py``) and ``FORCE``; ``recipes.graph`` gives them
    Sage's meaning.
    """

    normal: tuple[str, ...] = ()       # ``dependencies`` before '|': runtime (and build) dependencies
    order_only: tuple[str, ...] = ()   # ``dependencies`` after '|'
    order_only_file: tuple[str, ...] = ()   # ``dependencies_order_only``
    optional: tuple[str, ...] = ()     # ``dependencies_optional``: when the package is enabled
    check: tuple[str, ...] = ()        # ``dependencies_check``: for spkg-check (SAGE_CHECK)
    build: tuple[str, ...] | None = None    # ``dependencies_build`` before '|': replaces ``normal`` for building
    build_order_only: tuple[str, ...] = ()  # ``dependencies_build`` after '|': replaces ``order_only``

    def tokens(self) -> tuple[str, ...]:
        """Every token of every dependency file."""
        return (self.normal + self.order_only + self.order_only_file + self.optional + self.check
                + (self.build or ()) + self.build_order_only)


class UpstreamFile(NamedTuple):
    """One section of a sectioned ``checksums.ini``: a platform's wheel, or the sdist."""
    tarball_pattern: str
    checksums: dict[str, str]
    upstream_url_pattern: str | None


#: The lists of ``src/pyproject.toml.m4`` that sage_bootstrap reads (build/sage_bootstrap/package.py).
PYPROJECT_KEYS = ("requires", "build-requires", "host-requires", "dependencies", "test")


class Package(NamedTuple):
    """A recipe as read (``load_package``); its mappings are shared when empty and never changed."""

    name: str
    path: Path
    type: str
    version: str | None               # with the .pN patch level, as in package-version.txt
    tarball_pattern: str | None        # as written, with the literal VERSION
    checksums: dict[str, str] = {}
    upstream_url_pattern: str | None = None
    debian_source: str | None = None
    dependencies: Dependencies = Dependencies()
    install_requires: tuple[str, ...] = ()  # PEP 508 lines, comments dropped
    requirements: tuple[str, ...] = ()      # pip package: lines of requirements.txt
    scripts: frozenset[str] = frozenset()   # names of the spkg-* scripts present (without .in)
    distros: dict[str, tuple[str, ...]] = {}
    has_patches: bool = False
    has_src: bool = False
    content_hash: str = ""   # see hash_files: a rebuild follows a change of it
    # src/pyproject.toml.m4 as sage_bootstrap reads it: key -> ((entry, line number), ...); an
    # entry is a recipe name (SPKG_INSTALL_REQUIRES_<name>) or a PURL (pkg:pypi/<distribution>).
    pyproject: dict[str, tuple[tuple[str, int], ...]] = {}
    src_build_files: tuple[str, ...] = ()   # src/pyproject.toml (from its .m4), src/MANIFEST.in: present ones
    purl_file: str | None = None            # purl.txt's first line
    uses_python_package_check: bool = False  # spkg-configure.m4 calls SAGE_PYTHON_PACKAGE_CHECK (sage_bootstrap's)
    # every section of a checksums.ini with more than one (platform wheels); the fields above are
    # the first one's until for_target chooses
    upstream_files: tuple[UpstreamFile, ...] = ()

    def for_target(self, tags: Sequence[str]) -> Package:
        """The recipe with the upstream file this target Python installs: among the sections of
        its checksums.ini, the wheel whose tags the target supports best (``tags`` in the target's
        order of preference, packaging.tags.sys_tags), else the sdist section.  Raises RecipeError
        naming the recipe when none fits.  A recipe with one file is returned as it is."""
        if not self.upstream_files:
            return self
        from packaging.utils import InvalidWheelFilename, parse_wheel_filename
        from packaging.version import InvalidVersion

        rank = {tag: number for number, tag in enumerate(tags)}
        best: tuple[int, UpstreamFile] | None = None
        sdist = None
        for upstream in self.upstream_files:
            filename = substitute_version(upstream.tarball_pattern, self.upstream_version or "")
            if not filename.endswith(".whl"):
                sdist = sdist or upstream
                continue
            try:
                wheel_tags = parse_wheel_filename(filename)[3]
            except (InvalidWheelFilename, InvalidVersion) as error:
                raise RecipeError(f"{self.path}/checksums.ini: [{filename}] is not a valid wheel file name"
                                  f" ({error}); fix the section's name and tarball=") from None
            fit = min((rank[str(tag)] for tag in wheel_tags if str(tag) in rank), default=None)
            if fit is not None and (best is None or fit < best[0]):
                best = (fit, upstream)
        choice = best[1] if best is not None else sdist
        if choice is None:
            raise RecipeError(
                f"package '{self.name}': none of the {len(self.upstream_files)} wheels in"
                f" {self.path}/checksums.ini fits the target Python (its best tag: {tags[0] if tags else '?'}),"
                f" and no sdist section is listed to build from; add this platform's wheel or the sdist"
                f" to checksums.ini (./sage --package fix-checksum {self.name} fills in its sha256),"
                f" or take {self.name} from the system"
            )
        return self._replace(tarball_pattern=choice.tarball_pattern, checksums=choice.checksums,
                             upstream_url_pattern=choice.upstream_url_pattern)

    @property
    def sage_distribution(self) -> str | None:
        """sage_bootstrap's ``distribution_name``: the first word of requirements.txt, else of
        version_requirements.txt (install-requires.txt, its older name); None for a non-Python recipe."""
        for lines in (self.requirements, self.install_requires):
            for line in lines:
                words = line.split()
                if words:
                    return words[0]
        return None

    @property
    def purl(self) -> str:
        """sage_bootstrap's PURL: purl.txt, else pkg:pypi/<distribution>, else pkg:generic/<name>."""
        if self.purl_file:
            return self.purl_file
        dist = self.sage_distribution
        if dist:
            return "pkg:pypi/" + dist.lower().replace("_", "-")
        return "pkg:generic/" + self.name.replace("_", "-")

    @property
    def upstream_version(self) -> str | None:
        """The version without Sage's ``.pN`` patch level: what the tarball name uses."""
        if self.version is None:
            return None
        return upstream_version_of(self.version)

    @property
    def stamp_version(self) -> str:
        return self.version or "none"

    @property
    def tarball(self) -> str | None:
        if self.tarball_pattern is None:
            return None
        return substitute_version(self.tarball_pattern, self.upstream_version or "")

    @property
    def upstream_url(self) -> str | None:
        if self.upstream_url_pattern is None:
            return None
        return substitute_version(self.upstream_url_pattern, self.upstream_version or "")

    @property
    def kind(self) -> Kind:
        return package_kind(self)

    @property
    def is_python(self) -> bool:
        """True when the package installs a Python distribution (a wheel)."""
        return is_python_package(self)

    @property
    def builds_wheel(self) -> bool:
        """True for a normal package whose source is a Python sdist: it is built into a wheel."""
        return self.kind is Kind.NORMAL and self.is_python

    @property
    def distribution_name(self) -> str | None:
        """The Python distribution's name: the PEP 508 name (a URL's ``#egg=`` name) of the first
        line of requirements.txt, else of version_requirements.txt (install-requires.txt), in
        sage_bootstrap's order; None if neither names one."""
        from packaging.requirements import InvalidRequirement, Requirement

        for lines in (self.requirements, self.install_requires):
            for line in lines:
                egg = _EGG.search(line)
                if egg:
                    return egg.group(1)
                try:
                    return Requirement(line).name
                except InvalidRequirement:   # e.g. a version PEP 440 rejects: ">=8bc82f6d"
                    name = _LEADING_NAME.match(line)
                    if name:
                        return name.group(1)
        return None

    def script_path(self, script: str) -> Path | None:
        """The file of spkg script ``script`` (``spkg-install.in`` or a plain ``spkg-install``)."""
        for candidate in (self.path / f"{script}.in", self.path / script):
            if candidate.is_file():
                return candidate
        return None


_VERSION_VARIABLE = re.compile(r"\$\{(VERSION(?:_MAJOR|_MINOR|_MICRO)?)\}|(VERSION(?:_MAJOR|_MINOR|_MICRO)?)")


def upstream_version_of(version: str) -> str:
    """A package-version.txt version without Sage's ``.pN`` patch level: the upstream version."""
    return _PATCH_LEVEL.sub("", version)


def substitute_version(pattern: str, upstream_version: str) -> str:
    """A checksums.ini pattern with sage_bootstrap's variables replaced: ``VERSION`` and its
    ``VERSION_MAJOR``, ``VERSION_MINOR``, ``VERSION_MICRO`` (the first three dot-separated parts of
    the version without ``.pN``; empty when the version has fewer), each bare or as ``${...}``."""
    parts = upstream_version.split(".")
    values = {"VERSION": upstream_version}
    for i, suffix in enumerate(("MAJOR", "MINOR", "MICRO")):
        values[f"VERSION_{suffix}"] = parts[i] if i < len(parts) else ""
    return _VERSION_VARIABLE.sub(lambda m: values[m.group(1) or m.group(2)], pattern)


def package_kind(pkg: Package) -> Kind:
    """THE decision of a package's kind; every tool calls this and only this."""
    if pkg.requirements:
        return Kind.PIP
    if pkg.tarball_pattern:
        if pkg.tarball_pattern.endswith(".whl"):
            return Kind.WHEEL
        return Kind.NORMAL
    if "spkg-install" in pkg.scripts:
        return Kind.SCRIPT
    return Kind.NONE


def is_python_package(pkg: Package) -> bool:
    """Whether the package's product is a Python distribution installed from a wheel."""
    kind = package_kind(pkg)
    if kind in (Kind.PIP, Kind.WHEEL):
        return True
    if kind is not Kind.NORMAL:
        return False
    install = pkg.script_path("spkg-install")
    if install is None:
        # No script: the default build is PEP 517, which only makes sense for an sdist.
        return True
    if pkg.install_requires:
        return True
    return bool(_SDH_PIP.search(install.read_text(errors="replace")))


def _recipe_entries(path: Path) -> Iterator[tuple[str, os.DirEntry]]:
    """A recipe's files and directories (relative name, entry), links followed; an in-tree
    ``src/`` is left out."""
    stack = [("", str(path))]
    while stack:
        prefix, directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir():
                if rel not in ("src", "__pycache__"):
                    yield rel + "/", entry
                    stack.append((rel + "/", entry.path))
            elif entry.is_file():
                yield rel, entry


def scan_recipe(path: Path) -> dict[str, bytes]:
    """Every file of a recipe (relative name -> bytes), read once; an in-tree ``src/`` is left out."""
    files: dict[str, bytes] = {}
    for rel, entry in _recipe_entries(path):
        if not rel.endswith("/"):
            with open(entry.path, "rb") as handle:
                files[rel] = handle.read()
    return files


def recipes_state(pkgs_dir: Path) -> tuple:
    """What :func:`load_packages` reads, as make sees a change: every recipe file and directory it
    walks, with inode, size and modification time (links followed). Equal states, equal packages."""
    info = pkgs_dir.stat()
    state: list[tuple] = [("", info.st_ino, info.st_mtime_ns)]
    for path in package_dirs(pkgs_dir):
        info = path.stat()
        state.append((path.name, info.st_ino, info.st_mtime_ns))
        for rel, entry in _recipe_entries(path):
            try:
                info = entry.stat()
            except OSError:
                continue
            state.append((rel, info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(state)


#: Recipe files that describe a package without changing how it builds: its documentation, the
#: names of its system equivalents, the system check configure runs (its decision is an input of
#: the binary cache's key on its own, as the configuration), its type (standard/optional).
NOT_BUILD_INPUTS = ("SPKG.rst", "SPKG.txt", "README", "README.md", "README.rst", "spkg-configure.m4", "type",
                    "purl.txt", "trees.txt")
NOT_BUILD_INPUT_DIRS = ("distros/",)


def build_input_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """The files of a recipe (from :func:`scan_recipe`) that change its build, as they count: every
    file but :data:`NOT_BUILD_INPUTS` and what is under :data:`NOT_BUILD_INPUT_DIRS`; of a
    dependency file, only the first line (Sage ignores the rest). Anything else counts, so a new
    kind of recipe file rebuilds rather than being missed."""
    kept = {}
    for rel, data in files.items():
        if rel in NOT_BUILD_INPUTS or rel.startswith(NOT_BUILD_INPUT_DIRS):
            continue
        if rel.startswith("dependencies"):
            data = data.split(b"\n", 1)[0].strip()
        kept[rel] = data
    return kept


def hash_files(files: dict[str, bytes]) -> str:
    """The recipe hash (make's rebuild trigger and part of the binary cache's key): names and
    contents of the recipe's build inputs (:func:`build_input_files`)."""
    inputs = build_input_files(files)
    digest = hashlib.sha256()
    for rel in sorted(inputs):
        digest.update(rel.encode() + b"\0" + inputs[rel] + b"\0")
    return digest.hexdigest()


_EGG = re.compile(r"#egg=([A-Za-z0-9_.-]+)")
_LEADING_NAME = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?=$|[\s<>=!~;\[(])")
_REQUIREMENT_COMMENT = re.compile(r"(^|\s)#.*$")


def _requirement_lines(text: str) -> list[str]:
    """Lines of a requirements file without comments and blanks, by pip's rule (which
    sage_bootstrap's PURL follows): ``#`` starts a comment at a line's start or after a blank, so
    a URL's ``#egg=name`` stays."""
    lines = []
    for raw in text.splitlines():
        line = _REQUIREMENT_COMMENT.sub("", raw).strip()
        if line:
            lines.append(line)
    return lines


def _meaningful_lines(text: str) -> list[str]:
    """Lines with ``#`` comments and blanks removed."""
    lines = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


_MAKE_FUNCTION_OR_VARIABLE = re.compile(r"^\$[({]")
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_.+@%*?~\[\]/-]+$")


def _split_tokens(text: str, where: str) -> list[str]:
    """Split at blanks outside ``$(...)``/``${...}``, as make reads a prerequisite list:
    ``$(if $(filter yes,$(X)),a b)`` is one token."""
    tokens: list[str] = []
    current: list[str] = []
    depth = 0
    i = 0
    while i < len(text):
        char = text[i]
        if char == "$" and i + 1 < len(text) and text[i + 1] in "({":
            depth += 1
            current.append(text[i:i + 2])
            i += 2
            continue
        if depth and char in "({":
            depth += 1
        elif depth and char in ")}":
            depth -= 1
        if char.isspace() and not depth:
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(char)
        i += 1
    if current:
        tokens.append("".join(current))
    if depth:
        raise RecipeError(
            f"{where}, line 1: {tokens[-1]!r} is neither a package name nor a make variable such as"
            f" $(PYTHON): its '$(' is never closed; close it or remove the token"
        )
    return tokens


def _check_token(token: str, where: str) -> None:
    """A token make reads as one prerequisite: a name, ``FORCE``, ``$(VAR)``, a make expression
    or a file path.  Only text make would misread (``:``, ``;``, ``=``, a lone ``$``, quotes,
    unbalanced parentheses) is malformed."""
    if _MAKE_VARIABLE.match(token) or _PACKAGE_NAME.match(token):
        return
    outside: list[str] = []   # the characters outside $(...), where make's syntax applies
    depth = 0
    i = 0
    while i < len(token):
        char = token[i]
        if char == "$":
            if i + 1 < len(token) and token[i + 1] in "({":
                depth += 1
                i += 2
                continue
            break   # $X, $$: not how a Sage recipe writes anything
        if depth:
            depth += char in "({"
            depth -= char in ")}"
        else:
            outside.append(char)
        i += 1
    else:
        text = "".join(outside)
        if not depth and (not text or _PLAIN_WORD.match(text)) and ("$" in token or "/" in token):
            return
    raise RecipeError(
        f"{where}, line 1: {token!r} is neither a package name nor a make variable such as $(PYTHON),"
        f" nor a make expression or file path; fix or remove it"
    )


def parse_dependency_line(text: str, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Parse the first line of a ``dependencies`` file into (normal, order-only) tokens.

    Only the first line counts (Sage's rule); ``#`` starts a comment; a ``|``
    separates order-only dependencies.  Tokens are handed to make as Sage does: package
    names, ``$(VAR)``, make expressions, file paths and ``FORCE`` (see :func:`_check_token`).
    """
    first = text.splitlines()[0] if text.strip() else ""
    first = first.split("#", 1)[0]
    parts = first.split("|")
    if len(parts) > 2:
        raise RecipeError(f"{where}, line 1: more than one '|' in the dependency line {first.strip()!r};"
                          f" keep one, before the order-only dependencies")
    normal = tuple(_split_tokens(parts[0], where))
    order_only = tuple(_split_tokens(parts[1], where)) if len(parts) == 2 else ()
    for token in normal + order_only:
        _check_token(token, where)
    return normal, order_only


_TOML_LIST_BEGIN = re.compile(r"^(?P<key>[-a-z]*) *= *\[")
_TOML_LIST_END = re.compile(r"^[]]")
_SPKG_INSTALL_REQUIRES = re.compile(r"^ *SPKG_INSTALL_REQUIRES_(?P<spkg>[a-z0-9_]*)")
_PURL = re.compile(r'^ *"(?P<purl>pkg:.*)"')
_DISTRIBUTION = re.compile(r'^ *"(?P<distribution>[-_A-Za-z0-9.]*)"')


def parse_pyproject_m4(text: str) -> dict[str, tuple[tuple[str, int], ...]]:
    """The dependency lists of ``src/pyproject.toml.m4``, read line by line exactly as
    sage_bootstrap's ``Package._init_pyproject`` reads them (its quirks included: a list
    ends only at a line starting with ``]``)."""
    found: dict[str, dict[str, int]] = {}
    key = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _TOML_LIST_BEGIN.match(line)
        if match:
            key = match.group("key")
            line = line[match.end():]
        match = _TOML_LIST_END.match(line)
        if match:
            key = None
            line = line[match.end():]
        if not key:
            continue
        entry = None
        if match := _SPKG_INSTALL_REQUIRES.match(line):
            entry = match.group("spkg")
        elif match := _PURL.match(line):
            entry = match.group("purl")
        elif match := _DISTRIBUTION.match(line):
            entry = "pkg:pypi/" + match.group("distribution")
        if entry is not None and key in PYPROJECT_KEYS:
            found.setdefault(key, {}).setdefault(entry, number)
    return {key: tuple(entries.items()) for key, entries in found.items()}


def parse_checksums(text: str, where: str) -> dict[str, str]:
    """Parse ``checksums.ini``: ``key=value`` lines, ``#`` comments and blank lines."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise RecipeError(f"{where}, line {number}: expected 'key=value', found {raw.strip()!r}")
        if not value:
            raise RecipeError(f"{where}, line {number}: '{key}=' has no value")
        if key in values:
            raise RecipeError(f"{where}, line {number}: '{key}' is given twice")
        values[key] = value
    return values


_SECTION = re.compile(r"^\[(?P<section>[-a-zA-Z0-9_.]*)\]\s*$")


def parse_checksums_all(text: str, where: str) -> list[tuple[str, dict[str, str]]]:
    """Every file of ``checksums.ini``: (where, values) per section, in the file's order.  A current
    Sage tree may list its files in sections (``[pythran-0.18.1-py3-none-any.whl]`` then
    ``tarball=``, ``sha256=`` ...; one per platform for binary wheels).  Values before the first
    section make the one (primary) file; a file without sections is one file too."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _SECTION.match(line.strip())]
    if not starts:
        return [(where, parse_checksums(text, where))]
    head = parse_checksums("\n".join(lines[:starts[0]]), where)
    if head:
        return [(where, head)]
    files = []
    for start, end in zip(starts, starts[1:] + [len(lines)]):
        here = f"{where} {lines[start].strip()}"
        # blank lines keep parse_checksums' line numbers those of the file
        files.append((here, parse_checksums("\n".join([""] * (start + 1) + lines[start + 1:end]), here)))
    return files


def _check_checksum_value(key: str, value: str, where: str) -> None:
    lengths = {"sha256": 64, "sha1": 40, "md5": 32}
    if key in lengths:
        if len(value) != lengths[key] or not _HEX.fullmatch(value):
            raise RecipeError(
                f"{where}: {key}={value!r} is not a {lengths[key]}-digit hexadecimal {key} sum;"
                f" run ./sage --package fix-checksum to recompute it"
            )
    elif key == "cksum" and not value.isdigit():
        raise RecipeError(f"{where}: cksum={value!r} is not a decimal POSIX cksum value")


def _check_tarball_name(pattern: str, version: str | None, where: str, name: str) -> None:
    """A tarball is a file directly in upstream/: a path in its name would make every tool
    (the cache look-up, fetch, unpack) use a file elsewhere."""
    for text in (pattern, substitute_version(pattern, upstream_version_of(version or ""))):
        if "/" in text or "\0" in text or text in ("", ".", ".."):
            raise RecipeError(
                f"{where}: tarball={pattern!r} is not a plain file name; it names a file in upstream/,"
                f" so write the file name alone (no '/', not '..'), e.g. tarball={name}-VERSION.tar.gz"
            )


def _upstream_file(where: str, values: dict[str, str], version: str | None, name: str) -> UpstreamFile:
    """One section of a sectioned checksums.ini, checked as the primary file is."""
    tarball = values.get("tarball")
    if tarball is None:
        raise RecipeError(f"{where}: a section without a 'tarball=' line naming its file")
    _check_tarball_name(tarball, version, where, name)
    sums = {}
    for key in CHECKSUM_KEYS:
        if key in values:
            _check_checksum_value(key, values[key], where)
            sums[key] = values[key].lower()
    if not sums:
        raise RecipeError(f"{where}: {tarball!r} has no checksum (sha256=...); run ./sage --package fix-checksum {name}")
    return UpstreamFile(tarball, sums, values.get("upstream_url"))


def load_package(path: Path) -> Package:
    """Load the recipe in directory ``path``; raise :class:`RecipeError` on malformed files."""
    name = path.name
    where = f"package '{name}'"
    files = scan_recipe(path)

    def _read(name: str) -> str | None:
        """A recipe file's text by its name relative to the recipe (None if absent)."""
        data = files.get(name)
        return None if data is None else data.decode("utf-8", errors="replace")

    type_text = _read("type")
    if type_text is None:
        if (path / "type").is_dir():
            raise RecipeError(f"{path}/type: expected a file, found a directory")
        raise RecipeError(f"{path}/type is missing: every package directory needs a type file ({', '.join(TYPES)})")
    type_lines = _meaningful_lines(type_text)
    pkg_type = type_lines[0] if type_lines else ""
    if pkg_type not in TYPES:
        raise RecipeError(
            f"{path}/type: unknown type {pkg_type!r} for {where}; expected one of {', '.join(TYPES)}"
        )

    version = None
    version_text = _read("package-version.txt")
    if version_text is not None:
        lines = _meaningful_lines(version_text)
        if not lines:
            raise RecipeError(f"{path}/package-version.txt is empty: write the version of {where}")
        version = lines[0]
        if not _VERSION_TEXT.fullmatch(version):
            raise RecipeError(f"{path}/package-version.txt: {version!r} is not a valid version")

    checksums: dict[str, str] = {}
    tarball_pattern = upstream_url = debian_source = None
    upstream_files: tuple[UpstreamFile, ...] = ()
    checksums_text = _read("checksums.ini")
    if checksums_text is not None:
        where_ini = f"{path}/checksums.ini"
        sections = parse_checksums_all(checksums_text, where_ini)
        values = sections[0][1]
        if len(sections) > 1:
            upstream_files = tuple(_upstream_file(here, section, version, name) for here, section in sections)
        tarball_pattern = values.get("tarball")
        upstream_url = values.get("upstream_url")
        debian_source = values.get("debian_source")
        for key in CHECKSUM_KEYS:
            if key in values:
                _check_checksum_value(key, values[key], where_ini)
                checksums[key] = values[key].lower()
        if tarball_pattern is not None:
            _check_tarball_name(tarball_pattern, version, where_ini, name)
        if tarball_pattern is None and (checksums or upstream_url):
            raise RecipeError(f"{where_ini}: checksums without a 'tarball=' line naming the file")
        if tarball_pattern is not None and not checksums:
            raise RecipeError(
                f"{where_ini}: tarball pattern {tarball_pattern!r} has no checksum (sha256=...);"
                f" run ./sage --package fix-checksum {name}"
            )
        if tarball_pattern is not None and version is None:
            raise RecipeError(
                f"{path}/package-version.txt is missing: {where} has a tarball, so it needs a version"
            )

    normal: tuple[str, ...] = ()
    order_only: tuple[str, ...] = ()
    deps_text = _read("dependencies")
    if deps_text is not None:
        normal, order_only = parse_dependency_line(deps_text, f"{path}/dependencies")
    extra: dict[str, tuple[str, ...]] = {}
    for suffix in ("order_only", "optional", "check"):
        text = _read(f"dependencies_{suffix}")
        if text is not None:
            first, second = parse_dependency_line(text, f"{path}/dependencies_{suffix}")
            extra[suffix] = first + second
    build: tuple[str, ...] | None = None
    build_order_only: tuple[str, ...] = ()
    build_text = _read("dependencies_build")
    if build_text is not None:
        build, build_order_only = parse_dependency_line(build_text, f"{path}/dependencies_build")
    dependencies = Dependencies(
        normal=normal,
        order_only=order_only,
        order_only_file=extra.get("order_only", ()),
        optional=extra.get("optional", ()),
        check=extra.get("check", ()),
        build=build,
        build_order_only=build_order_only,
    )
    pyproject: dict[str, tuple[tuple[str, int], ...]] = {}
    src_build_files: list[str] = []
    pyproject_m4 = path / "src" / "pyproject.toml.m4"
    if pyproject_m4.is_file():
        pyproject = parse_pyproject_m4(pyproject_m4.read_text(encoding="utf-8", errors="replace"))
        src_build_files.append("src/pyproject.toml")
    if (path / "src" / "MANIFEST.in").exists():
        src_build_files.append("src/MANIFEST.in")
    purl_text = _read("purl.txt")
    purl_file = purl_text.splitlines()[0].split("#", 1)[0].strip() if purl_text and purl_text.strip() else None

    install_requires: tuple[str, ...] = ()
    for filename in ("install-requires.txt", "version_requirements.txt"):
        text = _read(filename)
        if text is not None:
            install_requires = tuple(_requirement_lines(text))
            break
    requirements_text = _read("requirements.txt")
    requirements = tuple(_requirement_lines(requirements_text)) if requirements_text is not None else ()
    if requirements_text is not None and not requirements:
        raise RecipeError(f"{path}/requirements.txt lists no requirement for {where}")

    scripts = frozenset(script for script in SCRIPT_NAMES if f"{script}.in" in files or script in files)

    distros: dict[str, tuple[str, ...]] = {}
    for rel in sorted(files):
        if rel.startswith("distros/") and rel.endswith(".txt") and rel.count("/") == 1:
            distros[rel[len("distros/"):-len(".txt")]] = tuple(_meaningful_lines(files[rel].decode(errors="replace")))

    return Package(
        name=name,
        path=path,
        type=pkg_type,
        version=version,
        tarball_pattern=tarball_pattern,
        checksums=checksums,
        upstream_url_pattern=upstream_url,
        debian_source=debian_source,
        dependencies=dependencies,
        install_requires=install_requires,
        requirements=requirements,
        scripts=scripts,
        distros=distros,
        has_patches=(path / "patches").is_dir(),
        has_src=(path / "src").exists(),
        content_hash=hash_files(files),
        pyproject=pyproject,
        src_build_files=tuple(src_build_files),
        purl_file=purl_file or None,
        uses_python_package_check=b"SAGE_PYTHON_PACKAGE_CHECK" in files.get("spkg-configure.m4", b""),
        upstream_files=upstream_files,
    )


def package_dirs(pkgs_dir: Path) -> list[Path]:
    """The package directories of a tree: those holding a ``type`` file, sorted by name."""
    try:
        entries = os.scandir(pkgs_dir)
    except FileNotFoundError:
        raise RecipeError(f"{pkgs_dir}: no such directory of package recipes") from None
    with entries:
        dirs = [Path(e.path) for e in entries if e.is_dir() and os.path.isfile(os.path.join(e.path, "type"))]
    return sorted(dirs, key=lambda p: p.name)


class RecipeProblem(NamedTuple):
    """Why one recipe cannot be used: its message names the file, the line and what to do."""

    name: str
    type: str    # "standard" when the type file itself is unreadable: a broken recipe fails safe
    message: str
    warning: str | None = None   # what to say when it is left out (default: the message and why)

    @property
    def fatal(self) -> bool:
        """A base or standard recipe cannot be left out; an optional or experimental one can."""
        return self.type not in ("optional", "experimental")


def _declared_type(path: Path) -> str:
    try:
        lines = _meaningful_lines((path / "type").read_text(errors="replace"))
    except OSError:
        return "standard"
    return lines[0] if lines and lines[0] in TYPES else "standard"


def settle_problems(problems: list[RecipeProblem], warnings: list[str] | None) -> None:
    """Raise one :class:`RecipeError` listing every problem when a base or standard recipe has
    one; else each left-out optional/experimental recipe becomes a warning."""
    if any(problem.fatal for problem in problems):
        if len(problems) == 1:
            raise RecipeError(problems[0].message)
        raise RecipeError(
            f"{len(problems)} recipes cannot be used (a standard one must be fixed; an optional"
            f" or experimental one would be left out):\n  " + "\n  ".join(p.message for p in problems)
        )
    if warnings is not None:
        for problem in problems:
            warnings.append(problem.warning or f"{problem.message}; this {problem.type} package is left out"
                            f" until its recipe is fixed")


def load_packages(pkgs_dir: Path, warnings: list[str] | None = None,
                  problems: list[RecipeProblem] | None = None) -> dict[str, Package]:
    """Load every package of a tree, keyed by name; a broken recipe never hides the others.

    Every recipe is read.  One that cannot be used (a malformed file, or a name make cannot take,
    see :data:`_RECIPE_NAME`) is left out.  With ``problems`` given, its :class:`RecipeProblem` is
    appended there for the caller to settle (``recipes.graph.load_graph`` adds the graph's own);
    else :func:`settle_problems` runs here: configure fails, after naming every broken recipe,
    when one of them is base or standard, and an optional/experimental one is a warning.
    Every tool calls this, so every tool leaves out the same ones.
    """
    found: list[RecipeProblem] = []
    loaded: list[Package] = []
    for path in package_dirs(pkgs_dir):
        try:
            loaded.append(load_package(path))
        except RecipeError as error:
            found.append(RecipeProblem(path.name, _declared_type(path), str(error)))
    packages = {pkg.name: pkg for pkg in loaded if _RECIPE_NAME.match(pkg.name)}
    for pkg in loaded:
        if pkg.name in packages:
            continue
        dependents = sorted(
            other.name for other in packages.values() if pkg.name in other.dependencies.tokens()
        )
        problem = f"{pkg.path}: {bad_name_reason(pkg.name)}"
        if dependents:
            found.append(RecipeProblem(pkg.name, "standard", f"{problem}; {', '.join(dependents)} depends on it,"
                                       f" so rename the directory (e.g. to '{_suggested_name(pkg.name)}')"
                                       f" and the dependency"))
        elif pkg.type in ("base", "standard"):
            found.append(RecipeProblem(pkg.name, pkg.type, f"{problem}; it is a {pkg.type} package, so rename"
                                       f" the directory (e.g. to '{_suggested_name(pkg.name)}')"))
        else:
            found.append(RecipeProblem(
                pkg.name, pkg.type, f"{problem}; rename the directory (e.g. to '{_suggested_name(pkg.name)}')",
                warning=f"{pkg.path}: skipped: {bad_name_reason(pkg.name)}; this {pkg.type} package cannot be"
                        f" built until you rename the directory (e.g. to '{_suggested_name(pkg.name)}')"))
    if problems is not None:
        problems.extend(found)
    else:
        settle_problems(found, warnings)
    return packages


def bad_name_reason(name: str) -> str | None:
    """Why ``name`` cannot be a package's name, or None when it can."""
    if _RECIPE_NAME.match(name):
        return None
    return (f"{name!r} is not a valid package name (make cannot use it): a name has lowercase letters,"
            " digits, '_' and '.', and does not start with '.' (e.g. _prereq, 4ti2)")


def _suggested_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_.]", "_", name.lower()).lstrip(".") or "_"


def hash_files_before_20(files: dict[str, bytes]) -> str:
    """The recipe hash as it was before issue #20 (every file of the recipe counted), to recognise
    a tree's stored hashes of unchanged recipes on upgrade (configure.makefile.update_recipe_hash)."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + files[rel] + b"\0")
    return digest.hexdigest()


def recipe_hash(pkg_path: Path) -> str:
    """A hash over the recipe's files (names and contents), excluding an in-tree ``src/``."""
    return hash_files(scan_recipe(pkg_path))
