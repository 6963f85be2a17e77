"""Tokens per second of EquiLM generation with the KV cache against re-encoding the whole prefix
at every step: same LM, prompts, draws and settings (15 new tokens, top-k 40, both views of the
gender pair in one batch). The two must generate the same tokens; the ratio is the speed-up.

    python scripts/bench_nlg.py [--lm smollm2] [--prompts 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from equi.config import compose_config
from equi.data import fairness
from equi.models import lm as lms
from equi.sampling import RankSampler
from equi.sequence import StepwiseEquivariantDecoder
from equi.tasks.nlg import runner as nlg
from equi.weighting import Uniform


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", default="smollm2")
    parser.add_argument("--prompts", type=int, default=40, help="prompts per batch (each with its 2 views)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    cfg = compose_config(["task=nlg", f"task.lm={args.lm}"])
    task = cfg.task
    model, tokenizer = lms.load(task.lm, Path(cfg.paths.outputs) / "cache")
    torch.manual_seed(0)
    vocab = model.get_output_embeddings().weight.shape[0]
    group, _, _ = nlg.pair_group(task, "gender", tokenizer, vocab, Path(cfg.paths.data), False)
    stops = nlg.stop_ids(tokenizer)
    texts = [f"The {'man' if i % 2 == 0 else 'woman'} {fairness.RESPECT[i % 5]}" for i in range(args.prompts)]
    by_length: dict[int, list[list[int]]] = {}
    for ids in (tokenizer.encode(t) for t in texts):
        by_length.setdefault(len(ids), []).append(ids)
    batch = torch.tensor(max(by_length.values(), key=len))  # one prompt length per batch, as the task batches
    draws = torch.rand(len(batch), task.max_new_tokens, generator=torch.Generator().manual_seed(0))
    rates, outputs = {}, {}
    for name, reencode in (("kv_cache", False), ("reencode", True)):
        # no stop tokens: both variants run all max_new_tokens steps on every row
        decoder = StepwiseEquivariantDecoder(lms.StepLM(model, reencode=reencode), group, Uniform(), eos_id=-1,
                                             pad_id=0, max_len=task.max_new_tokens, average="logits",
                                             choose=RankSampler(draws, task.top_k))
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            with torch.no_grad():
                outputs[name] = decoder.generate(batch, keep_scores=False)[1]
            times.append(time.perf_counter() - start)
        tokens = outputs[name].numel() * group.order
        rates[name] = tokens / statistics.median(times)
        print(f"{name:9s} {rates[name]:8.1f} tokens/s  (median of {args.repeats}: {statistics.median(times):.2f} s "
              f"for {len(batch)} prompts × {group.order} views × {outputs[name].shape[1]} tokens)")
    same = torch.equal(outputs["kv_cache"], outputs["reencode"])
    print(f"speed-up of the KV cache: {rates['kv_cache'] / rates['reencode']:.2f}× (aim ≥ 3×); "
          f"same tokens: {same}; LM {args.lm}, stop tokens ignored here ({len(stops)} in the task)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
