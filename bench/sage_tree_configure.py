"""Configure on a copy of passagemath's tree: spkg-configure.m4's system detection.

Usage: .venv/bin/python bench/sage_tree_configure.py [TREE] [-v] [--write]

Prints the table (from the system / built from source / not understood) and the cold (no
build/make/config.cache) and warm (cache kept) configure times; --write puts them into
bench/README.md. The comparison with the tree's own ./configure: bench/sage_tree_oracle.py.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE)]

from readme_section import write_section  # noqa: E402
from sage_tree_dependencies import make_clone  # noqa: E402

from sage_build.configure.configure import configure  # noqa: E402
from sage_build.face.configure_command import print_system_table  # noqa: E402
from sage_build.recipes.spkg_configure_m4 import load_check  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", nargs="?", type=Path, default=Path("/work/passagemath"),
                        help="a Sage tree (passagemath's checkout; default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="every package's decision and its reason")
    parser.add_argument("--write", action="store_true", help="put the table into bench/README.md")
    args = parser.parse_args()
    tree = args.tree
    files = sorted((tree / "build/pkgs").glob("*/spkg-configure.m4"))
    understood = sum(load_check(f.parent, f.parent.name).understood for f in files)
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        make_clone(tree, clone)
        times = []
        for _ in range(2):
            start = time.perf_counter()
            result = configure(["--prefix", str(Path(tmp) / "local")], clone)
            times.append(time.perf_counter() - start)
        out = io.StringIO()
        print_system_table(result, out, verbose=args.verbose)
    counts = {s: sum(1 for v in result.system.values() if v.status == s) for s in ("system", "source", "installed", "not understood")}
    body = (f"### spkg-configure.m4 on {tree.name} ({len(files)} files, {understood} fully understood)\n\n"
            "| from the system | built from source | not understood | cold configure | warm configure |\n"
            "| ---: | ---: | ---: | ---: | ---: |\n"
            f"| {counts['system']} | {counts['source'] + counts['installed']} | {counts['not understood']} "
            f"| {times[0]:.2f} s | {times[1]:.2f} s |\n\n"
            "Without --enable-system-site-packages (Python-checked packages are built). Cold: no\n"
            "build/make/config.cache; warm: a reconfigure reading it. The comparison with the tree's\n"
            "own ./configure is bench/sage_tree_oracle.py's section (#17 oracle).\n")
    print(out.getvalue() + "\n" + body)
    if args.write:
        write_section("sage-tree-configure", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
