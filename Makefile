# pipelinelib: two entry points for a fresh machine (see README.md).
#   make demo   set up the local testbed and run the example pipeline end to end
#   make test   set up everything the tests need and run them
SHELL := /bin/bash
PYTHON ?= python3
TESTBED ?= $(or $(PIPELINELIB_TESTBED),/tmp/pipelinelib-testbed)
PYTEST_ARGS ?=
# Most tests wait on servers, not CPU: run test files on several workers (a file stays on one).
TEST_WORKERS ?= 4

.PHONY: setup demo test lint bench testbed-up testbed-down outdated constraints image

setup:  ## install pipelinelib and its test tools (Python side), at the pinned versions
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'

outdated:  ## list pinned dependencies (constraints.txt) that have a newer release
	$(PYTHON) tools/constraints.py --outdated

constraints:  ## pin the dependency closure as installed now (after a green run)
	$(PYTHON) tools/constraints.py > constraints.txt

testbed-up: setup  ## start every testbed component (installs Debian packages, builds Go tools once)
	testbed/up --state-dir $(TESTBED) --only all > $(TESTBED).env
	for tool in helm osv-scanner zincsearch lighthouse oasdiff toxiproxy gitea sigstore-verify; do PIPELINELIB_TESTBED=$(TESTBED) testbed/tools/$$tool >> $(TESTBED).env || exit 1; done

testbed-down:
	testbed/down --state-dir $(TESTBED)

demo: testbed-up  ## run the example pipeline end to end on the local testbed
	source $(TESTBED).env && examples/demo/run

test: testbed-up  ## run the whole test suite against the real testbed
	source $(TESTBED).env && $(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

image: testbed-up  ## build the CI agents' tool image in the testbed engine (tool-image/)
	source $(TESTBED).env && tool-image/build

lint: setup  ## ruff, mypy (strict on steps/, pipelines/, context, adapters/), the layer contract
	ruff check .
	$(PYTHON) -m mypy
	lint-imports

# the speculative queue's benchmark takes 4-9 minutes: run it alone (GATE_S=15 python3 benchmarks/queue_speculative.py)
BENCHMARKS ?= $(filter-out benchmarks/_% benchmarks/queue_speculative.py,$(wildcard benchmarks/*.py))

bench: testbed-up  ## print benchmark ratios against kubectl / docker CLI
	source $(TESTBED).env && for b in $(BENCHMARKS); do $(PYTHON) $$b || exit 1; done
