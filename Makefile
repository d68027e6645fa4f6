# Every target bootstraps its own virtual environment from pyproject.toml:
# a fresh machine needs only Python 3.10+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo serve test lint typecheck schema clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m scripts.demo

# Emulators + both Google functions (functions-framework) on loopback until Ctrl-C.
serve: $(STAMP)
	$(BIN)/python -m scripts.local serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict shared
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict shared

# Cold start, warm overhead and memory against hand-written baselines (bench/): a table on
# stdout, the same figures in build/bench/results.json. BENCH_ARGS="--quick" or "--only warm".
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

schema: $(STAMP)
	$(BIN)/python -m shared.schema_export --out schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
