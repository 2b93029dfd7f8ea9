"""``python -m sage_build.install --prefix DIR WHEEL...``: install wheels as sage-spkg does.

The install layer's own entry, not the face's: a wheel install loads nothing of the other
layers (``tests/test_architecture.py`` keeps its budget), so it reads its two settings itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sage_build.base.atomic import power_loss_safe_asked, set_power_loss_safe
from sage_build.base.errors import SageBuildError
from sage_build.base.layout import Layout
from sage_build.base.makeflags import job_budget
from sage_build.base.quick_exit import exit_now
from sage_build.install.bytecode import parse_levels
from sage_build.install.target import TargetPython, query_python
from sage_build.install.wheel import install_wheel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sage_build.install",
                                     description="Install wheels into a prefix (a virtual environment) race-free.")
    parser.add_argument("--prefix", required=True, type=Path)
    parser.add_argument("--bytecode", default="0", help="optimisation levels, e.g. '0' or '0 1', or 'none'")
    parser.add_argument("wheels", nargs="+", type=Path)
    args = parser.parse_args(argv)
    set_power_loss_safe(power_loss_safe_asked(os.environ))
    layout = Layout(sage_root=args.prefix, prefix=args.prefix)  # a bare prefix: no distribution tree
    try:
        target = TargetPython.load(layout.target_file) if layout.target_file.exists() else query_python(layout.python)
        levels = parse_levels(args.bytecode, "--bytecode")
        for wheel in args.wheels:
            install_wheel(wheel, paths=target.paths, python_final=layout.python, python_now=layout.python,
                          lock_file=layout.lock_file, bytecode_levels=levels, compile_here=target.compiles_like_us(),
                          collisions=os.environ.get("SAGE_INSTALL_COLLISIONS", "error"),
                          compile_workers=job_budget(os.environ))
    except SageBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    exit_now(main())
