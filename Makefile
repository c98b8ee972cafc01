# The suite's commands. `make run` and `make test` create .venv and install the project when it is missing.
PYTHON_SYS ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
BENCH ?= default
DATASET ?= celebahq

.PHONY: install run test test-slow lint format perf gpu-smoke benchmark reproduce official-midms metric-check data-check clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## the quickstart: train + evaluate on the synthetic dataset (make run ARGS="model=... dataset=...")
	$(PY) run.py $(ARGS)

test: $(STAMP)  ## fast tests (CI runs this)
	$(PY) -m pytest $(ARGS)

test-slow: $(STAMP)  ## the slow tests too
	$(PY) -m pytest -m "" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

perf: $(STAMP)  ## speed and memory benchmarks (benchmarks/perf_*.py); OFFICIAL_COCOSNET=<checkout> OFFICIAL_MIDMS=<checkout> add the side-by-side with the official code
	$(PY) -m benchmarks.perf $(if $(OFFICIAL_COCOSNET),--official-cocosnet $(OFFICIAL_COCOSNET)) $(if $(OFFICIAL_MIDMS),--official-midms $(OFFICIAL_MIDMS)) $(ARGS)

gpu-smoke: $(STAMP)  ## on a CUDA machine: one paper-size training step and evaluation batch of each model, fp32 and bf16, and the TFLOP/s of MIDMs' UNet, autoencoder and correlation against the device peak
	$(PY) -m benchmarks.gpu_smoke $(ARGS)

benchmark: $(STAMP)  ## run a matrix (BENCH=default; LAUNCHER=submitit_local; FORCE=1), then aggregate
	$(PY) -m midms.benchmarking $(BENCH) $(if $(LAUNCHER),--launcher $(LAUNCHER)) $(if $(FORCE),--force) $(ARGS)

reproduce: $(STAMP)  ## evaluate the released models on the official test pairs: make reproduce DATASET=celebahq|ade20k|deepfashion [ARGS=--dry-run]
	$(PY) -m midms.benchmarking reproduce_$(DATASET) $(ARGS)

official-midms: $(STAMP)  ## our MIDMs beside the official inference, same weights and noise: make official-midms OFFICIAL=<checkout of cvlab-kaist/MIDMs>
	$(PY) -m benchmarks.official_midms --official $(OFFICIAL) $(ARGS)

metric-check: $(STAMP)  ## every metric on graded degradations of the synthetic ground truth: which sees structure, which style
	$(PY) -m benchmarks.metric_check $(ARGS)

data-check: $(STAMP)  ## verify a real dataset's layout: make data-check DATASET=celebahq
	$(PY) -m midms.data.check dataset=$(DATASET) $(ARGS)

clean:
	rm -rf logs .cache .pytest_cache .ruff_cache
