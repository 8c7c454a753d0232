# The two commands of the README, each doing its own one-time set-up on a fresh clone:
#   make train    set up .venv, train the default CMUdict G2P model (one process, a thread per core), evaluate, save,
#                 reload, predict
#   make test     set up .venv, run the tests
# Set-up is idempotent: once .venv matches pyproject.toml and TORCH, it is skipped in well under a second.
#
# Knobs (make VAR=value):
#   TORCH   the torch requirement installed first. The default is the CPU wheel; a bare `torch` would pull a
#           multi-GB CUDA build. On a GPU machine: make train TORCH=torch RECIPE=configs/recipes/g2p-gpu.json
#   RECIPE  the training recipe (configs/recipes/*.json);  NPROC  training processes: 1 (the default) runs one process with a
#           torch thread per core, more run torchrun DDP with one thread each (the recipe's batch is per process:
#           NPROC=2 ARGS="--per_device_train_batch_size 32" keeps its global batch of 64);  ARGS  extra flags, e.g.
#           ARGS="--max_train_minutes 1 --output_dir /tmp/g2p";  PYTEST  extra pytest flags;  PYTHON  the base Python

PYTHON ?= python3
TORCH ?= torch==2.13.0
RECIPE ?= configs/recipes/g2p-cpu.json
NPROC ?= 1
ARGS ?=
PYTEST ?=
EXTRAS ?= train,test,plot,dev,serve,examples

VENV := .venv
# When make started: `make train`'s time budget (the recipe's max_train_minutes) counts its set-up too.
JOB_START := $(shell date +%s)
STAMP := $(VENV)/.hf_minimal-setup

.PHONY: setup train test clean-venv

setup:
	@if [ -f $(STAMP) ] && [ "$$(cat $(STAMP))" = "$(TORCH) [$(EXTRAS)]" ] && [ $(STAMP) -nt pyproject.toml ]; then \
		echo "setup: $(VENV) is up to date ($(TORCH), extras $(EXTRAS))"; \
	else \
		set -e; \
		echo "setup: creating $(VENV) with $(TORCH) and hf-minimal[$(EXTRAS)] (one time, a few minutes)"; \
		[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV) || { \
			echo "setup: '$(PYTHON) -m venv' failed; install Python's venv module (Debian: apt-get install python3-venv)"; exit 1; }; \
		$(VENV)/bin/python -m pip install --quiet --upgrade pip; \
		$(VENV)/bin/python -m pip install --quiet "$(TORCH)"; \
		$(VENV)/bin/python -m pip install --quiet -e ".[$(EXTRAS)]"; \
		echo "$(TORCH) [$(EXTRAS)]" > $(STAMP); \
	fi

train: setup
ifeq ($(NPROC),1)
	HF_MINIMAL_JOB_START=$(JOB_START) $(VENV)/bin/python examples/g2p/train_g2p.py $(RECIPE) $(ARGS)
else
	HF_MINIMAL_JOB_START=$(JOB_START) $(VENV)/bin/torchrun --standalone --nproc_per_node $(NPROC) examples/g2p/train_g2p.py $(RECIPE) $(ARGS)
endif

test: setup
	$(VENV)/bin/python -m pytest -q $(PYTEST)

clean-venv:
	rm -rf $(VENV)
