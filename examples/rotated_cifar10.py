"""Rotated CIFAR-10 on a CPU: a classifier trained on upright images, made invariant to quarter turns
with equi.wrap by equitune, equizero and λ-equitune, one line each.

    python examples/rotated_cifar10.py           # under 4 min on 2 CPU cores (`make data DATA=cifar10` first)
    python examples/rotated_cifar10.py --fast    # a smoke run of seconds, on a few images

The classifier is the CIFAR-10 ResNet that `make pretrain-cnn` caches under outputs/cache/cnn when there
is one, else a small ConvNet trained here on upright training images for --train-seconds. Test images
turned by a random multiple of 90° (seeded) cost it much of its accuracy. The wrapped models read all
four turns of an image and average the logits (equitune), take the view of lowest entropy (equizero),
or weight the views by a small λ-network (λ-equitune; λ trained here for --lambda-seconds on rotated
training images, the classifier frozen): their predictions, hence their accuracy, are the same upright
and rotated.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

import equi
from equi.data import cifar
from equi.errors import MissingAssetError, UserError
from equi.models.cnn import cifar_model

REPO = Path(__file__).resolve().parent.parent
OUTPUTS = Path(os.environ.get("EQUI_OUTPUTS") or REPO / "outputs")  # as conf/config.yaml's paths.outputs


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("EQUI_DATA") or REPO / "data"),
                        help="the data folder holding cifar10/ (default: $EQUI_DATA, else the repo's data/, as paths.data)")
    parser.add_argument("--fast", action="store_true", help="a few images and steps: seconds, for the test suite")
    parser.add_argument("--train-seconds", type=float, default=90,
                        help="seconds of the ConvNet's training on upright images (none with a cached trunk)")
    parser.add_argument("--lambda-seconds", type=float, default=60, help="seconds of λ's training on rotated images")
    parser.add_argument("--test-per-class", type=int, default=200, help="test images per class (1000: all of them)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.batch = 32 if args.fast else 128  # training images per step
    return args


def small_convnet() -> nn.Module:
    """Three conv-BN-ReLU-pool blocks and global pooling (`body`: the 128 features λ reads), a linear head."""
    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
    body = nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return nn.Sequential(OrderedDict(body=body, head=nn.Linear(128, 10))).to(memory_format=torch.channels_last)


def train(params: list[nn.Parameter], loss_of, seconds: float, max_steps: int | None, lr: float, desc: str) -> int:
    """Adam on loss_of() until `seconds` have passed or `max_steps` are done, the learning rate annealed
    (cosine) over whichever budget runs out first; returns the number of steps."""
    opt, start, step = torch.optim.Adam(params, lr=lr), time.perf_counter(), 0
    with tqdm(desc=desc, unit="step", total=max_steps, mininterval=2) as bar:
        while (spent := max((time.perf_counter() - start) / seconds, step / (max_steps or math.inf))) < 1:
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * spent))
            loss = loss_of()
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return step


@torch.no_grad()
def accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, desc: str, batch: int = 250) -> float:
    """Top-1 accuracy (%) of net's logits on uint8 images."""
    correct = 0
    for i in tqdm(range(0, len(images), batch), desc=desc, unit="batch", leave=False, mininterval=2):
        correct += (net(cifar.normalize(images[i : i + batch])).argmax(1) == labels[i : i + batch]).sum().item()
    return 100 * correct / len(images)


def pretrained(train_x, train_y, args, generator) -> tuple[nn.Module, str, str]:
    """(classifier, the submodule whose output λ reads, what it is)."""
    cached = sorted((OUTPUTS / "cache" / "cnn").glob("resnet18-scratch-seed*.pt"), key=lambda p: p.stat().st_mtime)
    if cached:
        model = cifar_model("resnet18")
        model.load_state_dict(torch.load(cached[-1], map_location="cpu", weights_only=True)["state_dict"])
        return model.eval(), "backbone", f"the CIFAR-10 ResNet cached by `make pretrain-cnn` ({cached[-1].name})"
    model = small_convnet().train()

    def loss_of() -> torch.Tensor:
        idx = torch.randint(len(train_x), (args.batch,), generator=generator)
        return nn.functional.cross_entropy(model(cifar.normalize(train_x[idx])), train_y[idx])

    start = time.perf_counter()
    steps = train(list(model.parameters()), loss_of, args.train_seconds, 30 if args.fast else None, 3e-3, "train upright")
    return model.eval(), "body", (f"a small ConvNet trained here on upright CIFAR-10 for {time.perf_counter() - start:.0f} s "
                                  f"({steps} steps of {args.batch} images; no cached trunk in {OUTPUTS / 'cache' / 'cnn'})")


def main(argv: list[str] | None = None) -> int:
    args, start = arguments(argv), time.perf_counter()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    root = args.data / "cifar10" if (args.data / "cifar10").is_dir() else args.data
    try:
        cifar.layout(root)
    except MissingAssetError:
        print(f"error: CIFAR-10 not found at {args.data / 'cifar10'}; run make data DATA=cifar10 or pass --data",
              file=sys.stderr)
        return 2
    try:  # decoded once, then cached under outputs/cache/cifar as the CNN task does
        train_x, train_y = cifar.load(root, "train", 12 if args.fast else None, OUTPUTS / "cache")
        test_x, test_y = cifar.load(root, "test", 6 if args.fast else args.test_per_class, OUTPUTS / "cache")
    except UserError as err:  # a damaged image, a missing class folder: one line naming it
        print(f"error: {err}", file=sys.stderr)
        return 2
    rotated_x = cifar.rotate(test_x, cifar.quarter_turns(len(test_x), args.seed))  # 0–3 quarter turns each

    model, features, what = pretrained(train_x, train_y, args, generator)
    model.requires_grad_(False)  # frozen from here on: λ-equitune trains λ alone
    example = cifar.normalize(test_x[:2])
    wrapped = {  # the three methods, one line each
        "equitune": equi.wrap(model, group="rot90", method="equitune"),
        "equizero": equi.wrap(model, group="rot90", method="equizero"),  # proxy: the entropy of the logits
        "λ-equitune": equi.wrap(model, group="rot90", method="lambda", features=features, example_input=example),
    }
    rows = {"vanilla": (accuracy(model, test_x, test_y, "vanilla"), accuracy(model, rotated_x, test_y, "vanilla"))}
    print(f"pretrained: {what}\n  upright test accuracy {rows['vanilla'][0]:.2f}%, rotated {rows['vanilla'][1]:.2f}%")
    for name, net in wrapped.items():
        label = f"{name} (λ untrained)" if name == "λ-equitune" else name
        rows[label] = accuracy(net.eval(), test_x, test_y, name), accuracy(net, rotated_x, test_y, name)

    lam = wrapped["λ-equitune"]
    params = [p for p in lam.parameters() if p.requires_grad]  # the λ-network's: the classifier is frozen

    def lambda_loss() -> torch.Tensor:  # cross-entropy of the wrapper's logits on rotated training images
        idx = torch.randint(len(train_x), (args.batch,), generator=generator)
        x = cifar.rotate(train_x[idx], torch.randint(4, (len(idx),), generator=generator))
        return nn.functional.cross_entropy(lam(cifar.normalize(x)), train_y[idx])

    lambda_start = time.perf_counter()
    steps = train(params, lambda_loss, args.lambda_seconds, 10 if args.fast else None, 1e-3, "train λ")
    label = f"λ-equitune (λ trained {time.perf_counter() - lambda_start:.0f} s)"
    rows[label] = accuracy(lam, test_x, test_y, "λ-equitune"), accuracy(lam, rotated_x, test_y, "λ-equitune")
    print(f"λ-network: {sum(p.numel() for p in params)} parameters, {steps} steps of {args.batch} rotated training images\n")

    print(f"{len(test_x)} CIFAR-10 test images; rotated: each turned by a random multiple of 90° (seed {args.seed})\n")
    print("| method | upright test acc (%) | rotated test acc (%) |\n|---|---:|---:|")
    for label, (upright, rotated) in rows.items():
        print(f"| {label} | {upright:.2f} | {rotated:.2f} |")

    print("\ninvariance (wrapped.check_equivariance under the wrapper's group, 16 test images, atol 1e-4):")
    failed = False
    for name, net in wrapped.items():
        try:
            errors = net.check_equivariance(cifar.normalize(test_x[:16]), atol=1e-4)
            print(f"  {name}: ok under {net.group.name} (largest change of a logit {max(errors.values()):.1e})")
        except AssertionError as err:
            print(f"  {name}: FAILED ({err})")
            failed = True
    minutes, seconds = divmod(round(time.perf_counter() - start), 60)
    print(f"\nwall time: {minutes} min {seconds:02d} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
