"""SCAN pretraining of many models in one pass (equi.tasks.scan.replicas): each replica is its
solo run, replicas never mix, each keeps its own best checkpoint, and the sweep finds them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from equi.config import compose_config
from equi.data import scan as data
from equi.experiment import execute
from equi.models.seq2seq_replicas import ReplicaPaperSeq2Seq, _Unrolled
from equi.sequence import GreedyDecoder
from equi.tasks.scan import replicas as rep
from equi.tasks.scan.runner import clip_groups, clip_groups_of, loss_to_predicted_eos, new_model, pretrain

from .conftest import REPO

PAPER = ["task=scan", "task/scan/model=paper", "task/scan/pretrain=paper"]


def tiny_task(cell="lstm", **pretrain_settings):
    """The paper recipe (lr 1e-4) on a tiny model, dropout off, a clip that binds."""
    task = compose_config([*PAPER, f"task.cell={cell}", "task.hidden=8", "task.dropout=0"]).task
    return OmegaConf.merge(task, {"pretrain": {"examples": 3, "keep": "last", "clip": 0.5, **pretrain_settings}})


def splits(fixture_data):
    """Three training sets: two splits, and one split held out by another seed."""
    jump, _ = data.load_split(fixture_data / "scan", "add_jump")
    around, _ = data.load_split(fixture_data / "scan", "around_right")
    return [data.hold_out(jump, 0.2, 0)[0], data.hold_out(around, 0.2, 1)[0], data.hold_out(jump, 0.2, 2)[0]]


def fresh(task, seed):
    torch.manual_seed(seed)
    return new_model(task)


def together(task, sets, seeds=(0, 1, 2), validate=None):
    models = [fresh(task, s) for s in seeds]
    kept = rep.pretrain_together(models, [rep.Replica(s, t, None, str(s)) for s, t in zip(seeds, sets)], task, "cpu",
                                 validate=validate)
    return models, kept


@pytest.mark.parametrize("cell,forcing", [("lstm", 1.0), ("lstm", 0.0), ("gru", 1.0), ("rnn", 0.0)])
def test_each_replica_steps_as_its_solo_run(fixture_data, cell, forcing):
    """Same initial weights, examples, coins, clipping and Adam state: after 3 one-example steps
    every replica's weights are its solo run's to 1e-6 (Adam's first steps move each weight by
    about lr = 1e-4 whatever its gradient: test_replica_gradients_are_the_solo_gradients checks those)."""
    task = tiny_task(cell, teacher_forcing=forcing)
    sets = splits(fixture_data)
    models, _ = together(task, sets)
    for seed, train, model in zip((0, 1, 2), sets, models):
        solo = fresh(task, seed)
        pretrain(solo, train, None, task, seed, "cpu", "solo")
        start = fresh(task, seed).state_dict()
        for name, value in solo.state_dict().items():
            assert not torch.equal(value, start[name]) or "embed" in name  # the step moved it
            assert (model.state_dict()[name] - value).abs().max() <= 1e-6, (seed, name)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_replica_gradients_are_the_solo_gradients(fixture_data, cell):
    """One example each, teacher-forced or not: each replica's loss and clipped gradients (from the
    replicas' backward through time, written out by hand) are its solo model's (autograd) to 1e-6."""
    task = tiny_task(cell)
    train = splits(fixture_data)
    models = [fresh(task, s) for s in (0, 1, 2)]
    stack = ReplicaPaperSeq2Seq(models)
    pairs = [t.subset([5]).tensors() for t in train]
    width_in, width_out = max(p[0].shape[1] for p in pairs), max(p[1].shape[1] for p in pairs)
    src = torch.stack([torch.nn.functional.pad(s, (0, width_in - s.shape[1])) for s, _ in pairs])
    tgt = torch.stack([torch.nn.functional.pad(t, (0, width_out - t.shape[1])) for _, t in pairs])
    forced = torch.tensor([True, False, True])
    losses = rep.replica_losses(stack(src, tgt, forced).log_softmax(-1), tgt, "sum_to_predicted_eos")
    losses.sum().backward()
    rep.clip_per_replica(clip_groups_of(stack.named_weights(), "encoder_decoder"), 0.5)
    for k, model in enumerate(models):
        s, t = pairs[k]
        loss = loss_to_predicted_eos(model(s, t, bool(forced[k])).log_softmax(-1), t)
        loss.backward()
        for params in clip_groups(model, "encoder_decoder"):
            torch.nn.utils.clip_grad_norm_(params, 0.5)
        assert abs(loss.item() - losses[k].item()) <= 1e-6 * max(1.0, loss.item())
        for name, p in model.named_parameters():
            assert (stack.weight(name).grad[k] - p.grad).abs().max() <= 1e-6, (k, name)


def test_replicas_never_mix(fixture_data):
    """Another example for replica 1 (same lengths: jump ↔ run) leaves replicas 0 and 2 bit-identical."""
    task = tiny_task()
    sets = splits(fixture_data)
    swap = {"jump": "run", "run": "jump", "I_JUMP": "I_RUN", "I_RUN": "I_JUMP"}
    other = data.Pairs([[swap.get(w, w) for w in c] for c in sets[1].commands],
                       [[swap.get(w, w) for w in a] for a in sets[1].actions])
    first, _ = together(task, sets)
    second, _ = together(task, [sets[0], other, sets[2]])
    for k in (0, 2):
        for name, value in first[k].state_dict().items():
            assert torch.equal(value, second[k].state_dict()[name]), (k, name)
    assert any(not torch.equal(v, second[1].state_dict()[n]) for n, v in first[1].state_dict().items())


def test_early_stopping_keeps_each_replicas_own_best_checkpoint(fixture_data):
    task = tiny_task(keep="best_val", val_every=1, examples=4)
    scores = [[10.0, 30.0, 20.0, 30.0], [50.0, 40.0, 60.0, 55.0]]  # replica 0: 2nd check (a tie later); 1: 3rd
    snapshots = []

    def scripted(stack):
        snapshots.append([stack.state_dict_of(k) for k in range(2)])
        return [s[len(snapshots) - 1] for s in scores]

    models, kept = together(task, splits(fixture_data)[:2], seeds=(0, 1), validate=scripted)
    assert [(r["examples"], r["val_accuracy"]) for r in kept] == [(2, 30.0), (3, 60.0)]
    for model, check in zip(models, (1, 2)):
        k = models.index(model)
        for name, value in model.state_dict().items():
            assert torch.equal(value, snapshots[check][k][name]), name
    assert not torch.equal(models[0].state_dict()["out.weight"], snapshots[3][0]["out.weight"])


def test_replica_greedy_decodes_as_the_greedy_decoder(fixture_data):
    task = tiny_task()
    models = [fresh(task, s).eval() for s in (0, 1)]
    with torch.no_grad():
        models[1].out.bias[data.EOS_OUT] -= 0.1  # its sequences end after 0 to 3 actions
    src = splits(fixture_data)[0].tensors()[0][:40]
    tokens = ReplicaPaperSeq2Seq(models).eval().greedy(torch.stack([src, src]), data.EOS_OUT, task.max_len)
    for k, model in enumerate(models):
        solo = GreedyDecoder(model, data.EOS_OUT, data.PAD_ID, task.max_len)(src).argmax(-1)
        assert [data.decode(r) for r in solo] == [data.decode(r) for r in tokens[k]]
    assert len({len(data.decode(r)) for r in tokens[1]}) > 1


def test_a_sweep_finds_the_models_trained_together(tmp_path, capsys):
    sweep = [*PAPER, "fast=true", "logger=none", "task.fast.pretrain.examples=8", "task.pretrain.val_every=4",
             "task.hidden=8", "method=vanilla,equizero", "task.split=add_jump,around_right", "seed=0,1"]
    assert rep.main(["--processes", "1", *sweep]) == 0
    assert "4 models trained" in capsys.readouterr().out
    assert rep.main(sweep) == 0
    assert "4 of 4 models cached" in capsys.readouterr().out
    one = [w for w in sweep if not w.startswith(("method=", "task.split=", "seed="))]
    record = execute(compose_config([*one, "method=equizero", "task.split=around_right", "seed=1"]), tmp_path / "run")
    metrics = record["metrics"]
    assert metrics["weights"] == "cache"
    assert (metrics["pretrain_kept_replica"], metrics["pretrain_kept_replicas"]) == (3, 4)
    assert metrics["pretrain_kept_examples"] in (4, 8)


def test_a_pass_split_across_processes_trains_the_same_models(tmp_path, monkeypatch, capfd):
    """--processes 2: two passes of two replicas at once, one thread each; without dropout each model
    is the one a single pass of four trains (to 1e-6), and says it was replica r of 2. The sweep
    lists the models split by split; each pass gets one of each (its steps last as long as its
    longest example, so one split's pass would finish well after the other's)."""
    sweep = [*PAPER, "fast=true", "logger=none", "task.fast.pretrain.examples=6", "task.pretrain.val_every=3",
             "task.hidden=8", "task.dropout=0", "method=vanilla", "task.split=add_jump,around_right", "seed=0,1"]
    trained = {}
    for processes in ("1", "2"):
        monkeypatch.setenv("EQUI_OUTPUTS", str(tmp_path / processes))
        assert rep.main(["--processes", processes, *sweep]) == 0
        out = capfd.readouterr().out  # the passes' own processes print too
        assert "4 models trained" in out
        passes = [line for line in out.splitlines() if " models together: " in line]
        assert len(passes) == int(processes)
        assert all("add_jump" in line and "around_right" in line for line in passes), passes
        files = sorted((tmp_path / processes / "cache" / "scan").glob("*.pt"))
        trained[processes] = {f.name: (torch.load(f), json.loads(f.with_suffix(".json").read_text())) for f in files}
    assert len(trained["2"]) == 4 and trained["1"].keys() == trained["2"].keys()
    for name, (state, record) in trained["2"].items():
        alone, record_alone = trained["1"][name]
        assert max((state[k] - alone[k]).abs().max().item() for k in state) <= 1e-6, name
        assert (record["replicas"], record_alone["replicas"]) == (2, 4)
        assert record["examples"] == record_alone["examples"]


@pytest.mark.parametrize("argv,message", [
    (["--replicas", "0", *PAPER], "--replicas=0: give auto or a number ≥ 1"),
    (["--processes", "two", *PAPER], "--processes=two: give auto or a number ≥ 1"),
    ([*PAPER, "task.pretrian.lr=1"], "task.pretrian"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert rep.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_backward_through_time_is_the_derivative_with_dropout(cell):
    """The written-out backward against finite differences (float64), dropout masks on, two
    replicas with commands of different lengths (the encoder's padded steps)."""
    torch.manual_seed(0)
    net = ReplicaPaperSeq2Seq([new_model(OmegaConf.merge(tiny_task(cell), {"hidden": 3})).double() for _ in range(2)])
    src = torch.randint(data.EOS_IN + 1, len(data.COMMANDS), (2, 2, 4))
    src[0, 1, 2:] = data.PAD_ID
    tgt = torch.randint(data.EOS_OUT + 1, len(data.ACTIONS), (2, 2, 5))  # no padding: its row would get no gradient
    dropout = torch.empty(2, 2, 5, 6, dtype=torch.float64).bernoulli_(0.5).mul_(2)
    forced = torch.tensor([True, True])  # a greedy replica's argmax could flip under the finite differences
    params = [net.weight(n) for n in net.names]
    assert torch.autograd.gradcheck(lambda *p: _Unrolled.apply(net, src, tgt, forced, dropout, *p), params, eps=1e-6, atol=1e-8,
                                    fast_mode=True)


def test_bench_scan_needs_only_the_splits_it_trains_on(fixture_data, tmp_path):
    """`make bench-scan` (and gpu-check's step) reads Table 2's two splits, not the whole SCAN release:
    the fixture holds those alone."""
    env = {**os.environ, "EQUI_DATA": str(fixture_data), "EQUI_OUTPUTS": str(tmp_path), "EQUI_DOWNLOAD": "false"}
    done = subprocess.run([sys.executable, "scripts/bench_scan.py", "--steps", "2", "--replicas", "2", "--threads", "1"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| 2 replicas in one pass |" in done.stdout
