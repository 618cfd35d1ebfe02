# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench venv clean postgres test-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,aws]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/alertbridge demo

postgres:
	@bash scripts/ensure-postgres.sh

# System tools some tests drive (promtool lints the alerting rules; Dovecot is the mailbox tests' IMAP server;
# Debian's chromium runs the console's browser tests).
test-tools:
	@bash scripts/ensure-promtool.sh
	@bash scripts/ensure-dovecot.sh
	@bash scripts/ensure-chromium.sh

# Two workers (pytest-xdist): most of the suite's time is spent waiting on subprocesses, servers and timers, so two
# cores run it in a little over half the time. Every test is safe beside another: free ports, a database and files of
# its own, the PostgreSQL restart on a private server. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2

test: $(STAMP) postgres test-tools
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --durations=25

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
