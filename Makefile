# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Every target bootstraps .venv with the machine's python3 when it is missing or older than
# pyproject.toml, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# freqtrade (bench figure 7) lives in a venv of its own: see freqtrade-venv below
FREQTRADE_VERSION := 2026.9
FT_VENV := .venv-freqtrade
FT_STAMP := $(FT_VENV)/.installed-$(FREQTRADE_VERSION)

.PHONY: demo test test-slow lint bench model clean venv faketime promtool

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	@$(BIN)/keywatch demo; rc=$$?; \
	echo; \
	echo "keywatch is installed in $(VENV): run it as $(BIN)/keywatch, or put it on PATH with"; \
	echo "  source $(BIN)/activate"; \
	echo "Next, for your own account: keywatch init (writes keywatch.toml and a .env for its"; \
	echo "secrets here), fill both in, then keywatch check-config and keywatch run."; \
	exit $$rc

# The suite CI runs (under 10 minutes on 2 cores). Whole scenario runs (the demo, a simulated
# hour through the service) are marked slow and run by `make test-slow` (and `make bench`).
test: $(STAMP) lint faketime promtool
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP) faketime promtool
	$(BIN)/python -m pytest -q -m slow

# Real client libraries sign with their host's clock; at an accelerated scenario clock they get
# the simulator's time from libfaketime (Debian package faketime). Installed here when missing
# and possible (root with apt-get); otherwise the tests that need it skip and say why.
FAKETIME_LIB = $(firstword $(wildcard /usr/lib/*/faketime/libfaketime.so.1))
faketime:
	@if [ -z "$(FAKETIME_LIB)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -qq faketime >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq faketime >/dev/null 2>&1; } || \
	      echo "note: could not install faketime; accelerated real-client tests will skip"; \
	  else \
	    echo "note: libfaketime missing (apt-get install faketime); accelerated real-client tests will skip"; \
	  fi; \
	fi

# tests/service/test_metrics.py checks the deploy/ rules, the dashboard's queries and a real /metrics
# scrape with promtool (Debian package prometheus, without its recommends). Installed here when
# missing and possible (root with apt-get); otherwise those tests skip and say why. Note: the
# package also installs a Prometheus server unit, which a host running systemd starts.
promtool:
	@if ! command -v promtool >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && \
	        apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; } || \
	      echo "note: could not install promtool; the promtool checks will skip"; \
	  else \
	    echo "note: promtool missing (apt-get install prometheus); the promtool checks will skip"; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check monitor tests bench
	$(BIN)/mypy monitor
	$(BIN)/python -m monitor.tools.strip_notebooks --check notebooks

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) $(FT_STAMP)
	$(BIN)/python -m bench.run

# freqtrade live against the simulator (bench/freqtrade_live.py), in a venv of its own: it pulls
# ~24 packages (TA-Lib, pyarrow, fastapi, SQLAlchemy, python-telegram-bot...) that neither
# `make test` nor CI needs, and its loose requirements must not move the main venv's.
.PHONY: freqtrade-venv freqtrade-live

$(FT_STAMP):
	@test -x $(FT_VENV)/bin/python || $(PYTHON) -m venv $(FT_VENV)
	$(FT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FT_VENV)/bin/python -m pip install --quiet 'freqtrade==$(FREQTRADE_VERSION)'
	@touch $(FT_STAMP)

freqtrade-venv: $(FT_STAMP)

freqtrade-live: $(STAMP) $(FT_STAMP)
	$(BIN)/python -m bench.freqtrade_live

model: $(STAMP)
	$(BIN)/keywatch train --default

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
