"""Finite groups and the actions through which they touch a model's inputs and outputs.

A group here is only its Cayley table (elements are the integers 0..n-1, 0 is the
identity). What the group *does* lives in two separate actions, one on the model's
inputs and one on its outputs, so the same abstract group (say Z2) can swap words in a
vocabulary, mirror an image or permute the actions of an RL agent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, Sequence

import torch


class Action(Protocol):
    """How group element ``g`` transforms a tensor; ``check`` rejects tensors it cannot act on."""

    def __call__(self, g: int, x: torch.Tensor) -> torch.Tensor: ...

    def check(self, x: torch.Tensor) -> None: ...


class TrivialAction:
    """Every element acts as the identity (invariant outputs, e.g. class logits)."""

    def __call__(self, g: int, x: torch.Tensor) -> torch.Tensor:
        return x

    def check(self, x: torch.Tensor) -> None:
        pass


class IdPermutation:
    """Permutes integer ids (tokens, discrete actions): g·v = perms[g][v]."""

    def __init__(self, perms: torch.Tensor, what: str = "id"):
        self.perms = perms
        self.what = what

    def check(self, x: torch.Tensor) -> None:
        if x.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"{self.what}s must be an integer tensor, got dtype {x.dtype}")
        size = self.perms.shape[1]
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= size):
            bad = int(x.min()) if int(x.min()) < 0 else int(x.max())
            raise ValueError(f"{self.what} {bad} is outside the vocabulary of size {size}")

    def __call__(self, g: int, x: torch.Tensor) -> torch.Tensor:
        return self.perms[g].to(x.device)[x.long()]


class ScorePermutation:
    """Permutes the last axis of scores over ids (logits, Q-values): (g·y)[g·v] = y[v]."""

    def __init__(self, perms: torch.Tensor):
        self.perms = perms
        self.inverse_perms = torch.argsort(perms, dim=1)  # row g maps w to g⁻¹·w
        self.moved = (perms != torch.arange(perms.shape[1])).any(0).nonzero()[:, 0]  # ids some element moves
        self.stacked_index: tuple | None = None  # act_stacked's last (key, sources, moved ids), on its device

    def check(self, y: torch.Tensor) -> None:
        if y.shape[-1] != self.perms.shape[1]:
            raise ValueError(f"scores have {y.shape[-1]} entries on the last axis, the group permutes {self.perms.shape[1]}")

    def __call__(self, g: int, y: torch.Tensor) -> torch.Tensor:
        return y.index_select(-1, self.inverse_perms[g].to(y.device))

    def act_stacked(self, elements: Sequence[int], y: torch.Tensor) -> torch.Tensor:
        """y[i] acted on by elements[i], for y of shape (len(elements), …, V), into one new tensor
        instead of a copy per element and a stack of them. Where the group moves few ids (word swaps
        in a language model's vocabulary), a copy of y with the moved columns gathered anew: a
        gather reads y column by column, several times slower than a copy; else one gather. The
        indices stay on y's device for the next call with the same elements (a decoder's every step)."""
        patch = 2 * len(self.moved) < self.perms.shape[1]
        key = (tuple(elements), y.device)
        if self.stacked_index is None or self.stacked_index[0] != key:
            rows = self.inverse_perms[list(elements)]
            self.stacked_index = key, (rows[:, self.moved] if patch else rows).to(y.device), self.moved.to(y.device)
        _, sources, moved = self.stacked_index
        sources = sources.reshape(len(elements), *[1] * (y.ndim - 2), -1)  # expanded below: views, not copies
        if not patch:
            return y.gather(-1, sources.expand(y.shape))
        return y.clone().index_copy_(-1, moved, y.gather(-1, sources.expand(*y.shape[:-1], len(moved))))


@dataclass(frozen=True)
class FiniteGroup:
    """A finite group (Cayley table) with an action on model inputs and one on model outputs."""

    name: str
    table: torch.Tensor  # table[a, b] = a∘b, i.e. act(a, act(b, x)) == act(table[a, b], x)
    input_action: Action
    output_action: Action

    def __post_init__(self):
        n = self.table.shape[0]
        if self.table.shape != (n, n) or any(sorted(row.tolist()) != list(range(n)) for row in self.table):
            raise ValueError(f"{self.name}: Cayley table must be an n×n Latin square, got shape {tuple(self.table.shape)}")
        if self.table[0].tolist() != list(range(n)):
            raise ValueError(f"{self.name}: element 0 must be the identity")

    @property
    def order(self) -> int:
        return self.table.shape[0]

    @property
    def elements(self) -> range:
        return range(self.order)

    def compose(self, a: int, b: int) -> int:
        return int(self.table[a, b])

    @cached_property
    def inverses(self) -> tuple[int, ...]:
        """g⁻¹ of every g, read off the table once (operators invert every element on each call)."""
        return tuple(int((row == 0).nonzero()[0]) for row in self.table)

    def inverse(self, g: int) -> int:
        return self.inverses[g]

    def act_input(self, g: int, x: torch.Tensor) -> torch.Tensor:
        return self.input_action(g, x)

    def act_output(self, g: int, y: torch.Tensor) -> torch.Tensor:
        return self.output_action(g, y)

    def act_output_stacked(self, elements: Sequence[int], y: torch.Tensor) -> torch.Tensor:
        """y[i] transformed by elements[i], for y of shape (len(elements), …): in one operation where the
        output action has one (``act_stacked``, as ScorePermutation), else element by element."""
        act_stacked = getattr(self.output_action, "act_stacked", None)
        if act_stacked is not None:
            return act_stacked(elements, y)
        return torch.stack([self.act_output(g, y[i]) for i, g in enumerate(elements)])

    def act_each(self, elements: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Sample i of the batch transformed by elements[i] (random test-time transforms)."""
        out = x.clone()
        for g in self.elements[1:]:
            chosen = elements.to(x.device) == g
            if chosen.any():
                out[chosen] = self.act_input(g, x[chosen])
        return out

    def orbit(self, x: torch.Tensor, elements: Sequence[int] | None = None) -> torch.Tensor:
        """The copies g·x for every g of `elements` (all of the group by default), stacked on the
        batch axis in that order: shape (len(elements)·B, ...)."""
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"{self.name}: expected a non-empty batch, got shape {tuple(x.shape)}")
        self.input_action.check(x)
        return torch.cat([self.act_input(g, x) for g in (self.elements if elements is None else elements)])


def cyclic_table(n: int) -> torch.Tensor:
    """Z_n: element k is the generator applied k times."""
    idx = torch.arange(n)
    return (idx[:, None] + idx[None, :]) % n


def dihedral_table(n: int) -> torch.Tensor:
    """D_n with element f·n + k = rotate k times after reflecting f times (f ∈ {0, 1}).

    Uses r^a s^fa r^b s^fb = r^(a + (-1)^fa b) s^(fa + fb), since s r s = r⁻¹.
    """
    table = torch.empty(2 * n, 2 * n, dtype=torch.long)
    for fa in range(2):
        for a in range(n):
            for fb in range(2):
                for b in range(n):
                    k = (a + (-1) ** fa * b) % n
                    table[fa * n + a, fb * n + b] = ((fa + fb) % 2) * n + k
    return table


def permutation_powers(generator: Sequence[int], order: int) -> torch.Tensor:
    """Rows are generator^0 .. generator^(order-1) as index maps."""
    gen = torch.as_tensor(list(generator), dtype=torch.long)
    rows = [torch.arange(len(gen))]
    for _ in range(order - 1):
        rows.append(gen[rows[-1]])
    return torch.stack(rows)


def permutation_order(generator: Sequence[int]) -> int:
    """Order of a permutation = lcm of its cycle lengths."""
    seen, order = set(), 1
    for start in range(len(generator)):
        length, v = 0, start
        while v not in seen:
            seen.add(v)
            v = generator[v]
            length += 1
        if length:
            order = math.lcm(order, length)
    return order
