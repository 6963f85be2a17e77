"""SO(2)-invariant regression (paper appendix D.5): MLP vs Canon-MLP vs Canon-λ-MLP.

x1, x2 ~ N(0, I₂); f(x1, x2) = sin|x1| − |x2|³/2 + x1·x2 / (|x1||x2|), invariant to
rotating both vectors together. Models see x as a (B, 2, 2) tensor of the two vectors.
"""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from ... import distributed, hardware, methods, training
from ..context import RunContext
from ...groups import SO2, VectorAngle


def target(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[:, 0], x[:, 1]
    n1, n2 = x1.norm(dim=-1), x2.norm(dim=-1)
    return (torch.sin(n1) - n2**3 / 2 + (x1 * x2).sum(-1) / (n1 * n2)).unsqueeze(-1)


def make_data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, 2, 2, generator=generator)
    return x, target(x)


class ResidualMLP(nn.Module):
    """Input layer, residual hidden layers, output layer (4 residual layers of width 200: the paper's 162,001 parameters)."""

    def __init__(self, in_features: int = 4, hidden: int = 200, residual_layers: int = 4, out_features: int = 1):
        super().__init__()
        self.inp = nn.Linear(in_features, hidden)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(residual_layers))
        self.out = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x.flatten(1)))
        for layer in self.hidden:
            h = h + torch.relu(layer(h))
        return self.out(h)


CANONICALIZERS = {"sum": (0, 1), "x1": 0, "x2": 1}  # which input vectors' sum gives the canonical angle


def build(cfg: DictConfig) -> nn.Module:
    task, method = cfg.task, cfg.method
    mlp = ResidualMLP(4, task.hidden, task.residual_layers)
    return methods.wrap(
        method,
        mlp,
        group=SO2().finite_subgroup(task.finite_rotations),
        invariant=True,
        feature_dim=4,
        canonicalizer=VectorAngle(CANONICALIZERS[task.canonicalizer]),
    )


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, device) -> float:
    """Mean squared error. Under DDP every rank evaluates the whole (small) test set: the same number."""
    model.eval()
    total = 0.0
    for i in range(0, len(x), batch):
        with hardware.autocast():
            pred = model(x[i : i + batch].to(device))
        total += nn.functional.mse_loss(pred.float(), y[i : i + batch].to(device), reduction="sum").item()
    return total / len(x)


@torch.no_grad()
def invariance_error(model: nn.Module, x: torch.Tensor, device, angles=(0.3, 1.0, math.pi / 2, 2.5)) -> float:
    """Largest change of the prediction when the input is rotated (0 for an invariant model)."""
    model.eval()
    x = x.to(device)
    base = model(x)
    so2 = SO2()
    return max((model(so2.act_input(torch.full((len(x),), a), x)) - base).abs().max().item() for a in angles)


def run(cfg: DictConfig, ctx: RunContext) -> dict:
    task = cfg.task
    gen = torch.Generator().manual_seed(cfg.seed)
    x_train, y_train = make_data(task.n_train, gen)
    x_test, y_test = make_data(task.n_test, gen)
    model = build(cfg).to(ctx.device)
    params = sum(p.numel() for p in model.parameters())
    train_model = distributed.wrap_ddp(model)
    opt = training.optimizer(model.parameters(), "adam", task.lr)

    progress = tqdm(range(task.epochs), desc=f"{cfg.label} seed {cfg.seed}", unit="epoch")
    for epoch in progress:
        model.train()
        order = torch.randperm(task.n_train, generator=gen)
        running = 0.0

        def loss_of(i: int) -> torch.Tensor:
            nonlocal running
            idx = distributed.my_part(order[i : i + task.batch_size])  # every rank draws the same order
            with hardware.autocast():
                pred = train_model(hardware.to_device(x_train[idx], ctx.device))
            loss = nn.functional.mse_loss(pred.float(), hardware.to_device(y_train[idx], ctx.device))
            running += loss.item() * len(idx)
            return loss

        training.train(loss_of, range(0, task.n_train, task.batch_size), opt, desc="batches", bar=False)
        train_loss = distributed.sum_over_ranks(running)[0] / task.n_train
        progress.set_postfix(train_loss=f"{train_loss:.4f}")
        ctx.logger.log({"epoch": epoch + 1, "train_loss": train_loss}, step=epoch + 1)

    test_loss = evaluate(model, x_test, y_test, 2000, ctx.device)
    return {
        "test_loss": test_loss,
        "train_loss": train_loss,
        "parameters": params,
        "invariance_error": invariance_error(model, x_test[:256], ctx.device),
    }
