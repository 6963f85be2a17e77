"""Encoder–decoder RNN / GRU / LSTM with dot-product attention (the SCAN models).

One layer and a bidirectional encoder in both. ``Seq2Seq`` (ours) attends after the decoder
step (Luong). ``PaperSeq2Seq`` is the model the paper pretrains (Gordon et al.'s
``AttnDecoderRNN``): it attends from the previous hidden state before the step. Both expose
``start``/``step`` so decoding loops (plain or equivariant, in ``equi.sequence``) drive them
one token at a time for a whole batch, and ``summary_dim``, the width of the command summary
λ-networks read.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def encode(encoder: nn.Module, embedded: torch.Tensor, mask: torch.Tensor):
    """Run the (bidirectional) encoder over the unpadded part of each command: outputs (B, S, 2H),
    zero at padding, and its final states."""
    lengths = mask.sum(1).clamp(min=1)
    packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
    outputs, final = encoder(packed)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=mask.shape[1])
    return outputs, final


def mean_over_commands(memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The (B, D) mean of memory over each command's words: the summary λ-networks read."""
    return (memory * mask.unsqueeze(-1)).sum(1) / mask.sum(1).clamp(min=1).unsqueeze(-1)


class Seq2Seq(nn.Module):
    def __init__(self, cell: str, in_vocab: int, out_vocab: int, hidden: int = 64, dropout: float = 0.1,
                 pad_id: int = 0, sos_id: int = 1):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of: {', '.join(CELLS)}")
        layer = CELLS[cell]
        self.is_lstm = cell == "lstm"
        self.pad_id, self.sos_id = pad_id, sos_id
        self.embed_in = nn.Embedding(in_vocab, hidden, padding_idx=pad_id)
        self.encoder = layer(hidden, hidden, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden, hidden)
        self.memory_proj = nn.Linear(2 * hidden, hidden)
        self.embed_out = nn.Embedding(out_vocab, hidden, padding_idx=pad_id)
        self.decoder = layer(hidden, hidden, batch_first=True)  # stepped one token at a time, or run over a whole target
        self.out = nn.Linear(2 * hidden, out_vocab)
        self.dropout = nn.Dropout(dropout)

    def start(self, src: torch.Tensor):
        """Encode (B, S) commands → decoder state and a (B, H) summary (for λ-networks)."""
        mask = src != self.pad_id
        outputs, final = encode(self.encoder, self.dropout(self.embed_in(src)), mask)
        memory = self.memory_proj(outputs)

        def merge(h):  # (2, B, H) forward/backward → (1, B, H)
            return torch.tanh(self.bridge(torch.cat([h[0], h[1]], dim=-1))).unsqueeze(0)

        hidden = (merge(final[0]), merge(final[1])) if self.is_lstm else merge(final)
        return (hidden, memory, mask), mean_over_commands(memory, mask)

    @property
    def summary_dim(self) -> int:
        return self.memory_proj.out_features

    def attend(self, top: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Decoder outputs (B, T, H) → logits (B, T, V) via dot-product attention over memory."""
        scores = torch.bmm(top, memory.transpose(1, 2)).masked_fill(~mask.unsqueeze(1), float("-inf"))
        context = torch.bmm(torch.softmax(scores, dim=-1), memory)
        return self.out(self.dropout(torch.cat([top, context], dim=-1)))

    def step(self, prev: torch.Tensor, state):
        """One decoder step: previous tokens (N,) → logits (N, V) and the next state."""
        hidden, memory, mask = state
        top, hidden = self.decoder(self.dropout(self.embed_out(prev)).unsqueeze(1), hidden)
        return self.attend(top, memory, mask).squeeze(1), (hidden, memory, mask)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, teacher_forcing: bool) -> torch.Tensor:
        """Training pass: logits (B, T, V) for targets (B, T). With teacher forcing the decoder
        reads the true previous tokens in one call; without it, its own greedy predictions."""
        if not teacher_forcing:
            return unrolled(self, src, tgt, teacher_forcing=False)
        (hidden, memory, mask), _ = self.start(src)
        sos = torch.full((src.shape[0], 1), self.sos_id, dtype=torch.long, device=src.device)
        top, _ = self.decoder(self.dropout(self.embed_out(torch.cat([sos, tgt[:, :-1]], dim=1))), hidden)
        return self.attend(top, memory, mask)


class PaperSeq2Seq(nn.Module):
    """The paper's SCAN model (Gordon et al. 2020, ``--use_attention --bidirectional``): the
    decoder's state is the encoder's final forward and backward states side by side (2·hidden
    units, no bridge); each step attends over the encoder outputs with the previous hidden
    state, feeds relu(Linear[embedded token; context]) to the cell and reads the logits from
    the new hidden state. Batched and masked here; the paper runs one example at a time."""

    def __init__(self, cell: str, in_vocab: int, out_vocab: int, hidden: int = 64, dropout: float = 0.1,
                 pad_id: int = 0, sos_id: int = 1):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of: {', '.join(CELLS)}")
        layer, width = CELLS[cell], 2 * hidden
        self.is_lstm = cell == "lstm"
        self.pad_id, self.sos_id = pad_id, sos_id
        self.embed_in = nn.Embedding(in_vocab, hidden, padding_idx=pad_id)
        self.encoder = layer(hidden, hidden, batch_first=True, bidirectional=True)
        self.embed_out = nn.Embedding(out_vocab, width, padding_idx=pad_id)
        self.combine = nn.Linear(2 * width, width)
        self.decoder = layer(width, width, batch_first=True)
        self.out = nn.Linear(width, out_vocab)
        self.dropout = nn.Dropout(dropout)

    @property
    def summary_dim(self) -> int:
        return 2 * self.encoder.hidden_size

    def start(self, src: torch.Tensor):
        """Encode (B, S) commands → decoder state and a (B, 2H) summary (for λ-networks)."""
        mask = src != self.pad_id
        memory, final = encode(self.encoder, self.embed_in(src), mask)

        def side_by_side(h):  # (2, B, H) forward/backward → (1, B, 2H)
            return torch.cat([h[0], h[1]], dim=-1).unsqueeze(0)

        hidden = (side_by_side(final[0]), side_by_side(final[1])) if self.is_lstm else side_by_side(final)
        return (hidden, memory, mask), mean_over_commands(memory, mask)

    def step(self, prev: torch.Tensor, state):
        """One decoder step: previous tokens (N,) → logits (N, V) and the next state."""
        hidden, memory, mask = state
        query = hidden[0] if self.is_lstm else hidden  # (1, N, 2H): the state before this step
        scores = torch.bmm(query.transpose(0, 1), memory.transpose(1, 2)).masked_fill(~mask.unsqueeze(1), float("-inf"))
        context = torch.bmm(torch.softmax(scores, dim=-1), memory)  # (N, 1, 2H)
        embedded = self.dropout(self.embed_out(prev)).unsqueeze(1)
        top, hidden = self.decoder(torch.relu(self.combine(torch.cat([embedded, context], dim=-1))), hidden)
        return self.out(top).squeeze(1), (hidden, memory, mask)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, teacher_forcing: bool) -> torch.Tensor:
        """Training pass: logits (B, T, V) for targets (B, T), stepped one token at a time (the
        attention needs each previous state); the decoder reads the true previous tokens with
        teacher forcing, else its own greedy predictions."""
        return unrolled(self, src, tgt, teacher_forcing)


def unrolled(model: nn.Module, src: torch.Tensor, tgt: torch.Tensor, teacher_forcing: bool) -> torch.Tensor:
    """Logits (B, T, V) from stepping the decoder T times, fed the true previous tokens (teacher
    forcing) or its own greedy predictions."""
    state, _ = model.start(src)
    prev, logits = torch.full((src.shape[0],), model.sos_id, dtype=torch.long, device=src.device), []
    for t in range(tgt.shape[1]):
        step_logits, state = model.step(prev, state)
        logits.append(step_logits)
        prev = tgt[:, t] if teacher_forcing else step_logits.argmax(-1)
    return torch.stack(logits, dim=1)
