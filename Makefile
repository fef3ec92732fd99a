PY ?= .venv/bin/python
GLUE ?= $(abspath ../shared/data/glue)
RUN_ARGS ?=

.PHONY: install run test test-fast lint bench sweep

install: .venv/.installed

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	# The CPU wheel first: a bare torch requirement would pull a multi-GB CUDA build.
	.venv/bin/pip install -q torch==2.13.0
	.venv/bin/pip install -q -e '.[dev,launcher]'
	touch $@

# The main job on the embedded default: MiniLM (shipped in a PyPI package) on SST-2.
run: install
	HF_HUB_OFFLINE=1 $(PY) -m blockprune_pl task.data_dir=$(GLUE) $(RUN_ARGS)

test: install
	HF_HUB_OFFLINE=1 GLUE_DIR=$(GLUE) $(PY) -m pytest -q

test-fast: install
	HF_HUB_OFFLINE=1 GLUE_DIR=$(GLUE) $(PY) -m pytest -q -m "not slow"

lint: install
	$(PY) -m ruff check blockprune_pl tests
	$(PY) -m ruff format --check blockprune_pl tests
