# `make run` and `make test` set everything up on a fresh clone (a package index is the only network needed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SEEDS ?= 0,1,2,3,4
SET_SIZES ?= 2,4,8
ARGS ?=            # extra overrides for every run, e.g. ARGS="hardware=cuda logger=none"

.PHONY: setup run test table-d5 fig2 table2 table-scan-gru table-scan-rnn bench bench-scan clean-runs

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
	$(PY) scripts/collect_results.py --task scan --paper-rows --where task.cell=lstm --out outputs/tables/table2.md

## The same zero-shot table for GRU and for RNN.
table-scan-gru table-scan-rnn: table-scan-%: setup
	$(PY) run.py -m experiment=scan_$*_vanilla,scan_$*_equitune,scan_$*_equizero task.split=add_jump,around_right seed=$(SCAN_SEEDS) $(ARGS)
	$(PY) scripts/collect_results.py --task scan --paper-rows --where task.cell=$* --out outputs/tables/table_scan_$*.md

## Speed of the operator: batched |G| views vs a loop over views (prints a table).
bench: setup
	$(PY) scripts/bench_operator.py

## SCAN training and decoding speed: mini-batches vs the paper's one example per step.
bench-scan: setup
	$(PY) scripts/bench_scan.py

clean-runs:
	rm -rf outputs/runs
