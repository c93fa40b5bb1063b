# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Every target bootstraps .venv with the machine's python3 when it is missing or older than
# pyproject.toml, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench model clean venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/keywatch demo

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check monitor tests bench
	$(BIN)/mypy monitor
	$(BIN)/python -m monitor.devtools.strip_notebooks --check notebooks

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run

model: $(STAMP)
	$(BIN)/keywatch train --default

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
