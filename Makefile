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

# System tools some tests drive (promtool lints the alerting rules; Dovecot is the mailbox tests' IMAP server).
test-tools:
	@bash scripts/ensure-promtool.sh
	@bash scripts/ensure-dovecot.sh

test: $(STAMP) postgres test-tools
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
