# `make run` and `make test` set everything up on a fresh clone (a package index is the only network needed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SEEDS ?= 0,1,2,3,4
SET_SIZES ?= 2,4,8
ARGS ?=            # extra overrides for every run, e.g. ARGS="hardware=cuda logger=none"

.PHONY: setup run test table-d5 fig2 table2 table-scan-gru table-scan-rnn table-scan-finetune table-scan-g table-scan-lambda fig-scan-fewshot pretrain-cnn fig-cnn bench bench-scan clean-runs

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
PLAIN_SCAN_ROWS = --task scan --digits 1 --paper-rows --where task.architecture=seq2seq --where method.name!=lambda --where task.limit=None
table2: setup
	$(PY) run.py -m experiment=scan_lstm_vanilla,scan_lstm_equitune,scan_lstm_equizero task.split=add_jump,around_right seed=$(SCAN_SEEDS) $(ARGS)
	$(PY) scripts/collect_results.py $(PLAIN_SCAN_ROWS) --where task.cell=lstm --where task.finetune.examples=0 --out outputs/tables/table2.md

## The same zero-shot table for GRU and for RNN.
table-scan-gru table-scan-rnn: table-scan-%: setup
	$(PY) run.py -m experiment=scan_$*_vanilla,scan_$*_equitune,scan_$*_equizero task.split=add_jump,around_right seed=$(SCAN_SEEDS) $(ARGS)
	$(PY) scripts/collect_results.py $(PLAIN_SCAN_ROWS) --where task.cell=$* --where task.finetune.examples=0 --out outputs/tables/table_scan_$*.md

## SCAN finetuning: LSTM, EquiLSTM, EquizeroLSTM finetuned for 10k examples through each method.
table-scan-finetune: setup
	$(PY) run.py -m experiment=scan_lstm_vanilla_finetune,scan_lstm_equitune_finetune,scan_lstm_equizero_finetune task.split=add_jump,around_right seed=$(SCAN_SEEDS) $(ARGS)
	$(PY) scripts/collect_results.py $(PLAIN_SCAN_ROWS) --where task.cell=lstm --where task.finetune.examples=10000 --out outputs/tables/table_scan_finetune.md

## Gordon et al.'s G-LSTM / G-GRU / G-RNN (equivariant by weight tying), trained from scratch, zero-shot.
GMODELS ?= scan_glstm,scan_ggru,scan_grnn
table-scan-g: setup
	$(PY) run.py -m experiment=$(GMODELS) task.split=add_jump,around_right seed=$(SCAN_SEEDS) $(ARGS)
	$(PY) scripts/collect_results.py --task scan --digits 1 --paper-rows --where task.architecture=gseq2seq --where task.limit=None --where task.finetune.examples=0 --out outputs/tables/table_scan_g.md

## SCAN λ-equitune (λ trained over each view's command summary, model frozen), LSTM, zero-shot.
table-scan-lambda: setup
	$(PY) run.py -m experiment=scan_lstm_lambda task.split=add_jump,around_right seed=$(SCAN_SEEDS) $(ARGS)
	$(PY) scripts/collect_results.py --task scan --digits 1 --paper-rows --where method.name=lambda --where task.architecture=seq2seq --where task.cell=lstm --where task.limit=None --where task.finetune.examples=0 --out outputs/tables/table_scan_lambda.md

## SCAN few-shot curve (Add Jump, LSTM): test accuracy against finetuning examples.
FEWSHOT ?= 0,1000,2500,5000,10000
fig-scan-fewshot: setup
	$(PY) run.py -m task=scan task.cell=lstm task.split=add_jump method=vanilla,equitune,equizero task.finetune.examples=$(FEWSHOT) seed=$(SCAN_SEEDS) $(ARGS)
	$(PY) scripts/fig_scan_fewshot.py

## rot90-CIFAR10: the pretrained CNNs (ImageNet weights adapted to CIFAR-10 when torchvision can get
## them, else trained from scratch on upright CIFAR-10: ResNet ~25–30 min, AlexNet ~18 min on 2 cores), cached.
pretrain-cnn: setup
	$(PY) run.py -m task=cnn method=vanilla task.model=resnet18,alexnet $(ARGS)

## Paper Figures 5b/11b: zero-shot and finetuning curves for both models, all methods, full finetuning
## and linear probing, 3 seeds; a table and λ per rotation (Figure 12). The budget below (60 runs) took
## 37 min on 2 CPU cores after pretrain-cnn; raise CNN_EPOCHS / CNN_EXAMPLES / CNN_EVAL=null on a GPU.
CNN_SEEDS ?= 0,1,2
CNN_EPOCHS ?= 2
CNN_EXAMPLES ?= 2000
CNN_EVAL ?= 200
CNN_SETTINGS = task.finetune.epochs=$(CNN_EPOCHS) task.finetune.examples_per_epoch=$(CNN_EXAMPLES) task.lambda_stage.examples_per_epoch=$(CNN_EXAMPLES) task.eval_per_class=$(CNN_EVAL)
fig-cnn: pretrain-cnn
	$(PY) run.py -m task=cnn task.model=resnet18,alexnet method=vanilla,equitune,lambda task.finetune.layers=all,last2 seed=$(CNN_SEEDS) $(CNN_SETTINGS) $(ARGS)
	$(PY) run.py -m task=cnn task.model=resnet18,alexnet method=equizero method.proxy=entropy,neg_max_prob task.finetune.layers=all,last2 seed=$(CNN_SEEDS) $(CNN_SETTINGS) $(ARGS)
	$(PY) scripts/fig_cnn.py --where task.finetune.epochs=$(CNN_EPOCHS) --where task.finetune.examples_per_epoch=$(CNN_EXAMPLES) --where task.eval_per_class=$(CNN_EVAL)

## Speed of the operator: batched |G| views vs a loop over views (prints a table).
bench: setup
	$(PY) scripts/bench_operator.py

## SCAN training and decoding speed: mini-batches vs the paper's one example per step.
bench-scan: setup
	$(PY) scripts/bench_scan.py

clean-runs:
	rm -rf outputs/runs
