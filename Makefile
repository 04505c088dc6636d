# swaysim developer commands. `make demo` and `make test` work from a fresh
# clone with only Python 3.11+ and pip: they create .venv and install into it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (0: one process). Results do not depend on it.
PYTEST_WORKERS ?= 2

.PHONY: demo test lint typecheck unit bench screenshot anyio-suite dlm-sway-suite clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "swaysim needs Python 3.11 or newer; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q -c constraints.txt -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	@touch $@ $(VENV)/.installed

# A representative subset of the scenario library, run through the CLI on both loops.
DEMO_SCENARIOS := scenarios/slow_view_switches.toml scenarios/flaky_ft_view.toml \
	scenarios/hang_under_timeout.toml scenarios/nan_adapter_preflight.toml \
	scenarios/cancellation_mid_suite.toml scenarios/large_suite_1000.toml

demo: $(VENV)/.installed
	$(BIN)/python -m swaysim demo
	@echo
	$(BIN)/swaysim run $(DEMO_SCENARIOS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks scenarios docs/examples
	$(BIN)/ruff format --check src tests benchmarks scenarios docs/examples

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck unit

$(VENV)/.installed-bench: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q -c constraints.txt -e ".[dev,bench]"
	@touch $@ $(VENV)/.installed-dev $(VENV)/.installed

# Every benchmarks/bench_*.py, one after another (about six minutes on two cores);
# writes benchmarks/RESULTS.md. BENCH_ARGS=--quick for a smoke run (written to
# benchmarks/_work/RESULTS-partial.md: only a full run replaces RESULTS.md).
BENCH_ARGS ?=
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

# Regenerate docs/report-screenshot.png on purpose (tests never write into the source tree):
# the demo run's report, rendered in headless chromium (/usr/bin/chromium).
screenshot: $(VENV)/.installed-dev
	PYTHONPATH=tests $(BIN)/python tests/browser/screenshot.py docs/report-screenshot.png

# anyio 4.16.0's own asyncio tests, natively and on swaysim's virtual loop: every native
# pass must pass virtually. Sets up .cache/anyio-suite/ (a virtualenv with anyio's test
# dependencies, anyio's sdist from PyPI) on first use. About 10 minutes on two cores;
# ANYIO_SUITE_ARGS=--subset runs the known-hard few in about one.
ANYIO_SUITE_ARGS ?=
anyio-suite: $(VENV)/.installed-dev
	$(BIN)/python tests/anyio_suite/run_anyio_suite.py $(ANYIO_SUITE_ARGS)

# dlm-sway 0.1.0's own unit tests against its dummy, then through swaysim's drop-in (the
# --swaysim-dlm-sway switch and a copy importing swaysim.dlm_sway), on asyncio and trio: every
# test that passes against the dummy must pass each way. Fetches dlm-sway's sdist into
# .cache/dlm-sway-suite/ on first use. About two minutes on two cores.
dlm-sway-suite: $(VENV)/.installed-dev
	$(BIN)/python tests/dlm_sway_suite/run_dlm_sway_suite.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .cache
