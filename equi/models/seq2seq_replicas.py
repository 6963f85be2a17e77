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

Training backpropagates through time by hand (``_Unrolled``), not through autograd: a step's
cost is the number of operations, and autograd's engine roughly doubles the cost of each tiny
one. The written-out backward also computes every weight's gradient as one matmul over the
whole sequence, instead of a rank-one update written to memory at every time step.
"""

from __future__ import annotations

import torch
from torch import nn

from .seq2seq import PaperSeq2Seq


def _sanitise(name: str) -> str:
    return name.replace(".", "__")


def _h(state):
    return state[0] if isinstance(state, tuple) else state


def _weight_grad(grads: torch.Tensor, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of W and b in y = x Wᵀ + b from output gradients (R, N, out) and inputs (R, N, in)."""
    return torch.bmm(grads.transpose(1, 2), inputs), grads.sum(1)


# gradient · σ'(x) and gradient · tanh'(x) from the activations' outputs, each one operation
_sigmoid_backward, _tanh_backward = torch.ops.aten.sigmoid_backward, torch.ops.aten.tanh_backward


class _Cell:
    """One step of torch.nn's RNN, GRU or LSTM cell from precomputed input gates (R, N, G·H),
    with the replicas' hidden-to-hidden weights, and its backward."""

    def __init__(self, kind: str):
        self.kind = kind

    def forward(self, gates_in, state, hidden_t, hidden_bias):
        """→ the next state, and what backward reads. hidden_t: W_hhᵀ (R, H, G·H)."""
        gates_h = torch.baddbmm(hidden_bias, _h(state), hidden_t)
        if self.kind == "lstm":
            pre = gates_in + gates_h
            act = torch.sigmoid(pre)  # one call for i, f and o (its g quarter goes unused: g is a tanh)
            width = pre.shape[-1] // 4
            g = torch.tanh(pre[..., 2 * width : 3 * width])
            i, f, o = act[..., :width], act[..., width : 2 * width], act[..., 3 * width :]
            c = torch.addcmul(f * state[1], i, g)
            tanh_c = torch.tanh(c)
            return (o * tanh_c, c), (act, g, tanh_c)
        if self.kind == "gru":
            r_in, z_in, n_in = gates_in.chunk(3, dim=-1)
            r_h, z_h, n_h = gates_h.chunk(3, dim=-1)
            r, z = torch.sigmoid(r_in + r_h), torch.sigmoid(z_in + z_h)
            n = torch.tanh(torch.addcmul(n_in, r, n_h))
            return torch.lerp(n, state, z), (r, z, n, n_h)
        h = torch.tanh(gates_in + gates_h)
        return h, h

    def backward(self, d_state, state, saved):
        """Gradients of the step's output state → (d gates_in, d gates_h, the previous state's
        gradient other than through gates_h: LSTM (0, dc), GRU z·dh, RNN None)."""
        if self.kind == "lstm":
            dh, dc = d_state
            act, g, tanh_c = saved
            width = g.shape[-1]
            i, f, o = act[..., :width], act[..., width : 2 * width], act[..., 3 * width :]
            dc = _add_state(dc, _tanh_backward(dh * o, tanh_c))
            upstream = torch.cat([dc * g, dc * state[1], dc * i, dh * tanh_c], dim=-1)
            d_pre = _sigmoid_backward(upstream, act)
            d_pre[..., 2 * width : 3 * width] = _tanh_backward(upstream[..., 2 * width : 3 * width], g)
            return d_pre, d_pre, (None, dc * f)
        if self.kind == "gru":
            r, z, n, n_h = saved
            dn = _tanh_backward(d_state * (1 - z), n)
            dr = _sigmoid_backward(dn * n_h, r)
            dz = _sigmoid_backward(d_state * (state - n), z)
            return torch.cat([dr, dz, dn], dim=-1), torch.cat([dr, dz, dn * r], dim=-1), d_state * z
        d_pre = _tanh_backward(d_state, saved)
        return d_pre, d_pre, None


def _add_state(a, b):
    """a + b for states (LSTM: pairs), None meaning zero."""
    if isinstance(a, tuple):
        return tuple(_add_state(x, y) for x, y in zip(a, b))
    if a is None or b is None:
        return b if a is None else a
    return a + b


class _Unrolled(torch.autograd.Function):
    """Training pass of all replicas: logits (K, b, T, V); backward by hand through time."""

    @staticmethod
    def forward(ctx, net, src, tgt, forced, dropout, *params):
        weights = dict(zip(net.names, params))
        logits, tape = net.unroll(weights, src, tgt, forced, dropout)
        ctx.net, ctx.weights, ctx.tape = net, weights, tape
        return logits

    @staticmethod
    def backward(ctx, d_logits):
        grads = ctx.net.backward_through_time(ctx.weights, ctx.tape, d_logits.contiguous())
        return (None, None, None, None, None, *(grads[name] for name in ctx.net.names))


class ReplicaPaperSeq2Seq(nn.Module):
    """K ``PaperSeq2Seq`` models of one shape, their parameters stacked along a first axis.

    ``forward(src, tgt, forced)`` takes per-replica batches (K, b, S) and (K, b, T) and a
    per-replica teacher-forcing coin (K,) and returns logits (K, b, T, V), each replica's
    computed from its own weights only."""

    def __init__(self, models: list[PaperSeq2Seq]):
        super().__init__()
        first = models[0]
        self.replicas = len(models)
        self.cell = _Cell("lstm" if first.is_lstm else ("gru" if isinstance(first.encoder, nn.GRU) else "rnn"))
        self.pad_id, self.sos_id = first.pad_id, first.sos_id
        self.dropout_p = first.dropout.p
        self.names = [name for name, _ in first.named_parameters()]
        self.params = nn.ParameterDict({
            _sanitise(name): nn.Parameter(torch.stack([dict(m.named_parameters())[name].detach() for m in models]))
            for name in self.names})

    def weight(self, name: str) -> torch.Tensor:
        return self.params[_sanitise(name)]

    def named_weights(self) -> list[tuple[str, nn.Parameter]]:
        """The stacked parameters under a ``PaperSeq2Seq``'s names."""
        return [(name, self.weight(name)) for name in self.names]

    def state_dict_of(self, replica: int) -> dict[str, torch.Tensor]:
        """Replica `replica`'s weights as a ``PaperSeq2Seq`` state dict (copies)."""
        return {name: self.weight(name)[replica].detach().clone() for name in self.names}

    # the forward pass, over weights given by name (K, …) ---------------------------------------
    @staticmethod
    def _lookup(table: torch.Tensor):
        """tokens (K, …) ↦ (K, …, D), each replica reading its own table (K, V, D), whose padding
        row stays zero (nn.Embedding's padding_idx): one lookup in the tables laid end to end."""
        k, vocab, width = table.shape
        flat, offsets = table.reshape(k * vocab, width), torch.arange(0, k * vocab, vocab, device=table.device)
        return lambda tokens: nn.functional.embedding(tokens + offsets.view(-1, *([1] * (tokens.ndim - 1))), flat)

    @staticmethod
    def _transposed(w: dict, names) -> dict:
        """Wᵀ of the weights a loop reads at every step, stored row by row (about 2× faster)."""
        return {n: w[n].transpose(1, 2).contiguous() for n in names}

    def encode(self, w: dict, src: torch.Tensor, tape: dict | None = None):
        """The bidirectional encoder over each command's unpadded words (as packed sequences):
        both directions stepped together (2K rows). Returns memory (K, b, S, 2H), zero at
        padding, and the decoder's first state (K, b, 2H)."""
        k, b, s = src.shape
        lengths = (src != self.pad_id).sum(-1).clamp(min=1)  # (K, b)
        embedded = self._lookup(w["embed_in.weight"])(src).reshape(k, b * s, -1)
        gates_in = [torch.baddbmm(w[f"encoder.bias_ih{d}"].unsqueeze(1), embedded, w[f"encoder.weight_ih{d}"].transpose(1, 2))
                    .reshape(k, b, s, -1) for d in ("_l0", "_l0_reverse")]
        hidden_t = torch.cat([w["encoder.weight_hh_l0"], w["encoder.weight_hh_l0_reverse"]]).transpose(1, 2).contiguous()
        hidden_bias = torch.cat([w["encoder.bias_hh_l0"], w["encoder.bias_hh_l0_reverse"]]).unsqueeze(1)
        zeros = embedded.new_zeros((2 * k, b, hidden_t.shape[1]))
        state = (zeros, zeros) if self.cell.kind == "lstm" else zeros
        # step t of both directions at once, for every t: the forward direction reads word t, the
        # reverse one word s-1-t (a command from its last word); made before the loop, not in it
        step_in = torch.cat([gates_in[0], gates_in[1].flip(2)]).permute(2, 0, 1, 3).contiguous()  # (s, 2K, b, G·H)
        positions = torch.arange(s, device=src.device).view(s, 1, 1)
        valid = torch.cat([positions < lengths, positions.flip(0) < lengths], dim=1).unsqueeze(-1)  # (s, 2K, b, 1)
        kept = valid.to(embedded.dtype)
        forward_out, backward_out, steps = [], [None] * s, []
        for t in range(s):
            new, saved = self.cell.forward(step_in[t], state, hidden_t, hidden_bias)
            steps.append((state, saved))
            state = tuple(torch.where(valid[t], n, o) for n, o in zip(new, state)) if isinstance(new, tuple) \
                else torch.where(valid[t], new, state)
            out = _h(state) * kept[t]
            forward_out.append(out[:k])
            backward_out[s - 1 - t] = out[k:]
        memory = torch.cat([torch.stack(forward_out, 2), torch.stack(backward_out, 2)], dim=-1)
        if tape is not None:
            tape.update(src=src, embedded=embedded, encoder_steps=steps, encoder_kept=kept)

        def side_by_side(h):  # (2K, b, H): forward then backward → (K, b, 2H)
            return torch.cat([h[:k], h[k:]], dim=-1)

        first = tuple(side_by_side(h) for h in state) if isinstance(state, tuple) else side_by_side(state)
        return memory, first

    def start(self, w: dict, src: torch.Tensor, tape: dict | None = None):
        """Encode commands (K, b, S) → the decoder's first state and what its steps read."""
        k, b, _ = src.shape
        memory, state = self.encode(w, src, tape)
        flat_memory = memory.reshape(k * b, memory.shape[2], -1)
        # −inf at padding, added to the attention scores by their own matmul (a masked_fill less a step)
        padding = torch.zeros(k * b, 1, src.shape[2], dtype=memory.dtype, device=src.device) \
            .masked_fill_((src == self.pad_id).reshape(k * b, 1, -1), float("-inf"))
        loop = self._transposed(w, ("combine.weight", "decoder.weight_ih_l0", "decoder.weight_hh_l0", "out.weight"))
        loop.update({name: w[name].unsqueeze(1) for name in ("combine.bias", "decoder.bias_ih_l0", "decoder.bias_hh_l0", "out.bias")},
                    embed_out=self._lookup(w["embed_out.weight"]))
        return state, (flat_memory, flat_memory.transpose(1, 2), padding, loop)

    def step(self, prev: torch.Tensor, state, read, dropout: torch.Tensor | None = None):
        """One decoder step for every replica: previous tokens (K, b) → logits (K, b, V), next state
        and what backward reads (``PaperSeq2Seq.step``: attention from the state before the step)."""
        memory, keys, padding, loop = read
        k, b = prev.shape
        query = _h(state).reshape(k * b, 1, -1)
        attention = torch.softmax(torch.baddbmm(padding, query, keys), dim=-1)
        context = torch.bmm(attention, memory).reshape(k, b, -1)
        embedded = loop["embed_out"](prev)
        if dropout is not None:
            embedded = embedded * dropout
        joined = torch.cat([embedded, context], dim=-1)
        combined = torch.relu(torch.baddbmm(loop["combine.bias"], joined, loop["combine.weight"]))
        gates_in = torch.baddbmm(loop["decoder.bias_ih_l0"], combined, loop["decoder.weight_ih_l0"])
        new, saved = self.cell.forward(gates_in, state, loop["decoder.weight_hh_l0"], loop["decoder.bias_hh_l0"])
        logits = torch.baddbmm(loop["out.bias"], _h(new), loop["out.weight"])
        return logits, new, (state, attention, joined, combined, saved)

    def unroll(self, w: dict, src, tgt, forced, dropout):
        """Logits (K, b, T, V) for targets (K, b, T), stepped one token at a time as
        ``PaperSeq2Seq.forward``: replica k's decoder reads the true previous tokens where
        forced[k], else its own greedy predictions; and the tape backward reads."""
        k, b, steps = tgt.shape
        tape: dict = {}
        state, read = self.start(w, src, tape)
        forced = forced.view(k, 1)
        prev = torch.full((k, b), self.sos_id, dtype=torch.long, device=src.device)
        logits, decoder_steps, tokens, outputs = [], [], [], []
        for t in range(steps):
            step_logits, state, saved = self.step(prev, state, read, None if dropout is None else dropout[:, :, t])
            logits.append(step_logits)
            decoder_steps.append(saved)
            tokens.append(prev)
            outputs.append(_h(state))
            prev = torch.where(forced, tgt[:, :, t], step_logits.argmax(-1))
        tape.update(read=read, decoder_steps=decoder_steps, tokens=torch.stack(tokens, 2),
                    outputs=torch.stack(outputs, 2), dropout=dropout)
        return torch.stack(logits, dim=2), tape

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, forced: torch.Tensor) -> torch.Tensor:
        """Logits (K, b, T, V); dropout masks drawn for every replica and step at once."""
        dropout = None
        if self.training and self.dropout_p > 0:
            width = self.weight("embed_out.weight").shape[-1]
            keep = 1 - self.dropout_p
            dropout = torch.empty((*tgt.shape, width), device=tgt.device).bernoulli_(keep).div_(keep)
        return _Unrolled.apply(self, src, tgt, forced, dropout, *(self.weight(n) for n in self.names))

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, eos_id: int, max_len: int) -> torch.Tensor:
        """Greedy tokens (K, b, T ≤ max_len), stopping once every sequence has said <eos> (as
        ``equi.sequence.GreedyDecoder`` decodes one model)."""
        w = {n: self.weight(n) for n in self.names}
        state, read = self.start(w, src)
        prev = torch.full(src.shape[:2], self.sos_id, dtype=torch.long, device=src.device)
        done, tokens = torch.zeros_like(prev, dtype=torch.bool), []
        for _ in range(max_len):
            logits, state, _ = self.step(prev, state, read)
            prev = logits.argmax(-1)
            tokens.append(prev)
            done |= prev == eos_id
            if done.all():
                break
        return torch.stack(tokens, dim=2)

    # the backward pass ---------------------------------------------------------------------------
    def _embedding_grad(self, table: torch.Tensor, tokens: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """Each replica's table gradient from its tokens (K, …) and their vectors' gradients (K, …, D);
        the padding row gets none."""
        k, vocab, width = table.shape
        rows = torch.arange(k, device=tokens.device).view(-1, *([1] * (tokens.ndim - 1)))
        index = (rows * vocab + tokens).reshape(-1)
        grads = (grads * (tokens != self.pad_id).unsqueeze(-1)).reshape(-1, width)
        return torch.zeros(k * vocab, width, dtype=grads.dtype, device=grads.device).index_add_(0, index, grads).view_as(table)

    def backward_through_time(self, w: dict, tape: dict, d_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every weight's gradient from the logits' (K, b, T, V)."""
        k, b, steps, vocab = d_logits.shape
        memory, keys, _, _ = tape["read"]
        grads: dict[str, torch.Tensor] = {}
        outputs = tape["outputs"]  # (K, b, T, D)
        flat_d_logits = d_logits.reshape(k, b * steps, vocab)
        grads["out.weight"], grads["out.bias"] = _weight_grad(flat_d_logits, outputs.reshape(k, b * steps, -1))
        d_outputs = torch.bmm(flat_d_logits, w["out.weight"]).reshape(k, b, steps, -1)
        d_state = None if self.cell.kind != "lstm" else (None, None)
        per_step: dict[str, list] = {name: [] for name in ("d_gates_in", "d_gates_h", "d_combined", "d_joined", "d_context",
                                                          "d_scores", "combined", "joined", "queries", "attention")}
        for t in reversed(range(steps)):
            state, attention, joined, combined, saved = tape["decoder_steps"][t]
            d_state = _add_state(d_state, (d_outputs[:, :, t], None) if isinstance(d_state, tuple) else d_outputs[:, :, t])
            d_gates_in, d_gates_h, d_prev = self.cell.backward(d_state, state, saved)
            d_combined = torch.ops.aten.threshold_backward(torch.bmm(d_gates_in, w["decoder.weight_ih_l0"]), combined, 0)  # relu
            d_joined = torch.bmm(d_combined, w["combine.weight"])
            d_context = d_joined[..., d_joined.shape[-1] // 2 :].reshape(k * b, 1, -1)
            d_attention = torch.bmm(d_context, keys)
            d_scores = torch.ops.aten._softmax_backward_data(d_attention, attention, -1, attention.dtype)
            d_h = torch.bmm(d_gates_h, w["decoder.weight_hh_l0"]) + torch.bmm(d_scores, memory).reshape(k, b, -1)
            d_state = _add_state(d_prev, (d_h, None) if isinstance(d_prev, tuple) else d_h)
            for name, value in (("d_gates_in", d_gates_in), ("d_gates_h", d_gates_h), ("d_combined", d_combined),
                                ("d_joined", d_joined), ("d_context", d_context), ("d_scores", d_scores),
                                ("combined", combined), ("joined", joined), ("queries", _h(state)), ("attention", attention)):
                per_step[name].append(value)
        # time along dim 1: (K, T·b, …) for the layers' rows, (K·b, T, …) for the attention's
        stacked = {name: torch.cat(values[::-1], dim=1) for name, values in per_step.items()}
        queries = stacked["queries"]
        grads["decoder.weight_ih_l0"], grads["decoder.bias_ih_l0"] = _weight_grad(stacked["d_gates_in"], stacked["combined"])
        grads["decoder.weight_hh_l0"], grads["decoder.bias_hh_l0"] = _weight_grad(stacked["d_gates_h"], queries)
        grads["combine.weight"], grads["combine.bias"] = _weight_grad(stacked["d_combined"], stacked["joined"])
        width = stacked["d_joined"].shape[-1] // 2
        d_embedded = stacked["d_joined"][..., :width].reshape(k, steps, b, width).transpose(1, 2)
        if tape["dropout"] is not None:
            d_embedded = d_embedded * tape["dropout"]
        grads["embed_out.weight"] = self._embedding_grad(w["embed_out.weight"], tape["tokens"], d_embedded)
        # memory = values and keys of every step's attention: (K·b, S, 2H)
        d_memory = (torch.bmm(stacked["attention"].transpose(1, 2), stacked["d_context"])
                    + torch.bmm(stacked["d_scores"].transpose(1, 2), queries.reshape(k, steps, b, -1).transpose(1, 2).reshape(k * b, steps, -1)))
        grads.update(self._encoder_backward(w, tape, d_memory.reshape(k, b, -1, d_memory.shape[-1]), d_state))
        return grads

    def _encoder_backward(self, w: dict, tape: dict, d_memory: torch.Tensor, d_first) -> dict[str, torch.Tensor]:
        """The encoder's weight gradients from its memory's (K, b, S, 2H) and its final state's
        (the decoder's first state: K, b, 2H)."""
        src, embedded, steps, kept = tape["src"], tape["embedded"], tape["encoder_steps"], tape["encoder_kept"]
        k, b, s = src.shape
        hidden = d_memory.shape[-1] // 2
        # each step's output gradient, both directions as the loop stepped them: (s, 2K, b, H)
        d_outputs = torch.cat([d_memory[..., :hidden], d_memory[..., hidden:].flip(2)]).permute(2, 0, 1, 3) * kept
        dropped = 1 - kept

        def apart(x):  # (K, b, 2H) → (2K, b, H): forward then backward, as the loop steps them
            return torch.cat([x[..., :hidden], x[..., hidden:]])

        is_pair = isinstance(d_first, tuple)
        d_state = tuple(apart(x) for x in d_first) if is_pair else apart(d_first)
        hidden_weights = torch.cat([w["encoder.weight_hh_l0"], w["encoder.weight_hh_l0_reverse"]])  # (2K, G·H, H)
        d_forward_in, d_backward_in, d_gates_h, queries = [None] * s, [None] * s, [], []
        for t in reversed(range(s)):
            back = s - 1 - t
            state, saved = steps[t]
            valid, invalid = kept[t], dropped[t]
            d_state = _add_state(d_state, (d_outputs[t], None) if is_pair else d_outputs[t])
            # state after the step = where(valid, the cell's new state, the state before)
            d_new = tuple(x * valid for x in d_state) if is_pair else d_state * valid
            d_kept = tuple(x * invalid for x in d_state) if is_pair else d_state * invalid
            d_in, d_h_gates, d_prev = self.cell.backward(d_new, state, saved)
            d_h = torch.bmm(d_h_gates, hidden_weights)
            d_state = _add_state(_add_state(d_kept, d_prev), (d_h, None) if is_pair else d_h)
            d_forward_in[t], d_backward_in[back] = d_in[:k], d_in[k:]
            d_gates_h.append(d_h_gates)
            queries.append(_h(state))
        grads: dict[str, torch.Tensor] = {}
        weight, bias = _weight_grad(torch.cat(d_gates_h, 1), torch.cat(queries, 1))
        grads["encoder.weight_hh_l0"], grads["encoder.weight_hh_l0_reverse"] = weight[:k], weight[k:]
        grads["encoder.bias_hh_l0"], grads["encoder.bias_hh_l0_reverse"] = bias[:k], bias[k:]
        d_embedded = 0
        for direction, d_gates in (("_l0", d_forward_in), ("_l0_reverse", d_backward_in)):
            d_gates = torch.stack(d_gates, 2).reshape(k, b * s, -1)  # rows as `embedded`'s: command-major
            grads[f"encoder.weight_ih{direction}"], grads[f"encoder.bias_ih{direction}"] = _weight_grad(d_gates, embedded)
            d_embedded = d_embedded + torch.bmm(d_gates, w[f"encoder.weight_ih{direction}"])
        grads["embed_in.weight"] = self._embedding_grad(w["embed_in.weight"], src, d_embedded.reshape(k, b, s, -1))
        return grads
