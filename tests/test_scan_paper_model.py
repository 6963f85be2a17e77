"""The paper's SCAN model (task.architecture=seq2seq_paper) and its early stopping (task.pretrain.keep)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from equi.config import check_cli, compose_config, run_key
from equi.data import scan as data
from equi.experiment import execute
from equi.tasks.scan import figures as scan_figures
from equi.tasks.scan import runner as scan

from .conftest import write_scan_run

PAPER = ["task=scan", "task.architecture=seq2seq_paper"]


def paper_model(cell="lstm", hidden=16):
    torch.manual_seed(0)
    task = compose_config([*PAPER, f"task.cell={cell}", f"task.hidden={hidden}"]).task
    return scan.new_model(task).eval(), scan.swap_group(task), task


def gordon_step(model, token, hidden, encoder_outputs):
    """One step of Gordon et al.'s AttnDecoderRNN for one example, as their module computes it:
    attention weights from the previous hidden state over the (S, 2H) encoder outputs, then
    relu(attn_combine[embedded; applied]) into the cell, log-softmax of the output layer."""
    embedded = model.embed_out.weight[token][None]
    attn_state = hidden[0] if isinstance(hidden, tuple) else hidden
    weights = torch.softmax(attn_state[0] @ encoder_outputs.t(), dim=1)
    applied = weights @ encoder_outputs
    rnn_input = torch.relu(model.combine(torch.cat([embedded, applied], 1)))[None]
    output, hidden = model.decoder(rnn_input, hidden)
    return torch.log_softmax(model.out(output[0]), dim=1)[0], hidden


def gordon_decode(model, command, steps):
    """Their BasicSeq2Seq forward without teacher forcing, for one unpadded command: the final
    forward and backward encoder states laid side by side start the decoder."""
    outputs, final = model.encoder(model.embed_in.weight[command][None])

    def side_by_side(h):
        return h.reshape(1, 1, -1)

    hidden = tuple(side_by_side(h) for h in final) if isinstance(final, tuple) else side_by_side(final)
    token, rows = model.sos_id, []
    for _ in range(steps):
        row, hidden = gordon_step(model, token, hidden, outputs[0])
        rows.append(row)
        token = int(row.argmax())
    return torch.stack(rows)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_paper_model_decodes_as_gordon_et_al_one_command_at_a_time(fixture_data, cell):
    """Batched and padded commands decode, step for step, as the reference loop over one
    unpadded command (masking keeps padding out of the attention and the encoder)."""
    model, _, task = paper_model(cell)
    _, test = data.load_split(fixture_data / "scan", "add_jump")
    batch = test.subset(range(0, len(test), 18))
    src, _ = batch.tensors()
    assert len(set((src != data.PAD_ID).sum(1).tolist())) > 1  # the batch is padded
    with torch.no_grad():
        out = scan.GreedyDecoder(model, data.EOS_OUT, data.PAD_ID, 12, ended="pad")(src)
        for row, command in enumerate(src):
            expected = gordon_decode(model, command[command != data.PAD_ID], 12)
            steps = next((i + 1 for i, t in enumerate(expected.argmax(-1)) if t == data.EOS_OUT), 12)
            assert torch.allclose(out[row, :steps], expected[:steps], atol=1e-5)


def test_paper_model_teacher_forcing_feeds_the_true_previous_tokens(fixture_data):
    model, _, _ = paper_model()
    train, _ = data.load_split(fixture_data / "scan", "add_jump")
    src, tgt = train.subset(range(0, 270, 30)).tensors()
    with torch.no_grad():
        forced = model(src, tgt, teacher_forcing=True)
        state, _ = model.start(src)
        prev = torch.full((len(src),), model.sos_id)
        for t in range(tgt.shape[1]):
            logits, state = model.step(prev, state)
            assert torch.allclose(forced[:, t], logits, atol=1e-6)
            prev = tgt[:, t]
        greedy = model(src, tgt, teacher_forcing=False)
        assert not torch.allclose(forced, greedy)


def test_paper_model_has_the_papers_shape():
    """2·hidden decoder units fed by the encoder's two final states, no bridge or memory projection."""
    model, _, _ = paper_model(hidden=64)
    assert model.summary_dim == 128 and model.decoder.hidden_size == 128
    assert model.combine.in_features == 256 and model.out.in_features == 128
    assert not hasattr(model, "bridge") and not hasattr(model, "memory_proj")


@pytest.mark.parametrize("method", ["equitune", "equizero", "equitune stepwise"])
def test_equivariant_decoding_of_the_paper_model_swaps_the_decoded_actions(fixture_data, method):
    model, group, task = paper_model("gru")
    name, *decoding = method.split()
    decode = scan.decoder(compose_config([*PAPER, f"method={name}", *(f"method.decoding={d}" for d in decoding)]).method,
                          model, group, task)
    _, test = data.load_split(fixture_data / "scan", "add_jump")
    src, _ = test.subset(range(0, len(test), 2)).tensors()
    with torch.no_grad():
        out = decode(src).argmax(-1)
        assert torch.equal(decode(group.act_input(1, src)).argmax(-1), group.act_output_ids(1, out))
        vanilla = scan.GreedyDecoder(model, data.EOS_OUT)
        assert not torch.equal(vanilla(group.act_input(1, src)).argmax(-1), group.act_output_ids(1, vanilla(src).argmax(-1)))


def test_best_val_ends_on_the_checkpoint_of_best_validation_accuracy(fixture_data, monkeypatch):
    """Checks every val_every examples and after the last batch; the first best wins a tie."""
    model, _, task = paper_model()
    task.pretrain.update(keep="best_val", val_every=64, examples=200, batch_size=32)
    train, val = data.hold_out(data.load_split(fixture_data / "scan", "add_jump")[0], 0.2, 0)
    scores, states = iter([10.0, 40.0, 40.0, 20.0]), []

    def fake_accuracy(decode, pairs, batch, device, desc):
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    monkeypatch.setattr(scan, "accuracy", fake_accuracy)
    kept = scan.pretrain(model, train, val, task, 0, "cpu", "test")
    assert kept == {"val_accuracy": 40.0, "examples": 128}
    assert len(states) == 4  # after 64, 128 and 192 examples, and after the last batch (200)
    assert all(torch.equal(v, states[1][k]) for k, v in model.state_dict().items())
    assert not all(torch.equal(v, states[3][k]) for k, v in states[1].items())


@pytest.mark.parametrize("override,message", [
    ("task.architecture=seq2seq_papr", "unknown task.architecture 'seq2seq_papr'; choose one of: seq2seq, seq2seq_paper, gseq2seq"),
    ("task.pretrain.keep=best", "unknown task.pretrain.keep 'best'; choose one of: last, best_val"),
    ("task.pretrain.val_every=0", "task.pretrain.val_every must be an integer in [1, 10000000], got 0"),
])
def test_bad_model_settings_are_one_line(override, message):
    assert check_cli(["task=scan", override]) == message


def test_keep_last_leaves_run_keys_and_checkpoints_as_they_were(tmp_path):
    cfg = compose_config(["task=scan", "method=vanilla", "task.split=add_jump"])
    before = OmegaConf.to_container(cfg)
    del before["task"]["pretrain"]["keep"], before["task"]["pretrain"]["val_every"]
    assert run_key(OmegaConf.create(before)) == run_key(cfg)
    assert run_key(cfg) == "3a7e0a2786"  # the key of this run before keep and val_every existed (since task.download left it)
    assert run_key(compose_config(["task=scan", "method=vanilla", "task.split=add_jump", "task.pretrain.val_every=7"])) \
        == run_key(cfg)
    assert run_key(compose_config(["task=scan", "method=vanilla", "task.split=add_jump",
                                   "task.pretrain.keep=best_val"])) != run_key(cfg)
    # the name the LSTM checkpoint of add_jump, seed 0, had before keep and val_every existed
    assert scan.checkpoint_file(cfg.task, 0, tmp_path).name == "lstm-add_jump-seed0-e22045f137.pt"
    paper = compose_config([*PAPER, "task.pretrain.keep=best_val"]).task
    assert scan.checkpoint_file(paper, 0, tmp_path).name.startswith("paper-lstm-add_jump-seed0-")


def test_paper_model_runs_caches_under_its_own_name_and_reports_its_checkpoint(tmp_path, fixture_data, monkeypatch):
    monkeypatch.setenv("EQUI_DATA", str(fixture_data))
    base = ["task=scan", "fast=true", "logger=none", "task.fast.pretrain.examples=256"]
    execute(compose_config([*base, "method=vanilla"]), tmp_path / "ours")
    record = execute(compose_config([*base, *PAPER[1:], "method=lambda", "task.pretrain.keep=best_val",
                                     "task.pretrain.val_every=128"]), tmp_path / "paper")
    assert record["metrics"]["weights"] == "trained"
    assert record["metrics"]["pretrain_kept_examples"] in (128, 256)
    cache = tmp_path / "outputs" / "cache" / "scan"
    assert sorted(p.name.split("-seed")[0] for p in cache.glob("*.pt")) == ["lstm-add_jump", "paper-lstm-add_jump"]
    assert [p.name.split("-seed")[0] for p in cache.glob("*.json")] == ["paper-lstm-add_jump"]
    again = execute(compose_config([*base, *PAPER[1:], "method=equizero", "task.pretrain.keep=best_val",
                                    "task.pretrain.val_every=128"]), tmp_path / "again")
    assert again["metrics"]["weights"] == "cache"
    assert again["metrics"]["pretrain_kept_examples"] == record["metrics"]["pretrain_kept_examples"]


def test_the_few_shot_curve_keeps_one_models_runs(tmp_path):
    """Runs of the other seq2seq and of G-models (method vanilla, cell lstm) stay off the curve."""
    for n, (architecture, keep, method, accuracy) in enumerate([
            ("seq2seq_paper", "best_val", "vanilla", 1.0), ("seq2seq_paper", "best_val", "equizero", 70.0),
            ("seq2seq", None, "vanilla", 9.0), ("gseq2seq", "best_val", "vanilla", 98.0)]):
        pretrain = {} if keep is None else {"keep": keep}  # None: a run made before keep existed
        write_scan_run(tmp_path / "runs", f"run{n}", method, accuracy, architecture, pretrain)
    table = tmp_path / "t.md"
    common = ["--runs", str(tmp_path / "runs"), "--png", str(tmp_path / "f.png"), "--table", str(table)]
    assert scan_figures.main([*common, "--where", "task.architecture=seq2seq_paper",
                              "--where", "task.pretrain.keep=best_val"]) == 0
    assert table.read_text().splitlines()[2] == "| 0 | 1.0 (0.0), n=1 | - | 70.0 (0.0), n=1 |"
    assert scan_figures.main([*common, "--where", "task.architecture=seq2seq",
                              "--where", "task.pretrain.keep!=best_val"]) == 0
    assert table.read_text().splitlines()[2] == "| 0 | 9.0 (0.0), n=1 | - | - |"
    assert scan_figures.main(common) == 2  # three models: no curve that mixes them
