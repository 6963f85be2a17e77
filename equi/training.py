"""The one training loop every task uses (optimizer steps with the run's precision, fp16 loss
scaling, gradients clipped by groups, a learning-rate schedule, a progress bar) and the one
evaluation helper (this rank's batches under the run's precision, counts summed over the ranks).
A task says only how a step's loss is computed from its own draws (``loss_of(step)``), and how a
batch's outputs are scored; the draws stay the task's, in the order its recipe takes them."""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import nn
from tqdm import tqdm

from . import distributed, hardware
from .operator import outputs_collecting_weights


def optimizer(params, name: str, lr: float, *, weight_decay: float = 0.0, momentum: float = 0.9,
              nesterov: bool = False) -> torch.optim.Optimizer:
    """adam, or sgd with momentum."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


def schedule(opt: torch.optim.Optimizer, name: str, steps: int, lr: float):
    """constant (None), cosine (to zero over `steps`) or onecycle (peak `lr` a quarter of the way)."""
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.25)
    return None


def train(loss_of: Callable[[int], torch.Tensor], steps: Iterable[int], opt: torch.optim.Optimizer, *, desc: str,
          unit: str = "step", clip_groups: Sequence[Sequence[nn.Parameter]] = (), clip: float = 0.0, decay=None,
          show_every: int = 0, after_step: Callable[[int], None] | None = None, mininterval: float = 0.1,
          bar: bool = True) -> None:
    """For each step: loss_of(step), backward with the run's precision, each group of
    `clip_groups` clipped to `clip`, an optimizer step and `decay` (a schedule) step, then
    after_step(step). The loss shows on the progress bar every `show_every` steps (0: never); bar=False
    hides the bar (a loop whose caller shows its own)."""
    progress = tqdm(steps, desc=desc, unit=unit, mininterval=mininterval, disable=not bar)
    for n, step in enumerate(progress):
        loss = loss_of(step)
        opt.zero_grad()
        hardware.backward_step(loss, opt, clip_groups, clip)
        if decay is not None:
            decay.step()
        if show_every and n % show_every == 0:
            progress.set_postfix(loss=f"{loss.item():.4f}")
        if after_step is not None:
            after_step(step)


@torch.no_grad()
def accuracy(net: nn.Module, batches: Iterable[tuple[torch.Tensor, object]], correct: Callable[[torch.Tensor, object], int],
             desc: str, weights: bool = True) -> tuple[float, torch.Tensor | None]:
    """Accuracy (%) over this rank's (inputs on the device, targets) batches, the correct ones of a
    batch counted by correct(outputs, targets); under DDP the counts are summed over the ranks. With
    it (weights=True), the operator's weights per view (|G|, N), put together across the ranks (None
    when the net is not the operator)."""
    net.eval()
    right, seen, collected = 0, 0, []
    for x, y in tqdm(batches, desc=desc, unit="batch", leave=False):
        with hardware.autocast():
            out = outputs_collecting_weights(net, x, collected) if weights else net(x)
        right += int(correct(out, y))
        seen += len(y)
    right, seen = distributed.sum_over_ranks(right, seen)
    return 100.0 * right / seen, distributed.gather(torch.cat(collected, 1) if collected else None, dim=1)


def top1(out: torch.Tensor, labels: torch.Tensor) -> int:
    return int((out.argmax(-1).cpu() == labels).sum())
