#!/usr/bin/env python
"""Benchmark: the operator's one batched pass over |G| views vs a Python loop over views.

    python scripts/bench_operator.py [--batch 64] [--repeats 20]
Prints milliseconds per wrapped forward pass on this machine's CPU (or --device cuda).
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision

import equi
from equi import groups as G


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval().to(args.device)
    x = torch.randn(args.batch, 3, 32, 32, device=args.device)
    print(f"resnet18 (random weights), batch {args.batch}, {args.device}")
    print("| group | views | batched ms | loop ms | speed-up |\n|---|---|---|---|---|")
    with torch.inference_mode():
        for group in (G.flip(), G.rot90(), G.rot90_flip()):
            wrapped = equi.EquivariantWrapper(model, group, invariant=True)
            batched = timed(lambda: wrapped(x), args.repeats)
            loop = timed(lambda: torch.stack([model(group.act_input(g, x)) for g in group.elements]).mean(0), args.repeats)
            print(f"| {group.name} | {group.order} | {batched:.1f} | {loop:.1f} | {loop / batched:.2f}× |")


if __name__ == "__main__":
    main()
