"""The one training loop (equi.training): what each step does, in order, for every task."""

import pytest
import torch

from equi import training


def test_each_step_backs_up_its_loss_clips_each_group_on_its_own_and_steps_the_schedule():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    opt = training.optimizer([*a.parameters(), *b.parameters()], "sgd", 1.0, momentum=0.0)
    decay = training.schedule(opt, "cosine", 4, 1.0)
    x = torch.randn(5, 3)
    before = [p.detach().clone() for p in (*a.parameters(), *b.parameters())]
    after, rates = [], []

    def loss_of(step):
        return 100 * a(x).sum() + 0.001 * b(x).sum()  # a's gradient far above the norm, b's far below

    def record(step):
        after.append(step)
        rates.append(opt.param_groups[0]["lr"])

    training.train(loss_of, range(2), opt, desc="test", clip_groups=[list(a.parameters()), list(b.parameters())],
                   clip=0.5, decay=decay, after_step=record, bar=False)
    assert after == [0, 1] and rates == pytest.approx([0.8535534, 0.5])  # cosine over 4 steps, stepped after each
    used = 1.0 + 0.8535534  # the rates of the two steps
    moved = [(p.detach() - q) for p, q in zip((*a.parameters(), *b.parameters()), before)]
    assert torch.cat([m.reshape(-1) for m in moved[:2]]).norm() == pytest.approx(0.5 * used, rel=1e-5)  # clipped
    grad_b = [0.001 * x.sum(0, keepdim=True), torch.tensor([0.001 * len(x)])]  # b's own gradient, left as it is
    for m, g in zip(moved[2:], grad_b):
        assert torch.allclose(m, -used * g, rtol=1e-5)


def test_the_schedules_and_optimizers_are_the_recipes_ones():
    param = [torch.nn.Parameter(torch.zeros(1))]
    assert training.schedule(training.optimizer(param, "adam", 0.1), "constant", 10, 0.1) is None
    onecycle = training.optimizer(param, "sgd", 0.1, nesterov=True)
    decay = training.schedule(onecycle, "onecycle", 8, 0.1)
    rates = [onecycle.param_groups[0]["lr"]]
    for _ in range(7):
        onecycle.step()
        decay.step()
        rates.append(onecycle.param_groups[0]["lr"])
    assert rates.index(max(rates)) == 1 and max(rates) == pytest.approx(0.1)  # the peak after a quarter of 8 steps
    assert rates[0] == pytest.approx(0.1 / 25) and rates[-1] == pytest.approx(0.0, abs=1e-6)
    assert onecycle.param_groups[0]["nesterov"] and isinstance(training.optimizer(param, "adam", 0.1), torch.optim.Adam)
