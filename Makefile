# sage-build: the top-level Makefile.
#   make build          configure (if needed) and build every enabled package
#   make PKG            build one package and what it needs
#   make test           run the test suite
#   make reconfigure    repeat the last ./configure.py call
#   make clean          remove build directories and logs
#   make distclean      back to a fresh clone (prefix, tool environment, configuration)
# Everything else (PKG-uninstall, PKG-no-deps, download, list ...) goes to build/make/Makefile.

SAGE_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
# sage-build's own files (this Makefile may be a link from another distribution tree)
SAGE_BUILD_HOME := $(patsubst %/,%,$(dir $(realpath $(lastword $(MAKEFILE_LIST)))))
# No built-in implicit rules: make would try them on every recipe file.
MAKEFLAGS += --no-builtin-rules
.SUFFIXES:
TOOL_PYTHON := $(SAGE_BUILD_HOME)/.venv/bin/python
GENERATED := $(SAGE_ROOT)/build/make/Makefile
CONFIG := $(SAGE_ROOT)/build/make/config.json

.PHONY: all build test reconfigure clean distclean tool-env bench
.DEFAULT_GOAL := build

all: build

SAGE_BUILD_BIN := $(SAGE_BUILD_HOME)/build/bin

# sage-progress runs make, shows the progress and, on failure, the summary.
build: $(GENERATED)
	+@$(TOOL_PYTHON) $(SAGE_BUILD_BIN)/sage-progress $(MAKE) --no-print-directory -f $(GENERATED) build

# configure decides from the recipes' type, version and dependency files: when one of
# them changes, the Makefile is generated again with the last configure call
# (sage_build.plan.makefile_is_stale mirrors this rule for ./sage --plan).
# A directory name make cannot take (a space, ':', '$') is refused or skipped by configure; it
# must not break this rule either: such words are dropped and the second wildcard drops the
# pieces a space leaves.
RECIPE_FILES := $(wildcard $(foreach f,$(wildcard $(SAGE_ROOT)/build/pkgs/*/type \
		$(SAGE_ROOT)/build/pkgs/*/package-version.txt $(SAGE_ROOT)/build/pkgs/*/dependencies* \
		$(SAGE_ROOT)/build/pkgs/*/requirements.txt $(SAGE_ROOT)/build/pkgs/*/checksums.ini),\
		$(if $(findstring :,$f)$(findstring $$,$f),,$f)))
$(GENERATED): $(SAGE_ROOT)/configure.py $(SAGE_BUILD_HOME)/src/sage_build/templates/Makefile.j2 $(SAGE_ROOT)/build/pkgs \
		$(RECIPE_FILES)
	@if [ -f $(CONFIG) ]; then $(SAGE_ROOT)/build/bin/sage-reconfigure --quiet; \
	 else $(SAGE_ROOT)/configure.py; fi
	@touch $@

reconfigure:
	$(SAGE_ROOT)/build/bin/sage-reconfigure

tool-env:
	@python3 $(SAGE_ROOT)/src/sage_build/bootstrap.py

test: tool-env
	$(TOOL_PYTHON) -m pytest $(SAGE_ROOT)/tests $(PYTEST_ARGS)

bench: tool-env
	for script in $(SAGE_ROOT)/bench/bench_*.py; do $(TOOL_PYTHON) $$script || exit 1; done

clean:
	rm -rf $(SAGE_ROOT)/logs $(SAGE_ROOT)/local/var/tmp/sage/build

# upstream/ is a download cache and stays, as in Sage.
distclean:
	@prefix=$$(sed -n 's/^ *"prefix": "\(.*\)",*$$/\1/p' $(CONFIG) 2>/dev/null); \
	case "$$prefix" in \
	  $(SAGE_ROOT)/*) rm -rf "$$prefix" ;; \
	  "") ;; \
	  *) echo "note: the prefix $$prefix is outside the tree; remove it yourself" ;; \
	esac
	rm -rf $(SAGE_ROOT)/local $(SAGE_ROOT)/logs $(SAGE_ROOT)/build/make $(SAGE_ROOT)/.venv \
		$(SAGE_ROOT)/.pytest_cache $(SAGE_ROOT)/src/*.egg-info

# Any other target (a package, PKG-uninstall, download, list ...) is the generated Makefile's.
.DEFAULT:
	@case "$@" in */*) echo "make: no rule to make $@ (a missing file)" >&2; exit 2 ;; esac
	+@$(MAKE) --no-print-directory -f $(SAGE_ROOT)/Makefile $(GENERATED)
	+@case "$@" in *-uninstall|*-clean|list|download) $(MAKE) --no-print-directory -f $(GENERATED) $@ ;; \
	  *) $(TOOL_PYTHON) $(SAGE_BUILD_BIN)/sage-progress $(MAKE) --no-print-directory -f $(GENERATED) $@ ;; esac
