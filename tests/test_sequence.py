"""Stepwise and per-view equivariant decoding against the operator written out step by step: the
decoders' shortcuts (one gather to map the views back, a λ-network weighing once per decode, <pad>
forced only once a sequence has ended, only the tokens kept) change no token and no score."""

import pytest
import torch

from equi import groups as G
from equi import methods
from equi.config import compose_config
from equi.data import scan as data
from equi.sampling import RankSampler
from equi.sequence import CommandSummary, GreedyDecoder, StepwiseEquivariantDecoder, after_end
from equi.tasks.scan import runner as scan
from equi.weighting import LambdaNet, ProxyArgmin, RelaxedUniform, Uniform


def generated_as_written(decoder, src):
    """StepwiseEquivariantDecoder.generate from the operator's formula: each view's scores mapped back
    by g⁻¹ one element at a time, the weighting called every step, the weighted sum as the
    broadcast product, <pad> forced on ended rows every step, g·token fed to view g one by one."""
    group, weighting = decoder.group, decoder.operator.weighting
    batch, order = src.shape[0], decoder.group.order
    state, summary = decoder.model.start(group.orbit(src))
    features = summary.reshape(order, batch, -1)
    prev = torch.full((order * batch,), decoder.model.sos_id, dtype=torch.long)
    done = torch.zeros(batch, dtype=torch.bool)
    steps, tokens = [], []
    for t in range(decoder.max_len):
        logits, state = decoder.model.step(prev, state)
        scores = (torch.softmax(logits, -1) if decoder.average == "probs" else logits).reshape(order, batch, -1)
        views = torch.stack([group.act_output(group.inverse(g), scores[g]) for g in group.elements])
        weights = weighting(views, features)
        weights = weights / weights.sum(0, keepdim=True)
        p = (weights.reshape(*weights.shape, *[1] * (views.ndim - weights.ndim)) * views).sum(0)
        log_p = torch.log(p.clamp_min(1e-30)) if decoder.average == "probs" else torch.log_softmax(p, -1)
        steps.append(after_end(log_p, done, decoder.pad_id))
        tokens.append(decoder.choose(steps[-1], t))
        prev = torch.cat([group.act_output_ids(g, tokens[-1]) for g in group.elements])
        done = done | torch.isin(tokens[-1], decoder.stop_ids)
        if done.all():
            break
    return torch.stack(steps, 1), torch.stack(tokens, 1)


def scan_model_and_commands(batch=24, length=6):
    """A random SCAN model, its weights scaled up so that it says varied things and ends some
    commands (and not others) within 12 steps, and random commands."""
    torch.manual_seed(0)
    task = compose_config(["task=scan", "task.hidden=16"]).task
    words = torch.tensor([data.COMMANDS.index(w) for w in data.COMMAND_WORDS])
    src = words[torch.randint(len(words), (batch, length))]
    src[:, -1] = data.EOS_IN
    model = scan.new_model(task).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4)
    return model, scan.swap_group(task), task, src


def tiny_lm(vocab=300):
    """A random two-layer GPT-2 over `vocab` tokens behind StepLM, and its token swaps."""
    transformers = pytest.importorskip("transformers")
    from equi.models.lm import StepLM

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=vocab, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    return StepLM(transformers.GPT2LMHeadModel(config).eval()), G.token_swaps(vocab, [(10, 11), (12, 13)])


def assert_generates_as_written(decoder, src):
    """Scores to float rounding and tokens exactly, with and without keeping the scores; some
    sequences end before the last step and some do not, so both sides of <pad> are exercised."""
    with torch.no_grad():
        expected_scores, expected_tokens = generated_as_written(decoder, src)
        scores, tokens = decoder.generate(src)
        no_scores, only_tokens = decoder.generate(src, keep_scores=False)
    torch.testing.assert_close(scores, expected_scores, rtol=1e-6, atol=1e-6)
    assert torch.equal(tokens, expected_tokens) and torch.equal(only_tokens, expected_tokens)
    assert no_scores is None
    ended = torch.isin(tokens, decoder.stop_ids).any(1)
    assert ended.any() and not ended.all() and tokens.shape[1] == decoder.max_len


@pytest.mark.parametrize("weighting", ["equitune", "lambda"])
def test_scan_stepwise_decoding_is_the_operator_at_every_step(weighting):
    model, group, _, src = scan_model_and_commands()
    lam = Uniform() if weighting == "equitune" else LambdaNet(model.summary_dim, hidden=8)
    assert_generates_as_written(StepwiseEquivariantDecoder(model, group, lam, data.EOS_OUT, data.PAD_ID, 12), src)


@pytest.mark.parametrize("weighting", ["equitune", "relaxed", "equizero", "lambda"])
def test_language_model_stepwise_sampling_is_the_operator_at_every_step(weighting):
    """EquiLM's decoding (logits averaged, top-k rank sampling, several stop tokens)."""
    step_lm, group = tiny_lm()
    prompts = torch.randint(300, (8, 5))
    prompts[:, 1] = 10
    lam = {"equitune": Uniform(), "relaxed": RelaxedUniform([20, 21]),
           "equizero": ProxyArgmin("entropy", straight_through=False), "lambda": LambdaNet(1, hidden=4)}[weighting]
    sampler = RankSampler(torch.rand(8, 10, generator=torch.Generator().manual_seed(1)), top_k=40)
    decoder = StepwiseEquivariantDecoder(step_lm, group, lam, 5, 5, 10, average="logits", choose=sampler,
                                         stop_ids=[7, *range(100, 125)])
    assert_generates_as_written(decoder, prompts)


def test_a_lambda_network_weighs_the_views_once_per_decode():
    model, group, _, src = scan_model_and_commands()
    lam = LambdaNet(model.summary_dim, hidden=8)
    calls = []
    lam.register_forward_hook(lambda m, inp, out: calls.append(out.shape))
    with torch.no_grad():
        StepwiseEquivariantDecoder(model, group, lam, data.EOS_OUT, data.PAD_ID, 12).generate(src)
    assert calls == [(group.order, len(src))]


def counting_starts(model):
    """model.start, recording the batch of every call."""
    starts, start = [], model.start
    model.start = lambda src: (starts.append(src.shape[0]), start(src))[1]
    return starts


def test_per_view_lambda_reads_the_summary_of_each_views_own_encoding():
    """The scan task's per-view λ decoder encodes each view once, and decodes and weighs as λ reading
    a second encoding through CommandSummary did."""
    model, group, task, src = scan_model_and_commands()
    lam = LambdaNet(model.summary_dim, hidden=8)
    method = compose_config(["task=scan", "method=lambda"]).method
    before = methods.wrap(method, GreedyDecoder(model, data.EOS_OUT, data.PAD_ID, task.max_len, ended="zeros"),
                          group=group, invariant=False, weighting=lam, lambda_reads=CommandSummary(model))
    starts = counting_starts(model)
    with torch.no_grad():
        out, weights = scan.decoder(method, model, group, task, lam)(src, return_weights=True)
        assert starts == [group.order * len(src)]
        expected_out, expected_weights = before(src, return_weights=True)
        assert starts == [group.order * len(src)] * 3  # before, CommandSummary encoded the views again
    assert torch.equal(out, expected_out) and torch.equal(weights, expected_weights)
    assert (weights - weights[:1]).abs().max() > 1e-3  # λ weighs the views differently
