#!/usr/bin/env python
"""Benchmark: the operator's peak memory and time against max_views_per_pass.

    python scripts/bench_chunks.py [--size 32] [--batch 32] [--repeats 5] [--device cpu|cuda]

resnet18 (random weights, eval mode so that BatchNorm does not depend on the pass) wrapped with
rot90_flip (8 views), invariant. For each setting: the peak memory of one forward pass
(inference) and of one forward + backward pass, and the median time of each over --repeats
rounds that visit the settings in turn. Memory: the peak of the tensors allocated during the
pass and alive at once, from torch.cuda.max_memory_allocated on CUDA and from the profiler's
allocation events on the CPU (tensors only, not the allocator's own overhead); it includes the
stacked input views and, with backward, the parameters' gradients (45 MiB for resnet18).
Prints a markdown table with the ratios to one pass.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch
import torchvision

import equi
from equi import groups as G

SETTINGS = [(None, False), (128, False), (64, False), (32, False), (8, False), (64, True), (8, True)]


def wrapped(size: int | None, recompute: bool, device: str) -> equi.EquivariantWrapper:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval().to(device)
    return equi.EquivariantWrapper(model, G.rot90_flip(), invariant=True, max_views_per_pass=size,
                                   recompute_passes=recompute)


def one_pass(net: equi.EquivariantWrapper, x: torch.Tensor, backward: bool) -> None:
    if backward:
        net(x).square().mean().backward()
        net.zero_grad(set_to_none=True)
    else:
        with torch.inference_mode():
            net(x)
    if x.is_cuda:
        torch.cuda.synchronize()


def peak_mib(net: equi.EquivariantWrapper, x: torch.Tensor, backward: bool) -> float:
    """Peak memory of one pass above what was in use before it, in MiB."""
    if x.is_cuda:
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        one_pass(net, x, backward)
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        one_pass(net, x, backward)
    # every allocation (+bytes) and free (−bytes) of the pass, in time order; prof.events() would
    # keep only those outside any operator
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns())
    return max(0, *itertools.accumulate(e.nbytes() for e in events)) / 2**20


def inputs(args, device: str) -> torch.Tensor:
    return torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(1)).to(device)


def label(size: int | None, recompute: bool) -> str:
    return ("one pass" if size is None else f"{size} per pass") + (", recomputed" if recompute else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="image side")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    nets = {(s, r): wrapped(s, r, args.device) for s, r in SETTINGS}
    x = inputs(args, args.device)
    seconds = {(s, r, b): [] for s, r in SETTINGS for b in (False, True)}
    memory = {}
    for net in nets.values():
        one_pass(net, x, backward=True)  # warm-up
    for _ in range(args.repeats):
        for (size, recompute), net in nets.items():
            for backward in (False, True):
                start = time.perf_counter()
                one_pass(net, x, backward)
                seconds[size, recompute, backward].append(time.perf_counter() - start)
    for (size, recompute), net in nets.items():  # the same in every round: tensor sizes do not vary
        for backward in (False, True):
            memory[size, recompute, backward] = peak_mib(net, x, backward)

    print(f"resnet18 (random weights), rot90_flip (8 views), batch {args.batch} of {args.size}×{args.size} "
          f"= {8 * args.batch} views, {args.device}, {torch.get_num_threads()} threads; medians of {args.repeats} "
          "interleaved rounds; peak memory of tensors allocated in the pass\n")
    print("| views per pass | forward MiB | ratio | forward ms | ratio | fwd+bwd MiB | ratio | fwd+bwd ms | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = {b: (memory[None, False, b], statistics.median(seconds[None, False, b])) for b in (False, True)}
    for size, recompute in SETTINGS:
        cells = []
        for backward in (False, True):
            mib = memory[size, recompute, backward]
            sec = statistics.median(seconds[size, recompute, backward])
            cells += [f"{mib:.0f}", f"{mib / base[backward][0]:.2f}", f"{sec * 1000:.0f}", f"{sec / base[backward][1]:.2f}"]
        print(f"| {label(size, recompute)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
