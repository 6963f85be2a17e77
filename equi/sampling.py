"""Top-k sampling that commutes with vocabulary permutations, and EquizeroLM's chunk search.

Equivariance of a sampled generation needs the same random draw to pick σ(token) from σ-permuted
scores. Drawing an *index* into the vocabulary does not; drawing a *rank* among the sorted top-k
does: ``sample_rank`` inverts the CDF of the sorted top-k probabilities at a uniform draw u.

EquizeroLM (Basu et al. 2023, app. C.2) generates a chunk of k tokens from every g·context,
maps each back by g⁻¹, keeps the one with the best proxy (regard) and repeats. Here that is the
operator itself: ``ChunkSampler`` is the model M (context ids → the sampled chunk as scores
over the vocabulary), ``RegardProxy`` the proxy of ``ProxyArgmin``. Each view's draws belong to
its content (its rank in the sorted orbit), not to its place in the batch, so two contexts that
are swaps of each other draw the same chunks for the same contents.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .data.fairness import MASK
from .groups import FiniteGroup
from .models.regard import SCORE
from .proxy import ENDED


def sample_rank(log_p: torch.Tensor, u: torch.Tensor, top_k: int) -> torch.Tensor:
    """Token of each row (B, V) drawn by inverse CDF over its sorted top-k at u (B,) in [0, 1)."""
    top, idx = log_p.topk(min(top_k, log_p.shape[-1]), dim=-1)
    cdf = torch.softmax(top.float(), dim=-1).cumsum(-1)
    rank = torch.searchsorted(cdf, (u.to(cdf) * cdf[:, -1]).unsqueeze(-1)).clamp_max(top.shape[-1] - 1)
    return idx.gather(-1, rank).squeeze(-1)


class RankSampler:
    """``choose`` for ``StepwiseEquivariantDecoder``: row b's token t from draws[b, t]."""

    def __init__(self, draws: torch.Tensor, top_k: int):
        self.draws, self.top_k = draws, top_k

    def __call__(self, log_p: torch.Tensor, t: int) -> torch.Tensor:
        return sample_rank(log_p, self.draws[:, t], self.top_k)


def orbit_ranks(group: FiniteGroup, rows: torch.Tensor) -> torch.Tensor:
    """For each row of ids, its rank among the distinct members of its orbit in lexicographic order:
    a label of the row's content that does not depend on where the row sits in a batch."""
    views = torch.stack([group.act_input(g, rows) for g in group.elements]).tolist()  # (|G|, N, L)
    ranks = []
    for i, row in enumerate(rows.tolist()):
        orbit = sorted({tuple(view[i]) for view in views})
        ranks.append(orbit.index(tuple(row)))
    return torch.tensor(ranks, device=rows.device)


class ChunkSampler(nn.Module):
    """M for EquizeroLM: context ids (N, L) → the next k sampled tokens as scores (N, k, V): the
    token's log-probability at its id and ENDED elsewhere, so the group's score action maps a
    chunk back by g⁻¹ and argmax reads it. After a stop token the chunk is certain ``stop_ids[0]``.

    ``use_draws(u)``, u of shape (B, |G|, k), before each call: sample b's rows draw from
    u[b, rank of the row's content in its orbit]. Rows are the operator's stacked views, so
    row i belongs to sample i mod B.
    """

    def __init__(self, step_lm: nn.Module, group: FiniteGroup, k: int, top_k: int, stop_ids: Sequence[int]):
        super().__init__()
        self.step_lm, self.group, self.k, self.top_k = step_lm, group, k, top_k
        self.stop_ids = torch.tensor(list(stop_ids))
        self.draws: torch.Tensor | None = None

    def use_draws(self, draws: torch.Tensor) -> None:
        self.draws = draws

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        n, batch = rows.shape[0], self.draws.shape[0]
        u = self.draws[torch.arange(n) % batch, orbit_ranks(self.group, rows)]  # (N, k)
        state, _ = self.step_lm.start(rows)
        prev = torch.full((n,), self.step_lm.sos_id, dtype=torch.long, device=rows.device)
        done = torch.zeros(n, dtype=torch.bool, device=rows.device)
        chunk = []
        for t in range(self.k):
            logits, state = self.step_lm.step(prev, state)
            log_p = torch.log_softmax(logits.float(), dim=-1)
            token = torch.where(done, self.stop_ids[0].to(rows.device), sample_rank(log_p, u[:, t], self.top_k))
            scores = torch.full_like(log_p, ENDED)
            scores.scatter_(-1, token[:, None], torch.where(done, 0.0, log_p.gather(-1, token[:, None]).squeeze(-1))[:, None])
            chunk.append(scores)
            done = done | torch.isin(token, self.stop_ids.to(rows.device))
            prev = token
        return torch.stack(chunk, dim=1)


class RegardProxy:
    """Equizero's loss for a chunk: −(10·regard score of context + chunk + the chunk's summed token
    probabilities), so the best regard wins and ties go to the more probable chunk (scores are
    −1, 0, 1; the sum of k probabilities is at most k < 10).

    The sentence scored is the canonical member of its orbit (the smallest token sequence among
    its g-transforms), so the proxy is G-invariant and EquizeroLM equivariant: a classifier that
    scored "she" and "he" differently would otherwise pick differently for the two subjects.
    With masking the subject's tokens are replaced by ``XYZ`` first.

    ``use_prefix(ids, subject_tokens, mask)`` before each call: the sentences so far (B, L) in the
    original subject's words and how many leading tokens are the subject.
    """

    def __init__(self, scorer, tokenizer, stop_ids: Sequence[int], group: FiniteGroup):
        self.scorer, self.tokenizer, self.stop_ids, self.group = scorer, tokenizer, set(stop_ids), group
        self.prefix: list[list[int]] = []
        self.subject_tokens: list[int] = []
        self.mask = True

    def use_prefix(self, ids: torch.Tensor, subject_tokens: Sequence[int], mask: bool) -> None:
        self.prefix, self.subject_tokens, self.mask = ids.tolist(), list(subject_tokens), mask

    def __call__(self, chunks: torch.Tensor) -> torch.Tensor:
        """chunks: g⁻¹-mapped chunk scores (|G|, B, k, V) → loss (|G|, B)."""
        log_p, tokens = chunks.max(-1)
        texts, probs = [], torch.zeros(chunks.shape[:2])
        for g in range(chunks.shape[0]):
            for b in range(chunks.shape[1]):
                kept = []
                for t, token in enumerate(tokens[g, b].tolist()):
                    if token in self.stop_ids:
                        break
                    kept.append(token)
                    probs[g, b] += float(log_p[g, b, t].exp())
                texts.append(self.canonical_text(self.prefix[b] + kept, self.subject_tokens[b]))
        score = torch.tensor([SCORE[int(label)] for label in self.scorer.labels(texts)]).reshape(probs.shape)
        return -(10.0 * score + probs).to(chunks.device)

    def canonical_text(self, ids: list[int], subject_tokens: int) -> str:
        body = ids[subject_tokens:] if self.mask else ids
        row = torch.tensor([body], dtype=torch.long)
        canonical = min(self.group.act_input(g, row)[0].tolist() for g in self.group.elements)
        text = self.tokenizer.decode(canonical, skip_special_tokens=True)
        return MASK + text if self.mask else text


def sentence_text(tokenizer, ids: Sequence[int], subject: str, mask: bool) -> str:
    """Decoded sentence, with the subject (its leading "The man") replaced by XYZ when masking."""
    text = tokenizer.decode(list(ids), skip_special_tokens=True)
    return MASK + text[len(subject):] if mask and text.startswith(subject) else text
