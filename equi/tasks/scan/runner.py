"""SCAN: pretrained seq2seq models made equivariant to a word swap (paper Table 2).

vanilla decodes greedily; equizero decodes both views and keeps the sequence with the lowest
proxy loss (negative max probability over the whole sequence). Equitune and λ-equitune decode
by method.decoding: per_view (the default, the paper's EquiLSTM) decodes each view on its own
and averages the back-swapped per-step log-softmax; stepwise averages the views' next-token
distributions at every step and feeds the one chosen token to both. With
task.finetune.examples > 0 the pretrained model is first finetuned through the method.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ... import distributed, hardware, methods, schema, training
from ...cache import checkpoint_path, load_cached, save_atomically
from ...data import catalog, scan as data
from ...errors import ConfigError, blame_user
from ..context import RunContext
from ...groups import VocabularyGroup, vocabulary_cycles
from ...models.gseq2seq import GSeq2Seq
from ...models.seq2seq import PaperSeq2Seq, Seq2Seq
from ...sequence import (DECODINGS, CommandSummary, GreedyDecoder, StepwiseEquivariantDecoder, TeacherForced,
                        TeacherForcedOrGreedy, pair_group)
from ...weighting import Weighting


def swap_group(task: DictConfig) -> VocabularyGroup:
    if task.split not in task.groups:
        raise ConfigError(f"no word swap for SCAN split {task.split!r}; add one under task.groups")
    swap = task.groups[task.split]
    with blame_user(f"task.groups.{task.split}", ConfigError):
        return vocabulary_cycles(data.COMMANDS, swap.commands, data.ACTIONS, swap.actions, name=f"swap_{task.split}")


PLAIN_ARCHITECTURES = {"seq2seq": Seq2Seq, "seq2seq_paper": PaperSeq2Seq}
CHECKPOINT_PREFIX = {"seq2seq": "", "seq2seq_paper": "paper-", "gseq2seq": "g"}  # ours keeps its old names


def new_model(task: DictConfig) -> Seq2Seq | PaperSeq2Seq:
    """A randomly initialised seq2seq (ours, or the paper's), or the G-equivariant form of ours
    (Gordon et al.) for the task's swap, with `hidden` channels per group element."""
    if task.architecture == "gseq2seq":
        return GSeq2Seq(task.cell, swap_group(task), task.hidden, task.dropout, pad_id=data.PAD_ID, sos_id=data.SOS_ID)
    return PLAIN_ARCHITECTURES[task.architecture](task.cell, len(data.COMMANDS), len(data.ACTIONS), task.hidden,
                                                  task.dropout, pad_id=data.PAD_ID, sos_id=data.SOS_ID)


ENCODER_PARTS = ("embed_in.", "encoder.")  # the paper scripts' EncoderRNN: the command embedding and its RNN


def clip_groups(model: nn.Module, scope: str) -> list[list[nn.Parameter]]:
    """The parameters whose gradient norm is clipped as one: the whole model, or (encoder_decoder,
    as the paper's scripts clip) the encoder and the decoder, each on its own."""
    return clip_groups_of(model.named_parameters(), scope)


def clip_groups_of(named_parameters, scope: str) -> list[list[nn.Parameter]]:
    """clip_groups over (name, parameter) pairs named as a solo model's (replicas stack them)."""
    named = list(named_parameters)
    if scope == "model":
        return [[p for _, p in named]]
    return [[p for name, p in named if name.startswith(ENCODER_PARTS) == part] for part in (True, False)]


def optimise(model: nn.Module, batch_loss, size: int, settings: DictConfig, seed: int, desc: str,
             check: Callable[[int], None] | None = None, check_every: int = 0) -> None:
    """Adam on `model`'s parameters with gradient clipping over random mini-batches until
    `examples` examples are seen; the learning rate follows `schedule` (constant, or cosine).
    Only finetuning has a weight_decay (Adam's L2 term, as the paper's finetuning scripts use);
    pretraining and finetuning choose what is clipped as one (clip_scope, see clip_groups).
    check(examples seen), if given, runs every `check_every` examples and after the last batch.
    Under DDP every rank draws the same batches and computes the loss on its part of each."""
    gen = torch.Generator().manual_seed(seed)
    opt = training.optimizer(model.parameters(), "adam", settings.lr, weight_decay=settings.get("weight_decay", 0.0))
    steps = -(-settings.examples // settings.batch_size)

    def loss_of(step: int) -> torch.Tensor:
        idx = torch.randint(size, (settings.batch_size,), generator=gen)
        with hardware.autocast():
            return batch_loss(distributed.my_part(idx), gen)

    def after_step(step: int) -> None:
        seen = (step + 1) * settings.batch_size
        if check is not None and (step + 1 == steps or seen // check_every > step * settings.batch_size // check_every):
            check(min(seen, settings.examples))
            model.train()

    model.train()
    training.train(loss_of, range(steps), opt, desc=desc, unit="batch",
                   clip_groups=clip_groups(model, settings.get("clip_scope", "model")), clip=settings.clip,
                   decay=training.schedule(opt, settings.schedule, steps, settings.lr), show_every=50,
                   after_step=after_step)
    model.eval()


def pretrain(model: Seq2Seq, train: data.Pairs, val: data.Pairs, task: DictConfig, seed: int, device,
             desc: str) -> dict | None:
    """Each batch is teacher-forced with probability `teacher_forcing`, else decoded from the
    model's own predictions; cross-entropy per target token, padding ignored, or (loss=
    sum_to_predicted_eos, the paper's loop) summed per target up to its first predicted <eos>.
    keep=best_val (the paper's early stopping) checks greedy validation accuracy every
    `val_every` examples and ends on the best checkpoint (the first, on ties), returning when it
    was seen."""
    settings = task.pretrain
    src, tgt = (t.to(device) for t in train.tensors())
    loss_fn = nn.CrossEntropyLoss(ignore_index=data.PAD_ID)
    train_model = distributed.wrap_ddp(model)
    summed = settings.loss == "sum_to_predicted_eos"

    def batch_loss(idx, gen):
        idx = idx.to(device)
        width = int((tgt[idx] != data.PAD_ID).sum(1).max())
        forced = torch.rand((), generator=gen).item() < settings.teacher_forcing  # one coin per batch
        logits = train_model(src[idx], tgt[idx, :width], forced)
        if summed:
            return loss_to_predicted_eos(logits.float().log_softmax(-1), tgt[idx, :width])
        return loss_fn(logits.reshape(-1, logits.shape[-1]), tgt[idx, :width].reshape(-1))

    if settings.keep == "last":
        optimise(model, batch_loss, len(train), settings, seed, desc)
        return None
    best = {"val_accuracy": -1.0}

    def keep_if_best(seen: int) -> None:
        model.eval()
        greedy = GreedyDecoder(model, data.EOS_OUT, data.PAD_ID, task.max_len)
        score = accuracy(greedy, val, task.eval_batch, device, f"validation after {seen} examples")
        if score > best["val_accuracy"]:
            best.update(val_accuracy=score, examples=seen, state=copy.deepcopy(model.state_dict()))

    optimise(model, batch_loss, len(train), settings, seed, desc, keep_if_best, settings.val_every)
    model.load_state_dict(best.pop("state"))
    return best


def decoding(method: DictConfig) -> str | None:
    """How equitune and λ decode (method.decoding, null meaning per_view); None for the methods
    that decode one way (vanilla, equizero)."""
    if not methods.method_of(method).averages:
        return None
    return method.get("decoding") or DECODINGS[0]


def teacher_forced(method: DictConfig, model: Seq2Seq, group: VocabularyGroup, src_len: int, task: DictConfig,
                   lam: Weighting | None, seed: int) -> nn.Module:
    """[commands | targets] → per-step scores through the method's operator. per_view (the paper's):
    the averaged log-softmax, teacher-forced or decoded per view by a coin of
    task.pretrain.teacher_forcing. Otherwise teacher-forced: averaged distributions (stepwise) or
    log-probabilities (vanilla, equizero with the straight-through estimator). λ sees each view's
    command summary."""
    pairs = pair_group(group, src_len)
    scheme = decoding(method)
    if scheme == "per_view":
        net = TeacherForcedOrGreedy(model, src_len, data.EOS_OUT, data.PAD_ID, task.pretrain.teacher_forcing, seed)
    else:
        net = TeacherForced(model, src_len, log_probs=scheme != "stepwise")
    return methods.wrap(method, net, group=pairs, invariant=False, default_proxy=task.default_proxy, weighting=lam,
                        lambda_reads=CommandSummary(model, src_len))


def loss_to_predicted_eos(log_p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's finetuning loss (finetune.loss=sum_to_predicted_eos): each target's NLL summed
    over its steps up to and including the first whose argmax is <eos> (its loop breaks there),
    averaged over the batch."""
    target = up_to_predicted_eos(log_p, target)
    nll = nn.functional.nll_loss(log_p.reshape(-1, log_p.shape[-1]), target.reshape(-1), ignore_index=data.PAD_ID,
                                 reduction="sum")
    return nll / len(target)


def up_to_predicted_eos(log_p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """target (…, T) with the steps after the first whose argmax is <eos> set to padding."""
    predicted_eos = (log_p.argmax(-1) == data.EOS_OUT).long()
    after = predicted_eos.cumsum(-1) - predicted_eos > 0  # an <eos> was predicted at an earlier step
    return target.masked_fill(after, data.PAD_ID)


def train_through(method: DictConfig, model: Seq2Seq, group: VocabularyGroup, train: data.Pairs, task: DictConfig,
                  settings: DictConfig, params: nn.Module, seed: int, device, desc: str, lam: Weighting | None = None) -> None:
    """Training of `params` (the model when finetuning, λ in λ-equitune's first stage) through
    the method's operator (see teacher_forced); NLL of the target tokens, padding ignored."""
    src, tgt = (t.to(device) for t in train.tensors())
    pairs, src_len = torch.cat([src, tgt], dim=1), src.shape[1]
    net = distributed.wrap_ddp(teacher_forced(method, model, group, src_len, task, lam, seed))
    probabilities = decoding(method) == "stepwise"
    loss_fn = nn.NLLLoss(ignore_index=data.PAD_ID)
    summed = settings.get("loss") == "sum_to_predicted_eos"

    def batch_loss(idx, gen):
        idx = idx.to(device)
        width = int((tgt[idx] != data.PAD_ID).sum(1).max())
        out = net(pairs[idx, : src_len + width])
        log_p = torch.log(out.float().clamp_min(1e-30)) if probabilities else out
        if summed:
            return loss_to_predicted_eos(log_p, tgt[idx, :width])
        return loss_fn(log_p.reshape(-1, log_p.shape[-1]), tgt[idx, :width].reshape(-1))

    optimise(params, batch_loss, len(train), settings, seed, desc)


def finetune_settings(task: DictConfig, method: DictConfig) -> DictConfig:
    """task.finetune, where lr=paper becomes the rate of the paper's finetuning script for the
    method and split (task.paper_finetune_lr)."""
    if task.finetune.lr != "paper" or not task.finetune.examples:
        return task.finetune
    rate = OmegaConf.select(task, f"paper_finetune_lr.{method.name}.{task.split}")
    if rate is None:
        raise ConfigError(f"task.finetune.lr=paper: the paper has no finetuning rate for {method.name} on {task.split} "
                          f"(task.paper_finetune_lr); give task.finetune.lr a number")
    return OmegaConf.merge(task.finetune, {"lr": rate})


def check_batches(task: DictConfig) -> None:
    """Under DDP every process takes a part of each batch: a batch needs one example per process."""
    for stage in ("pretrain", "lambda_stage", "finetune"):
        if task[stage].batch_size < distributed.world_size():
            raise ConfigError(f"task.{stage}.batch_size={task[stage].batch_size} is smaller than the "
                              f"{distributed.world_size()} processes that share each batch; raise it or run fewer")


def release_folder(task: DictConfig, ctx: RunContext) -> Path:
    """The SCAN release holding the split's files, fetched into the data folder when missing."""
    return catalog.ensure("scan", ctx.data_dir, ctx.download, data.release_files(task.split))


def split_paths(task: DictConfig, ctx: RunContext) -> list[Path]:
    """The split's train and test files."""
    return [release_folder(task, ctx) / f for f in data.split_files(task.split)]


def inputs(cfg: DictConfig, ctx: RunContext) -> dict:
    return {f"scan/{path.parent.name}/{path.name}": ctx.fingerprints.file(path) for path in split_paths(cfg.task, ctx)}


def checkpoint_file(task: DictConfig, seed: int, cache_dir, train_file: str | None = None) -> Path:
    """Where the pretrained model for (split, architecture, settings, seed) is cached; made from
    the training file with fingerprint `train_file` (see equi.cache.checkpoint_path)."""
    settings = OmegaConf.to_container(OmegaConf.masked_copy(task, ["split", "cell", "hidden", "dropout", "pretrain"]),
                                     resolve=True)
    schema.as_before_pruned({"task": settings}, OmegaConf.create({"task": task}), groups=("task",))  # keys added later
    return checkpoint_path(cache_dir, "scan", f"{CHECKPOINT_PREFIX[task.architecture]}{task.cell}-{task.split}",
                           settings, seed, ".pt", {"train_file": train_file} if train_file else None)


def pretrained(task: DictConfig, train: data.Pairs, val: data.Pairs, seed: int,
               ctx: RunContext) -> tuple[Seq2Seq, str, dict | None]:
    """The pretrained model, cached under outputs/ (see checkpoint_file), and the checkpoint kept
    when keep=best_val (its examples and validation accuracy, kept beside it)."""
    path = checkpoint_file(task, seed, ctx.cache_dir, ctx.fingerprints.file(split_paths(task, ctx)[0]))
    kept_file = path.with_suffix(".json")
    model = new_model(task).to(ctx.device)
    state = load_cached(path, lambda p: torch.load(p, map_location=ctx.device))
    kept = load_cached(kept_file, lambda p: json.loads(p.read_text())) if state is not None else None
    if state is not None and (kept is not None or task.pretrain.keep == "last"):
        model.load_state_dict(state)
        return model.eval(), "cache", kept
    kept = pretrain(model, train, val, task, seed, ctx.device, f"pretrain {task.cell} on {task.split} seed {seed}")
    if kept is not None:
        save_atomically(kept_file, lambda tmp: tmp.write_text(json.dumps(kept)))
    save_atomically(path, lambda tmp: torch.save(model.state_dict(), tmp))
    return model, "trained", kept


def decoder(method: DictConfig, model: Seq2Seq, group: VocabularyGroup, task: DictConfig,
            lam: Weighting | None = None) -> nn.Module:
    """Commands → per-step log-probabilities, made equivariant as the method says; per_view
    equitune, λ and equizero all wrap the one greedy decoder in the operator."""
    if methods.method_of(method).trains_lambda and lam is None:
        raise ValueError("λ-equitune decodes with a trained λ-network: pass lam")
    scheme = decoding(method)
    if scheme == "stepwise":
        weighting = lam if lam is not None else methods.weighting_for(method)
        return StepwiseEquivariantDecoder(model, group, weighting, data.EOS_OUT, data.PAD_ID, task.max_len)
    ended = "zeros" if scheme == "per_view" else "pad"  # zeros: an ended view stops voting in the average
    reads_summary = methods.method_of(method).trains_lambda  # λ: the summary of the decoder's own encoder pass
    greedy = GreedyDecoder(model, data.EOS_OUT, data.PAD_ID, task.max_len, ended=ended, with_summary=reads_summary)
    return methods.wrap(method, greedy, group=group, invariant=False, default_proxy=task.default_proxy, weighting=lam,
                        model_returns_features=reads_summary)


@torch.no_grad()
def accuracy(decode: nn.Module, pairs: data.Pairs, batch: int, device, desc: str) -> float:
    """Exact-match accuracy (%) of the greedy output (up to <eos>) against the target; under DDP
    each rank decodes its share of the batches and the counts are summed."""
    src, _ = pairs.tensors()
    batches = ((hardware.to_device(src[i : i + batch], device), pairs.actions[i : i + batch])
               for i in distributed.shard(len(pairs), batch)[::batch])

    def exact(out: torch.Tensor, targets: list) -> int:
        return sum(data.decode(row) == target for row, target in zip(out.argmax(-1).cpu(), targets))

    return training.accuracy(decode, batches, exact, desc, weights=False)[0]


def load_pairs(task: DictConfig, ctx: RunContext) -> tuple[data.Pairs, data.Pairs, data.Pairs]:
    """(train, validation, test): the split's training file less the validation part held out by
    task.pretrain.split_seed, and its test file."""
    train_file, test = data.load_split(release_folder(task, ctx), task.split)
    return (*data.hold_out(train_file, task.pretrain.val_fraction, task.pretrain.split_seed), test)


def run(cfg: DictConfig, ctx: RunContext) -> dict:
    task = cfg.task
    group = swap_group(task)
    train, val, test = load_pairs(task, ctx)
    method = cfg.method
    finetuning = finetune_settings(task, method)
    check_batches(task)
    model, source, kept = pretrained(task, train, val, cfg.seed, ctx)
    lam = None
    if methods.method_of(method).trains_lambda:  # first λ with the model frozen, then the model with λ frozen
        lam = methods.weighting_for(method, feature_dim=model.summary_dim).to(ctx.device)
        model.requires_grad_(False)
        train_through(method, model, group, train, task, task.lambda_stage, lam, cfg.seed + 2, ctx.device,
                      f"λ-network on {task.split} seed {cfg.seed}", lam)
        lam.requires_grad_(False).eval()
        model.requires_grad_(True)
    if task.finetune.examples:
        train_through(method, model, group, train, task, finetuning, model, cfg.seed + 1, ctx.device,
                      f"finetune {method.name} on {task.split} seed {cfg.seed}", lam)
    if task.limit:
        val, test = val.subset(range(min(task.limit, len(val)))), test.subset(range(min(task.limit, len(test))))
    decode = decoder(method, model, group, task, lam).eval()
    metrics = {
        "val_accuracy": accuracy(decode, val, task.eval_batch, ctx.device, "validation"),
        "test_accuracy": accuracy(decode, test, task.eval_batch, ctx.device, "test"),
        "weights": source,
        "finetune_examples": task.finetune.examples,
        "finetune_lr": finetuning.lr if task.finetune.examples else None,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if kept is not None:
        metrics.update({f"pretrain_kept_{k}": v for k, v in kept.items()})
    ctx.logger.log({k: v for k, v in metrics.items() if k.endswith("accuracy")})
    return metrics
