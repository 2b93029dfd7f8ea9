#!/bin/sh
""":"
# A shell starts here: it runs this file with the tool environment's interpreter when there is
# one (one interpreter start, no look-up of python3 through shims), else with python3, which
# makes the environment first. Python reads these lines as a string and goes on below.
here=$(dirname "$(realpath "$0")")
[ -x "$here/.venv/bin/python" ] && exec "$here/.venv/bin/python" "$0" "$@"
exec python3 "$0" "$@"
":"""
# Configure sage-build; see ./configure.py --help.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "src"))
from sage_build.bootstrap import ensure_tool_python  # noqa: E402

ensure_tool_python()
from sage_build.face.configure_command import main  # noqa: E402

sys.exit(main())
