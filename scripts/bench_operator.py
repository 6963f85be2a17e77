#!/usr/bin/env python
"""Benchmark the operator: batched |G| views vs a loop over views, and each method against the
physical limit, the model alone on the |G|·B stacked views.

    python scripts/bench_operator.py [--quick] [--device cpu|cuda] [--threads N] [--only loop,clip,cnn,scan,lm]

1. The batched-vs-loop table: a torchvision ResNet-18, ms per wrapped pass.
2. The limit table (issue #26 §3). Equitune needs the |G| forward passes of the model and nothing
   else; so, per task model (random weights), "vanilla" is the model alone on the |G|·B inputs
   (the orbit, stacked beforehand) and each method (equitune, equizero, λ-equitune) runs on the B
   inputs, orbit and weighting included. The settings run interleaved, round-robin, until the
   interquartile range of every method's per-round ratio to vanilla is within --target of its
   median (or --max-rounds / --budget-s); the table gives the median ratio and [Q1–Q3].
   Memory: the peak allocated during the call, plus for vanilla the |G|·B stacked inputs it is
   handed (the methods make them inside the call; the B inputs, held by both callers, count for
   neither); on CUDA torch.cuda.max_memory_allocated (timers after torch.cuda.synchronize), on a
   CPU the same peak read from torch.profiler's allocation events (profile_memory=True: the c10
   CPU allocator's allocations and frees, in order). The goal is every method ≤ 1.02× in both.
3. Where a method is over: its operator parts (orbit, pull_back, weighting + aggregate) timed alone.

On a CPU shared with other jobs, --threads 1 gives steadier ratios (with two threads each small
parallel op can wait a scheduler slice for the second core). The default run takes about 4
minutes on 2 CPU cores (one thread), --quick a minute and a half.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torchvision
from torch import nn

import equi
from equi import groups as G
from equi import methods
from equi.groups import image

GOAL = 1.02
METHODS = ("equitune", "equizero", "lambda")


# --------------------------------------------------------------------------- the batched-vs-loop table


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def loop_table(batch: int, repeats: int, device: torch.device) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval().to(device)
    x = torch.randn(batch, 3, 32, 32, device=device)
    print(f"resnet18 (random weights), batch {batch}, {device}")
    print("| group | views | batched ms | loop ms | speed-up |\n|---|---|---|---|---|")
    with torch.inference_mode():
        for group in (G.flip(), G.rot90(), G.rot90_flip()):
            wrapped = equi.EquivariantWrapper(model, group, invariant=True)
            batched = timed(lambda: wrapped(x), repeats)
            loop = timed(lambda: torch.stack([model(group.act_input(g, x)) for g in group.elements]).mean(0), repeats)
            print(f"| {group.name} | {group.order} | {batched:.1f} | {loop:.1f} | {loop / batched:.2f}× |", flush=True)


# --------------------------------------------------------------------------- measuring


@dataclass
class Setting:
    """One thing to time: a call, and the bytes of the inputs counted in its memory: vanilla's |G|·B
    stacked inputs, which its caller made; not the B inputs, which the callers of both hold."""

    net: nn.Module  # the model alone, or wrapped, or a decoder
    call: Callable[[nn.Module], object]  # what one call does with it
    input_bytes: int = 0

    def run(self) -> object:
        return self.call(self.net)


@dataclass
class Case:
    """One task model: vanilla on the |G|·B stacked inputs against each method on B inputs.
    ``parts``: per method, its operator's parts alone, made when asked for (name → (call, how many per call))."""

    model: str
    order: int
    batch: int
    what: str
    settings: dict[str, Setting]
    grad: bool = False
    parts: dict[str, Callable[[], dict[str, tuple[Callable[[], object], int]]]] = field(default_factory=dict)
    note: str = ""


def nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def grad_mode(grad: bool):
    return contextlib.nullcontext() if grad else torch.inference_mode()


@contextlib.contextmanager
def quiet_stderr():
    """Kineto writes a few lines straight to fd 2 when a profiler starts and stops (and a GPU
    query error on a machine without one); hidden while the CPU memory is read."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_mb(setting: Setting, device: torch.device, grad: bool) -> float:
    """The peak allocated during one call + the setting's input bytes, in MiB (see the module's docstring)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with grad_mode(grad):
            out = setting.run()
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return (peak + setting.input_bytes) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with grad_mode(grad):
            out = setting.run()
        del out
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
                     and e.device_type() == torch.autograd.DeviceType.CPU), key=lambda e: e.start_ns())
    now = peak = 0
    for e in events:
        now += e.nbytes()
        peak = max(peak, now)
    return (peak + setting.input_bytes) / 2**20


def sample(setting: Setting, inner: int, device: torch.device, grad: bool) -> float:
    """Seconds per call, over `inner` calls."""
    with grad_mode(grad):
        sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            setting.run()
        sync(device)
    return (time.perf_counter() - start) / inner


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


@dataclass
class Measured:
    ms: dict[str, float]  # median ms per call
    mb: dict[str, float]
    ratio: dict[str, tuple[float, float, float]]  # per method: (Q1, median, Q3) of the per-round ratio
    rounds: int
    inner: int


def measure(settings: dict[str, Setting], device: torch.device, *, grad: bool = False, baseline: str = "vanilla",
            target: float = 0.02, min_rounds: int = 5, max_rounds: int = 30, budget_s: float = 60.0,
            min_sample_s: float = 0.1, warmup: int = 2) -> Measured:
    """Interleaved timing (round-robin, a rotating start) and one memory reading per setting."""
    names = list(settings)
    for name in names:
        for _ in range(warmup):
            sample(settings[name], 1, device, grad)
    once = sample(settings[baseline], 1, device, grad)
    inner = max(1, math.ceil(min_sample_s / max(once, 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in names}
    others = [n for n in names if n != baseline]
    start = time.perf_counter()
    rounds = 0
    while rounds < max_rounds:
        k = rounds % len(names)
        for name in names[k:] + names[:k]:
            times[name].append(sample(settings[name], inner, device, grad))
        rounds += 1
        if rounds >= min_rounds:
            spread = [spread_of([m / v for m, v in zip(times[n], times[baseline])]) for n in others]
            if all(s <= target for s in spread) or time.perf_counter() - start > budget_s:
                break
    mb = {name: peak_mb(settings[name], device, grad) for name in names}
    ratio = {n: quartiles([m / v for m, v in zip(times[n], times[baseline])]) for n in others}
    return Measured({n: 1000 * statistics.median(t) for n, t in times.items()}, mb, ratio, rounds, inner)


def spread_of(ratios: list[float]) -> float:
    q1, q2, q3 = quartiles(ratios)
    return (q3 - q1) / q2


def part_ms(parts: dict[str, tuple[Callable[[], object], int]], device: torch.device, grad: bool,
            repeats: int) -> dict[str, float]:
    """Median ms of each operator part per wrapped call (a part run `times` per call counts that often)."""
    out = {}
    for name, (fn, times) in parts.items():
        part = Setting(None, lambda _, fn=fn: fn())
        sample(part, 1, device, grad)
        out[name] = 1000 * times * statistics.median(sample(part, 1, device, grad) for _ in range(repeats))
    return out


# --------------------------------------------------------------------------- the task models

_METHOD_CFGS: dict[tuple[str, str], object] = {}


def method_cfg(task: str, name: str):
    """The method's config as the task composes it (conf/method/*.yaml, the task's defaults)."""
    if (task, name) not in _METHOD_CFGS:
        from equi.config import compose_config

        _METHOD_CFGS[task, name] = compose_config([f"task={task}", f"method={name}"]).method
    return _METHOD_CFGS[task, name]


def operator_parts(net: equi.EquivariantWrapper, x: torch.Tensor) -> Callable[[], dict]:
    """The operator's own work on input x, each part fed what the previous one made (prepared
    when asked for: one pass of the model)."""
    return lambda: prepared_parts(net, x)


def prepared_parts(net: equi.EquivariantWrapper, x: torch.Tensor) -> dict[str, tuple[Callable[[], object], int]]:
    with torch.inference_mode():
        transformed = net.group.orbit(x)
        y, features = net.encode_and_predict(transformed, {})
        views = net.pull_back(y)
        feats = features.reshape(net.group.order, x.shape[0], *features.shape[1:])
    return {"orbit": (lambda: net.group.orbit(x), 1), "pull_back": (lambda: net.pull_back(y), 1),
            "weighting": (lambda: net.weighting(views, feats), 1),
            "aggregate": (lambda: net.aggregate(views, feats), 1)}


def clip_case(name: str, batch: int, device: torch.device) -> Case:
    """CLIP's zero-shot pass as the clip task (and Table 1) builds it: the image tower as the
    operator's encoder, a 1000-class head of random unit text embeddings, rot90; λ reads the
    image features of the same pass."""
    from equi.models.clip import ImageEncoder, ZeroShotHead, random_clip

    torch.manual_seed(0)
    model = random_clip(name).to(device).eval()
    dim = model.visual.output_dim
    classes = nn.functional.normalize(torch.randn(dim, 1000, device=device), dim=0)
    encoder = ImageEncoder(model.visual)
    group = image.rot90()
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    x = torch.randn(batch, 3, size, size, device=device)
    stacked = group.orbit(x)
    vanilla = nn.Sequential(encoder, ZeroShotHead(classes, 1.0, probabilities=False))
    settings = {"vanilla": Setting(vanilla, lambda net: net(stacked), nbytes(stacked))}
    parts = {}
    for m in METHODS:
        head = ZeroShotHead(classes, 1.0, probabilities=m != "equizero")
        net = methods.wrap(method_cfg("clip", m), head, group=group, invariant=True, encoder=encoder,
                           feature_dim=dim, default_proxy="neg_similarity").to(device).eval()
        settings[m] = Setting(net, lambda net: net(x))
        parts[m] = operator_parts(net, x)
    return Case(f"CLIP {name}", group.order, batch, f"zero-shot pass, {size} px, 1000 classes", settings, parts=parts)


def cnn_case(arch: str, batch: int, device: torch.device, train: bool = False) -> Case:
    """The cnn task's classifier (ours: the CIFAR-sized network, channels-last) under rot90; λ
    reads the backbone's features (the operator's encoder), as equi.tasks.cnn.ours wraps it.
    train: a finetuning step's forward and backward (all layers; λ frozen after its stage)."""
    from equi.models.cnn import cifar_model

    torch.manual_seed(0)
    model = cifar_model(arch).to(device).eval()
    group = image.rot90()
    x = torch.randn(batch, 3, 32, 32, device=device)
    labels = torch.randint(10, (batch,), device=device)
    stacked = group.orbit(x)
    stacked_labels = labels.repeat(group.order)
    loss = nn.functional.cross_entropy

    def step(net, inputs, targets):
        if not train:
            return net(inputs)
        model.zero_grad(set_to_none=True)
        loss(net(inputs), targets).backward()

    settings = {"vanilla": Setting(model, lambda net: step(net, stacked, stacked_labels), nbytes(stacked))}
    parts = {}
    for m in METHODS:
        lam = m == "lambda"
        net = methods.wrap(method_cfg("cnn", m), model.head if lam else model, group=group, invariant=True,
                           encoder=model.backbone if lam else None, feature_dim=model.feature_dim,
                           default_proxy="entropy").to(device).eval()
        net.weighting.requires_grad_(False)
        settings[m] = Setting(net, lambda net: step(net, x, labels))
        if not train:
            parts[m] = operator_parts(net, x)
    what = "finetuning step (forward + backward)" if train else "forward pass"
    return Case(f"CNN {arch}{' train' if train else ''}", group.order, batch, f"{what}, 32 px", settings,
                grad=train, parts=parts)


class ModelSteps(nn.Module):
    """The model alone decoding greedily: start, then `steps` × (step, argmax of the logits). The lower
    bound of any step-level decoding of the same rows (no log-softmax, nothing kept but the tokens)."""

    def __init__(self, model: nn.Module, steps: int):
        super().__init__()
        self.model, self.steps = model, steps

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        state, _ = self.model.start(src)
        prev = torch.full((src.shape[0],), self.model.sos_id, dtype=torch.long, device=src.device)
        tokens = []
        for _ in range(self.steps):
            logits, state = self.model.step(prev, state)
            prev = logits.argmax(-1)
            tokens.append(prev)
        return torch.stack(tokens, dim=1)


def scan_cases(batch: int, steps: int, src_len: int, device: torch.device) -> list[Case]:
    """SCAN's paper model (PaperSeq2Seq, LSTM, 64 units) decoding greedily for exactly `steps`
    steps (no <eos>, so that every setting does the same steps), add_jump's jump↔run swap.
    Vanilla: per view, the GreedyDecoder that equitune and λ wrap (ended=zeros; equizero's, ended=pad,
    masks the ended steps with a where, a little more work per step) on the |G|·B swapped commands;
    stepwise, the model's steps and an argmax (ModelSteps). per_view: the operator around the
    GreedyDecoder (equitune and λ average log-probabilities, equizero picks a sequence; λ reads
    the command summary of each view's own decoding, as the scan task wraps it). stepwise:
    StepwiseEquivariantDecoder, the operator on every step's distributions."""
    from equi.data import scan as data
    from equi.models.seq2seq import PaperSeq2Seq
    from equi.sequence import GreedyDecoder, StepwiseEquivariantDecoder
    from equi.weighting import LambdaNet, Uniform

    torch.manual_seed(0)
    model = PaperSeq2Seq("lstm", len(data.COMMANDS), len(data.ACTIONS), 64, 0.1, pad_id=data.PAD_ID,
                         sos_id=data.SOS_ID).to(device).eval()
    group = G.vocabulary_cycles(data.COMMANDS, [["jump", "run"]], data.ACTIONS, [["I_JUMP", "I_RUN"]], name="swap_add_jump")
    words = torch.tensor([data.COMMANDS.index(w) for w in data.COMMAND_WORDS])
    src = words[torch.randint(len(words), (batch, src_len))]
    src[:, -1] = data.EOS_IN
    src = src.to(device)
    stacked = group.orbit(src)
    never = -1  # an <eos> id no step predicts: every setting decodes exactly `steps` steps

    def greedy(ended="pad", with_summary=False):
        return GreedyDecoder(model, never, data.PAD_ID, steps, ended=ended, with_summary=with_summary)

    vanilla_decoder, model_steps = greedy("zeros"), ModelSteps(model, steps)
    per_view = {"vanilla": Setting(vanilla_decoder, lambda net: net(stacked), nbytes(stacked))}
    stepwise = {"vanilla": Setting(model_steps, lambda net: net(stacked), nbytes(stacked))}
    parts = {}
    for m in METHODS:
        cfg = method_cfg("scan", m)
        lam = LambdaNet(model.summary_dim, cfg.lambda_hidden, cfg.lambda_layers).to(device) if m == "lambda" else None
        reads_summary = lam is not None
        net = methods.wrap(cfg, greedy("pad" if m == "equizero" else "zeros", reads_summary), group=group,
                           invariant=False, default_proxy="seq_neg_max_prob", weighting=lam,
                           model_returns_features=reads_summary).to(device).eval()
        per_view[m] = Setting(net, lambda net: net(src))
        parts[m] = operator_parts(net, src)
        if m != "equizero":  # the scan task's equizero picks whole sequences only
            dec = StepwiseEquivariantDecoder(model, group, lam if lam is not None else Uniform(), never, data.PAD_ID,
                                             steps).to(device).eval()
            stepwise[m] = Setting(dec, lambda net: net(src))
    what = f"greedy decode, {steps} steps, commands of {src_len}"
    return [Case("SCAN LSTM per view", group.order, batch, what, per_view, parts=parts),
            Case("SCAN LSTM stepwise", group.order, batch, what, stepwise, parts=stepwise_parts(stepwise, src, steps))]


def stepwise_parts(settings: dict[str, Setting], src: torch.Tensor, steps: int) -> dict[str, Callable[[], dict]]:
    """The stepwise decoder's operator work per decode: the orbit once, pull_back and aggregate
    every step (on a step's distributions), and the tokens fed back to every view."""
    return {m: (lambda dec=s.net: prepared_step_parts(dec, src, steps)) for m, s in settings.items()
            if hasattr(s.net, "operator")}


def prepared_step_parts(dec: nn.Module, src: torch.Tensor, steps: int) -> dict[str, tuple[Callable[[], object], int]]:
    op, group = dec.operator, dec.group
    with torch.inference_mode():
        state, summary = dec.model.start(group.orbit(src))
        logits, _ = dec.model.step(torch.full((group.order * src.shape[0],), dec.model.sos_id, device=src.device), state)
        scores = torch.softmax(logits, -1) if dec.average == "probs" else logits
        views = op.pull_back(scores)
        features = summary.reshape(group.order, src.shape[0], -1)
        token = torch.zeros(src.shape[0], dtype=torch.long, device=src.device)
    if op.weighting.reads_outputs:  # weighed every step, inside aggregate
        weighting = {"weighting": (lambda: op.weighting(views, features), steps),
                     "aggregate": (lambda: op.aggregate(views, features), steps)}
    else:  # a λ-network: weighed once per decode, as the decoder does
        weights = op.weighting(None, features)
        weighting = {"weighting once": (lambda: op.weighting(None, features), 1),
                     "aggregate": (lambda: op.aggregate(views, features, weights), steps)}
    return {"orbit": (lambda: group.orbit(src), 1), "pull_back": (lambda: op.pull_back(scores), steps), **weighting,
            "feed back": (lambda: dec.output_id_perms[:, token].reshape(-1), steps)}


def lm_case(batch: int, prompt_len: int, steps: int, dim: int, layers: int, device: torch.device) -> Case:
    """EquiLM's decoding (the nlg task): a random GPT-2 of GPT-2's vocabulary (50,257 tokens; width
    `dim`, `layers` layers) behind StepLM (KV cache), 10 swapped token pairs (Z2), greedy for exactly
    `steps` tokens. Vanilla: the model's steps and an argmax (ModelSteps) on the |G|·B swapped
    prompts; equitune: the operator
    on each step's logits (StepwiseEquivariantDecoder, average=logits, as EquiLM); equizero: the
    same with the lowest-entropy view per step (the nlg task's equizero picks chunks by regard;
    here the operator's indicator weighting); λ: a λ-network over StepLM's summary (the nlg task
    has no λ; what its path costs)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from equi.models.lm import StepLM
    from equi.sequence import StepwiseEquivariantDecoder
    from equi.weighting import LambdaNet, ProxyArgmin, Uniform

    torch.manual_seed(0)
    vocab = 50257
    config = GPT2Config(vocab_size=vocab, n_positions=prompt_len + steps + 1, n_embd=dim, n_layer=layers,
                        n_head=max(1, dim // 64))
    step_lm = StepLM(GPT2LMHeadModel(config).to(device).eval())
    group = G.token_swaps(vocab, [(1000 + 2 * i, 1001 + 2 * i) for i in range(10)], name="pair_swaps")
    prompts = torch.randint(vocab, (batch, prompt_len), device=device)
    prompts[:, 1] = 1000  # each prompt has a swapped word
    stacked = group.orbit(prompts)
    never = -1
    model_steps = ModelSteps(step_lm, steps)
    settings = {"vanilla": Setting(model_steps, lambda net: net(stacked), nbytes(stacked))}
    weightings = {"equitune": Uniform(), "equizero": ProxyArgmin("entropy", straight_through=False),
                  "lambda": LambdaNet(1, 100, 2)}
    for m, w in weightings.items():
        dec = StepwiseEquivariantDecoder(step_lm, group, w, never, 0, steps, average="logits").to(device).eval()
        settings[m] = Setting(dec, lambda net: net.generate(prompts, keep_scores=False)[1])  # tokens, as the nlg task
    return Case(f"LM GPT-2 {layers}×{dim}", group.order, batch,
                f"greedy decode, {steps} tokens after {prompt_len}, vocabulary {vocab}", settings,
                parts=stepwise_parts(settings, prompts, steps))


# --------------------------------------------------------------------------- the report


def limit_header(device: torch.device) -> list[str]:
    memory = ("torch.cuda.max_memory_allocated" if device.type == "cuda"
              else "peak of torch's CPU allocator (torch.profiler, profile_memory=True)")
    cols = " | ".join(f"{m} ms | {m} MB | {m} time ×, [Q1–Q3] | {m} mem ×" for m in METHODS)
    where = f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f"cpu, {torch.get_num_threads()} thread(s)"
    return [f"Device {where}; vanilla = the model alone on the |G|·B stacked inputs (per view: the wrapped greedy "
            f"decoder; stepwise: the model's steps and an argmax); time = median ms per call, "
            f"× = median of the per-round ratios to vanilla [Q1–Q3]; MB = peak allocated during the call, + vanilla's "
            f"stacked inputs "
            f"({memory}); goal ≤ {GOAL}×.", "",
            f"| model | what | \\|G\\| | B | rounds | vanilla \\|G\\|·B ms | vanilla MB | {cols} |",
            "|" + "---|" * (7 + 4 * len(METHODS))]


def limit_row(case: Case, r: Measured) -> str:
    cells = [case.model, case.what, str(case.order), str(case.batch), f"{r.rounds}×{r.inner}",
             f"{r.ms['vanilla']:.1f}", f"{r.mb['vanilla']:.1f}"]
    for m in METHODS:
        if m not in r.ms:
            cells += ["–"] * 4
            continue
        q1, q2, q3 = r.ratio[m]
        mem = r.mb[m] / r.mb["vanilla"]
        flag = lambda v: f"**{v:.3f}×**" if v > GOAL else f"{v:.3f}×"  # noqa: E731
        cells += [f"{r.ms[m]:.1f}", f"{r.mb[m]:.1f}", f"{flag(q2)} [{q1:.3f}–{q3:.3f}]", flag(mem)]
    return "| " + " | ".join(cells) + " |"


def parts_lines(case: Case, r: Measured, device: torch.device, repeats: int) -> list[str]:
    lines = []
    for m, prepare in case.parts.items():
        if m not in r.ratio:
            continue
        over = r.ratio[m][1] > GOAL or r.mb[m] / r.mb["vanilla"] > GOAL
        if not over:
            continue
        with grad_mode(case.grad):
            ms = part_ms(prepare(), device, case.grad, repeats)
        extra = r.ms[m] - r.ms["vanilla"]
        total = sum(v for k, v in ms.items() if k != "weighting")  # aggregate includes the weighting
        each = ", ".join(f"{k} {v:.2f}" for k, v in ms.items())
        lines.append(f"| {case.model} | {m} | {extra:+.2f} ({100 * extra / r.ms['vanilla']:+.1f}%) "
                     f"| {total:.2f} ({100 * total / r.ms['vanilla']:.1f}%) | {each} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches, fewer rounds (90 s on 2 cores)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default="loop,clip,cnn,scan,lm", help="which tables/models: loop,clip,cnn,scan,lm")
    parser.add_argument("--batch", type=int, default=32, help="batched-vs-loop table: images per batch")
    parser.add_argument("--repeats", type=int, default=5, help="batched-vs-loop table: calls timed")
    parser.add_argument("--clip-models", default="RN50,ViT-B-32")
    parser.add_argument("--clip-batch", type=int, default=None, help="B for CLIP (default 2 on a CPU, 32 on CUDA)")
    parser.add_argument("--target", type=float, default=0.02, help="stop when every ratio's IQR / median is within this")
    parser.add_argument("--max-rounds", type=int, default=None)
    parser.add_argument("--budget-s", type=float, default=None, help="seconds of timing rounds per model at most")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; 1 is steadier on a CPU shared with other jobs)")
    parser.add_argument("--out", default=None, help="also write the limit table to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    quick = args.quick
    only = set(args.only.split(","))
    opts = dict(target=args.target, min_rounds=3 if quick else 5,
                max_rounds=args.max_rounds or (6 if quick else 25),
                budget_s=args.budget_s or (8.0 if quick else 20.0), min_sample_s=0.05 if quick else 0.2, warmup=1)
    clip_batch = args.clip_batch or ((8 if quick else 32) if cuda else (1 if quick else 2))
    start = time.perf_counter()

    if "loop" in only:
        loop_table(args.batch if not quick else 16, args.repeats if not quick else 3, device)
        print()

    builders: list[Callable[[], list[Case]]] = []
    if "clip" in only:
        for name in args.clip_models.split(","):
            builders.append(lambda name=name: [clip_case(name, clip_batch, device)])
    if "cnn" in only:
        b = (256 if cuda else 64) if not quick else 16
        builders += [lambda: [cnn_case("resnet18", b, device)], lambda: [cnn_case("alexnet", b, device)],
                     lambda: [cnn_case("resnet18", b, device, train=True)]]
    if "scan" in only:
        builders.append(lambda: scan_cases(1024 if cuda else (64 if quick else 256), 10 if quick else 20, 9, device))
    if "lm" in only:
        builders.append(lambda: [lm_case(8 if quick else 16, 8, 8 if quick else 16, 128 if quick else 256,
                                         2 if quick else 4, device)])
    if not builders:
        return 0
    lines = limit_header(device)
    print("\n".join(lines), flush=True)
    overs: list[str] = []
    for build in builders:
        for case in build():
            r = measure(case.settings, device, grad=case.grad, **opts)
            row = limit_row(case, r)
            lines.append(row)
            print(row, flush=True)
            overs += parts_lines(case, r, device, 5 if quick else 15)
            del case
    if overs:
        extra = ["", "Where the methods over the goal spend their extra time: the operator's parts alone, ms per call "
                 "(the decoders' pull_back, weighting, aggregate and feed back once per step, times the steps; "
                 "aggregate includes the weighting, except a λ-network's, weighed once per decode). Parts well "
                 "under the measured extra: the extra is the machine's noise, or work outside the operator.", "",
                 "| model | method | measured extra ms (of vanilla) | operator parts ms (of vanilla) | parts, ms |",
                 "|---|---|---|---|---|", *overs]
        print("\n".join(extra))
        lines += extra
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    print(f"\n({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
