#!/usr/bin/env python
"""Benchmark SCAN pretraining: the paper's recipe (one example per Adam step) solo vs K replicas
trained in one vectorised pass (equi.tasks.scan.replicas), and our mini-batch recipe.

    python scripts/bench_scan.py [--cell lstm] [--replicas 2,6,18] [--steps 150] [--device cpu]
Prints examples/s of each (the steps alone: runs of --steps and 3× --steps, differenced), in one
run (solo measured before and after the replicas, so that a drift of the machine shows); on a CPU
with several threads also K replicas split into one pass per thread at once, one thread each (what
`python -m equi.tasks.scan.replicas` does there); and the projected wall time of `make table2`'s
pretraining.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from equi.config import compose_config
from equi.data import catalog, scan as data
from equi.models.seq2seq_replicas import ReplicaPaperSeq2Seq
from equi.tasks.scan.replicas import Replica, pretrain_together, replica_accuracies
from equi.tasks.scan.runner import new_model, pretrain

TABLE2_SPLITS = ("add_jump", "around_right")
TABLE2_MODELS = 3 * len(TABLE2_SPLITS)  # 3 seeds × 2 splits, one pretraining each (the methods share it)


def seconds(train_fn, steps: int) -> float:
    start = time.perf_counter()
    train_fn(steps)
    return time.perf_counter() - start


def steady_rate(train_fn, steps: int, examples_per_step: int) -> float:
    """Examples/s of the steps alone: runs of `steps` and 3·`steps` steps, their difference
    (setting up the data and the model cancels out)."""
    return 2 * steps * examples_per_step / (seconds(train_fn, 3 * steps) - seconds(train_fn, steps))


def solo_rate(task, train, steps: int, device) -> float:
    def train_fn(n):
        pretrain(new_model(task).to(device), train, None, OmegaConf.merge(task, {"pretrain": {"examples": n * task.pretrain.batch_size, "keep": "last"}}),
                 seed=0, device=device, desc="solo")

    return steady_rate(train_fn, steps, task.pretrain.batch_size)


def replica_seconds(task, sets, k: int, steps: int, device, share=(0, 1), wait=lambda: None) -> tuple[float, float]:
    """Seconds of passes of `steps` and 3·`steps` steps of k replicas (training sets share[0],
    share[0] + share[1], …: one process's share of a split pass), each started after wait()."""
    first, every = share
    replicas = [Replica(i, sets[(first + i * every) % len(sets)], None, str(i)) for i in range(k)]

    def train_fn(n):
        settings = OmegaConf.merge(task, {"pretrain": {"examples": n, "keep": "last"}})
        pretrain_together([new_model(task) for _ in range(k)], replicas, settings, device, desc="replicas")

    wait()
    short = seconds(train_fn, steps)
    wait()
    return short, seconds(train_fn, 3 * steps)


def replica_rate(task, sets, k: int, steps: int, device) -> float:
    short, long = replica_seconds(task, sets, k, steps, device)
    return 2 * steps * k / (long - short)


def share_seconds(cell: str, release: str, k: int, share: tuple[int, int], steps: int, barrier) -> tuple[float, float]:
    """In a process of split_rate: replica_seconds of its k replicas on one thread."""
    torch.set_num_threads(1)
    task, sets, _ = scan_sets(cell, release)
    return replica_seconds(task, sets, k, steps, torch.device("cpu"), share, barrier.wait)


def split_rate(cell: str, release: str, k: int, steps: int, processes: int) -> float:
    """Examples/s of k replicas as `processes` passes at once, one thread each, the training sets
    dealt out in turn (as the replicas module splits a pass): every timed run starts in all
    processes together, and the slowest one's time counts."""
    spawn = multiprocessing.get_context("spawn")
    sizes = [len(range(i, k, processes)) for i in range(processes)]
    shares = [(i, processes) for i in range(processes)]
    with spawn.Manager() as manager, concurrent.futures.ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        barrier = manager.Barrier(processes, timeout=1800)  # a process that fails breaks it for the others
        times = list(pool.map(share_seconds, [cell] * processes, [release] * processes, sizes, shares,
                              [steps] * processes, [barrier] * processes))
    return 2 * steps * k / (max(long for _, long in times) - max(short for short, _ in times))


def scan_sets(cell: str, release: str):
    """The paper recipe's task, and Table 2's six training and validation sets (2 splits × 3 seeds)."""
    task = compose_config(["task=scan", "task/scan/model=paper", "task/scan/pretrain=paper", f"task.cell={cell}"]).task
    sets, vals = [], []
    for split in TABLE2_SPLITS:
        train, _ = data.load_split(Path(release), split)
        for seed in range(3):
            held_in, val = data.hold_out(train, task.pretrain.val_fraction, seed)
            sets.append(held_in)
            vals.append(val)
    return task, sets, vals


def validation_seconds(task, vals, device) -> float:
    """One early-stopping check of TABLE2_MODELS replicas on their validation splits."""
    stack = ReplicaPaperSeq2Seq([new_model(task) for _ in vals]).to(device).eval()
    start = time.perf_counter()
    replica_accuracies(stack, vals, task, device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--replicas", default="2,6,18", help="K values to measure")
    parser.add_argument("--steps", type=int, default=150, help="optimizer steps per measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--data", help="a SCAN release folder (default: the data folder's, fetched when missing)")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    defaults = compose_config([])
    release = str(args.data or catalog.ensure("scan", Path(defaults.paths.data), bool(defaults.download),
                                              data.release_files(*TABLE2_SPLITS)))
    task, sets, vals = scan_sets(args.cell, release)
    processes = torch.get_num_threads() if device.type == "cpu" else 1
    solo_before = solo_rate(task, sets[0], args.steps, device)
    rates = {k: replica_rate(task, sets, k, args.steps, device) for k in map(int, args.replicas.split(","))}
    split = {k: split_rate(args.cell, release, k, args.steps, processes) for k in rates if processes > 1 and k >= processes}
    solo_after = solo_rate(task, sets[0], args.steps, device)
    solo = (solo_before + solo_after) / 2
    ours = OmegaConf.merge(task, {"pretrain": {"batch_size": 32}})
    minibatch = solo_rate(ours, sets[0], max(10, args.steps // 10), device)
    checks = task.pretrain.examples // task.pretrain.val_every
    check_s = validation_seconds(task, vals, device)
    total = TABLE2_MODELS * task.pretrain.examples
    print(f"\n| SCAN {args.cell} paper recipe, {device}, {torch.get_num_threads()} threads | examples/s | vs solo |")
    print("|---|---|---|")
    print(f"| solo, one example per step (before / after) | {solo_before:.1f} / {solo_after:.1f} | 1.0× |")
    for k, rate in rates.items():
        print(f"| {k} replicas in one pass | {rate:.1f} | {rate / solo:.1f}× |")
        if k in split:
            print(f"| {k} replicas as {processes} passes at once, one thread each | {split[k]:.1f} | {split[k] / solo:.1f}× |")
    print(f"| the same model in batches of 32 (our recipe's batch; not the paper's recipe) | {minibatch:.0f} | {minibatch / solo:.1f}× |")
    print(f"\n`make table2` pretrains {TABLE2_MODELS} models × {task.pretrain.examples // 1000}k examples, "
          f"each checked {checks} times on its validation split:")
    print(f"- solo, one after another: {total / solo / 60:.0f} min of training steps")
    if TABLE2_MODELS in rates:
        best, how = max((split.get(TABLE2_MODELS, 0.0), f"as {processes} passes at once"), (rates[TABLE2_MODELS], "in one pass"))
        print(f"- {TABLE2_MODELS} replicas {how}: {total / best / 60:.0f} min of training steps "
              f"+ {checks} checks × {check_s:.0f} s (all {TABLE2_MODELS} validation splits decoded together)")
    print("- then the sweep's 24 runs decode their validation and test sets from the cached models")


if __name__ == "__main__":
    main()
