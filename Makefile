# `make run` and `make test` set everything up on a fresh clone (a package index is the only network needed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SEEDS ?= 0,1,2,3,4
SET_SIZES ?= 2,4,8
ARGS ?=            # extra overrides for every run, e.g. ARGS="hardware=cuda logger=none"

.PHONY: setup run test table-d5 fig2 table2 table-scan-gru table-scan-rnn table-scan-finetune fig-scan-fewshot bench bench-scan clean-runs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

## The default experiment (synthetic SO(2) regression, canonical-λ), offline, logged to W&B offline.
run: setup
	$(PY) run.py $(ARGS)

## The test suite (CI runs this through .ci/run).
test: setup
	$(PY) -m pytest -q

## Paper appendix D.5: MLP vs Canon-MLP vs Canon-λ-MLP, 5 seeds, mean (std) test loss beside the paper's.
table-d5: setup
	$(PY) run.py -m experiment=d5_mlp,d5_canon seed=$(SEEDS) $(ARGS)
	$(PY) run.py -m experiment=d5_canon_lambda method.extra_rotations=$(SET_SIZES) seed=$(SEEDS) $(ARGS)
	$(PY) scripts/collect_results.py --task synthetic --paper-rows --out outputs/tables/table_d5.md

## Paper Figure 2: pretrained DQNs (5 seeds) with vanilla / equitune / equizero acting, per environment.
fig2: setup
	$(PY) run.py -m task=dqn task.env=gridworld,cartpole,acrobot method=vanilla,equitune,equizero seed=$(SEEDS) $(ARGS)
	$(PY) scripts/fig2.py

## Paper Table 2: SCAN zero-shot LSTM / EquiLSTM / EquizeroLSTM on Add Jump and Around Right, 3 seeds.
SCAN_SEEDS ?= 0,1,2
table2: setup
	$(PY) run.py -m experiment=scan_lstm_vanilla,scan_lstm_equitune,scan_lstm_equizero task.split=add_jump,around_right seed=$(SCAN_SEEDS) $(ARGS)
	$(PY) scripts/collect_results.py --task scan --digits 1 --paper-rows --where task.cell=lstm --where task.limit=None --where task.finetune.examples=0 --out outputs/tables/table2.md

## The same zero-shot table for GRU and for RNN.
table-scan-gru table-scan-rnn: table-scan-%: setup
	$(PY) run.py -m experiment=scan_$*_vanilla,scan_$*_equitune,scan_$*_equizero task.split=add_jump,around_right seed=$(SCAN_SEEDS) $(ARGS)
	$(PY) scripts/collect_results.py --task scan --digits 1 --paper-rows --where task.cell=$* --where task.limit=None --where task.finetune.examples=0 --out outputs/tables/table_scan_$*.md

## SCAN finetuning: LSTM, EquiLSTM, EquizeroLSTM finetuned for 10k examples through each method.
table-scan-finetune: setup
	$(PY) run.py -m experiment=scan_lstm_vanilla_finetune,scan_lstm_equitune_finetune,scan_lstm_equizero_finetune task.split=add_jump,around_right seed=$(SCAN_SEEDS) $(ARGS)
	$(PY) scripts/collect_results.py --task scan --digits 1 --paper-rows --where task.cell=lstm --where task.limit=None --where task.finetune.examples=10000 --out outputs/tables/table_scan_finetune.md

## SCAN few-shot curve (Add Jump, LSTM): test accuracy against finetuning examples.
FEWSHOT ?= 0,1000,2500,5000,10000
fig-scan-fewshot: setup
	$(PY) run.py -m task=scan task.cell=lstm task.split=add_jump method=vanilla,equitune,equizero task.finetune.examples=$(FEWSHOT) seed=$(SCAN_SEEDS) $(ARGS)
	$(PY) scripts/fig_scan_fewshot.py

## Speed of the operator: batched |G| views vs a loop over views (prints a table).
bench: setup
	$(PY) scripts/bench_operator.py

## SCAN training and decoding speed: mini-batches vs the paper's one example per step.
bench-scan: setup
	$(PY) scripts/bench_scan.py

clean-runs:
	rm -rf outputs/runs
