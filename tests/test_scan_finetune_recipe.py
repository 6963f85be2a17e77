"""SCAN's training recipes. Finetuning: the paper scripts' (one-example Adam steps, weight decay 1e-4,
a rate per method and split: task.finetune.lr=paper, encoder and decoder clipped apart) and ours
(batches of 32 at 5e-4). Pretraining: the paper's (one-example steps, the default of the tables) or ours
(SCAN_PRETRAIN=ours: batches of 32)."""

from __future__ import annotations

import shlex
import subprocess

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from equi import distributed, hardware
from equi.config import check_cli, compose_config, run_key
from equi.data import scan as data
from equi.errors import ConfigError
from equi.experiment import execute
from equi.tasks.scan import figures as scan_figures
from equi.tasks.scan import runner as scan

from .conftest import REPO, write_scan_run

PAPER_RECIPE = ["task/scan/finetune=paper"]
PAPER_PRETRAINING = ["task/scan/pretrain=paper"]
# What the Makefile passed for these recipes before they were config groups: the groups must keep their runs.
MAKEFILE_BEFORE = {
    "task/scan/finetune=paper": ["task.finetune.batch_size=1", "task.finetune.weight_decay=1e-4", "task.finetune.lr=paper",
                                 "task.finetune.loss=sum_to_predicted_eos", "task.finetune.clip_scope=encoder_decoder"],
    "task/scan/pretrain=paper": ["task.pretrain.examples=200000", "task.pretrain.batch_size=1", "task.pretrain.lr=1e-4",
                                 "task.pretrain.schedule=constant", "task.pretrain.clip_scope=encoder_decoder",
                                 "task.pretrain.loss=sum_to_predicted_eos", "task.pretrain.split_seed=${seed}"],
    "task/scan/model=paper": ["task.architecture=seq2seq_paper", "task.pretrain.keep=best_val"],
    "task/scan/model=ours": ["task.architecture=seq2seq"],
}


STEPWISE = ["method=equitune", "method.decoding=stepwise"]


@pytest.mark.parametrize("method,split,rate", [
    (["method=vanilla"], "add_jump", 5e-5), (["method=vanilla"], "around_right", 5e-5),  # no script: the scripts' default
    (["method=equitune"], "add_jump", 2e-5), (["method=equitune"], "around_right", 5e-5),  # equitune_test_*.sh
    (STEPWISE, "add_jump", 2e-5), (STEPWISE, "around_right", 5e-5),
    (["method=equizero"], "add_jump", 1e-4), (["method=equizero"], "around_right", 4e-5),  # twice equizero_scan.py's
])
def test_lr_paper_is_the_rate_of_the_papers_script_for_the_method_and_split(method, split, rate):
    cfg = compose_config(["task=scan", *method, "task.finetune.examples=10000", f"task.split={split}", *PAPER_RECIPE])
    settings = scan.finetune_settings(cfg.task, cfg.method)
    assert (settings.lr, settings.batch_size, settings.weight_decay, settings.examples, settings.loss) == \
        (rate, 1, 1e-4, 10000, "sum_to_predicted_eos")


def test_lr_paper_without_a_papers_rate_is_one_line_before_any_work(tmp_path, fixture_data, monkeypatch):
    monkeypatch.setenv("EQUI_DATA", str(fixture_data))
    monkeypatch.setattr(scan, "pretrained", lambda *a: pytest.fail("pretrained before the settings were checked"))
    cfg = compose_config(["task=scan", "method=lambda", "task.finetune.examples=10", "task.finetune.lr=paper",
                          "logger=none"])
    with pytest.raises(ConfigError, match=r"^task.finetune.lr=paper: the paper has no finetuning rate for lambda on "
                                        r"add_jump \(task.paper_finetune_lr\); give task.finetune.lr a number$"):
        execute(cfg, tmp_path)
    zero_shot = compose_config(["task=scan", "method=lambda", "task.finetune.lr=paper"])
    assert scan.finetune_settings(zero_shot.task, zero_shot.method).lr == "paper"  # nothing to finetune


class Pretrained(Exception):
    """Raised in place of pretraining: the run got as far as pretraining with these settings."""


def test_the_papers_pretraining_holds_out_validation_by_the_runs_seed(tmp_path, fixture_data, monkeypatch):
    """As train_seq2seq_scan.py's random.shuffle after set_seed(seed): the recipe's split_seed=${seed}
    reaches the runner resolved, and the checkpoint is the seed's own."""
    monkeypatch.setenv("EQUI_DATA", str(fixture_data))
    monkeypatch.setenv("EQUI_OUTPUTS", str(tmp_path))
    recipe = "task/scan/pretrain=paper"  # its split_seed: ${seed}
    held_out = {}

    def pretrain(model, train, val, task, seed, *rest):
        held_out[seed] = (val.commands, scan.checkpoint_file(task, seed, tmp_path).name)
        raise Pretrained

    monkeypatch.setattr(scan, "pretrain", pretrain)
    for seed in (0, 1):
        with pytest.raises(Pretrained):
            execute(compose_config(["task=scan", "method=vanilla", f"seed={seed}", recipe, "logger=none"]),
                    tmp_path / str(seed))
    train_file = data.load_split(fixture_data / "scan", "add_jump")[0]
    assert [held_out[seed][0] for seed in (0, 1)] == [data.hold_out(train_file, 0.2, seed)[1].commands
                                                     for seed in (0, 1)]
    assert held_out[0][0] != held_out[1][0]
    fixed = compose_config(["task=scan", "seed=0", "task/scan/pretrain=paper", "task.pretrain.split_seed=0"]).task
    assert held_out[0][1] == scan.checkpoint_file(fixed, 0, tmp_path).name  # seed 0: the checkpoint of split_seed 0


@pytest.mark.parametrize("override,message", [
    ("task.finetune.lr=papr", "task.finetune.lr must be a number > 0, or one of paper, got 'papr'"),
    ("task.finetune.weight_decay=-1", "task.finetune.weight_decay must be a number ≥ 0, got -1"),
    ("task.finetune.loss=sum", "unknown task.finetune.loss 'sum'; choose one of: token_mean, sum_to_predicted_eos"),
    ("task.paper_finetune_lr.equitune.add_jump=0", "task.paper_finetune_lr.equitune.add_jump must be a number > 0, got 0"),
    ("task.pretrain.clip_scope=encoder", "unknown task.pretrain.clip_scope 'encoder'; choose one of: model, encoder_decoder"),
])
def test_bad_recipe_settings_are_one_line(override, message):
    assert check_cli(["task=scan", override]) == message


def test_our_recipe_keeps_the_run_keys_it_had():
    assert run_key(compose_config(["task=scan", "method=equitune", "task.finetune.examples=10000"])) == "8380278c7e"  # before weight_decay (since task.download left the task)
    assert run_key(compose_config(["task=scan"])) == run_key(compose_config(["task=scan", "task.finetune.weight_decay=0"]))
    assert run_key(compose_config(["task=scan"])) != run_key(compose_config(["task=scan", "task.finetune.loss=sum_to_predicted_eos"]))
    changed = compose_config(["task=scan", "task.paper_finetune_lr.equitune.add_jump=1e-3"])
    assert run_key(changed) == run_key(compose_config(["task=scan"]))  # the table counts only when lr=paper
    paper = compose_config(["task=scan", "method=equitune", "task.finetune.examples=10000", *PAPER_RECIPE])
    assert run_key(paper) != run_key(OmegaConf.merge(paper, {"task": {"paper_finetune_lr": {"equitune": {
        "add_jump": 1e-3}}}}))


def test_clipping_the_whole_model_and_the_token_mean_keep_the_run_keys_and_checkpoints_they_had(tmp_path):
    ours, paper_model = ["task=scan", "method=equitune", "task.finetune.examples=10000"], ["task=scan", "task.architecture=seq2seq_paper",
                                                                      "task.pretrain.keep=best_val"]
    assert run_key(compose_config(ours)) == "8380278c7e"
    assert scan.checkpoint_file(compose_config(ours).task, 0, tmp_path).name == "lstm-add_jump-seed0-e22045f137.pt"
    assert scan.checkpoint_file(compose_config(paper_model).task, 0, tmp_path).name == \
        "paper-lstm-add_jump-seed0-6fcc87a557.pt"
    for changed in ("task.pretrain.clip_scope=encoder_decoder", "task.pretrain.loss=sum_to_predicted_eos",
                    "task.finetune.clip_scope=encoder_decoder"):
        cfg = compose_config([*ours, changed])
        assert run_key(cfg) != "8380278c7e"
        renamed = scan.checkpoint_file(cfg.task, 0, tmp_path).name != "lstm-add_jump-seed0-e22045f137.pt"
        assert renamed == changed.startswith("task.pretrain")


@pytest.mark.parametrize("architecture,decoder", [
    ("seq2seq", {"bridge", "memory_proj", "embed_out", "decoder", "out"}),
    ("seq2seq_paper", {"embed_out", "combine", "decoder", "out"}),  # the paper's AttnDecoderRNN
    ("gseq2seq", {"bridge", "memory_proj", "embed_out", "decoder", "out"}),
])
def test_the_encoder_clipped_apart_is_the_command_embedding_and_its_rnn(architecture, decoder):
    model = scan.new_model(compose_config(["task=scan", f"task.architecture={architecture}"]).task)
    encoder, rest = scan.clip_groups(model, "encoder_decoder")
    module = {id(p): n.split(".")[0] for n, p in model.named_parameters()}
    assert {module[id(p)] for p in encoder} == {"embed_in", "encoder"}  # the paper's EncoderRNN
    assert {module[id(p)] for p in rest} == decoder
    assert len(encoder) + len(rest) == len(list(model.parameters())) == len(scan.clip_groups(model, "model")[0])


@pytest.mark.parametrize("scope,norms", [("model", (0.6, 0.8)), ("encoder_decoder", (1.0, 1.0))])
def test_clip_scope_clips_the_whole_gradient_or_each_part_to_the_norm(scope, norms):
    """Gradients of norm 60 (encoder) and 80 (decoder), 100 together, clipped at 1."""
    model = nn.ModuleDict({"encoder": nn.Linear(2, 2, bias=False), "out": nn.Linear(2, 2, bias=False)})
    loss = 30 * model["encoder"].weight.sum() + 40 * model["out"].weight.sum()
    hardware.backward_step(loss, torch.optim.SGD(model.parameters(), lr=0.0), scan.clip_groups(model, scope), clip=1.0)
    assert [round(float(model[m].weight.grad.norm()), 4) for m in ("encoder", "out")] == list(norms)


@pytest.mark.parametrize("loss,summed", [("token_mean", False), ("sum_to_predicted_eos", True)])
def test_the_pretraining_loss_is_the_token_mean_or_the_papers_sum(loss, summed, fixture_data, monkeypatch):
    calls = []
    monkeypatch.setattr(scan, "loss_to_predicted_eos", lambda log_p, target: calls.append(log_p) or log_p.sum() * 0)
    cfg = compose_config(["task=scan", "task.architecture=seq2seq_paper", f"task.pretrain.loss={loss}",
                          "task.pretrain.examples=4", "task.pretrain.batch_size=2"])
    train, _ = data.load_split(fixture_data / "scan", "add_jump")
    model = scan.new_model(cfg.task)
    scan.pretrain(model, train.subset(range(8)), train.subset(range(2)), cfg.task, 0, torch.device("cpu"), "t")
    assert len(calls) == (2 if summed else 0)
    assert all(torch.allclose(c.exp().sum(-1), torch.ones(c.shape[:-1])) for c in calls)  # log-probabilities


def test_weight_decay_reaches_adam():
    """A loss that is zero everywhere: only the L2 term of weight_decay moves the weights."""
    for decay, moves in ((0.0, False), (1e-2, True)):
        model = nn.Linear(3, 2)
        before = [p.detach().clone() for p in model.parameters()]
        settings = OmegaConf.create({"examples": 8, "batch_size": 4, "lr": 0.1, "schedule": "constant", "clip": 5.0,
                                     "weight_decay": decay})
        scan.optimise(model, lambda idx, gen: 0.0 * sum(p.sum() for p in model.parameters()), 10, settings, 0, "t")
        assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters())) == moves


def test_a_paper_recipe_run_records_its_rate(tmp_path, fixture_data, monkeypatch):
    monkeypatch.setenv("EQUI_DATA", str(fixture_data))
    record = execute(compose_config(["task=scan", "method=equizero", "task.split=around_right", "fast=true",
                                     "logger=none", "task.fast.pretrain.examples=64", "task.finetune.examples=6",
                                     *PAPER_RECIPE]), tmp_path)
    assert record["metrics"]["finetune_lr"] == 4e-5
    assert record["config"]["task"]["finetune"]["lr"] == "paper"


def make_dry(*variables: str, target: str = "table-scan-finetune") -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-n", target, "SCAN_SEEDS=0", *variables], cwd=REPO, capture_output=True, text=True)


@pytest.mark.parametrize("recipe", sorted(MAKEFILE_BEFORE))
@pytest.mark.parametrize("run", [["method=equitune", "task.finetune.examples=10000"],
                                 ["method=vanilla", "task.cell=rnn", "task/scan/pretrain=ours_rnn"]])
def test_each_recipe_group_composes_the_runs_the_makefile_strings_did(recipe, run):
    base = ["task=scan", *run, "seed=2"]
    assert run_key(compose_config(base + [recipe])) == run_key(compose_config(base + MAKEFILE_BEFORE[recipe]))


def test_the_finetuning_tables_take_the_papers_recipe_unless_told_ours():
    paper, ours = make_dry().stdout, make_dry("SCAN_FINETUNE=ours").stdout
    assert "task/scan/finetune=paper " in paper and "--where task/scan/finetune=paper " in paper
    assert "task/scan/finetune=ours " in ours and "--where task/scan/finetune=ours " in ours
    assert "table_scan_finetune_lstm.md" in paper and "table_scan_finetune_lstm_our_recipe.md" in ours
    assert check_cli(["task=scan", "method=equitune", "task.finetune.examples=10000", "task/scan/finetune=papr"]) == (
        "unknown task/scan/finetune 'papr'; choose one of: ours, paper")


def test_the_scan_tables_pretrain_the_papers_way_unless_told_ours():
    rnn = make_dry("SCAN_PRETRAIN=ours", target="table-scan-rnn").stdout
    assert "task/scan/pretrain=ours_rnn " in rnn and "--where task/scan/pretrain=ours_rnn " in rnn  # the RNN's own
    for target, table in (("table2", "table2"), ("table-scan-finetune", "table_scan_finetune_lstm")):
        paper, ours = make_dry(target=target).stdout, make_dry("SCAN_PRETRAIN=ours", target=target).stdout
        assert "task/scan/pretrain=ours " in ours and "--where task/scan/pretrain=ours " in ours
        assert f"{table}_our_pretraining.md" in ours
        assert "task/scan/pretrain=paper " in paper and "--where task/scan/pretrain=paper " in paper
        assert f"{table}.md" in paper
    bad = make_dry("SCAN_PRETRAIN=papr", target="table2")
    assert bad.returncode == 2
    assert "SCAN_PRETRAIN=papr is not a SCAN pretraining recipe; choose paper or ours" in bad.stderr


@pytest.mark.parametrize("target", ["table-d5", "table2", "table-scan-finetune", "table-scan-g", "table-scan-lambda",
                                    "fig-scan-fewshot", "clean-runs"])
def test_the_tables_and_figures_go_where_the_runs_do(target, tmp_path):
    """EQUI_OUTPUTS moves the runs (paths.outputs), so a target's table, figure and clean-up follow it."""
    lines = make_dry(f"EQUI_OUTPUTS={tmp_path}", target=target).stdout.splitlines()
    words = [w for line in lines if " -m equi." in line or line.startswith("rm ") for w in line.split()]
    paths = [w for w, before in zip(words[1:], words) if before in ("--out", "--png", "--table", "-rf")]
    assert paths and all(p.startswith(f"{tmp_path}/") for p in paths), paths


@pytest.mark.parametrize("target,variables", [
    ("table2", []), ("table2", ["SCAN_PRETRAIN=ours"]), ("table2", ["SCAN_MODEL=ours"]),
    ("table-scan-finetune", []), ("table-scan-finetune", ["SCAN_FINETUNE=ours"]),
    ("table-scan-finetune", ["SCAN_PRETRAIN=ours", "SCAN_FINETUNE=ours"]),
    ("table-scan-finetune-rnn", ["SCAN_PRETRAIN=ours"]), ("table-scan-rnn", []),
])
def test_each_scan_tables_rows_are_the_runs_its_sweep_makes(target, variables):
    """Every --where of the table (recipes by name included) holds for the config its own sweep
    composes (its first job), and the other recipe's runs are left out."""
    from equi.report import holds, parse_condition

    lines = make_dry(*variables, target=target).stdout.splitlines()  # under `make test`, also make[1]'s own lines
    sweep, collect = (next(line for line in lines if step in line) for step in (" run.py -m ", " -m equi.report "))
    overrides = [o.split("=", 1)[0] + "=" + o.split("=", 1)[1].split(",")[0] for o in shlex.split(sweep.split(" -m ")[1])]
    config = OmegaConf.to_container(compose_config(overrides), resolve=True)
    words = collect.split()
    conditions = [parse_condition(w) for w, before in zip(words[1:], words) if before == "--where"]
    for condition in conditions:
        assert holds(config, [condition]), condition
    other = "ours" if "SCAN_PRETRAIN=ours" not in variables else "paper"
    swapped = OmegaConf.to_container(compose_config(overrides + [f"task/scan/pretrain={other}"]), resolve=True)
    assert not holds(swapped, conditions)


def test_the_papers_loss_sums_each_target_up_to_its_first_predicted_eos():
    """Sequence 0 predicts <eos> at step 1: steps 0 and 1 count. Sequence 1 never does: its
    unpadded steps count. The sum per sequence is averaged over the batch."""
    torch.manual_seed(0)
    log_p = torch.randn(2, 4, len(data.ACTIONS)).log_softmax(-1)
    log_p[0, 1, data.EOS_OUT] = 5.0  # the argmax at step 1
    log_p[1, :, data.EOS_OUT] = -50.0
    a, b = data.ACTIONS.index("I_JUMP"), data.ACTIONS.index("I_RUN")
    target = torch.tensor([[a, b, a, data.EOS_OUT], [b, a, data.EOS_OUT, data.PAD_ID]])
    expected = (-(log_p[0, 0, a] + log_p[0, 1, b]) - (log_p[1, 0, b] + log_p[1, 1, a] + log_p[1, 2, data.EOS_OUT])) / 2
    assert torch.allclose(scan.loss_to_predicted_eos(log_p, target), expected)


def test_batches_smaller_than_the_process_count_are_one_line(monkeypatch):
    cfg = compose_config(["task=scan", *PAPER_RECIPE])
    scan.check_batches(cfg.task)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(ConfigError, match=r"^task.finetune.batch_size=1 is smaller than the 2 processes that share "
                                          r"each batch; raise it or run fewer$"):
        scan.check_batches(cfg.task)


def test_the_few_shot_curve_refuses_runs_of_two_finetuning_recipes(tmp_path):
    for n, (batch, lr, examples) in enumerate([(32, 5e-4, 0), (32, 5e-4, 10000), (1, "paper", 10000)]):
        write_scan_run(tmp_path / "runs", f"run{n}", "equizero", 50.0 + n, pretrain={"keep": "best_val"},
                       finetune={"examples": examples, "batch_size": batch, "lr": lr})
    common = ["--runs", str(tmp_path / "runs"), "--png", str(tmp_path / "f.png"), "--table", str(tmp_path / "t.md")]
    assert scan_figures.main(common) == 2
    assert scan_figures.main([*common, "--where", "task.finetune.lr!=paper"]) == 0
    assert (tmp_path / "t.md").read_text().splitlines()[3] == "| 10000 | - | - | 51.0 (0.0), n=1 |"


def test_the_few_shot_curve_refuses_runs_of_two_pretrainings(tmp_path, capsys):
    """A run made before clip_scope existed clipped the whole model: it is not the paper-pretrained one."""
    for n, pretrain in enumerate([{}, {"clip_scope": "encoder_decoder"}]):
        write_scan_run(tmp_path / "runs", f"run{n}", "vanilla", 10.0 + n,
                       pretrain={"keep": "best_val", "batch_size": 1, **pretrain})
    common = ["--runs", str(tmp_path / "runs"), "--png", str(tmp_path / "f.png"), "--table", str(tmp_path / "t.md")]
    assert scan_figures.main(common) == 2
    assert capsys.readouterr().err.startswith("error: the runs come from 2 pretrained models (")
    assert scan_figures.main([*common, "--where", "task.pretrain.clip_scope=encoder_decoder"]) == 0
    assert (tmp_path / "t.md").read_text().splitlines()[2] == "| 0 | 11.0 (0.0), n=1 | - | - |"
