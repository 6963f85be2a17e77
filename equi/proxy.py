"""Proxy losses for equizero: lower means "the model is more at home with this view".

Each takes outputs of shape (…, C), scores over C classes/actions/tokens, and returns
one loss per leading position (…); the operator averages any axes beyond (|G|, B).
A sequence proxy may reduce the time axis itself. Adding a proxy is adding one function
to PROXIES.
"""

from __future__ import annotations

from typing import Callable

import torch

Proxy = Callable[[torch.Tensor], torch.Tensor]


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits): confident predictions have low entropy."""
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


def neg_max_prob(logits: torch.Tensor) -> torch.Tensor:
    """Negative largest softmax probability.

    For Q-values this is the paper's "negative softmax-normalised value" (DQN, appendix
    C.1): normalise Q over actions by a softmax and prefer the view with the largest one.
    """
    return -torch.softmax(logits, dim=-1).amax(-1)


def max_prob(logits: torch.Tensor) -> torch.Tensor:
    """The largest softmax probability itself, so that the argmin picks the *least* confident view:
    what the paper's CNN code runs as "max probability" equizero. Not a choice of method.proxy:
    only task.paper_protocol.bugs.argmin_max_prob puts it in place of neg_max_prob."""
    return torch.softmax(logits, dim=-1).amax(-1)


def neg_similarity(scores: torch.Tensor) -> torch.Tensor:
    """Negative best raw score, e.g. CLIP's image–text similarity with the best class."""
    return -scores.amax(-1)


ENDED = -1e9  # log-probability of every token but <pad> at the steps after a decoded sequence ended


def seq_neg_max_prob(log_probs: torch.Tensor) -> torch.Tensor:
    """neg_max_prob averaged over the decoded steps of a sequence (…, T, V) → (…).

    The steps after <eos> (certain <pad>, see equi.sequence) are left out: counted, they
    would make a view that stops early look confident.
    """
    decoded = (log_probs > ENDED / 2).sum(-1) > 1
    per_step = -log_probs.amax(-1).exp()
    return (per_step * decoded).sum(-1) / decoded.sum(-1).clamp(min=1)


PROXIES: dict[str, Proxy] = {
    "entropy": entropy,
    "neg_max_prob": neg_max_prob,
    "neg_softmax_value": neg_max_prob,
    "neg_similarity": neg_similarity,
    "seq_neg_max_prob": seq_neg_max_prob,
}


def get_proxy(name: str) -> Proxy:
    if name not in PROXIES:
        raise ValueError(f"unknown proxy loss {name!r}; choose one of: {', '.join(sorted(PROXIES))}")
    return PROXIES[name]
