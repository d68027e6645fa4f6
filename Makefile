# Every target bootstraps its own virtual environment from pyproject.toml:
# a fresh machine needs only Python 3.10+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo serve test lint typecheck schema clean bench soak

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

# Cold start, warm overhead, memory and bulk restores (COS against coscmd, GCS against gcloud)
# against baselines (bench/): a table on stdout, the same figures in build/bench/results.json.
# BENCH_ARGS="--quick" or "--only bulk_cos".
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# The fault soak at full size (tests/reliability/soak.py): 10,000 requests through the queue
# paths while the emulators fail, reset, stall and throttle; prints a JSON summary and exits 1
# on any lost, doubled or wrongly retried request. SOAK_ARGS="--requests 2000" for a shorter one.
SOAK_ARGS ?= --requests 10000
soak: $(STAMP)
	$(BIN)/python -m tests.reliability.soak $(SOAK_ARGS)

# schemas/: the JSON Schemas of requests, events and answers, and the webhook's OpenAPI 3.1
# document (openapi.json), all generated from the pydantic models; tests compare them.
schema: $(STAMP)
	$(BIN)/python -m shared.schema_export --out schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
