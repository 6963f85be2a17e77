"""The rules of the nlg task's config keys (conf/task/nlg.yaml); see equi.schema."""

from __future__ import annotations

from ...data.fairness import CONTEXTS
from ...schema import (FLAG, LENGTH, MAX_LAYERS, MAX_VOCAB, RATE, SAMPLES, TEXT, WORD, Choice, ListOf, Pattern, Rule,
                       up_to)

RULES: dict[str, Rule] = {
    "lm": TEXT, "context": Choice(tuple(CONTEXTS)),
    "pairs": ListOf(Choice(lambda cfg: cfg.task.demographics), nonempty=True),
    "demographics.*.words": ListOf(WORD, length=2),
    "demographics.*.subject": Pattern(r"[^{}]*\{\}[^{}]*", "a phrase with one {} where the word goes",
                                      bad=("The person", "{} {}", None)),
    "demographics.*.word_lists": FLAG, "capitalized": FLAG, "general_words": ListOf(WORD, nonempty=True),
    "samples_per_context": SAMPLES, "max_new_tokens": LENGTH, "top_k": up_to(MAX_VOCAB), "chunk": LENGTH,
    "regard": TEXT, "regard_mask": FLAG, "regard_standin.layers": ListOf(up_to(MAX_LAYERS, low=0), nonempty=True),
    "regard_standin.C": ListOf(RATE, nonempty=True), "bootstrap": SAMPLES,
}
