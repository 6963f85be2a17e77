"""The rules of the scan task's config keys (conf/task/scan.yaml); see equi.schema."""

from __future__ import annotations

from ...data.scan import ACTIONS, COMMANDS, SPLITS
from ...models.seq2seq import CELLS
from ...proxy import PROXIES
from ...schema import (BATCH, EXAMPLES_OR_ALL, FRACTION, LENGTH, MAX_STEPS, RATE, SEED, STEPS, WIDTH, Added, Block, Choice,
                       Either, ListOf, Number, Rule, block, up_to)

TRAINING = {"examples": up_to(MAX_STEPS, low=0), "batch_size": BATCH, "lr": RATE,
            "schedule": Choice(("constant", "cosine")), "clip": RATE}
LOSS = Choice(("token_mean", "sum_to_predicted_eos"))  # per target token, or the paper's loop's sum
CLIP_SCOPE = Choice(("model", "encoder_decoder"))  # clipped as one: the model, or its encoder and decoder apart
WORDS = tuple(w for w in COMMANDS if not w.startswith("<"))
ACTION_WORDS = tuple(a for a in ACTIONS if not a.startswith("<"))

RULES: dict[str, Rule] = {
    "split": Choice(tuple(SPLITS)),
    "architecture": Choice(("seq2seq", "seq2seq_paper", "gseq2seq")), "cell": Choice(tuple(CELLS)), "hidden": WIDTH,
    "dropout": FRACTION, "max_len": LENGTH, "default_proxy": Choice(tuple(PROXIES)),
    **block("pretrain", {**TRAINING, "teacher_forcing": FRACTION, "split_seed": SEED,
                         "clip_scope": Added(CLIP_SCOPE, as_before="model"),
                         "loss": Added(LOSS, as_before="token_mean"),
                         "keep": Added(Choice(("last", "best_val")), as_before="last"),  # early stopping
                         "val_every": Added(STEPS, used_when=("task.pretrain.keep", "best_val")),
                         "val_fraction": Number(low=0, high=1, above=True, below=True)}),
    **block("lambda_stage", TRAINING),
    **block("finetune", {**TRAINING, "weight_decay": Added(Number(low=0), as_before=0),
                         "clip_scope": Added(CLIP_SCOPE, as_before="model"),
                         "loss": Added(LOSS, as_before="token_mean"),
                         "lr": Either(RATE, Choice(("paper",)))}),  # paper: task.paper_finetune_lr's
    "paper_finetune_lr": Added(Block(), used_when=("task.finetune.lr", "paper")),
    "paper_finetune_lr.*.*": RATE,
    "eval_batch": BATCH, "limit": EXAMPLES_OR_ALL,
    "groups.*.commands": ListOf(ListOf(Choice(WORDS)), nonempty=True),
    "groups.*.actions": ListOf(ListOf(Choice(ACTION_WORDS)), nonempty=True),
}
