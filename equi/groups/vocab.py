"""Groups that permute words: SCAN's jump↔run, NLG's man↔woman, three-way cycles.

One generator moves every listed word one step along its cycle ([[a, b, c]] maps
a→b→c→a), in the input and the output vocabulary at once; the group is the cyclic
group it generates. Inputs are token ids; outputs are scores over the output vocabulary,
or decoded ids through ``act_output_ids``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .base import FiniteGroup, IdPermutation, ScorePermutation, cyclic_table, permutation_order, permutation_powers


def cycles_to_permutation(vocab: Sequence[str], cycles: Sequence[Sequence[str]]) -> list[int]:
    """The permutation of vocabulary indices that moves each word one step along its cycle."""
    index = {word: i for i, word in enumerate(vocab)}
    perm = list(range(len(vocab)))
    seen: set[str] = set()
    for cycle in cycles:
        if len(cycle) < 2:
            raise ValueError(f"a cycle needs at least two words, got {list(cycle)}")
        for word in cycle:
            if word not in index:
                raise ValueError(f"word {word!r} is not in the vocabulary ({len(vocab)} words)")
            if word in seen:
                raise ValueError(f"word {word!r} appears in more than one cycle")
            seen.add(word)
        for src, dst in zip(cycle, list(cycle[1:]) + [cycle[0]]):
            perm[index[src]] = index[dst]
    return perm


@dataclass(frozen=True)
class VocabularyGroup(FiniteGroup):
    """Cyclic group permuting input token ids and output scores by the given word cycles."""

    output_ids: IdPermutation

    def act_output_ids(self, g: int, ids: torch.Tensor) -> torch.Tensor:
        """Transform decoded output token ids (rather than scores over them)."""
        return self.output_ids(g, ids)


def vocabulary_cycles(
    input_vocab: Sequence[str],
    input_cycles: Sequence[Sequence[str]],
    output_vocab: Sequence[str] | None = None,
    output_cycles: Sequence[Sequence[str]] | None = None,
    name: str = "vocabulary",
) -> VocabularyGroup:
    """Build the group; without an output vocabulary the outputs are scores over the input one."""
    if output_vocab is None:
        output_vocab, output_cycles = input_vocab, input_cycles
    gen_in = cycles_to_permutation(input_vocab, input_cycles)
    gen_out = cycles_to_permutation(output_vocab, output_cycles or [])
    order = math.lcm(permutation_order(gen_in), permutation_order(gen_out))
    in_perms, out_perms = permutation_powers(gen_in, order), permutation_powers(gen_out, order)
    return VocabularyGroup(
        name,
        cyclic_table(order),
        IdPermutation(in_perms, what="token id"),
        ScorePermutation(out_perms),
        IdPermutation(out_perms, what="output token id"),
    )
