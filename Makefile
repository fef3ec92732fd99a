PY ?= .venv/bin/python
GLUE ?= $(abspath ../shared/data/glue)
# Rate 5 on SST-2 (3,000 rows), sized to finish within 12 minutes on 2 CPU cores, with the recipe
# measured best at that budget (conf/experiment/short_budget.yaml; the paper's penalty recipe:
# RUN_ARGS="prune.rate=5.0 task.train_limit=3000 optim.lr=1e-4 prune.phases.retrain=2").
RUN_ARGS ?= experiment=short_budget

.PHONY: install run test test-fast fuzz lint sweep bench

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
	HF_HUB_OFFLINE=1 GLUE_DIR=$(GLUE) $(PY) -m pytest -q -m unit

# The long reliability profile (make test runs a few of each): FUZZ_EXAMPLES config draws (five
# times as many data draws) and KILL_TRIALS SIGKILL-and-resume trials
fuzz: install
	HF_HUB_OFFLINE=1 GLUE_DIR=$(GLUE) FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} \
		KILL_TRIALS=$${KILL_TRIALS:-20} $(PY) -m pytest -q \
		tests/integration/test_fuzz_configs.py tests/unit/test_fuzz_data.py \
		tests/integration/test_kill_resume.py

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The CPU quick grid (MiniLM x 5 tasks x rate {1,2,5} x {bsp, magnitude}), then its table.
sweep: install
	HF_HUB_OFFLINE=1 $(PY) -m blockprune_pl -m experiment=quick_grid task.data_dir=$(GLUE)
	$(PY) -m blockprune_pl.collect multirun/quick_grid

# Export a run (RUN_DIR=outputs/...) in FORMAT (compact, gathered) and time it against dense.
FORMAT ?= compact
bench: install
	$(PY) -m blockprune_pl.export $(RUN_DIR) --format $(FORMAT) --out $(RUN_DIR)/export_$(FORMAT)
	$(PY) -m blockprune_pl.export.bench $(RUN_DIR)/export_$(FORMAT) --batch 1,32 --seq 128 --threads 1,2
