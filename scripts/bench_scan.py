#!/usr/bin/env python
"""Benchmark SCAN training and decoding: our mini-batches vs the paper's one example per step.

    python scripts/bench_scan.py [--cell lstm] [--examples 3000]
Prints examples/s, sequences/s and the projected time for 200k training examples.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from equi.config import compose_config
from equi.data import catalog, scan as data
from equi.sequence import GreedyDecoder
from equi.tasks.scan.runner import new_model, pretrain


def training_rate(task, train, batch_size: int, examples: int) -> float:
    timed = OmegaConf.merge(task, {"pretrain": {"batch_size": batch_size, "examples": examples, "keep": "last"}})
    model = new_model(task)
    start = time.perf_counter()
    pretrain(model, train, None, timed, seed=0, device="cpu", desc=f"train, batch {batch_size}")
    return examples / (time.perf_counter() - start)


@torch.no_grad()
def decoding_rate(task, pairs, batch_size: int, count: int) -> float:
    decode = GreedyDecoder(new_model(task).eval(), data.EOS_OUT)
    src, _ = pairs.subset(range(count)).tensors()
    start = time.perf_counter()
    for i in range(0, count, batch_size):
        decode(src[i : i + batch_size])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--examples", type=int, default=3000, help="training examples per measurement")
    parser.add_argument("--data", help="a SCAN release folder (default: the data folder's, fetched when missing)")
    args = parser.parse_args()
    torch.manual_seed(0)
    task = compose_config(["task=scan", f"task.cell={args.cell}"]).task
    release = args.data or catalog.ensure("scan", Path(compose_config([]).paths.data), True)
    train, test = data.load_split(release, task.split)
    ours = training_rate(task, train, task.pretrain.batch_size, args.examples)
    paper = training_rate(task, train, 1, max(200, args.examples // 10))
    dec_ours = decoding_rate(task, test, task.eval_batch, 2048)
    dec_paper = decoding_rate(task, test, 1, 200)
    total = task.pretrain.examples
    print(f"\n| SCAN {args.cell}, {torch.get_num_threads()} threads | ours (batch {task.pretrain.batch_size} / {task.eval_batch}) | one example per step | ratio |")
    print("|---|---|---|---|")
    print(f"| training examples/s | {ours:.0f} | {paper:.1f} | {ours / paper:.1f}× |")
    print(f"| {total // 1000}k examples would take | {total / ours / 60:.1f} min | {total / paper / 60:.1f} min | |")
    print(f"| decoded sequences/s | {dec_ours:.0f} | {dec_paper:.1f} | {dec_ours / dec_paper:.1f}× |")


if __name__ == "__main__":
    main()
