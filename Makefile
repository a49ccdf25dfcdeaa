# PixelGAN developer commands. `make help` lists them.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
ARGS    ?=

.DEFAULT_GOAL := help
.PHONY: help install test train tune generate evaluate demo export bench quality gpu-check lint format clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev,text,demo,tune]"
	touch $(STAMP)

install: $(STAMP) ## make .venv and install the package with pinned dependencies

test: install ## run the test suite (CPU, no network)
	$(PY) -m pytest -q $(ARGS)

train: install ## train on the embedded default data set (pass Hydra overrides in ARGS="...")
	$(PY) -m src.train $(ARGS)

tune: install ## hyper-parameter search on Ray Tune: ARGS="search=pbt dataset=mnist tune.population=4"
	$(PY) -m src.tune $(ARGS)

generate: install ## sample a checkpoint: ARGS="ckpt_path=... prompts='[\"a handwritten digit three\"]'"
	$(PY) -m src.generate $(ARGS)

evaluate: install ## score a checkpoint: ARGS="ckpt_path=... num_samples=10000"
	$(PY) -m src.evaluate $(ARGS)

demo: install ## local web page (127.0.0.1:7860), shipped MNIST bundle by default: ARGS="ckpt_path=..."
	$(PY) -m src.demo $(ARGS)

export: install ## checkpoint -> small bundle + MODEL_CARD.md: ARGS="ckpt_path=... output_dir=models/x"
	$(PY) -m src.export $(ARGS)

# The default MNIST model when the shared MNIST files are there, the embedded digits otherwise.
BENCH_DATA ?= $(if $(wildcard ../shared/data/MNIST/raw/train-images-idx3-ubyte),dataset=mnist paths.data_dir=../shared/data,dataset=digits)

bench: install ## images/s of the Lightning path vs a bare PyTorch loop, ratio, data-wait share
	$(PY) -m src.bench $(BENCH_DATA) hydra.run.dir=logs/bench/$$(date +%Y%m%d_%H%M%S) $(ARGS)

quality: install ## PixelGAN MNIST recipe vs hand-written SNGAN, 10 CPU-minutes each, one table
	$(PY) experiments/quality.py --data ../shared/data $(ARGS)

gpu-check: install ## GPU paths in one table: GPU tests, precision x loss, clipping, n_critic, bench (needs CUDA)
	$(PY) scripts/gpu_check.py $(ARGS)

lint: install ## ruff
	$(PY) -m ruff check src tests experiments scripts

format: install ## ruff format + import sort
	$(PY) -m ruff check --fix src tests
	$(PY) -m ruff format src tests

clean: ## remove logs and caches (keeps .venv)
	rm -rf logs outputs multirun .pytest_cache .ruff_cache
