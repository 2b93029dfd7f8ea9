"""``python -m sage_build.face.build_command SOURCE_DIR``: build a wheel into $SAGE_SPKG_WHEELS.

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


def main(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m sage_build.face.build_command SOURCE_DIR", file=sys.stderr)
        return 2
    source = Path(argv[0]).absolute()
    # The prefix as written now (build_environment's SAGE_INST_LOCAL): its paths as sage-spkg sees them.
    layout = Layout(sage_root=settings.sage_root(environ), prefix=Path(environ["SAGE_INST_LOCAL"]))
    target = TargetPython.load(layout.target_file)
    # Our stdout already goes into the package's log (the script runs under PackageLog.run).
    log = PackageLog(Path(os.devnull), "", echo=True, stream=sys.stdout)
    try:
        # A recipe's own script (sdh_pip_install) builds as Sage's does, with pip
        # --no-build-isolation: a build requirement at another version is not an error there.
        wheel = build_wheel(source, Path(environ["SAGE_SPKG_WHEELS"]), python=layout.python,
                            env=environ, log=log, markers=target.markers, versions_strict=False)
    except SageBuildError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    finally:
        log.close()
    print(f"built {wheel.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
