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

# Two phases on the machine's CPUs: the tests that time nothing in two pytest-xdist workers, then
# the ones marked serial (they time sleeps, counters or runs against a quiet CPU) one at a time.
# Both phases run; the exit status is the first failure's. TEST_ARGS go to both phases (a phase
# they leave empty is no failure). TEST_WORKERS=0 runs the first phase in one process.
# The serial tests time sleeps, counters and runs on this machine's CPU, whose host flips between
# two speeds 1.8x apart in spells of 0.1 s (benchmarks/bench_speed_states.py): a failure there is
# run again up to twice (pytest-rerunfailures; the summary counts each rerun, "R"), once in the
# first phase; a test that fails every time fails the run.
TEST_WORKERS ?= 2
TEST_ARGS ?=

test: install
	@p1=0; p2=0; \
	$(BIN)/python -m pytest -p no:cnnbench -n $(TEST_WORKERS) -m "not serial" --reruns 1 $(TEST_ARGS) || p1=$$?; \
	$(BIN)/python -m pytest -p no:cnnbench -m serial --reruns 2 --reruns-delay 1 $(TEST_ARGS) || p2=$$?; \
	for c in $$p1 $$p2; do [ $$c = 0 ] || [ $$c = 5 ] || exit $$c; done; \
	if [ $$p1 = 5 ] && [ $$p2 = 5 ]; then exit 5; fi

# On a GPU box: tests/gpu, offline once the project is installed (no pip, no browser), with the
# venv's python or, without one, $(PYTHON). Where CUDA does not work it fails naming why.
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
test-gpu:
	@$(GPU_PYTHON) -c "import harness, torch, pytest, xdist, pynvml" 2>/dev/null || { \
		echo "make test-gpu: the project is not installed for $(GPU_PYTHON): run make install once (it needs the network)"; exit 1; }
	CNNBENCH_REQUIRE_GPU=1 $(GPU_PYTHON) -m pytest tests/gpu -m gpu -p no:cacheprovider

lint: install
	$(BIN)/ruff check harness suites tests benchmarks
	$(BIN)/ruff format --check harness suites tests benchmarks
