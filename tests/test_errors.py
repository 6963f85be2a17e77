"""Every bad input gets one line: the schema covers every config leaf, each bad value is named
before any work, UserErrors below a runner are one line (exit 2), sweeps survive a failing run,
and the asset report says how to get what is missing."""

import copy
import json
import os
import re
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from equi import assets, schema
from equi.config import CONF_DIR, LAUNCHERS, check_cli, choices, compose_config
from equi.data import catalog
from equi.data.scan import SPLITS
from equi.errors import ConfigError, MissingAssetError, UserError
from equi.experiment import ERROR, execute
from equi.logger import has_wandb_credentials
from equi.tasks.scan import runner as scan

from .conftest import REPO

SCAN_LINES = ["IN: jump OUT: I_JUMP", "IN: run twice OUT: I_RUN I_RUN", "IN: walk left OUT: I_TURN_LEFT I_WALK",
              "IN: look OUT: I_LOOK", "IN: run OUT: I_RUN", "IN: walk OUT: I_WALK"] * 3
TINY_SCAN = ["fast=true", "logger=none", "hardware.threads=1", "task.pretrain.examples=32"]


def write_scan(root, splits=("add_jump", "simple"), lines=SCAN_LINES):
    for split in splits:
        for relative in SPLITS[split]:
            path = root / "scan" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")


def composed_configs():
    """Every task with each of its methods, and every hardware and logger choice."""
    configs = []
    for task in choices("task"):
        for method in compose_config([f"task={task}"]).task.methods:
            configs.append([f"task={task}", f"method={method}"])
    configs += [[f"hardware={h}"] for h in choices("hardware")] + [[f"logger={g}"] for g in choices("logger")]
    return configs


def leaf_owner(cfg, key):
    """Which group choice a leaf belongs to (its rule depends on that choice only)."""
    group = key.split(".")[0]
    return (group, cfg[group].name) if group in schema.GROUPS else ("run", "")


@pytest.mark.parametrize("overrides", composed_configs(), ids=" ".join)
def test_every_config_leaf_has_a_rule(overrides):
    cfg = compose_config(overrides)
    missing = schema.unruled(cfg)
    owners = sorted({"/".join(leaf_owner(cfg, key)) for key in missing})
    assert not missing, f"no schema rule in equi/schema.py for {owners}: {', '.join(missing)}"


def test_every_bad_value_of_every_leaf_is_one_line_naming_key_and_value(capsys):
    seen, fed, cases = set(), set(), 0
    for overrides in composed_configs():
        cfg = compose_config(overrides)
        assert schema.check(cfg) is None, overrides
        plain, resolved = schema.resolved(cfg)
        for key, _ in schema.leaves(plain):
            rule = schema.rule_for(resolved, key)
            owner = (*leaf_owner(cfg, key), key)
            if rule is None or owner in seen:
                continue  # a missing rule fails test_every_config_leaf_has_a_rule
            for bad in rule.bad_values(resolved):
                broken = copy.deepcopy(cfg)
                OmegaConf.update(broken, key, bad)
                problem = schema.check(broken)
                assert problem and "\n" not in problem, (key, bad, problem)
                assert key in problem and repr(bad) in problem, (key, bad, problem)
                cases += 1
                fed.add(owner)
            seen.add(owner)
    with capsys.disabled():
        print(f"\nschema property test: {len(seen)} config leaves have a rule; {len(fed)} numeric, choice, flag or "
              f"list leaves were fed {cases} bad values, each refused in one line naming the key and the value")
    assert len(fed) >= 190 and cases >= 600


@pytest.mark.parametrize("launcher", [name for name in LAUNCHERS if name != "basic"])
def test_every_launcher_key_has_a_rule_and_bad_values_are_one_line(launcher):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", [f"hydra/launcher={launcher}"], return_hydra_config=True)
    plain = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert schema.check_launcher(plain, launcher) is None  # names any hydra.launcher key without a rule
    for key, _ in schema.leaves(plain):
        for bad in schema.LAUNCHERS[launcher][key].bad_values(OmegaConf.create()):
            problem = schema.check_launcher({**plain, key: bad}, launcher)
            assert problem and "\n" not in problem and f"hydra.launcher.{key}" in problem and repr(bad) in problem


@pytest.mark.parametrize("overrides,message", [
    (["task.epochs=-1"], "task.epochs must be an integer in [1, 10000], got -1"),
    (["task.fast.epochs=0"], "task.fast.epochs must be an integer in [1, 10000], got 0"),
    (["task=cnn", "task.pretrain.resnet18.lr=0"], "task.pretrain.resnet18.lr must be a number > 0, got 0"),
    (["task=cnn", "task.fast.pretrain.alexnet.batch_size=0"], "task.fast.pretrain.alexnet.batch_size must be an integer in [1, 100000]"),
    (["task=dqn", "task.envs.cartpole.dqn.learning_rate=-1"], "task.envs.cartpole.dqn.learning_rate must be a number > 0"),
    (["task=dqn", "task.envs.acrobot.dqn.gamma=1.5"], "task.envs.acrobot.dqn.gamma must be a number in [0, 1], got 1.5"),
    (["task=scan", "task.split=add_walk"], "unknown task.split 'add_walk'; choose one of: simple, add_jump"),
    (["task=scan", "task.pretrain.schedule=onecycle"], "unknown task.pretrain.schedule 'onecycle'; choose one of: constant, cosine"),
    (["task=cnn", "method=equizero", "method.proxy=seq_neg_max_prob"], "unknown method.proxy 'seq_neg_max_prob'"),
    (["task=scan", "task.groups.add_jump.commands=[[jump,fly]]"], "task.groups.add_jump.commands must be a non-empty list, each a list"),
    (["hardware.device=tpu"], "hardware.device must be cpu, cuda or cuda:<index>, got 'tpu'"),
    (["hardware.precision=bf16"], "hardware.precision=bf16 needs a GPU (hardware=cuda or multigpu); on the CPU only fp32"),
    (["hardware=multigpu", "hardware.nproc=0"], "hardware.nproc must be an integer in [1, 1024] or null, got 0"),
    (["hydra/launcher=slurm"], "unknown hydra/launcher 'slurm'; choose one of: basic, submitit_local, submitit_slurm"),
    (["hydra/launcher=submitit_slurm", "hydra.launcher.gpus_per_node=0"],
     "hydra.launcher.tasks_per_node must be an integer in [1, 1024], got 0"),
    (["logger.mode=onlin"], "unknown logger.mode 'onlin'; choose one of: online, offline, disabled"),
    (["seed=0,1,-2"], "seed must be an integer in [0, 4294967295], got -2"),  # every sweep value is checked
    (["~task.epochs"], "task.epochs is missing; it must be an integer in [1, 10000]"),
    (["label=${nosuch}"], "label does not resolve: Interpolation key 'nosuch' not found"),
    (["+task.epocs=3"], "unknown config key 'task.epocs' (did you mean 'task.epochs'?)"),
    (["+extra=1"], "unknown config key 'extra'"),
    (["task=cnn", "+task.finetune.epoch=3"], "unknown config key 'task.finetune.epoch' (did you mean 'task.finetune.epochs'?)"),
    (["fast=true", "+task.fast.epocs=3"], "unknown config key 'task.fast.epocs' (did you mean 'task.epochs'?)"),
    (["task=scan", "method=lambda", "method.decoding=paper"],
     "unknown method.decoding 'paper'; choose one of: per_view, stepwise (or null)"),
    (["task=cnn", "method=equitune", "method.decoding=stepwise"], "method.decoding='stepwise' is for task=scan only; task 'cnn' takes null"),
])
def test_bad_values_on_the_command_line_are_one_line(overrides, message):
    problem = check_cli(overrides)
    assert problem is not None and problem.startswith(message) and "\n" not in problem


def test_a_misspelled_key_in_an_experiment_file_is_one_line(tmp_path, monkeypatch):
    import shutil

    from equi import config

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "experiment" / "d5_typo.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /task: synthetic\ntask:\n  epocs: 3\nlabel: typo\n")
    monkeypatch.setattr(config, "CONF_DIR", conf)
    assert check_cli(["experiment=d5_typo"]) == "unknown config key 'task.epocs' (did you mean 'task.epochs'?)"
    with pytest.raises(ConfigError, match=r"^unknown config key 'task.epocs' \(did you mean 'task.epochs'\?\)$"):
        execute(compose_config(["experiment=d5_typo"]), tmp_path / "run")  # the run checks it too, before any work
    assert not (tmp_path / "run").exists()


def test_a_key_added_with_plus_stops_the_command_with_one_line(tmp_path):
    result = run_cli("+task.epocs=3", "fast=true", "logger=none", env={"EQUI_OUTPUTS": str(tmp_path)})
    assert (result.returncode, result.stderr.strip()) == (
        2, "error: unknown config key 'task.epocs' (did you mean 'task.epochs'?)")
    assert not (tmp_path / "runs").exists()


def test_execute_checks_the_composed_config_before_any_work(tmp_path):
    cfg = compose_config(["task=cnn", "method=equitune", "fast=true", "logger=none", "+task.fast.finetune.lr=0"])
    with pytest.raises(ConfigError, match=r"^task.fast.finetune.lr must be a number > 0, got 0$"):
        execute(cfg, tmp_path)
    assert not any(tmp_path.iterdir())


def test_each_task_has_its_own_default_method_and_an_explicit_one_wins():
    for task in choices("task"):
        cfg = compose_config([f"task={task}"])
        assert cfg.method.name in cfg.task.methods, f"conf/task/{task}.yaml names no default method it supports"
    assert {t: compose_config([f"task={t}"]).method.name for t in ("synthetic", "scan", "cnn", "dqn")} == {
        "synthetic": "canonical_lambda", "scan": "equizero", "cnn": "lambda", "dqn": "equizero"}
    assert compose_config(["task=scan", "method=vanilla"]).method.name == "vanilla"
    assert compose_config(["experiment=scan_glstm"]).method.name == "vanilla"


def run_cli(*args, env=None):
    env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=env)


def assert_one_line_exit_2(result, message):
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"error: {message}"
    assert "Traceback" not in result.stderr + result.stdout


def test_row_default_method_task_scan_runs_scan_with_equizero(tmp_path):
    write_scan(tmp_path)
    result = run_cli("task=scan", "task.limit=6", *TINY_SCAN, env={"EQUI_DATA": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "task=scan method=equizero seed=0" in result.stdout
    for task in ("cnn", "dqn"):
        assert check_cli([f"task={task}"]) is None


@pytest.mark.parametrize("args,message", [
    (["task=synthetic", "task.epochs=-1"], "task.epochs must be an integer in [1, 10000], got -1"),
    (["task=synthetic", "task.batch_size=0"], "task.batch_size must be an integer in [1, 100000], got 0"),
    (["task=cnn", "method=equitune", "task.model=vgg"], "unknown task.model 'vgg'; choose one of: resnet18, alexnet"),
    (["task=cnn", "method=equizero", "method.proxy=nosuch"],
     "unknown method.proxy 'nosuch'; choose one of: entropy, neg_max_prob, neg_softmax_value, neg_similarity (or null)"),
    (["task=synthetic", "method=lambda", "method.lambda_layers=0"], "method.lambda_layers must be an integer in [1, 1000], got 0"),
])
def test_rows_bad_values_are_one_line_exit_2(args, message):
    assert_one_line_exit_2(run_cli(*args, "fast=true", "logger=none"), message)


def test_row_wandb_online_without_credentials_is_one_line_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_API", "WANDB_IDENTITY", "NETRC"))}
    result = subprocess.run([sys.executable, "run.py", "logger.mode=online", "fast=true"], cwd=REPO, capture_output=True,
                            text=True, timeout=300, env={**env, "HOME": str(tmp_path)})
    assert_one_line_exit_2(result, "logger.mode=online needs W&B credentials and none were found (WANDB_API_KEY or "
                           "~/.netrc); run `wandb login`, or use logger.mode=offline (upload later with `wandb sync`)")


def test_wandb_credentials_are_found_without_the_network(tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "NETRC", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert not has_wandb_credentials()
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert has_wandb_credentials()
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "abc")
    assert has_wandb_credentials()


def test_value_errors_about_user_input_become_one_line_user_errors(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"^task.groups.add_jump: a cycle needs at least two words, got \['jump'\]$"):
        scan.swap_group(compose_config(["task=scan", "task.groups.add_jump.commands=[[jump]]"]).task)
    write_scan(tmp_path, lines=["IN: jump OUT: I_JUMP", "jump I_JUMP"])
    monkeypatch.setenv("EQUI_DATA", str(tmp_path))
    with pytest.raises(UserError, match=r"^\S+/tasks_train_addprim_jump\.txt:2: expected 'IN: … OUT: …'"):
        execute(compose_config(["task=scan", *TINY_SCAN]), tmp_path / "run")
    assert str(MissingAssetError("x")) == "x; see `python run.py assets`"
    assert str(MissingAssetError(str(MissingAssetError("x")))) == "x; see `python run.py assets`"  # said once


def test_asset_report_names_what_is_missing_and_how_to_get_it(tmp_path, capsys, monkeypatch):
    assert assets.report([f"paths.data={tmp_path}", f"paths.outputs={tmp_path / 'out'}"]) == 0
    out = capsys.readouterr().out
    assert "\n  scan: scan: SCAN release (Lake & Baroni 2018)\n    python run.py data scan  # or make data\n" in out
    rows = {tuple(re.split(r"\s{2,}", line.strip())[:5]) for line in out.split("\n\n")[0].splitlines()}
    assert {("scan", "scan: SCAN release (Lake & Baroni 2018)", "missing", "24.3 MB", "BSD-3-Clause"),
            ("cnn", "cifar10: CIFAR-10 (Krizhevsky 2009)", "missing", "170.5 MB", "none stated; cite Krizhevsky 2009"),
            ("nlg", "gender_words: gender word lists (an EquiNLG reproduction)", "missing", "2.1 KB",
             "MIT (its LICENSE beside them)"), ("synthetic", "nothing: needs no data or pretrained weights")} <= rows
    mirror = tmp_path / "mirror"
    (mirror / "scan").mkdir(parents=True)
    for file in catalog.DATASETS["scan"].files:  # every file in a folder mirror: fetchable, with downloads on
        (mirror / file.path).parent.mkdir(parents=True, exist_ok=True)
        (mirror / file.path).touch()
    monkeypatch.setenv("EQUI_DATA_MIRROR", str(mirror))
    assets.report([f"paths.data={tmp_path}", f"paths.outputs={tmp_path / 'out'}", "download=true"])
    assert re.search(r"scan: SCAN release \(Lake & Baroni 2018\)\s+fetchable", capsys.readouterr().out)
    assert {row[0] for row in rows} >= set(choices("task"))  # every task has its rows, from its own package


def test_sweep_survives_a_failing_run_and_a_rerun_retries_only_it(tmp_path):
    data, outputs = tmp_path / "data", tmp_path / "outputs"
    write_scan(data)  # add_jump and simple, not around_right
    env = {"EQUI_DATA": str(data), "EQUI_OUTPUTS": str(outputs)}
    sweep = ["-m", "task=scan", "method=vanilla", "task.split=add_jump,around_right,simple", *TINY_SCAN]
    first = run_cli(*sweep, env=env)
    assert first.returncode == 1, first.stderr[-2000:]
    summary = first.stdout[first.stdout.index("sweep: 3 runs"):]
    assert summary.startswith("sweep: 3 runs: 2 finished, 0 skipped, 1 failed")
    failed = next(line for line in summary.splitlines() if line.strip().startswith("failed"))
    assert "task.split=around_right" in failed and "around_right.txt); run `make data`" in failed
    runs = sorted((outputs / "runs").glob("scan-*"))
    assert sorted(len(list(r.glob("results.json"))) for r in runs) == [0, 1, 1]
    error = json.loads(next((outputs / "runs").glob(f"*/{ERROR}")).read_text())
    assert "python run.py assets" in error["error"] and error["config"]["task"]["split"] == "around_right"
    assert error["traceback"] is None and "task.split=around_right" in error["overrides"]

    write_scan(data, splits=("around_right",))
    rerun = run_cli(*sweep, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "sweep: 3 runs: 1 finished, 2 skipped, 0 failed" in rerun.stdout
    assert rerun.stdout.count("skip: finished run") == 2
    assert not list((outputs / "runs").glob(f"*/{ERROR}"))


def test_a_bug_keeps_its_traceback_alone_and_is_recorded_in_a_sweep(tmp_path, monkeypatch, capsys):
    from equi import experiment, tasks

    def run(task, cfg, ctx):
        if cfg.seed == 0:
            raise RuntimeError("a bug")
        return {"test_loss": 1.0}

    monkeypatch.setattr(tasks.Task, "run", run)
    monkeypatch.setattr(sys, "argv", ["run.py", "fast=true", "logger=none"])
    with pytest.raises(SystemExit) as exit_:
        experiment.hydra_entry()
    assert exit_.value.code == 1 and "RuntimeError: a bug" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["run.py", "-m", "seed=0,1", "fast=true", "logger=none"])
    with pytest.raises(SystemExit) as exit_:
        experiment.hydra_entry()
    out = capsys.readouterr().out
    assert exit_.value.code == 1 and "sweep: 2 runs: 1 finished, 0 skipped, 1 failed" in out
    assert "RuntimeError: a bug" in next(line for line in out.splitlines() if line.strip().startswith("failed"))
    error = json.loads(next((tmp_path / "outputs" / "runs").glob(f"*seed0*/{ERROR}")).read_text())
    assert error["error"] == "RuntimeError: a bug" and "Traceback" in error["traceback"]
