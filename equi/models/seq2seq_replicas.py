"""K independent copies of the paper's SCAN model (``PaperSeq2Seq``) trained in one pass.

The paper's recipe takes one example per Adam step, so a CPU (or a GPU) spends a step's time on
the overhead of a few hundred tiny operations, not on arithmetic. A table needs many such models
(seeds × splits), so they are trained together: every parameter gets a leading replica axis
(K, …), every layer is a batched matmul over it (``bmm``), and replica k only ever reads its own
slice, so the K models are K solo models computed side by side: same initialisation, same
examples, same arithmetic up to the order of floating-point sums inside a matmul.

A replica dimension in the layers themselves was chosen over ``torch.func.vmap`` of the module:
vmap has no batching rule for ``nn.LSTM``'s packed sequences and falls back to a Python loop
over the replicas, and the replicas' targets have different lengths, which the explicit form
pads and masks per replica. The cells are written out as in ``torch.nn.{RNN,GRU,LSTM}`` (same
gate order, same biases), so a replica's weights are a ``PaperSeq2Seq`` state dict.
"""

from __future__ import annotations

import torch
from torch import nn

from .seq2seq import PaperSeq2Seq


def _sanitise(name: str) -> str:
    return name.replace(".", "__")


class _LinearWithDeferredWeightGrad(torch.autograd.Function):
    """x W^T + b whose backward returns x's gradient only and leaves (x, gradient) in `stash`.

    With one example per replica, a weight used at every time step would get a rank-one
    gradient written to memory at every step (the cost that makes one-example training
    memory-bound, solo or not); stashed, the whole sequence's weight gradient is one matmul
    (``ReplicaPaperSeq2Seq.add_deferred_grads``)."""

    @staticmethod
    def forward(ctx, x, weight, weight_t, bias, stash, key):
        ctx.save_for_backward(x, weight)
        ctx.stash, ctx.key = stash, key
        return torch.baddbmm(bias.unsqueeze(1), x, weight_t)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        ctx.stash.setdefault(ctx.key, []).append((x, grad))
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        return grad_x, None, None, None, None, None


class ReplicaPaperSeq2Seq(nn.Module):
    """K ``PaperSeq2Seq`` models of one shape, their parameters stacked along a first axis.

    ``forward(src, tgt, forced)`` takes per-replica batches (K, b, S) and (K, b, T) and a
    per-replica teacher-forcing coin (K,) and returns logits (K, b, T, V), each replica's
    computed from its own weights only."""

    def __init__(self, models: list[PaperSeq2Seq]):
        super().__init__()
        first = models[0]
        self.replicas = len(models)
        self.cell = "lstm" if first.is_lstm else ("gru" if isinstance(first.encoder, nn.GRU) else "rnn")
        self.pad_id, self.sos_id = first.pad_id, first.sos_id
        self.dropout_p = first.dropout.p
        self.names = [name for name, _ in first.named_parameters()]
        self.params = nn.ParameterDict({
            _sanitise(name): nn.Parameter(torch.stack([dict(m.named_parameters())[name].detach() for m in models]))
            for name in self.names})
        self.stash: dict[tuple, list] = {}

    def add_deferred_grads(self) -> None:
        """After backward: the stashed layers' weight and bias gradients, one matmul per layer over
        every step's (input, output gradient), added to the parameters' .grad."""
        for (weights, biases), pairs in self.stash.items():
            x = torch.cat([x for x, _ in pairs], dim=1)  # (R, steps·b, in)
            grad = torch.cat([g for _, g in pairs], dim=1)  # (R, steps·b, out)
            grads = (torch.bmm(grad.transpose(1, 2), x), grad.sum(1))
            for names, total in zip((weights, biases), grads):
                for name, part in zip(names, total.chunk(len(names))):
                    param = self.weight(name)
                    param.grad = part.clone() if param.grad is None else param.grad.add_(part)
        self.stash.clear()

    def weight(self, name: str) -> torch.Tensor:
        return self.params[_sanitise(name)]

    def named_weights(self) -> list[tuple[str, nn.Parameter]]:
        """The stacked parameters under a ``PaperSeq2Seq``'s names."""
        return [(name, self.weight(name)) for name in self.names]

    def state_dict_of(self, replica: int) -> dict[str, torch.Tensor]:
        """Replica `replica`'s weights as a ``PaperSeq2Seq`` state dict (copies)."""
        return {name: self.weight(name)[replica].detach().clone() for name in self.names}

    def layer(self, weights: tuple[str, ...], biases: tuple[str, ...]):
        """x ↦ x Wᵀ + b for the weights named (several: stacked along the replica axis, e.g. both
        directions of the encoder); while training, their gradients are deferred to
        add_deferred_grads."""
        weight = torch.cat([self.weight(n) for n in weights]) if len(weights) > 1 else self.weight(weights[0])
        bias = torch.cat([self.weight(n) for n in biases]) if len(biases) > 1 else self.weight(biases[0])
        weight_t = weight.detach().transpose(1, 2).contiguous()  # read row by row at every step: ~2× faster
        if not torch.is_grad_enabled():
            return lambda x: torch.baddbmm(bias.unsqueeze(1), x, weight_t)
        key = (weights, biases)
        return lambda x: _LinearWithDeferredWeightGrad.apply(x, weight, weight_t, bias, self.stash, key)

    # layers with a replica axis: x (K, N, in) -----------------------------------------------------
    def embed(self, name: str, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (K, …) → (K, …, D), each replica reading its own table; the padding row is zero
        and gets no gradient (nn.Embedding's padding_idx)."""
        table = self.weight(f"{name}.weight")
        rows = torch.arange(self.replicas, device=tokens.device).view(-1, *([1] * (tokens.ndim - 1)))
        return table[rows, tokens] * (tokens != self.pad_id).unsqueeze(-1)

    def cell_step(self, gates_in: torch.Tensor, state, hidden_layer):
        """One step of the cell from precomputed input gates (R, N, G·H) and the state (R, N, H)
        (LSTM: a pair), as torch.nn's cells compute it; hidden_layer is h ↦ W_hh h + b_hh."""
        h = state[0] if self.cell == "lstm" else state
        gates_h = hidden_layer(h)
        if self.cell == "lstm":
            i, f, g, o = (gates_in + gates_h).chunk(4, dim=-1)
            c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        if self.cell == "gru":
            r_in, z_in, n_in = gates_in.chunk(3, dim=-1)
            r_h, z_h, n_h = gates_h.chunk(3, dim=-1)
            r, z = torch.sigmoid(r_in + r_h), torch.sigmoid(z_in + z_h)
            n = torch.tanh(n_in + r * n_h)
            return (1 - z) * n + z * h
        return torch.tanh(gates_in + gates_h)

    @staticmethod
    def _output(state):
        return state[0] if isinstance(state, tuple) else state

    @staticmethod
    def _where(keep: torch.Tensor, new, old):
        if isinstance(new, tuple):
            return tuple(torch.where(keep, n, o) for n, o in zip(new, old))
        return torch.where(keep, new, old)

    def encode(self, src: torch.Tensor):
        """The bidirectional encoder over each command's unpadded words (as packed sequences):
        both directions stepped together (2K rows). Returns memory (K, b, S, 2H), zero at
        padding, the mask (K, b, S) and the decoder's first state (K, b, 2H)."""
        k, b, s = src.shape
        mask = src != self.pad_id
        lengths = mask.sum(-1).clamp(min=1)  # (K, b)
        embedded = self.embed("embed_in", src).reshape(k, b * s, -1)
        gates_in = torch.cat([self.linear_pair("encoder", "_l0", embedded), self.linear_pair("encoder", "_l0_reverse", embedded)])
        gates_in = gates_in.reshape(2 * k, b, s, -1)
        hidden_layer = self.layer(("encoder.weight_hh_l0", "encoder.weight_hh_l0_reverse"),
                                  ("encoder.bias_hh_l0", "encoder.bias_hh_l0_reverse"))
        hidden = self.weight("encoder.weight_hh_l0").shape[-1]
        zeros = src.new_zeros((2 * k, b, hidden), dtype=gates_in.dtype)
        state = (zeros, zeros) if self.cell == "lstm" else zeros
        positions = torch.arange(s, device=src.device)
        forward_out, backward_out = [], [None] * s
        for t in range(s):
            back = s - 1 - t  # the reverse direction reads the command from its last word
            step_in = torch.cat([gates_in[:k, :, t], gates_in[k:, :, back]])
            valid = torch.cat([positions[t] < lengths, positions[back] < lengths]).unsqueeze(-1)  # (2K, b, 1)
            state = self._where(valid, self.cell_step(step_in, state, hidden_layer), state)
            out = self._output(state) * valid
            forward_out.append(out[:k])
            backward_out[back] = out[k:]
        memory = torch.cat([torch.stack(forward_out, 2), torch.stack(backward_out, 2)], dim=-1)

        def side_by_side(h):  # (2K, b, H): forward then backward → (K, b, 2H)
            return torch.cat([h[:k], h[k:]], dim=-1)

        first = tuple(side_by_side(h) for h in state) if self.cell == "lstm" else side_by_side(state)
        return memory, mask, first

    def linear_pair(self, module: str, suffix: str, x: torch.Tensor) -> torch.Tensor:
        """x W_ih + b_ih of an RNN layer's direction `suffix`."""
        return torch.baddbmm(self.weight(f"{module}.bias_ih{suffix}").unsqueeze(1), x,
                             self.weight(f"{module}.weight_ih{suffix}").transpose(1, 2))

    def start(self, src: torch.Tensor):
        """Encode commands (K, b, S) → the decoder's first state and what its steps read."""
        k, b, _ = src.shape
        memory, mask, state = self.encode(src)
        flat_memory = memory.reshape(k * b, memory.shape[2], -1)
        layers = (self.layer(("combine.weight",), ("combine.bias",)),
                  self.layer(("decoder.weight_ih_l0",), ("decoder.bias_ih_l0",)),
                  self.layer(("decoder.weight_hh_l0",), ("decoder.bias_hh_l0",)),
                  self.layer(("out.weight",), ("out.bias",)))
        return state, (flat_memory, flat_memory.transpose(1, 2), ~mask.reshape(k * b, 1, -1), layers)

    def step(self, prev: torch.Tensor, state, read):
        """One decoder step for every replica: previous tokens (K, b) → logits (K, b, V), next state
        (``PaperSeq2Seq.step``: attention from the state before the step)."""
        memory, keys, blocked, (combine, input_layer, hidden_layer, out) = read
        k, b = prev.shape
        query = self._output(state).reshape(k * b, 1, -1)
        weights = torch.softmax(torch.bmm(query, keys).masked_fill(blocked, float("-inf")), dim=-1)
        context = torch.bmm(weights, memory).reshape(k, b, -1)
        embedded = nn.functional.dropout(self.embed("embed_out", prev), self.dropout_p, self.training)
        combined = torch.relu(combine(torch.cat([embedded, context], dim=-1)))
        state = self.cell_step(input_layer(combined), state, hidden_layer)
        return out(self._output(state)), state

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, forced: torch.Tensor) -> torch.Tensor:
        """Logits (K, b, T, V) for targets (K, b, T), stepped one token at a time as
        ``PaperSeq2Seq.forward``: replica k's decoder reads the true previous tokens where
        forced[k], else its own greedy predictions."""
        k, b, steps = tgt.shape
        state, read = self.start(src)
        forced = forced.view(k, 1)
        prev = torch.full((k, b), self.sos_id, dtype=torch.long, device=src.device)
        logits = []
        for t in range(steps):
            step_logits, state = self.step(prev, state, read)
            logits.append(step_logits)
            prev = torch.where(forced, tgt[:, :, t], step_logits.argmax(-1))
        return torch.stack(logits, dim=2)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, eos_id: int, max_len: int) -> torch.Tensor:
        """Greedy tokens (K, b, T ≤ max_len), stopping once every sequence has said <eos> (as
        ``equi.sequence.GreedyDecoder`` decodes one model)."""
        state, read = self.start(src)
        prev = torch.full(src.shape[:2], self.sos_id, dtype=torch.long, device=src.device)
        done, tokens = torch.zeros_like(prev, dtype=torch.bool), []
        for _ in range(max_len):
            logits, state = self.step(prev, state, read)
            prev = logits.argmax(-1)
            tokens.append(prev)
            done |= prev == eos_id
            if done.all():
                break
        return torch.stack(tokens, dim=2)
