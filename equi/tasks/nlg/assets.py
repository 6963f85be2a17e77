"""The nlg task's rows of `python run.py assets`: its data and weights, where, and how to get them."""

from __future__ import annotations

from omegaconf import DictConfig

from ...assets import Asset, cached, dataset, package_asset
from ...models import lm


def assets(cfg: DictConfig) -> list[Asset]:
    rows = [dataset(cfg, "regard"), dataset(cfg, "gender_words"),
            package_asset("SmolLM2-135M-Instruct GGUF (the offline LM)", *lm.SMOLLM2),
            package_asset("GPT-2 BPE files (tests' tokenizer)", lm.GPT2_BPE[0], lm.GPT2_BPE[1])]
    rows.append(Asset("GPT-2 weights (task.lm=gpt2)", lm.hub_folder("gpt2"), lm.hub_cached("gpt2"),
                      "python run.py task=nlg task.lm=gpt2  # where a network exists",
                      "optional: the paper's LM; offline the task uses SmolLM2"))
    rows.append(Asset("regard classifier sasha/regardv3 (task.regard=sasha/regardv3)", lm.hub_folder("sasha/regardv3"),
                      lm.hub_cached("sasha/regardv3"), "python run.py task=nlg task.regard=sasha/regardv3  # where a network exists",
                      "optional: offline the task trains a regard stand-in"))
    rows.append(cached(cfg, "regard stand-in", "nlg", "regard-standin-*.pkl", "python run.py task=nlg method=vanilla"))
    return rows
