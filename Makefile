# pipelinelib: two entry points for a fresh machine (see README.md).
#   make demo   set up the local testbed and run the example pipeline end to end
#   make test   set up everything the tests need and run them
SHELL := /bin/bash
PYTHON ?= python3
TESTBED ?= $(or $(PIPELINELIB_TESTBED),/tmp/pipelinelib-testbed)
PYTEST_ARGS ?=

.PHONY: setup demo test lint bench testbed-up testbed-down

setup:  ## install pipelinelib and its test tools (Python side)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev]'

testbed-up: setup  ## start every testbed component (installs Debian packages, builds Go tools once)
	testbed/up --state-dir $(TESTBED) --only all > $(TESTBED).env
	for tool in helm osv-scanner zincsearch lighthouse gitea; do testbed/tools/$$tool >> $(TESTBED).env || exit 1; done

testbed-down:
	testbed/down --state-dir $(TESTBED)

demo: testbed-up  ## run the example pipeline end to end on the local testbed
	source $(TESTBED).env && examples/demo/run

test: testbed-up  ## run the whole test suite against the real testbed
	source $(TESTBED).env && $(PYTHON) -m pytest $(PYTEST_ARGS)

lint:
	ruff check .

bench: testbed-up  ## print benchmark ratios against kubectl / docker CLI
	source $(TESTBED).env && for b in benchmarks/*.py; do $(PYTHON) $$b || exit 1; done
