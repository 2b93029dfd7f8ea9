"""What one CI job runs, the same for GitLab, GitHub Actions and a local run: configure the
checkout as the generating tree was configured, then ``./sage --ci job PKG...`` (dependencies
from the cache in ``only`` mode, the packages themselves built and pushed)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

#: The environment variable that holds the URL a job pushes to; CI keeps it protected.
PUSH_VARIABLE = "SAGE_BINARY_CACHE_PUSH"
#: The environment variable naming the caches a job reads.
CACHE_VARIABLE = "SAGE_BINARY_CACHE"

#: Byte budgets of the CI services (GitLab: a generated child pipeline; GitHub: a job's outputs).
GITLAB_CHILD_LIMIT = 5 * 1024 * 1024
GITLAB_NEEDS_LIMIT = 50
GITHUB_MATRIX_LIMIT = 256
GITHUB_OUTPUTS_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Setup:
    """How the generated jobs run: what they are told and with which commands."""

    configure_args: tuple[str, ...] = ()      # ./configure.py's arguments in each job
    cache: str | None = None                  # the binary cache's URL(s) the jobs read; None: the CI's variable
    push: bool = False                        # jobs push what they build (protected branches only)
    sage: str = "./sage"                      # how a job runs ./sage and ./configure.py
    configure: str = "./configure.py"
    image: str | None = None                  # GitLab: the jobs' image
    runs_on: str = "ubuntu-latest"            # GitHub: the jobs' runner
    targets: tuple[str, ...] = field(default_factory=tuple)   # the packages asked for (all enabled: none)


def configure_args_of(argv: list[str], sage_root: Path) -> tuple[str, ...]:
    """The generating tree's configure arguments, for a checkout elsewhere: quietly, and without a
    prefix inside the tree itself (the checkout's own default), which names this machine's path."""
    args: list[str] = []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg in ("-q", "--quiet", "--silent"):
            continue
        if arg == "--prefix" and rest:
            arg = f"--prefix={rest.pop(0)}"
        if arg.startswith("--prefix="):
            prefix = Path(arg.partition("=")[2])
            if prefix == sage_root / "local" or sage_root in prefix.parents:
                continue
        args.append(arg)
    return ("--quiet", *args)


def job_script(setup: Setup, packages: list[str], *, read_only: bool = False, only: bool = False) -> list[str]:
    """The shell lines of a job that builds ``packages`` (several: of one wave, or a read-only build;
    ``only``: that takes them all from the cache and builds nothing)."""
    options = ["--read-only"] if read_only else ["--only"] if only else []
    job = [*shlex.split(setup.sage), "--ci", "job", *options, *packages]
    return [shlex.join([*shlex.split(setup.configure), *setup.configure_args]), shlex.join(job)]


def index_script(setup: Setup) -> list[str]:
    """The final job's lines: the cache's pip index, rebuilt from what the store holds."""
    return [f'{shlex.join([*shlex.split(setup.sage), "--cache", "index"])} "${PUSH_VARIABLE}"']


class _Dumper(yaml.SafeDumper):
    """YAML as a person writes a CI file: no anchors for repeated steps, scripts as literal blocks."""

    def ignore_aliases(self, data) -> bool:
        return True


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def dump_yaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000)
