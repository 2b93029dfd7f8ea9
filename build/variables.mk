# The make variables of this distribution's recipes, in the syntax of a Sage tree's
# build/make/Makefile.in (configure.py reads that file instead when a tree has one).
#
# configure.py reads the unconditional `NAME = value` lines (see src/sage_build/recipes/makevars.py):
# a word of a value is a recipe name, $(inst_NAME) that recipe's stamp, $(OTHER) another variable
# of this file; file paths and make expressions are handed to make.  $(PYTHON) is always the
# prefix's virtual environment.  A variable a dependency file uses but this file does not define
# is handed to make as written, as Sage's Makefile does (make expands an unset one to nothing).
# Without this file (and without a Makefile.in), sage-build's defaults apply (recipes/graph.py).

# The build backends every Python recipe built from an sdist needs before it starts (order-only):
# the wheels among our recipes that build backends are made of.
PYTHON_TOOLCHAIN = setuptools wheel flit_core packaging setuptools_scm cython hatchling pathspec pluggy trove_classifiers hatch_vcs
