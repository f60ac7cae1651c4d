# Two commands for a new user: `make bench` runs the main job, `make test` runs the tests.
# Both create .venv and install the project on first use. Override TORCH_SPEC to pick a torch
# build (an existing torch in the venv is kept), e.g. make bench TORCH_SPEC="torch==2.5.1".
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
BENCH_ARGS ?=

.PHONY: install bench test test-gpu lint

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

bench: install
	$(BIN)/python -m pytest suites/ --benchmark-only $(BENCH_ARGS)

test: install
	$(BIN)/python -m pytest

# On a machine with a CUDA GPU (without one every test there skips): tests/gpu.
test-gpu: install
	$(BIN)/python -m pytest tests/gpu -m gpu

lint: install
	$(BIN)/ruff check harness suites tests benchmarks
	$(BIN)/ruff format --check harness suites tests benchmarks
