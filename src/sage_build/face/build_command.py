"""``python -m sage_build.face.build_command [-C KEY=VALUE]... SOURCE_DIR``: build a wheel into $SAGE_SPKG_WHEELS.

Run by the recipes' scripts through sage-dist-helpers (``sdh_pip_install``, ``sdh_build_wheel``
...), inside a sage-spkg build: the environment is the build's (``pipeline.build.build_environment``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

from sage_build.base.errors import SageBuildError
from sage_build.base.layout import Layout
from sage_build.face import settings
from sage_build.install.target import TargetPython
from sage_build.pipeline.build import build_wheel
from sage_build.pipeline.package_log import PackageLog


def config_settings(values: list[str]) -> dict[str, str | list[str]]:
    """pip's ``-C KEY=VALUE`` as the backend receives them: a key given again makes a list."""
    settings: dict[str, str | list[str]] = {}
    for value in values:
        key, _, setting = value.partition("=")
        if key in settings:
            before = settings[key]
            settings[key] = [*before, setting] if isinstance(before, list) else [before, setting]
        else:
            settings[key] = setting
    return settings


def main(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sage_build.face.build_command",
                                     description="build a wheel of SOURCE_DIR into $SAGE_SPKG_WHEELS")
    parser.add_argument("source", metavar="SOURCE_DIR")
    parser.add_argument("-C", "--config-settings", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the build backend, as pip's (sdh_pip_install passes them on)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    source = Path(args.source).absolute()
    # The prefix as written now (build_environment's SAGE_INST_LOCAL): its paths as sage-spkg sees them.
    layout = Layout(sage_root=settings.sage_root(environ), prefix=Path(environ["SAGE_INST_LOCAL"]))
    target = TargetPython.load(layout.target_file)
    # Our stdout already goes into the package's log (the script runs under PackageLog.run).
    log = PackageLog(Path(os.devnull), "", echo=True, stream=sys.stdout)
    try:
        # A recipe's own script (sdh_pip_install) builds as Sage's does, with pip
        # --no-build-isolation: a build requirement at another version is not an error there.
        wheel = build_wheel(source, Path(environ["SAGE_SPKG_WHEELS"]), python=layout.python,
                            env=environ, log=log, markers=target.markers, versions_strict=False,
                            config_settings=config_settings(args.config_settings) or None)
    except SageBuildError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    finally:
        log.close()
    print(f"built {wheel.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
