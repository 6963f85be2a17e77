"""Greedy decoding of autoregressive models, plain and through the operator step by step.

A model here has ``start(src) -> (state, summary)`` and ``step(prev_tokens, state) ->
(logits, state)`` (``equi.models.seq2seq.Seq2Seq``; a KV-cached language model fits
the same two calls). Two ways to make decoding equivariant, both using the one operator:

- sequence level (equizero): ``GreedyDecoder`` is an ordinary model from commands to
  per-step log-probabilities, so ``EquivariantWrapper(GreedyDecoder(m), group, …)``
  decodes every view on its own and picks or averages whole sequences;
- step level (equitune, λ-equitune): ``StepwiseEquivariantDecoder`` applies the
  operator to the next-token distributions at every step and feeds g·token back to view g.

Training under teacher forcing wraps ``TeacherForced`` with ``pair_group``.
"""

from __future__ import annotations

import torch
from torch import nn

from .groups import FiniteGroup, VocabularyGroup
from .operator import EquivariantWrapper
from .proxy import ENDED
from .weighting import Weighting


def after_end(log_p: torch.Tensor, done: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Sequences already ended (done) get a certain <pad> at this step."""
    finished = torch.full_like(log_p, ENDED)
    finished[:, pad_id] = 0.0
    return torch.where(done.unsqueeze(-1), finished, log_p)


class GreedyDecoder(nn.Module):
    """Commands (B, S) → log-probabilities (B, T, V) of the greedy output, T ≤ max_len.

    After a sequence emits <eos> its later steps are a certain <pad>, so sequences of
    different lengths stack and the operator can compare them position by position.
    """

    def __init__(self, model: nn.Module, eos_id: int, pad_id: int = 0, max_len: int = 50):
        super().__init__()
        self.model, self.eos_id, self.pad_id, self.max_len = model, eos_id, pad_id, max_len

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        state, _ = self.model.start(src)
        prev = torch.full((src.shape[0],), self.model.sos_id, dtype=torch.long, device=src.device)
        done = torch.zeros_like(prev, dtype=torch.bool)
        steps = []
        for _ in range(self.max_len):
            logits, state = self.model.step(prev, state)
            log_p = after_end(torch.log_softmax(logits, dim=-1), done, self.pad_id)
            steps.append(log_p)
            prev = log_p.argmax(-1)
            done = done | (prev == self.eos_id)
            if done.all():
                break
        return torch.stack(steps, dim=1)


class StepwiseEquivariantDecoder(nn.Module):
    """Greedy decoding with p_t = Σ_g λ(g·x) g⁻¹·p(· | g·x, g·y_<t) / Σ_g λ(g·x) at every step.

    λ sees the encoder summary of each view (fixed over the steps). Returns the averaged
    log-probabilities (B, T, V), like GreedyDecoder.
    """

    def __init__(self, model: nn.Module, group: VocabularyGroup, weighting: Weighting | None = None,
                 eos_id: int = 2, pad_id: int = 0, max_len: int = 50):
        super().__init__()
        self.model, self.group = model, group
        self.operator = EquivariantWrapper(model, group, weighting)  # for pull_back and aggregate
        self.eos_id, self.pad_id, self.max_len = eos_id, pad_id, max_len

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        batch = src.shape[0]
        state, summary = self.model.start(self.group.orbit(src))
        features = summary.reshape(self.group.order, batch, -1)
        prev = torch.full((self.group.order * batch,), self.model.sos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(batch, dtype=torch.bool, device=src.device)
        steps = []
        for _ in range(self.max_len):
            logits, state = self.model.step(prev, state)
            views = self.operator.pull_back(torch.softmax(logits, dim=-1))
            p, _ = self.operator.aggregate(views, features)
            log_p = after_end(torch.log(p.clamp_min(1e-30)), done, self.pad_id)
            steps.append(log_p)
            token = log_p.argmax(-1)
            prev = torch.cat([self.group.act_output_ids(g, token) for g in self.group.elements])
            done = done | (token == self.eos_id)
            if done.all():
                break
        return torch.stack(steps, dim=1)


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

    Wrapped by the operator with ``pair_group`` this trains equitune (an average of
    distributions) and equizero (straight-through over log-probabilities) like decoding.
    """

    def __init__(self, model: nn.Module, src_len: int, log_probs: bool):
        super().__init__()
        self.model, self.src_len, self.log_probs = model, src_len, log_probs

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        logits = self.model(pair[:, : self.src_len], pair[:, self.src_len :], teacher_forcing=True)
        return torch.log_softmax(logits, -1) if self.log_probs else torch.softmax(logits, -1)


class CommandSummary(nn.Module):
    """[commands | targets] → the model's encoder summary of the commands: what λ sees in
    ``StepwiseEquivariantDecoder``, for training λ under teacher forcing. No gradient flows
    into the model through it (λ is trained with the model frozen, then frozen itself)."""

    def __init__(self, model: nn.Module, src_len: int):
        super().__init__()
        self.model, self.src_len = model, src_len

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model.start(pair[:, : self.src_len])[1]
