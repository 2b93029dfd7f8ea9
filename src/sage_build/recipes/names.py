"""The recipe a person means: recipe names, PyPI spellings and the closest matches.

Sage trees rename distributions (recipe ``python_build`` is PyPI's ``build``, ``lrcalc_python``
is ``lrcalc``), so a PyPI spelling is mapped through each recipe's declared distribution name
first, and only then through PEP 503 normalisation of the recipe names.
"""

from __future__ import annotations

import difflib
import re
from typing import Mapping

from sage_build.recipes.recipe import Package


def _normal(name: str) -> str:
    """PEP 503's normal form, with '_' as separator (recipe names use '_')."""
    return re.sub(r"[-_.]+", "_", name).lower()


def resolve(name: str, packages: Mapping[str, Package]) -> str | None:
    """The recipe named ``name`` as a recipe or a distribution (any PyPI spelling), or None."""
    if name in packages:
        return name
    wanted = _normal(name)
    for recipe, pkg in packages.items():
        distribution = pkg.sage_distribution
        if distribution is not None and _normal(distribution) == wanted:
            return recipe
    return wanted if wanted in packages else None


def closest(name: str, packages: Mapping[str, Package], count: int = 3) -> list[str]:
    """The recipe names closest to a name that matched none ("did you mean ...")."""
    return difflib.get_close_matches(_normal(name), list(packages), n=count, cutoff=0.6)


def unknown_package_message(name: str, packages: Mapping[str, Package], where: str) -> str:
    """"there is no package NAME in WHERE", with the closest names when there are any."""
    matches = closest(name, packages)
    hint = f"; did you mean {', '.join(matches)}?" if matches else " (./sage --package list)"
    return f"there is no package '{name}' in {where}{hint}"
