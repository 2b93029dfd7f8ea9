#!/usr/bin/env python3
"""Configure sage-build; see ./configure.py --help."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))
from sage_build.bootstrap import ensure_tool_python  # noqa: E402

ensure_tool_python()
from sage_build.face.configure_command import main  # noqa: E402

sys.exit(main())
