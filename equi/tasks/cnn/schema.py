"""The rules of the cnn task's config keys (conf/task/cnn.yaml); see equi.schema."""

from __future__ import annotations

from ...schema import (BATCH, EPOCHS, EXAMPLES, EXAMPLES_OR_ALL, FLAG, FRACTION, MAX_EPOCHS, MAX_LENGTH, RATE,
                       SCORE_PROXIES, SEED, WIDTH, Added, Block, Choice, Number, Rule, Text, block, up_to)

TRAINING = {"epochs": up_to(MAX_EPOCHS, low=0), "examples_per_epoch": EXAMPLES_OR_ALL, "batch_size": BATCH,
            "optimizer": Choice(("sgd", "adam")), "lr": RATE, "schedule": Choice(("constant", "cosine", "onecycle")),
            "weight_decay": Number(low=0), "label_smoothing": FRACTION}
PRETRAINING = {**TRAINING, "seed": SEED, "per_class": EXAMPLES_OR_ALL}

RULES: dict[str, Rule] = {
    "model": Choice(lambda cfg: cfg.task.pretrain),  # a model with its own pretraining block
    "weights": Choice(("auto", "imagenet", "scratch", "random")), "data_root": Text(nullable=True),
    "default_proxy": Choice(SCORE_PROXIES), "rotation_seed": SEED, "eval_per_class": EXAMPLES_OR_ALL,
    "train_per_class": EXAMPLES_OR_ALL, "eval_batch": BATCH, "lambda_examples": EXAMPLES,
    **block("pretrain.*", PRETRAINING),
    **block("imagenet_adapt", {**PRETRAINING, "input_size": up_to(MAX_LENGTH, low=64)}),  # AlexNet's stem
    **block("lambda_stage", TRAINING),
    **block("finetune", {**TRAINING, "layers": Choice(("all", "last2"))}),
    "protocol": Added(Choice(("ours", "paper")), as_before="ours"),
    "paper_protocol": Added(Block(), used_when=("task.protocol", "paper")),  # its settings matter to it alone
    **block("paper_protocol", {"epochs": EPOCHS, "examples_per_epoch": EXAMPLES_OR_ALL, "batch_size": BATCH,
                               "lr": RATE, "momentum": FRACTION, "lambda_hidden": WIDTH,
                               "lambda_dropout": Number(low=0, high=1, below=True),
                               "bugs.test_from_train": FLAG, "bugs.argmin_max_prob": FLAG}),
}
