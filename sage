#!/usr/bin/env python3
"""The sage-build command line; see ./sage --help."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), ".", "src"))
from sage_build.bootstrap import ensure_tool_python  # noqa: E402

ensure_tool_python()
from sage_build.face.cli import main as main  # noqa: E402

sys.exit(main())
