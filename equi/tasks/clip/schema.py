"""The rules of the clip task's config keys (conf/task/clip.yaml); see equi.schema."""

from __future__ import annotations

from ...data.imagesets import DATASETS, TRANSFORMS
from ...groups.image import BY_NAME as IMAGE_GROUPS
from ...schema import (BATCH, EPOCHS, EXAMPLES, EXAMPLES_OR_ALL, LAYERS, LENGTH, MAX_STEPS, MAX_VOCAB, RATE,
                       SCORE_PROXIES, SEED, STEPS, TEXT, WIDTH, Choice, Either, ListOf, Number, OfWeights, Rule, Text, block,
                       up_to)

STANDIN = {"seed": SEED, "epochs": EPOCHS, "examples_per_epoch": EXAMPLES_OR_ALL, "per_class": EXAMPLES_OR_ALL,
           "eval_per_class": EXAMPLES_OR_ALL, "batch_size": BATCH, "lr": RATE, "weight_decay": Number(low=0),
           "augment": Choice(("flip", "crop_flip")), "precision": Choice(("auto", "bf16", "fp32")),
           "model.embed_dim": WIDTH, "model.vision_cfg.image_size": LENGTH,
           "model.vision_cfg.layers": ListOf(LAYERS, nonempty=True), "model.vision_cfg.width": WIDTH,
           **block("model.text_cfg", {"context_length": LENGTH, "vocab_size": up_to(MAX_VOCAB), "width": WIDTH,
                                      "heads": LAYERS, "layers": LAYERS})}

RULES: dict[str, Rule] = {
    "model": TEXT, "pretrained": TEXT, "checkpoint": Text(nullable=True),
    "weights": Choice(("auto", "pretrained", "standin", "random")),
    "dataset": Choice(DATASETS), "data_root": Text(nullable=True), "transform": Choice(TRANSFORMS),
    "transform_per": Choice(("image", "batch")), "transform_seed": SEED,
    "group": Choice(tuple(IMAGE_GROUPS), nullable=True), "logit_scale": Either(RATE, Choice(("model",))),
    "default_proxy": Choice(SCORE_PROXIES), "eval_per_class": EXAMPLES_OR_ALL, "train_per_class": EXAMPLES_OR_ALL,
    "eval_batch": BATCH, "lambda_examples": EXAMPLES,
    **block("lambda_stage", {"steps": up_to(MAX_STEPS, low=0), "batch_size": BATCH, "lr": RATE}),
    **block("finetune", {"steps": up_to(MAX_STEPS, low=0), "eval_every": STEPS, "batch_size": BATCH}),
    "finetune.lr_by_method.*": RATE,
    **block("standin", {key: OfWeights(rule, "standin") for key, rule in STANDIN.items()}),
}
