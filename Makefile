# Quick start: `make serve` starts the scoring server on the shipped model, `make test` runs the tests.
# Each target creates .venv on first use and installs what it needs into it: `serve` the serving
# install, `test` the train, eval, ray, dev and postgres extras too. Without chromium or a
# PostgreSQL URL (HELPDESK_TEST_POSTGRES_URL) those tests skip, and the test summary says so.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test lint install-serve install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.serve: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[train,eval,ray,dev,postgres]"
	touch $@

install-serve: $(VENV)/.serve
install-dev: $(VENV)/.dev

serve: $(VENV)/.serve
	$(BIN)/helpdesk-scorer serve

test: $(VENV)/.dev
	$(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy serving evaluation

clean:
	rm -rf $(VENV)

.PHONY: bench
# The benchmark (about 15 minutes, no training run needed): results in reports/bench,
# docs/benchmarks.md regenerated. RUN=models/runs/v3 times that run's fine-tuned torch model.
bench: $(VENV)/.dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m evaluation.bench run --out reports/bench $(if $(RUN),--run $(RUN))
