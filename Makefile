# sage-build: the top-level Makefile.
#   make build          configure (if needed) and build every enabled package
#   make PKG            build one package and what it needs
#   make test           run the test suite
#   make reconfigure    repeat the last ./configure.py call
#   make clean          remove build directories and logs
#   make distclean      back to a fresh clone (prefix, tool environment, configuration)
#   make download       every enabled package's source and the tool's own wheels, for offline builds
# Everything else (PKG-uninstall, PKG-no-deps, download, list ...) goes to build/make/Makefile;
# several such goals are one build (one sub-make, one progress display, one summary).

SAGE_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
# sage-build's own files (this Makefile may be a link from another distribution tree)
SAGE_BUILD_HOME := $(patsubst %/,%,$(dir $(realpath $(lastword $(MAKEFILE_LIST)))))
# No built-in implicit rules: make would try them on every recipe file.
MAKEFLAGS += --no-builtin-rules
.SUFFIXES:
TOOL_PYTHON := $(SAGE_BUILD_HOME)/.venv/bin/python
GENERATED := $(SAGE_ROOT)/build/make/Makefile
CONFIG := $(SAGE_ROOT)/build/make/config.json

.PHONY: all build test reconfigure clean distclean tool-env tool-wheels bench
.DEFAULT_GOAL := build

all: build

SAGE_BUILD_BIN := $(SAGE_BUILD_HOME)/build/bin

# configure decides from the recipes' type, version and dependency files: when one of
# them changes, the Makefile is generated again with the last configure call
# (sage_build.configure.build_plan.makefile_is_stale mirrors this rule for ./sage --plan).
# A directory name make cannot take (a space, ':', '$', ';', '|') is refused or skipped by
# configure; it must not break this rule either: such words are dropped (on a rule line ';'
# starts a recipe and '|' order-only prerequisites) and the second wildcard drops the pieces a
# space leaves.
# $(realpath) also drops links that lead nowhere (a Sage tree's package-version.txt into pkgs/).
RECIPE_FILES := $(realpath $(foreach f,$(wildcard $(SAGE_ROOT)/build/pkgs/*/type \
		$(SAGE_ROOT)/build/pkgs/*/package-version.txt $(SAGE_ROOT)/build/pkgs/*/dependencies* \
		$(SAGE_ROOT)/build/pkgs/*/requirements.txt $(SAGE_ROOT)/build/pkgs/*/checksums.ini),\
		$(if $(findstring :,$f)$(findstring $$,$f)$(findstring ;,$f)$(findstring |,$f),,$f)))
# Dry runs (as in the generated Makefile, Sage's PLUS): make -n prints the configure call and
# make -q answers 1 (out of date) without running it; make -t runs it, since it builds nothing
# and a touched stale Makefile would hide the recipes' changes from every later make.
MAKE_LETTERS := $(filter-out -%,$(firstword $(MAKEFLAGS)))
DRY_RUN := $(firstword $(foreach flag,n q t,$(findstring $(flag),$(MAKE_LETTERS))))
PLUS := $(if $(DRY_RUN),,+)
CONFIGURE = if [ -f $(CONFIG) ]; then $(SAGE_ROOT)/build/bin/sage-reconfigure --quiet; \
	 else $(SAGE_ROOT)/configure.py; fi
$(GENERATED): $(SAGE_ROOT)/configure.py $(SAGE_BUILD_HOME)/src/sage_build/configure/templates/Makefile.j2 $(SAGE_ROOT)/build/pkgs \
		$(RECIPE_FILES)
	$(PLUS)@$(CONFIGURE)
	+@$(if $(filter t,$(DRY_RUN)),$(CONFIGURE),$(if $(filter q,$(DRY_RUN)),exit 1,:))
	$(PLUS)@touch $@

reconfigure:
	$(SAGE_ROOT)/build/bin/sage-reconfigure

tool-env:
	@python3 $(SAGE_ROOT)/src/sage_build/bootstrap.py

# The tool's own wheels, pinned by hash (build/tool-requirements.txt; `build/bin/sage-tool-wheels
# lock` refreshes the pins): stored by `make download`, so that the tool environment can be
# made again offline.
tool-wheels:
	@python3 $(SAGE_BUILD_BIN)/sage-tool-wheels download

# The suite runs on every core (pytest-xdist); PYTEST_ARGS adds to it, e.g. '-m "not slow"' or '-n 0'.
# The slow tests are collected first (tests/conftest.py) and an idle worker takes queued tests from
# a busy one (worksteal), so that no long test starts last and runs alone.
test: tool-env
	$(TOOL_PYTHON) -m pytest -n auto --dist worksteal $(SAGE_ROOT)/tests $(PYTEST_ARGS)

bench: tool-env
	for script in $(SAGE_ROOT)/bench/bench_*.py; do $(TOOL_PYTHON) $$script || exit 1; done

clean:
	rm -rf $(SAGE_ROOT)/logs $(SAGE_ROOT)/local/var/tmp/sage/build

# upstream/ is a download cache and stays, as in Sage. In build/make only what configure
# wrote goes (with its temporaries): in a Sage tree the directory also holds tracked files
# (Makefile.in, install, ...).
GENERATED_IN_BUILD_MAKE := Makefile config.json target-cache.json hashes .*.tmp[0-9]* .*.sbtmp-*
distclean:
	@prefix=$$(sed -n 's/^ *"prefix": "\(.*\)",*$$/\1/p' $(CONFIG) 2>/dev/null); \
	case "$$prefix" in \
	  $(SAGE_ROOT)/*) rm -rf "$$prefix" ;; \
	  "") ;; \
	  *) echo "note: the prefix $$prefix is outside the tree; remove it yourself" ;; \
	esac
	rm -rf $(SAGE_ROOT)/local $(SAGE_ROOT)/logs $(SAGE_ROOT)/.venv \
		$(SAGE_ROOT)/.pytest_cache $(SAGE_ROOT)/src/*.egg-info
	rm -rf $(addprefix $(SAGE_ROOT)/build/make/,$(GENERATED_IN_BUILD_MAKE))
	@rmdir $(SAGE_ROOT)/build/make 2>/dev/null || true

# Every other goal (build, a package, PKG-uninstall, download, list ...) is the generated
# Makefile's, and all of them are one sub-make: the first runs the whole set, the others wait for
# it. (One sub-make and one display per goal raced on logs/ and broke `make -j12 a b c`.)
OWN_GOALS := all test reconfigure clean distclean tool-env tool-wheels bench
# goals that need no progress display; they run before the build goals
PLAIN_GOALS := %-uninstall %-clean list download
uniq = $(if $1,$(firstword $1) $(call uniq,$(filter-out $(firstword $1),$1)))
GOALS := $(call uniq,$(patsubst all,build,$(or $(MAKECMDGOALS),build)))
# a goal with a / is a file: .DEFAULT says it is missing
FORWARDED := $(foreach goal,$(filter-out $(OWN_GOALS),$(GOALS)),$(if $(findstring /,$(goal)),,$(goal)))
PLAIN := $(filter $(PLAIN_GOALS),$(FORWARDED))
BUILD := $(filter-out $(PLAIN),$(FORWARDED))
FIRST := $(firstword $(FORWARDED))
REST := $(wordlist 2,$(words $(FORWARDED)),$(FORWARDED))
# make -k: a failing plain goal does not stop the build goals
KEEP_GOING = $(findstring k,$(firstword -$(MAKEFLAGS)))

ifneq ($(FIRST),)
.PHONY: $(FORWARDED)
# what the command line asks to happen first happens before the build
$(FIRST): $(filter clean distclean reconfigure tool-env,$(GOALS)) $(if $(filter download,$(GOALS)),tool-wheels)
	+@$(MAKE) --no-print-directory -f $(SAGE_ROOT)/Makefile $(GENERATED)
	+@status=0; \
	$(if $(PLAIN),$(MAKE) --no-print-directory -f $(GENERATED) $(PLAIN) || status=$$?;) \
	$(if $(BUILD),if [ $$status = 0 ] || [ -n "$(KEEP_GOING)" ]; then \
	  $(TOOL_PYTHON) $(SAGE_BUILD_BIN)/sage-progress $(MAKE) --no-print-directory -f $(GENERATED) $(BUILD) \
	  || status=$$?; fi;) \
	exit $$status
endif
ifneq ($(REST),)
$(REST): $(FIRST)
	@:
endif

.DEFAULT:
	@echo "make: no rule to make $@ (a missing file)" >&2; exit 2
