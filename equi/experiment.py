"""One run: compose → schema check → seed → task runner → results.json (+ W&B), or error.json
when it fails. run.py calls ``hydra_entry``."""

from __future__ import annotations

import copy
import os
import random
import sys
import time
import traceback
from contextlib import nullcontext
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from . import distributed, hardware, schema, tasks
from .config import CONF_DIR, run_key, with_typed_over_fast
from .errors import ConfigError, UserError, one_line
from .inputs import adoptable, changed
from .logger import create_logger
from .results import RESULTS, claim, finished, git_commit, package_versions, write_json_atomic
from .tasks.context import RunContext, context

ERROR = "error.json"  # a failed run's record, in its run dir instead of results.json
PREVIOUS = "results.previous.json"  # a rerun's earlier results, kept until it succeeds


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def effective_config(cfg: DictConfig) -> DictConfig:
    """The config a runner sees: with fast=true, task.fast merged over task but for the values typed
    on the command line (`typed_over_fast`: `fast=true task.epochs=3` trains 3 epochs), and every
    interpolation resolved, since runners hand sub-trees on alone (`task.pretrain.split_seed=${seed}`
    cannot find the seed from inside a copy of task)."""
    cfg = copy.deepcopy(cfg)
    if cfg.fast:
        typed = {key: OmegaConf.select(cfg, key) for key in OmegaConf.select(cfg, "typed_over_fast", default=[])}
        with open_dict(cfg):
            cfg.task = OmegaConf.merge(cfg.task, cfg.task.fast)
            for key, value in typed.items():
                OmegaConf.update(cfg, key, value, merge=False)
    OmegaConf.resolve(cfg)
    return cfg


def read_inputs(cfg: DictConfig, ctx: RunContext) -> dict:
    """Fingerprints of the data and weights the run reads (its task's `inputs`; see equi.inputs),
    with missing data fetched first as the run would."""
    found = tasks.get(cfg.task.name).inputs(effective_config(cfg), ctx)
    ctx.fingerprints.save()
    return found


def first_process() -> bool:
    """Rank 0 of a run, or its only process (before the ranks have joined)."""
    return os.environ.get("RANK", "0") == "0"


def finished_record(cfg: DictConfig, run_dir: Path, inputs: dict) -> dict | None:
    """The stored record of this very run, which a rerun skips to: the same config key and the same
    inputs (None with force=true). A record made before inputs were recorded is taken over with
    today's inputs when it can stand for them (equi.inputs.adoptable), else the run is redone."""
    done = None if cfg.force else finished(run_dir, run_key(cfg))
    if done is None:
        return None
    if "inputs" not in done:
        if not adoptable(done, inputs):
            if first_process():
                print(f"rerun: {run_dir.name} ran with {done['metrics'].get('weights')} weights; "
                      f"task.weights={cfg.task.weights} now gives {inputs['weights']}")
            return None
        done = {**done, "inputs": inputs}
        if first_process():
            write_json_atomic(run_dir / RESULTS, done)
    elif done["inputs"] != inputs:
        if first_process():
            print(f"rerun: {', '.join(changed(done['inputs'], inputs))} changed since {run_dir.name} finished")
        return None
    return done


def execute(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Run one experiment into run_dir, or return the stored record if it already finished."""
    return execute_with_status(cfg, run_dir)[1]


def execute_with_status(cfg: DictConfig, run_dir: str | Path) -> tuple[str, dict]:
    """("finished" or "skipped", the record). A config value that the schema refuses stops here,
    before any work. The run dir is claimed (results.claim) for the whole run, so a concurrent run
    of the same key waits and then skips; with hardware.nproc > 1 the ranks are started here."""
    problem = schema.check(cfg)
    if problem:
        raise ConfigError(problem)
    run_dir = Path(run_dir)
    started = distributed.started_ranks()  # > 1: this process is one rank (torchrun, SLURM tasks)
    with claim(run_dir) if started == 1 or os.environ["RANK"] == "0" else nullcontext():
        inputs = read_inputs(cfg, context(cfg, run_dir))
        done = finished_record(cfg, run_dir, inputs)
        if not done and first_process() and (run_dir / RESULTS).exists():
            os.replace(run_dir / RESULTS, run_dir / PREVIOUS)  # a rerun starts; kept until it succeeds
        if started == 1 and not done and hardware.nproc(cfg.hardware) > 1:
            returned = distributed.spawn(hardware.nproc(cfg.hardware), run_dir / "ranks", rank_main,
                                         OmegaConf.to_container(cfg, resolve=True), str(run_dir), inputs)
            if isinstance(returned[0], str):
                raise UserError(returned[0])
            return "finished", returned[0]
        return run_here(cfg, run_dir, done, inputs)


def rank_main(config: dict, run_dir: str, inputs: dict) -> dict | str:
    """One rank of a run that execute started: its record, or a UserError's message (re-raised
    by execute, so it stays one line)."""
    try:
        return run_here(OmegaConf.create(config), Path(run_dir), None, inputs)[1]
    except UserError as err:
        return str(err)


def run_here(cfg: DictConfig, run_dir: Path, done: dict | None, inputs: dict) -> tuple[str, dict]:
    """The run in this process (one rank of several, or the only one); rank 0 writes."""
    device = hardware.configure(cfg.hardware)
    try:
        done = distributed.from_main(done)  # every rank skips, or none
        if done:
            return "skipped", skip_to(done, cfg, run_dir)
        return "finished", run_task(cfg, run_dir, device, inputs)
    finally:
        distributed.leave()


def skip_to(done: dict, cfg: DictConfig, run_dir: Path) -> dict:
    if done["label"] != cfg.label and cfg.label != tasks.get(cfg.task.name).row_label(cfg):
        # the same numbers now stand in a row named by an experiment or the command line; plain reruns never relabel
        done = {**done, "label": cfg.label}
        if distributed.is_main():
            write_json_atomic(run_dir / RESULTS, done)
    if distributed.is_main():
        print(f"skip: finished run in {run_dir} (force=true reruns it)")
    return done


def inputs_after(cfg: DictConfig, ctx: RunContext, before: dict) -> dict:
    """The inputs as they stand after the run (weights it downloaded are files now), or those read
    before it where they cannot be read again (a host gone, a file moved): never lose the run."""
    try:
        return read_inputs(cfg, ctx)
    except UserError:
        return before


def run_task(cfg: DictConfig, run_dir: Path, device: torch.device, inputs: dict) -> dict:
    run_cfg = effective_config(cfg)
    config = OmegaConf.to_container(run_cfg, resolve=True)
    seed_everything(cfg.seed)
    main = distributed.is_main()
    ctx = context(cfg, run_dir, device)
    if main:
        ctx.logger = create_logger(cfg.logger, run_dir, config, name=run_dir.name)
    start = time.perf_counter()
    metrics = tasks.get(cfg.task.name).run(run_cfg, ctx)
    wall = time.perf_counter() - start
    record = {
        "run_key": run_key(cfg),
        "task": cfg.task.name,
        "method": cfg.method.name,
        "label": cfg.label,
        "seed": cfg.seed,
        "metrics": metrics,
        "inputs": inputs_after(cfg, ctx, inputs) if main else inputs,
        "wall_time_s": round(wall, 2),
        "processes": distributed.world_size(),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "config": config,
    }
    if main:
        write_json_atomic(run_dir / RESULTS, record)
        (run_dir / PREVIOUS).unlink(missing_ok=True)
        ctx.logger.summary({**metrics, "wall_time_s": wall})
        ctx.logger.finish()
        print_summary(record, run_dir)
    return record


def print_summary(record: dict, run_dir: Path) -> None:
    rows = [(k, f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in record["metrics"].items()
            if not isinstance(v, dict)]  # nested records (figure data) stay in results.json
    rows.append(("wall_time_s", f"{record['wall_time_s']:.1f}"))
    width = max(len(k) for k, _ in rows)
    print(f"\n{record['label']} · task={record['task']} method={record['method']} seed={record['seed']}")
    print(f"  {'metric':<{width}}  value")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print(f"  results: {run_dir / RESULTS}")


def failure(err: Exception) -> str:
    """A failed run in one line: a UserError's message, or a bug's type and first line."""
    return str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {one_line(err)}"


def record_failure(run_dir: Path, cfg: DictConfig, err: Exception, overrides: list[str]) -> str:
    """error.json in the run dir: what failed and the config it failed with (a rerun retries the run).
    A rerun (force=true, or stored results that no longer match) set the earlier results aside as
    results.previous.json when it started, so the next plain run reruns; the message says where
    they are. Returns the failure in one line."""
    message = failure(err)
    if (run_dir / PREVIOUS).exists() and not (run_dir / RESULTS).exists():
        message += f"; the earlier results are kept in {PREVIOUS}"
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:
        config = OmegaConf.to_container(cfg)
    write_json_atomic(run_dir / ERROR, {
        "error": message,
        "traceback": None if isinstance(err, UserError) else traceback.format_exc(),
        "overrides": overrides,
        "config": config,
        "git_commit": git_commit(),
    })
    return message


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> dict:
    """One run of run.py. A UserError is one line and exit 2, a bug keeps its traceback; either way
    the run dir gets error.json (record_failure). In a sweep (-m) the other runs go on, and
    equi.sweep.SweepSummary tabulates what this returns. Ctrl-C is one line and exit 130, also in a
    sweep, and records nothing: every file is written whole or not at all, so a rerun resumes."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = list(hydra_cfg.overrides.task)
    try:
        status, _ = execute_with_status(with_typed_over_fast(cfg, overrides), run_dir)
    except KeyboardInterrupt:
        print(f"interrupted: {run_dir}; rerun the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None  # no KeyboardInterrupt: run.py would add its own line
    except Exception as err:
        message = record_failure(run_dir, cfg, err, overrides)
        if not sweeping and not isinstance(err, UserError):
            if message != failure(err):
                print(f"error: {message}", file=sys.stderr)  # the traceback below ends with the error alone
            raise  # a bug: its traceback
        if isinstance(err, UserError):
            print(f"error: {message}", file=sys.stderr)
        else:
            traceback.print_exc()
        if not sweeping:
            sys.exit(2)
        return {"status": "failed", "error": message}
    (run_dir / ERROR).unlink(missing_ok=True)
    return {"status": status}
