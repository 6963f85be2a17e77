"""Greedy decoding of autoregressive models, plain and through the operator step by step.

A model here has ``start(src) -> (state, summary)`` and ``step(prev_tokens, state) ->
(logits, state)`` (``equi.models.seq2seq.Seq2Seq``; a KV-cached language model fits
the same two calls). Two ways to make decoding equivariant, both using the one operator:

- per view (equizero; equitune and λ-equitune as the paper's EquiLSTM, SCAN's
  ``per_view``): ``GreedyDecoder`` is an ordinary model from commands to per-step
  log-probabilities, so ``EquivariantWrapper(GreedyDecoder(m), group, …)`` decodes every
  view on its own, each fed its own tokens, and picks or averages whole sequences;
- step level (SCAN's ``stepwise``; EquiLM): ``StepwiseEquivariantDecoder`` applies the
  operator to the next-token distributions (or logits, EquiLM) at every step and feeds
  g·token back to view g, choosing the token greedily or by sampling.

Training wraps ``TeacherForced`` (or, per view, ``TeacherForcedOrGreedy``) with ``pair_group``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from .groups import FiniteGroup, VocabularyGroup
from .operator import EquivariantWrapper
from .proxy import ENDED
from .weighting import Weighting

DECODINGS = ("per_view", "stepwise")  # SCAN's method.decoding for equitune and λ; the first is the default


def after_end(log_p: torch.Tensor, done: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Sequences already ended (done) get a certain <pad> at this step."""
    finished = torch.full_like(log_p, ENDED)
    finished[:, pad_id] = 0.0
    return torch.where(done.unsqueeze(-1), finished, log_p)


class GreedyDecoder(nn.Module):
    """Commands (B, S) → log-probabilities (B, T, V) of the greedy output, T ≤ max_len.

    The steps after a sequence's <eos> are, by ``ended``: "pad", a certain <pad>, so that
    whole sequences compare position by position (equizero's proxy skips them); "zeros",
    all-zero rows, so that an ended view stops voting in an average of log-probabilities
    (the paper's EquiLSTM).
    ``with_summary``: return (log-probabilities, the encoder's (B, D) command summary), for the
    operator's ``model_returns_features``: per-view λ reads the summary of this same encoder pass.
    """

    def __init__(self, model: nn.Module, eos_id: int, pad_id: int = 0, max_len: int = 50, *, ended: str = "pad",
                 with_summary: bool = False):
        super().__init__()
        if ended not in ("pad", "zeros"):
            raise ValueError(f"ended must be pad or zeros, got {ended!r}")
        self.model, self.eos_id, self.pad_id, self.max_len, self.ended = model, eos_id, pad_id, max_len, ended
        self.with_summary = with_summary

    def forward(self, src: torch.Tensor, steps: int | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``steps``: decode at most this many (max_len by default)."""
        state, summary = self.model.start(src)
        prev = torch.full((src.shape[0],), self.model.sos_id, dtype=torch.long, device=src.device)
        done = torch.zeros_like(prev, dtype=torch.bool)
        rows = []
        for _ in range(self.max_len if steps is None else steps):
            logits, state = self.model.step(prev, state)
            log_p = torch.log_softmax(logits, dim=-1)
            if self.ended == "pad":
                log_p = after_end(log_p, done, self.pad_id)
            else:
                log_p = log_p.masked_fill(done.unsqueeze(-1), 0.0)
            rows.append(log_p)
            prev = log_p.argmax(-1)
            done = done | (prev == self.eos_id)
            if done.all():
                break
        log_p = torch.stack(rows, dim=1)
        # detached as CommandSummary's: no gradient flows into the model through λ
        return (log_p, summary.detach()) if self.with_summary else log_p


class StepwiseEquivariantDecoder(nn.Module):
    """Decoding with p_t = Σ_g λ(g·x) g⁻¹·p(· | g·x, g·y_<t) / Σ_g λ(g·x) at every step.

    λ sees the encoder summary of each view (fixed over the steps: a λ-network weighs the views
    once per decode). ``average``: "probs" averages
    the views' next-token distributions (SCAN); "logits" their logits, EquiLM's definition.
    ``choose(log_p, t)`` picks token t from the averaged log-probabilities (greedy by default;
    a sampler for language models); view g is fed g·token. A sequence ends at any of
    ``stop_ids``. Returns the averaged log-probabilities (B, T, V), like GreedyDecoder.
    """

    def __init__(self, model: nn.Module, group: VocabularyGroup, weighting: Weighting | None = None,
                 eos_id: int = 2, pad_id: int = 0, max_len: int = 50, *, average: str = "probs",
                 choose: Callable[[torch.Tensor, int], torch.Tensor] | None = None, stop_ids: Sequence[int] = ()):
        super().__init__()
        if average not in ("probs", "logits"):
            raise ValueError(f"average must be probs or logits, got {average!r}")
        self.model, self.group = model, group
        self.operator = EquivariantWrapper(model, group, weighting)  # for pull_back and aggregate
        self.eos_id, self.pad_id, self.max_len, self.average = eos_id, pad_id, max_len, average
        self.choose = choose or (lambda log_p, t: log_p.argmax(-1))
        # buffers, so that .to(device) moves them once; not saved (they follow from the arguments)
        self.register_buffer("stop_ids", torch.tensor(sorted({eos_id, *stop_ids})), persistent=False)
        self.register_buffer("output_id_perms", group.output_ids.perms, persistent=False)  # row g: id → g·id

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        return self.generate(src)[0]

    def generate(self, src: torch.Tensor, keep_scores: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(averaged log-probabilities (B, T, V), the chosen tokens (B, T)); (None, tokens) without
        ``keep_scores``, for callers that read only the tokens: over a language model's vocabulary
        the (B, T, V) would be most of what decoding holds."""
        batch = src.shape[0]
        stop_ids, id_perms = self.stop_ids.to(src.device), self.output_id_perms.to(src.device)  # no-ops once moved
        state, summary = self.model.start(self.group.orbit(src))
        features = summary.reshape(self.group.order, batch, -1)
        weighting = self.operator.weighting
        weights = None if weighting.reads_outputs else weighting(None, features)  # λ: the same at every step
        prev = torch.full((self.group.order * batch,), self.model.sos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(batch, dtype=torch.bool, device=src.device)
        ended = 0  # how many sequences are done, read once per step
        steps, tokens = [], []
        for t in range(self.max_len):
            log_p, state = self.next_log_p(prev, state, features, weights)
            if ended:
                log_p = after_end(log_p, done, self.pad_id)
            if keep_scores:
                steps.append(log_p)
            token = self.choose(log_p, t)
            del log_p  # not held through the next step's model call (kept in steps, if kept)
            tokens.append(token)
            prev = id_perms[:, token].reshape(-1)  # view g is fed g·token, views in the orbit's order
            done = done | torch.isin(token, stop_ids)
            ended = int(done.sum())
            if ended == batch:
                break
        return torch.stack(steps, dim=1) if keep_scores else None, torch.stack(tokens, dim=1)

    def next_log_p(self, prev: torch.Tensor, state, features: torch.Tensor,
                   weights: torch.Tensor | None) -> tuple[torch.Tensor, object]:
        """One step of every view → the operator's average as log-probabilities (B, V), and the
        next state. ``weights``: λ's, computed before, or None for the weighting to weigh this step's
        views. Each (|G|·B, V) tensor is let go as soon as the next is made: over a language model's
        vocabulary they are the largest things decoding holds."""
        logits, state = self.model.step(prev, state)
        views = self.operator.pull_back(torch.softmax(logits, dim=-1) if self.average == "probs" else logits)
        del logits  # the views are a copy
        p = self.operator.aggregate(views, features, weights)[0]
        del views
        return (torch.log(p.clamp_min(1e-30)) if self.average == "probs" else torch.log_softmax(p, dim=-1)), state


class PairAction:
    """Acts on [commands | targets] (B, S + T): command ids by the input permutation, target
    ids by the output permutation, so teacher forcing feeds view g the target g·y."""

    def __init__(self, group: VocabularyGroup, src_len: int):
        self.group, self.src_len = group, src_len

    def check(self, pair: torch.Tensor) -> None:
        self.group.input_action.check(pair[:, : self.src_len])
        self.group.output_ids.check(pair[:, self.src_len :])

    def __call__(self, g: int, pair: torch.Tensor) -> torch.Tensor:
        src, tgt = pair[:, : self.src_len], pair[:, self.src_len :]
        return torch.cat([self.group.act_input(g, src), self.group.act_output_ids(g, tgt)], dim=1)


def pair_group(group: VocabularyGroup, src_len: int) -> FiniteGroup:
    """The same group, acting on teacher-forcing pairs; outputs are scores as before."""
    return FiniteGroup(f"{group.name}_pairs", group.table, PairAction(group, src_len), group.output_action)


class TeacherForced(nn.Module):
    """[commands | targets] → per-step probabilities (or log-probabilities) under teacher forcing.

    Wrapped by the operator with ``pair_group`` this trains stepwise equitune and λ (an average
    of distributions) and equizero (straight-through over log-probabilities) like decoding.
    """

    def __init__(self, model: nn.Module, src_len: int, log_probs: bool):
        super().__init__()
        self.model, self.src_len, self.log_probs = model, src_len, log_probs

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        logits = self.model(pair[:, : self.src_len], pair[:, self.src_len :], teacher_forcing=True)
        return torch.log_softmax(logits, -1) if self.log_probs else torch.softmax(logits, -1)


class TeacherForcedOrGreedy(nn.Module):
    """[commands | targets] → per-step log-probabilities over the targets' T steps, teacher-forced
    with probability ``teacher_forcing``, else the model's own greedy decode with all-zero rows
    after its <eos> (and up to T). Wrapped with ``pair_group`` it finetunes the paper's EquiLSTM:
    each view is fed its own target g·y or its own tokens, and the loss is the NLL of the averaged
    log-softmax. One coin per batch, from a generator of its own, so every rank flips the same."""

    def __init__(self, model: nn.Module, src_len: int, eos_id: int, pad_id: int, teacher_forcing: float, seed: int):
        super().__init__()
        self.forced = TeacherForced(model, src_len, log_probs=True)
        self.greedy = GreedyDecoder(model, eos_id, pad_id, ended="zeros")
        self.src_len, self.teacher_forcing = src_len, teacher_forcing
        self.coins = torch.Generator().manual_seed(seed)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        if torch.rand((), generator=self.coins).item() < self.teacher_forcing:
            return self.forced(pair)
        width = pair.shape[1] - self.src_len
        log_p = self.greedy(pair[:, : self.src_len], steps=width)
        return nn.functional.pad(log_p, (0, 0, 0, width - log_p.shape[1]))  # every view ended: zeros


class CommandSummary(nn.Module):
    """[commands | targets] (or the commands alone, src_len None) → the model's encoder summary
    of the commands: what λ sees of each view in training, as in decoding (where per-view λ reads
    GreedyDecoder's ``with_summary``, the same encoder pass). No gradient flows into the model
    through it (λ is trained with the model frozen, then frozen itself)."""

    def __init__(self, model: nn.Module, src_len: int | None = None):
        super().__init__()
        self.model, self.src_len = model, src_len

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.start(pair[:, : self.src_len])[1]
