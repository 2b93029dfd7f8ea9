"""A distribution's requirements as a recipe's dependencies: which ones a tree keeps.

A recipe is written once for every Python the tree supports and for the platforms it builds
on (not Windows), so a requirement is kept when its environment marker holds for any of them
(``python_version < "3.11"`` is kept, with its marker), and dropped when it holds for none
(``sys_platform == "win32"``, ``platform_system == "Windows"``) or only for an extra.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The Pythons a tree supports (install.target refuses older ones).
SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
#: The platforms a tree builds on: (sys_platform, platform_system, os_name).
SUPPORTED_PLATFORMS = (("linux", "Linux", "posix"), ("darwin", "Darwin", "posix"))
#: A build-system table's default (PEP 517/518: a project with setup.py only).
DEFAULT_BUILD_REQUIRES = ("setuptools",)


@dataclass(frozen=True)
class Requirement:
    """One requirement line and whether a tree keeps it."""

    line: str           # as the metadata writes it, marker included
    name: str           # the distribution's name
    kept: bool
    why_dropped: str = ""


def _environments():
    from packaging.markers import default_environment

    base = default_environment()
    for python in SUPPORTED_PYTHONS:
        for sys_platform, system, os_name in SUPPORTED_PLATFORMS:
            yield dict(base, python_version=python, python_full_version=f"{python}.0",
                       implementation_name="cpython", platform_python_implementation="CPython",
                       sys_platform=sys_platform, platform_system=system, os_name=os_name, extra="")


def classify(lines: list[str]) -> list[Requirement]:
    """The requirements of ``lines`` (Requires-Dist or build-system.requires), each kept or
    dropped with the reason; unparsable lines are dropped too."""
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Parsed

    result = []
    for line in lines:
        try:
            req = Parsed(line)
        except InvalidRequirement as error:
            result.append(Requirement(line, line.split(";")[0].strip(), False, f"not a requirement ({error})"))
            continue
        if req.marker is None:
            result.append(Requirement(line, req.name, True))
        elif "extra" in str(req.marker):
            result.append(Requirement(line, req.name, False, "only for an extra"))
        elif any(req.marker.evaluate(env) for env in _environments()):
            result.append(Requirement(line, req.name, True))
        else:
            result.append(Requirement(line, req.name, False,
                                      f"not on Linux or macOS with Python {SUPPORTED_PYTHONS[0]}-{SUPPORTED_PYTHONS[-1]}"))
    return result
