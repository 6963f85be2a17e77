"""G-equivariant seq2seq (G-RNN, G-GRU, G-LSTM; Gordon et al., ICLR 2020), trained from scratch.

The same encoder–decoder as ``Seq2Seq``, but every hidden vector is a function on the group
(|G| blocks of `channels`), on which u acts by moving block g to block u·g, and every
weight is tied so that the layer commutes with the group: a linear map W satisfies
W[u·i, u·j] = W[i, j] for all u, i.e. it holds one free parameter per orbit of index pairs.
Embeddings (vocabulary → hidden), recurrent gates (group convolutions), the bridge, the
output layer (hidden → output vocabulary) and biases are all tied this way; attention uses
dot products and sums over positions, which commute with permuting hidden units. So
transforming the command by u transforms the predicted actions by u, by construction.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..groups import VocabularyGroup
from .seq2seq import Seq2Seq


def orbit_index(*perms: torch.Tensor) -> torch.Tensor:
    """Orbit id of every index tuple of a tensor whose axis a is permuted by perms[a][u].

    perms[a] has shape (|G|, n_a); the result has shape (n_0, n_1, …) with ids 0..orbits-1.
    """
    sizes = [p.shape[1] for p in perms]
    code = torch.zeros(perms[0].shape[0], *sizes, dtype=torch.long)
    for axis, p in enumerate(perms):
        shape = [p.shape[0]] + [1] * len(sizes)
        shape[axis + 1] = sizes[axis]
        code = code * sizes[axis] + p.reshape(shape)
    _, ids = torch.unique(code.amin(0), return_inverse=True)  # smallest code over the orbit names it
    return ids


class Tied(nn.Module):
    """Parametrization: a tensor holding one free value per orbit (see ``orbit_index``)."""

    def __init__(self, orbits: torch.Tensor):
        super().__init__()
        self.register_buffer("orbits", orbits)
        self.size = int(orbits.max()) + 1

    def forward(self, free: torch.Tensor) -> torch.Tensor:
        return free[self.orbits]

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        """The closest tied tensor's free values: the mean over each orbit."""
        flat = self.orbits.flatten()
        total = torch.zeros(self.size, dtype=weight.dtype).index_add_(0, flat, weight.detach().flatten())
        return total / torch.bincount(flat, minlength=self.size).to(weight.dtype)


def regular(table: torch.Tensor, channels: int, copies: int = 1) -> torch.Tensor:
    """Index permutation of `copies` functions on G with `channels` channels each:
    unit (c, g, k) moves to (c, u·g, k)."""
    order = table.shape[0]
    block = table[:, :, None] * channels + torch.arange(channels)  # (u, g, k) → (u·g)·channels + k
    block = block.reshape(order, -1)
    return torch.cat([block + c * block.shape[1] for c in range(copies)], dim=1)


class GSeq2Seq(Seq2Seq):
    """``Seq2Seq`` with hidden size |G|·channels and every weight tied to commute with G."""

    def __init__(self, cell: str, group: VocabularyGroup, channels: int = 64, dropout: float = 0.1,
                 pad_id: int = 0, sos_id: int = 1):
        words_in, words_out = group.input_action.perms, group.output_ids.perms
        super().__init__(cell, words_in.shape[1], words_out.shape[1], group.order * channels, dropout, pad_id, sos_id)
        table = group.table
        hidden, pair = regular(table, channels), regular(table, channels, copies=2)
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
        stacked = regular(table, channels, copies=gates)  # gate blocks, each a function on G
        tie = {
            (self.embed_in, "weight"): (words_in, hidden),
            (self.embed_out, "weight"): (words_out, hidden),
            (self.bridge, "weight"): (hidden, pair), (self.bridge, "bias"): (hidden,),
            (self.memory_proj, "weight"): (hidden, pair), (self.memory_proj, "bias"): (hidden,),
            (self.out, "weight"): (words_out, pair), (self.out, "bias"): (words_out,),
        }
        for rnn in (self.encoder, self.decoder):
            for name, _ in list(rnn.named_parameters()):
                tie[(rnn, name)] = (stacked, hidden) if name.startswith("weight") else (stacked,)
        for (module, name), perms in tie.items():
            parametrize.register_parametrization(module, name, Tied(orbit_index(*perms)), unsafe=True)
