"""The real config composes for every task, method and experiment; bad input gives one line."""

import subprocess
import sys

import pytest

from omegaconf import open_dict

from equi.config import GROUPS, check_cli, choices, compose_config, run_key

from .conftest import REPO


def test_config_groups_are_the_documented_ones():
    assert GROUPS == ["experiment", "hardware", "logger", "method", "task",
                      "task/scan/finetune", "task/scan/model", "task/scan/pretrain"]  # SCAN's recipes
    assert choices("task/scan/pretrain") == ["ours", "ours_rnn", "paper"]
    assert choices("method") == ["canonical_lambda", "equitune", "equizero", "lambda", "vanilla"]
    assert choices("hardware") == ["cpu", "cuda", "multigpu"]
    assert choices("logger") == ["none", "wandb"]


def test_defaults_compose():
    cfg = compose_config()
    assert (cfg.task.name, cfg.method.name, cfg.hardware.name, cfg.logger.name) == ("synthetic", "canonical_lambda", "cpu", "wandb")
    assert cfg.logger.mode == "offline"


@pytest.mark.parametrize("task", choices("task"))
def test_every_supported_method_composes(task):
    for method in compose_config([f"task={task}"]).task.methods:
        cfg = compose_config([f"task={task}", f"method={method}"])
        assert cfg.method.name == method
        assert check_cli([f"task={task}", f"method={method}"]) is None


@pytest.mark.parametrize("experiment", choices("experiment"))
def test_every_experiment_composes_with_a_label(experiment):  # its paper number: tests/test_report.py
    cfg = compose_config([f"experiment={experiment}"])
    assert cfg.method.name in cfg.task.methods
    assert cfg.label and cfg.label != cfg.method.name


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["method=equitun"], "unknown method 'equitun'; choose one of: canonical_lambda, equitune, equizero, lambda, vanilla"),
        (["task=synthetc"], f"unknown task 'synthetc'; choose one of: {', '.join(choices('task'))}"),
        (["hardware=tpu"], "unknown hardware 'tpu'; choose one of: cpu, cuda, multigpu"),
        (["seeed=1"], "unknown config key 'seeed' (did you mean 'seed'?)"),
        (["method.extra_rotation=3"], "unknown config key 'method.extra_rotation' (did you mean 'method.extra_rotations'?)"),
        (["seed=abc"], "seed must be an integer in [0, 4294967295], got 'abc'"),
        (["task.lr=fast"], "task.lr must be a number > 0, got 'fast'"),
        (["method=equizero"], "task 'synthetic' does not support method 'equizero'; supported: vanilla, equitune, lambda, canonical_lambda"),
        (["method=vanilla,equizer"], "unknown method 'equizer'"),
        (["method=vanilla,equizero"], "task 'synthetic' does not support method 'equizero'"),
    ],
)
def test_bad_overrides_are_named(overrides, message):
    problem = check_cli(overrides)
    assert problem is not None and problem.startswith(message)
    assert "\n" not in problem


def test_good_overrides_and_sweeps_pass():
    assert check_cli(["seed=3", "method=vanilla", "task.epochs=5", "logger=none"]) is None
    assert check_cli(["seed=0,1,2", "experiment=d5_mlp,d5_canon"]) is None
    assert check_cli(["method=vanilla", "experiment=d5_canon"]) == (  # the experiment's method settings would be lost
        "unknown config key 'method.extra_rotations' (method=vanilla has no such key)")


def test_run_key_ignores_hardware_and_logger_but_not_settings():
    base = run_key(compose_config())
    assert run_key(compose_config(["logger=none", "hardware=cuda", "hardware.precision=fp32"])) == base
    assert run_key(compose_config(["hardware=multigpu", "hardware.nproc=4", "hardware.precision=fp32"])) == base
    assert run_key(compose_config(["hardware=cuda"])) != base  # bf16 changes the numbers
    assert run_key(compose_config(["seed=1"])) != base
    assert run_key(compose_config(["method.extra_rotations=2"])) != base


def test_method_decoding_enters_the_run_key_of_scan_runs_only():
    """Added for SCAN (issue 11): other tasks' equitune and λ runs keep the keys they had without it,
    while SCAN's get a key per decoding, none of them the key of the runs made before it existed."""
    def key_without_decoding(cfg):
        with open_dict(cfg):
            del cfg.method.decoding
        return run_key(cfg)

    for task, method in [("cnn", "equitune"), ("clip", "lambda"), ("dqn", "equitune"), ("synthetic", "lambda")]:
        cfg = compose_config([f"task={task}", f"method={method}"])
        assert run_key(cfg) == key_without_decoding(cfg.copy()), (task, method)
    for method in ("equitune", "lambda"):
        scan = [compose_config(["task=scan", f"method={method}", f"method.decoding={d}"]) for d in ("null", "stepwise")]
        assert len({run_key(scan[0]), run_key(scan[1]), key_without_decoding(scan[0].copy())}) == 3


def run_cli(*args):
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_cli_error_is_one_line_with_exit_code_2():
    result = run_cli("method=equitun")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: unknown method 'equitun'; choose one of: canonical_lambda, equitune, equizero, lambda, vanilla"
    )


def test_cli_help_lists_groups_and_choices():
    result = run_cli("--help")
    assert result.returncode == 0
    for line in ("method: canonical_lambda, equitune, equizero, lambda, vanilla", "hardware: cpu, cuda, multigpu", "logger: none, wandb"):
        assert line in result.stdout


def test_cli_gpu_request_without_gpu_is_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_cli("hardware=cuda", "fast=true", "logger=none")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: hardware=cuda asks for a GPU but torch sees none; use hardware=cpu"
