"""The paper's numbers as data (equi/paper/basu2023.yaml, equi.paper) and the tables that print them
beside ours (equi.report, `python -m equi.report`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from equi import paper, report
from equi.config import CONF_DIR, compose_config

from .conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))


def test_every_number_of_the_yaml_is_of_a_form_its_header_lists_and_says_where_it_stands():
    artefacts = paper.artefacts()
    assert {"table_d5", "table2", "table_scan_gru", "table_scan_finetune_rnn", "table1", "fig2", "fig3",
            "fig4", "fig5a", "fig5b", "fig7", "fig11a"} <= set(artefacts)
    for artefact in artefacts.values():
        assert artefact.source and artefact.metric and artefact.layout and artefact.rows

    def numbers(node):
        return [node] if isinstance(node, paper.Number) else [n for v in node.values() for n in numbers(v)]

    kinds = {n.kind for a in artefacts.values() for n in numbers(a.rows)}
    assert kinds == {"printed", "range", "read_off", "absent", "not_transcribed"}
    assert all(n.value is not None for a in artefacts.values() for n in numbers(a.rows) if n.kind in ("printed", "read_off"))


def test_each_form_of_a_number():
    lstm = paper.paper_number("table2", "EquiLSTM", "add_jump")
    assert (lstm.kind, lstm.value, str(lstm)) == ("printed", 7.1, "7.1")
    assert str(paper.paper_number("table2", "LSTM", "add_jump")) == "0.0"  # a paper number of 0.0 is one
    mlp = paper.paper_number("table_d5", "MLP")
    assert (mlp.value, mlp.std, str(mlp)) == (0.91, 0.82, "0.91 (0.82)")
    assert str(paper.paper_number("table_d5", "Canon-λ-MLP")) == "0.11 (0.04) to 0.37 (0.57)"
    read = paper.paper_number("fig5a", "RN50", "lambda", 4000)
    assert (read.kind, read.value, read.pm, str(read)) == ("read_off", 46.5, 0.5, "46.5 ± 0.5")
    assert paper.paper_number("fig5a", "RN50", "lambda", "4000") == read  # keys are compared as text
    assert paper.paper_number("fig5b", "alexnet", "equitune", 9).pm is None  # how closely: not recorded
    stepwise = paper.paper_number("table2", "EquiLSTM stepwise", "around_right")
    assert (stepwise.kind, stepwise.known, str(stepwise)) == ("absent", False, "not in the paper")
    assert str(paper.paper_number("table_scan_gru", "EquiGRU", "add_jump")) == "not transcribed"
    assert paper.find("table1", "RN101", "time") is None and str(paper.paper_number("table1", "RN50", "time")) == "1.66"


@pytest.mark.parametrize("lookup,message", [
    (("table3", "LSTM"), "basu2023.yaml has no artefact 'table3'; it has: table_d5, table2, "),
    (("table2", "GRU", "add_jump"), "basu2023.yaml: table2 has no row 'GRU'; it has: LSTM, EquiLSTM, EquizeroLSTM, "),
    (("table2", "LSTM", "simple"), "basu2023.yaml: table2 'LSTM' has no column 'simple'; it has: add_jump, around_right"),
    (("table2", "LSTM"), "basu2023.yaml: table2 'LSTM' holds a number per add_jump, around_right: name one"),
    (("table_d5", "MLP", "add_jump"), "basu2023.yaml: table_d5 'MLP' is one number, with no column 'add_jump'"),
])
def test_an_unknown_artefact_row_or_column_is_one_line_naming_what_there_is(lookup, message):
    with pytest.raises(paper.PaperKeyError) as err:
        paper.paper_number(*lookup)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def write_run(runs: Path, name: str, task: str, label: str, seed: int, value: float, metric: str = "test_accuracy",
              **task_config) -> None:
    """A results.json as an older version wrote it: its own `paper` (which the tables no longer read)."""
    (runs / name).mkdir(parents=True)
    record = {"run_key": name, "task": task, "method": "vanilla", "label": label, "paper": "99 (from the run)",
              "seed": seed, "metrics": {metric: value}, "config": {"task": {"metric": metric, **task_config}}}
    (runs / name / "results.json").write_text(json.dumps(record))


def scan(cell: str, split: str, examples: int = 0, architecture: str = "seq2seq_paper") -> dict:
    return {"cell": cell, "split": split, "architecture": architecture, "limit": None, "finetune": {"examples": examples}}


def test_the_tables_paper_column_is_the_yamls_at_the_runs_artefact_row_and_split(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed, value in enumerate((1.0, 3.0)):
        write_run(runs, f"lstm{seed}", "scan", "LSTM (add_jump)", seed, value, **scan("lstm", "add_jump"))
        write_run(runs, f"step{seed}", "scan", "EquiLSTM stepwise (around_right)", seed, value, **scan("lstm", "around_right"))
    write_run(runs, "gru", "scan", "EquiGRU (add_jump)", 0, 8.7, **scan("gru", "add_jump"))
    write_run(runs, "grnn", "scan", "G-RNN (around_right)", 0, 99.7, **scan("rnn", "around_right", architecture="gseq2seq"))
    write_run(runs, "fine", "scan", "EquiRNN finetuned (around_right)", 0, 80.0, **scan("rnn", "around_right", 10000))
    write_run(runs, "plain", "scan", "equitune", 0, 5.0, **scan("lstm", "add_jump"))
    expected = ["| model | test_accuracy: ours, mean (std) | runs | paper |", "|---|---|---|---|",
                "| EquiGRU (add_jump) | 8.7 (0.0) | 1 | not transcribed |",
                "| EquiLSTM stepwise (around_right) | 2.0 (1.4) | 2 | not in the paper |",
                "| EquiRNN finetuned (around_right) | 80.0 (0.0) | 1 | 78.4 |",
                "| G-RNN (around_right) | 99.7 (0.0) | 1 | 84.5 |",
                "| LSTM (add_jump) | 2.0 (1.4) | 2 | 0.0 |"]
    assert report.table(report.load(runs, "scan", False, True), None, 1).splitlines() == expected
    everything = report.table(report.load(runs, "scan", False, False), None, 1).splitlines()
    assert everything == expected[:6] + ["| LSTM (add_jump) | 2.0 (1.4) | 2 | 0.0 |", "| equitune | 5.0 (0.0) | 1 | - |"]
    out = tmp_path / "table.md"
    assert report.main(["--runs", str(runs), "--task", "scan", "--digits", "1", "--paper-rows", "--where",
                        "task.cell=lstm", "--out", str(out)]) == 0
    assert out.read_text().splitlines() == expected[:2] + expected[3:4] + expected[6:]
    assert capsys.readouterr().out.splitlines() == out.read_text().splitlines()


def test_table_d5_rows_the_set_sizes_of_canon_lambda_under_one_range(tmp_path):
    runs = tmp_path / "runs"
    for name, label in (("mlp", "MLP"), ("canon", "Canon-MLP"), ("two", "Canon-λ-MLP (2 rotations)"),
                        ("eight", "Canon-λ-MLP (8 rotations)"), ("zero", "Zero")):
        write_run(runs, name, "synthetic", label, 0, 0.5, metric="test_loss")
    assert report.table(report.load(runs, "synthetic", False, True), None).splitlines()[2:] == [
        "| Canon-MLP | 0.500 (0.000) | 1 | 0.41 (0.34) |",
        "| Canon-λ-MLP (2 rotations) | 0.500 (0.000) | 1 | 0.11 (0.04) to 0.37 (0.57) |",
        "| Canon-λ-MLP (8 rotations) | 0.500 (0.000) | 1 | 0.11 (0.04) to 0.37 (0.57) |",
        "| MLP | 0.500 (0.000) | 1 | 0.91 (0.82) |"]  # Zero: its run's own paper number is not read


TABLES = ["table-d5", "table2 SCAN_MODEL=paper SCAN_PRETRAIN=paper", "table-scan-gru SCAN_MODEL=paper SCAN_PRETRAIN=paper",
          "table-scan-rnn SCAN_MODEL=paper SCAN_PRETRAIN=paper", "table-scan-lambda SCAN_MODEL=paper SCAN_PRETRAIN=paper",
          "table-scan-finetune-lstm SCAN_FINETUNE=paper", "table-scan-finetune-gru SCAN_FINETUNE=paper",
          "table-scan-finetune-rnn SCAN_FINETUNE=paper", "table-scan-g"]


def table_records() -> list[dict]:
    """A record of every run the paper tables' sweeps make (the first seed), labelled as its run would be."""
    from tests.paper_runs import runs

    records = []
    for target, overrides in runs():
        if target in TABLES and "seed=0" in overrides:
            cfg = compose_config([o for o in overrides if not o.startswith("seed=")])
            records.append({"task": cfg.task.name, "label": cfg.label, "target": target,
                            "config": OmegaConf.to_container(cfg, resolve=True)})
    return records


def test_every_run_of_the_papers_tables_is_a_row_of_exactly_one_of_them():
    records = table_records()
    assert len(records) == 2 + 3 + 2 * (4 + 4 + 4 + 2 + 4 + 4 + 4 + 3)  # D.5: MLP, Canon-MLP, Canon-λ at 3 set sizes
    missing = [(r["target"], r["label"]) for r in records if report.paper_for(r) is None]  # two artefacts: an error
    assert missing == []
    assert {r["config"]["task"]["split"] for r in records if r["task"] == "scan"} == {"add_jump", "around_right"}


def test_the_figure_modules_read_the_yaml():
    import bench_clip

    from equi.tasks.clip import figures as clip_figures
    from equi.tasks.cnn import figures as cnn_figures

    assert clip_figures.paper_vanilla("cifar100", "RN50", "rot180") == 30.1  # the paper's "flip"
    assert clip_figures.paper_vanilla("imagenetv2", "ViT-B-16", "rot90") == 52.8
    assert clip_figures.paper_vanilla("cifar100", "RN50", "flip") is None  # a true mirror: ours
    assert clip_figures.paper_vanilla("cifar10", "standin", "none") is None
    assert clip_figures.paper_finetune("RN101", "lambda") == (36.8, 49.0)  # Figure 5a
    assert clip_figures.paper_finetune("ViT-B-16", "lambda") == (61.9, 72.2)  # Figure 11a
    assert clip_figures.paper_finetune("RN50", "vanilla") is None
    assert cnn_figures.paper_readings("alexnet", "equitune") == (71.0, 75.5)
    assert cnn_figures.paper_readings("resnet18", "lambda [test from train]") is None
    assert bench_clip.paper_ratio("ViT-B-32") == "1.46×, 1.13×" and bench_clip.paper_ratio("RN101") == "-"


def test_a_misspelled_recipe_or_condition_is_one_line(tmp_path, capsys):
    assert report.main(["--runs", str(tmp_path), "--where", "task/scan/model=nosuch"]) == 2
    assert capsys.readouterr().err == "error: unknown task/scan/model 'nosuch'; choose one of: ours, paper\n"
    assert report.main(["--runs", str(tmp_path), "--where", "task.cell"]) == 2
    assert capsys.readouterr().err == "error: --where 'task.cell': expected key=value or key!=value\n"


@pytest.mark.parametrize("old,now", [
    ("experiment=scan_lstm_equitune_stepwise", ["task=scan", "method=equitune", "method.decoding=stepwise"]),
    ("experiment=scan_rnn_vanilla_finetune", ["task=scan", "task.cell=rnn", "method=vanilla",
                                              "task/scan/pretrain=ours_rnn", "task.finetune.examples=10000"]),
])
def test_runs_made_through_the_old_scan_experiment_files_are_not_stale(tmp_path, old, now):
    """Their .hydra/overrides.yaml names experiment files that are sweeps now: the same runs."""
    from equi.config import run_key

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text(f"- {old}\n- task.split=around_right\n- seed=1\n")
    record = {"run_key": run_key(compose_config([*now, "task.split=around_right", "seed=1"]))}
    assert not report.is_stale(tmp_path, record)
    assert report.is_stale(tmp_path, {"run_key": "other"})
