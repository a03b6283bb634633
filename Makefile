# The interpreter: python3 when it is Python 3.11 or newer, or the one named with PYTHON=
# (`make test PYTHON=python3.13`, or a path). python3's venv is .venv; an interpreter named
# with PYTHON= gets its own, named after its version (.venv-3.13), so versions never mix.
PYTHON ?= python3
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifeq ($(origin PYTHON),file)
VENV ?= .venv
else
VENV ?= .venv-$(or $(PYTHON_VERSION),unknown)
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint install clean wsdl bench profile

# Refuses, saying why and what to do, an interpreter that does not run (a pyenv shim of a version
# that is not selected fails) or is older than 3.11; then makes the venv (removed again if that fails).
$(BIN)/python:
	@if ! $(PYTHON) -c 'import sys' >/dev/null 2>&1; then \
	  echo "error: '$(PYTHON)' does not run here$(if $(filter file,$(origin PYTHON)), (it is python3 on the PATH),) ($$(command -v $(PYTHON) || echo 'not found'))." >&2; \
	  $(MAKE) --no-print-directory python-help GOAL='$(or $(MAKECMDGOALS),install)' >&2; exit 1; \
	fi
	@if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
	  echo "error: '$(PYTHON)' is Python $(PYTHON_VERSION): soap_service needs Python 3.11 or newer." >&2; \
	  $(MAKE) --no-print-directory python-help GOAL='$(or $(MAKECMDGOALS),install)' >&2; exit 1; \
	fi
	@echo "Python $(PYTHON_VERSION) ($(PYTHON)): creating $(VENV)"
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "error: '$(PYTHON) -m venv' failed: on Debian or Ubuntu install python3-venv (or python$(PYTHON_VERSION)-venv)." >&2; \
	  exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/soap-service demo
	$(BIN)/soap-service serve

test: $(STAMP)
	$(BIN)/ruff check soap_service tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=25 tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check soap_service tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf .venv .venv-* var

# Speed (not part of test): the reissue floor, the end-to-end load with wrk on SQLite and PostgreSQL
# (127.0.0.1:5432), and their ratios as the last lines; about 6-10 minutes, BENCH_QUICK=1 for a smoke
# run of 1-2 minutes. See bench/README.md.
bench: $(STAMP)
	$(BIN)/python bench/run_bench.py $(if $(filter 1,$(BENCH_QUICK)),--quick)

# Where a worker spends a signed Reissue: py-spy on one worker under wrk's load, both backends.
profile: $(STAMP)
	@$(BIN)/py-spy --version >/dev/null 2>&1 || $(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/profile_reissue.py

# Regenerate the published contract after a change of the message types (tests compare them).
wsdl: $(STAMP)
	$(BIN)/soap-service wsdl --public-url http://127.0.0.1:8080 > wsdl/order.wsdl
	$(BIN)/soap-service wsdl --xsd > schemas/order.xsd
	$(BIN)/soap-service wsdl --webtrust order --public-url http://127.0.0.1:8080 > wsdl/webtrust-order.wsdl
	$(BIN)/soap-service wsdl --webtrust query --public-url http://127.0.0.1:8080 > wsdl/webtrust-query.wsdl

# What to pass as PYTHON=: the interpreters of 3.11 and newer that run here.
.PHONY: python-help
python-help:
	@echo "Name an interpreter of Python 3.11 or newer that runs: make $(or $(GOAL),test) PYTHON=<path or command>."
	@found=; for candidate in python3.14 python3.13 python3.12 python3.11 \
	    $$(ls -d $$(pyenv root 2>/dev/null || echo /nonexistent)/versions/3.1[1-9]*/bin/python3.1[1-9] 2>/dev/null) \
	    /usr/bin/python3.1[1-9] /usr/local/bin/python3.1[1-9]; do \
	  path=$$(command -v $$candidate 2>/dev/null) || continue; \
	  $$path -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 || continue; \
	  case " $$found " in *" $$path "*) continue;; esac; found="$$found $$path"; \
	done; \
	if [ -n "$$found" ]; then echo "These run here:"; for path in $$found; do echo "  PYTHON=$$path"; done; \
	else echo "None runs here: install Python 3.11 or newer (Debian 12: python3; Debian 13, Ubuntu 24.04: python3 and python3-venv)."; fi
