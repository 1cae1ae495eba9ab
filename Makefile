# perpdeck — `make run` opens perpdeck in sim mode, `make test` runs the test suite.
# Both create .venv on first use and install into it; nothing is installed system-wide.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run headless test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,rl]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/perpdeck $(ARGS)

headless: $(STAMP)
	$(BIN)/perpdeck --no-ui $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/backtest_throughput.py

clean:
	rm -rf $(VENV) state .hypothesis *.egg-info
