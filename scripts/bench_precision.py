#!/usr/bin/env python
"""Benchmark: training throughput of each task's model in fp32 and in mixed precision.

    python scripts/bench_precision.py [--device cpu|cuda] [--precision bf16|fp16] [--steps 3]
One training step is what the task's loop does (autocast forward, loss, backward, optimizer step
through equi.hardware.Precision) on random inputs of the task's shapes; prints examples/s. On the
CPU the mixed column is bf16 autocast (runs themselves stay fp32); dqn trains through
stable-baselines3 in fp32 and is not timed.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch
from omegaconf import OmegaConf
from torch import nn

from equi import methods
from equi.config import compose_config
from equi.data import scan as scan_data
from equi.groups import image
from equi.hardware import Precision
from equi.models.clip import ImageEncoder, standin_clip
from equi.models.cnn import cifar_model
from equi.tasks.scan import runner as scan
from equi.tasks.synthetic import runner as synthetic


def models(device: torch.device) -> dict[str, tuple[nn.Module, Callable[[], torch.Tensor], int]]:
    """task → (model, a batch → loss, batch size), with each task's default settings (smaller image
    batches on the CPU, where bf16 is emulated and slow)."""
    images_per_batch = 128 if device.type == "cuda" else 16
    synth = synthetic.build(compose_config(["task=synthetic"])).to(device)
    x = torch.randn(500, 2, 2, device=device)
    cnn_net = methods.wrap(OmegaConf.create({"name": "equitune"}), cifar_model("resnet18"), group=image.rot90(),
                           invariant=True).to(device)
    images, labels = torch.randn(images_per_batch, 3, 32, 32, device=device), torch.randint(10, (images_per_batch,), device=device)
    scan_task = compose_config(["task=scan"]).task
    seq = scan.new_model(scan_task).to(device)
    src = torch.randint(3, len(scan_data.COMMANDS), (64, 9), device=device)
    tgt = torch.randint(3, len(scan_data.ACTIONS), (64, 30), device=device)
    clip_task = compose_config(["task=clip"]).task
    clip = ImageEncoder(standin_clip(OmegaConf.to_container(clip_task.standin.model, resolve=True)).visual).to(device)
    size = clip_task.standin.model.vision_cfg.image_size
    clip_images = torch.randn(images_per_batch, 3, size, size, device=device)
    return {
        "synthetic": (synth, lambda: nn.functional.mse_loss(synth(x).float(), x[:, :1, 0]), len(x)),
        "cnn": (cnn_net, lambda: nn.functional.cross_entropy(cnn_net(images).float(), labels), len(images)),
        "scan": (seq, lambda: nn.functional.cross_entropy(seq(src, tgt, True).flatten(0, 1).float(), tgt.flatten()),
                 len(src)),
        "clip": (clip, lambda: clip(clip_images).float().square().mean(), len(clip_images)),
    }


def throughput(model: nn.Module, loss_of, batch: int, precision: Precision, steps: int, device) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step():
        with precision.autocast():
            loss = loss_of()
        opt.zero_grad()
        precision.backward_step(loss, opt)

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default=None, help="default: bf16 (fp16 on GPUs without bfloat16)")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    mixed = args.precision or ("fp16" if device.type == "cuda" and not torch.cuda.is_bf16_supported() else "bf16")
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    print(f"training throughput on {device} (examples/s), {args.steps} steps after a warm-up")
    print(f"| task | batch | fp32 | {mixed} | speed-up |\n|---|---|---|---|---|")
    for task, (model, loss_of, batch) in models(device).items():
        fp32 = throughput(model, loss_of, batch, Precision("fp32", device.type), args.steps, device)
        try:
            low = throughput(model, loss_of, batch, Precision(mixed, device.type), args.steps, device)
        except RuntimeError as err:  # an op without a kernel for this dtype on this device
            print(f"| {task} | {batch} | {fp32:.0f} | skipped ({str(err).splitlines()[0][:60]}) | |")
            continue
        print(f"| {task} | {batch} | {fp32:.0f} | {low:.0f} | {low / fp32:.2f}× |")
    print("| dqn | | | skipped: stable-baselines3 trains it in fp32 | |")


if __name__ == "__main__":
    main()
