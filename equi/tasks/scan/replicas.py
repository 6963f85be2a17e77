"""Many pretrainings of the paper's SCAN model in one pass (SCAN_REPLICAS; docs/tasks/scan.md).

A table's models (seeds × splits) share one recipe; ``pretrain_together`` trains K of them as the
replicas of one ``ReplicaPaperSeq2Seq``. Replica k is the solo run of its seed, step for step:
its initial weights (``new_model`` after ``torch.manual_seed(seed)``, as a run seeds itself),
its training and validation split, its examples and teacher-forcing coins (drawn from its own
generator seeded with its seed, in the solo loop's order), its Adam state (Adam is elementwise,
so one Adam over the stacked weights is K Adams), its gradient clipping (each replica's
encoder and decoder norms on their own), its loss and its early stopping (its own
best-validation checkpoint). What differs from a solo run: the dropout masks (drawn for all
replicas at once from the global generator, not the solo run's stream) and the order of
floating-point sums inside the batched matmuls. Passes train in fp32 (the CPU's precision); runs
under hardware.precision=bf16|fp16 train their own, under autocast.

    python -m equi.tasks.scan.replicas task=scan task.split=add_jump,around_right seed=0,1,2 …

takes a sweep's overrides (as run.py -m does), finds the pretrained models its runs would train
(one per split, cell and seed), trains the missing ones together and caches each one where its
solo run looks for it; the sweep that follows finds them all.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from ... import training
from ...cache import load_cached, save_atomically
from ...data import scan as data
from ...errors import ConfigError
from ...models.seq2seq import PaperSeq2Seq
from ...models.seq2seq_replicas import ReplicaPaperSeq2Seq
from .runner import checkpoint_file, clip_groups_of, load_pairs, new_model, split_paths, up_to_predicted_eos


@dataclass
class Replica:
    """One model of a pass: its run's seed, its training and validation pairs, a name for messages."""

    seed: int
    train: data.Pairs
    val: data.Pairs | None
    name: str


def stacked(pairs: list[data.Pairs]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each replica's (commands, targets) padded to common widths: (K, N, S), (K, N, T), and the
    commands' and targets' unpadded lengths (K, N); N is the largest split (smaller ones never
    draw past their own size)."""
    tensors = [p.tensors() for p in pairs]
    n = max(len(p) for p in pairs)
    s = max(src.shape[1] for src, _ in tensors)
    t = max(tgt.shape[1] for _, tgt in tensors)
    src_all = torch.full((len(pairs), n, s), data.PAD_ID, dtype=torch.long)
    tgt_all = torch.full((len(pairs), n, t), data.PAD_ID, dtype=torch.long)
    for k, (src, tgt) in enumerate(tensors):
        src_all[k, : len(src), : src.shape[1]] = src
        tgt_all[k, : len(tgt), : tgt.shape[1]] = tgt
    return src_all, tgt_all, (src_all != data.PAD_ID).sum(-1), (tgt_all != data.PAD_ID).sum(-1)


def replica_losses(log_p: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Each replica's loss (K,) from log-probabilities (K, b, T, V) and targets (K, b, T), as the
    solo recipe computes it over its batch: sum_to_predicted_eos (``runner.loss_to_predicted_eos``,
    summed to the first predicted <eos>, averaged over the batch) or token_mean (NLL per token)."""
    if loss == "sum_to_predicted_eos":
        target = up_to_predicted_eos(log_p, target)
    counted = target != data.PAD_ID
    nll = -log_p.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * counted
    if loss == "sum_to_predicted_eos":
        return nll.sum((1, 2)) / target.shape[1]
    return nll.sum((1, 2)) / counted.sum((1, 2))


def clip_per_replica(groups: list[list[torch.Tensor]], clip: float) -> None:
    """Each replica's gradients of each group scaled to norm ≤ clip on their own, exactly as
    ``nn.utils.clip_grad_norm_`` scales a solo model's."""
    for params in groups:
        grads = [p.grad for p in params if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])  # (P, K)
        scale = (clip / (torch.linalg.vector_norm(norms, dim=0) + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.ndim - 1))))


def pretrain_together(models: list[PaperSeq2Seq], replicas: list[Replica], task: DictConfig, device,
                      validate=None, desc: str = "pretrain replicas", position: int = 0) -> list[dict | None]:
    """Train `models` (one per replica, freshly initialised) with task.pretrain's recipe in one
    pass; afterwards each holds its trained weights (keep=last) or its best-validation
    checkpoint (keep=best_val), and its kept record is returned (None for keep=last).
    validate(stack) → each replica's validation accuracy (default: greedy exact match on its own
    validation pairs, as the solo run checks)."""
    settings = task.pretrain
    if settings.get("weight_decay", 0.0):
        raise ConfigError("replica pretraining has no weight decay (no pretraining recipe uses one)")
    # the recipe read once: a config look-up costs about as much as a replica's tiny operation
    batch, teacher_forcing, loss, clip = settings.batch_size, settings.teacher_forcing, settings.loss, settings.clip
    keep_best, val_every, examples = settings.keep == "best_val", settings.val_every, settings.examples
    k = len(replicas)
    stack = ReplicaPaperSeq2Seq(models).to(device)
    src_all, tgt_all, src_len, tgt_len = (t.to(device) for t in stacked([r.train for r in replicas]))
    sizes = [len(r.train) for r in replicas]
    generators = [torch.Generator().manual_seed(r.seed) for r in replicas]
    rows = torch.arange(k, device=device).unsqueeze(1)
    opt = torch.optim.Adam(stack.parameters(), lr=settings.lr, fused=True)  # one kernel over K·|θ| (torch ≥ 2.4)
    steps = -(-examples // batch)
    decay = training.schedule(opt, settings.schedule, steps, settings.lr)
    groups = clip_groups_of(stack.named_weights(), settings.get("clip_scope", "model"))
    validate = validate or (lambda net: replica_accuracies(net, [r.val for r in replicas], task, device))
    best = [{"val_accuracy": -1.0} for _ in replicas]

    def check(seen: int) -> None:
        stack.eval()
        for i, score in enumerate(validate(stack)):
            if score > best[i]["val_accuracy"]:
                best[i].update(val_accuracy=score, examples=seen, state=stack.state_dict_of(i))
        stack.train()

    stack.train()
    progress = tqdm(range(steps), desc=f"{desc} ×{k}", unit="step", mininterval=0.5, position=position)
    for step in progress:
        draws = [(torch.randint(n, (batch,), generator=g), torch.rand((), generator=g)) for n, g in zip(sizes, generators)]
        idx = torch.stack([i for i, _ in draws]).to(device)
        # the solo loop's `coin.item() < teacher_forcing`, compared in float64 as Python compares
        forced = (torch.stack([coin for _, coin in draws]).double() < teacher_forcing).to(device)
        width_in, width_out = int(src_len[rows, idx].max()), int(tgt_len[rows, idx].max())
        src, tgt = src_all[rows, idx, :width_in], tgt_all[rows, idx, :width_out]
        losses = replica_losses(stack(src, tgt, forced).float().log_softmax(-1), tgt, loss)
        opt.zero_grad()
        losses.sum().backward()  # replica k's loss reaches replica k's weights only
        clip_per_replica(groups, clip)
        opt.step()
        if decay is not None:
            decay.step()
        if step % 50 == 0:
            progress.set_postfix(loss=f"{losses.mean().item():.4f}")
        seen = (step + 1) * batch
        if keep_best and (step + 1 == steps or seen // val_every > step * batch // val_every):
            check(min(seen, examples))
    for i, (model, record) in enumerate(zip(models, best)):
        model.load_state_dict(record.pop("state") if keep_best else stack.state_dict_of(i))
        model.eval()
    return best if keep_best else [None] * k


def replica_accuracies(stack: ReplicaPaperSeq2Seq, pairs: list[data.Pairs], task: DictConfig, device) -> list[float]:
    """Each replica's exact-match accuracy (%) of greedy decoding on its own pairs, all replicas
    decoded together (the solo run's check, ``runner.accuracy``, one model at a time)."""
    src_all, _, _, _ = stacked(pairs)
    src_all[:, :, 0].masked_fill_(src_all[:, :, 0] == data.PAD_ID, data.EOS_IN)  # a smaller split's filler rows: one word
    right = [0] * len(pairs)
    for start in range(0, src_all.shape[1], task.eval_batch):
        src = src_all[:, start : start + task.eval_batch]
        width = int((src != data.PAD_ID).sum(-1).max())
        tokens = stack.greedy(src[:, :, :width].to(device), data.EOS_OUT, task.max_len).cpu()
        for k, p in enumerate(pairs):
            for i in range(start, min(start + task.eval_batch, len(p))):
                right[k] += data.decode(tokens[k, i - start]) == p.actions[i]
    return [100.0 * r / len(p) for r, p in zip(right, pairs)]


def pass_key(cfg: DictConfig) -> str:
    """Models train in one pass when everything but their split and seed is the same (hardware too)."""
    shared = OmegaConf.masked_copy(cfg.task, ["architecture", "cell", "hidden", "dropout", "max_len", "eval_batch", "pretrain"])
    shared.pretrain.pop("split_seed", None)
    return json.dumps([OmegaConf.to_container(shared, resolve=True), OmegaConf.to_container(cfg.hardware, resolve=True)],
                      sort_keys=True)


@dataclass
class Pending:
    """A pretrained model a sweep's runs would train: where it is cached, and its run's config."""

    path: object
    cfg: DictConfig
    ctx: object


def pending_models(overrides: list[str]) -> tuple[list[Pending], int]:
    """The paper-model pretrainings the sweep's runs need that are not cached yet (one per split,
    cell and seed, whatever the method), and how many models the sweep needs in all."""
    from ...config import check_cli, compose_config, sweep_runs, with_typed_over_fast
    from ...experiment import effective_config
    from ..context import context

    problem = check_cli(overrides)
    if problem:
        raise ConfigError(problem)
    found: dict[str, Pending] = {}
    for run in sweep_runs(overrides):
        cfg = effective_config(with_typed_over_fast(compose_config(run), run))
        task = cfg.task
        if task.name != "scan" or task.architecture != "seq2seq_paper":
            continue
        ctx = context(cfg, run_dir=None)
        path = checkpoint_file(task, cfg.seed, ctx.cache_dir, ctx.fingerprints.file(split_paths(task, ctx)[0]))
        found.setdefault(str(path), Pending(path, cfg, ctx))
    missing = [p for p in found.values() if not cached(p)]
    return missing, len(found)


def cached(model: Pending) -> bool:
    state = load_cached(model.path, lambda p: torch.load(p, map_location="cpu"))
    kept = model.path.with_suffix(".json")
    return state is not None and (model.cfg.task.pretrain.keep == "last" or load_cached(kept, lambda p: json.loads(p.read_text())) is not None)


def train_pass(models: list[Pending], device, position: int = 0) -> None:
    """Pretrain `models` (one recipe) as the replicas of one pass and cache each where its solo run
    looks for it, with its kept record: its best-validation examples and accuracy (keep=best_val)
    and that it was replica r of K (results.json shows them as pretrain_kept_*)."""
    from ...experiment import seed_everything

    nets, replicas = [], []
    for m in models:
        task, seed = m.cfg.task, m.cfg.seed
        train, val, _ = load_pairs(task, m.ctx)
        seed_everything(seed)  # as the solo run seeds itself before building its model
        nets.append(new_model(task).to(device))
        replicas.append(Replica(seed, train, val, f"{task.cell} {task.split} seed {seed}"))
    task = models[0].cfg.task
    print(f"pretraining {len(models)} {task.cell} models together: " + ", ".join(r.name for r in replicas), flush=True)
    kept = pretrain_together(nets, replicas, task, device, desc=f"pretrain {task.cell}", position=position)
    for r, (m, net, record) in enumerate(zip(models, nets, kept)):
        record = {**(record or {}), "replica": r, "replicas": len(models)}
        save_atomically(m.path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(record)))
        save_atomically(m.path, lambda tmp: torch.save(net.state_dict(), tmp))


def train_apart(overrides: list[str], models: list[Pending], processes: int) -> None:
    """A CPU pass split into `processes` passes that run at once, one thread each. On a CPU a pass
    is bound by the Python overhead of its many tiny operations, which one process runs on one
    core; two passes of 3 replicas train 6 models 15–50% faster than one pass of 6 on two
    threads in our runs (docs/tasks/scan.md). Each share is a pass of its own: its replicas are the same solo
    runs, only the dropout masks, drawn per pass, differ. The models are dealt out in turn: a
    sweep lists them split by split, and a pass steps as long as its longest example, so a pass
    of one split's models alone would finish minutes after the other (Add Jump's targets are
    longer) while its core waits."""
    import concurrent.futures
    import multiprocessing

    shares = [[str(m.path) for m in models[i::processes]] for i in range(processes)]
    with concurrent.futures.ProcessPoolExecutor(len(shares), mp_context=multiprocessing.get_context("spawn")) as pool:
        for job in [pool.submit(train_share, overrides, share, position) for position, share in enumerate(shares)]:
            job.result()


def train_share(overrides: list[str], paths: list[str], position: int) -> None:
    """In a process of train_apart: the models cached at `paths`, as one pass on one thread."""
    from ... import hardware

    missing = {str(m.path): m for m in pending_models(overrides)[0]}
    models = [missing[p] for p in paths if p in missing]
    if models:
        device = hardware.configure(models[0].cfg.hardware)
        torch.set_num_threads(1)
        train_pass(models, device, position)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from ... import hardware
    from ...errors import UserError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="auto",
                        help="models per pass: auto (every missing model of a recipe; at most 32) or a number "
                             "(1: none, the sweep's runs train their own)")
    parser.add_argument("--processes", default="auto",
                        help="on a CPU, passes run at once with one thread each: auto (one per thread torch would "
                             "use, at most one per model) or a number (1: one pass on all threads)")
    parser.add_argument("overrides", nargs="*", help="a run.py sweep's overrides (task=scan task.split=… seed=…)")
    args = parser.parse_args(argv)
    try:
        if args.replicas != "auto" and not (args.replicas.isdigit() and int(args.replicas) >= 1):
            raise ConfigError(f"--replicas={args.replicas}: give auto or a number ≥ 1")
        if args.processes != "auto" and not (args.processes.isdigit() and int(args.processes) >= 1):
            raise ConfigError(f"--processes={args.processes}: give auto or a number ≥ 1")
        per_pass = 32 if args.replicas == "auto" else int(args.replicas)
        missing, total = pending_models(args.overrides)
        cached_count = total - len(missing)
        mixed = [m for m in missing if m.cfg.hardware.precision != "fp32"]
        if mixed:  # a solo run trains under autocast; the replicas' written-out backward is fp32 only
            print(f"replica pretraining: hardware.precision={mixed[0].cfg.hardware.precision}: passes train in fp32 "
                  f"only, so those {len(mixed)} runs train their own (hardware.precision=fp32 trains them together)")
            missing = [m for m in missing if m.cfg.hardware.precision == "fp32"]
        if per_pass == 1 or not missing:
            print(f"replica pretraining: {cached_count} of {total} models cached"
                  + ("" if per_pass > 1 or not missing else f"; the sweep trains the other {len(missing)} one by one"))
            return 0
        groups: dict[str, list[Pending]] = {}
        for m in missing:
            groups.setdefault(pass_key(m.cfg), []).append(m)
        start = time.perf_counter()
        for group in groups.values():
            device = hardware.configure(group[0].cfg.hardware)
            processes = torch.get_num_threads() if args.processes == "auto" else int(args.processes)
            for i in range(0, len(group), per_pass):
                models = group[i : i + per_pass]
                if device.type == "cpu" and min(processes, len(models)) > 1:
                    train_apart(args.overrides, models, min(processes, len(models)))
                else:
                    train_pass(models, device)
        print(f"replica pretraining: {len(missing)} models trained in {time.perf_counter() - start:.0f} s, "
              f"{cached_count} were cached")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the pass in progress is lost, passes already done are cached; rerun to go on",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
