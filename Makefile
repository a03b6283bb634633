PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint install clean wsdl

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "soap_service needs Python 3.11 (spyne 2.14 does not import on 3.12+)")'
	$(PYTHON) -m venv $(VENV)
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
	$(BIN)/python -m pytest -n 2 --dist loadfile tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check soap_service tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var

# Regenerate the published contract after a change of the message types (tests compare them).
wsdl: $(STAMP)
	$(BIN)/soap-service wsdl --public-url http://127.0.0.1:8080 > wsdl/order.wsdl
	$(BIN)/soap-service wsdl --xsd > schemas/order.xsd
