"""One run: compose → schema check → seed → task runner → results.json (+ W&B), or error.json
when it fails. run.py calls ``hydra_entry``."""

from __future__ import annotations

import random
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from . import schema, tasks
from .config import CONF_DIR, run_key
from .errors import ConfigError, UserError, one_line
from .hardware import device_for
from .logger import NullLogger, create_logger
from .results import RESULTS, finished, git_commit, package_versions, write_json_atomic

ERROR = "error.json"  # a failed run's record, in its run dir instead of results.json


@dataclass
class RunContext:
    """What a task runner gets besides its config."""

    device: torch.device
    logger: NullLogger
    run_dir: Path
    cache_dir: Path  # checkpoints shared between runs (pretrained models), keyed by config
    data_dir: Path


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def effective_config(cfg: DictConfig) -> DictConfig:
    """The config a runner sees: with fast=true, task.fast merged over task."""
    if not cfg.fast:
        return cfg
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.task = OmegaConf.merge(cfg.task, cfg.task.fast)
    return cfg


def finished_record(cfg: DictConfig, run_dir: Path) -> dict | None:
    """The stored record of this very run, which a rerun skips to (None with force=true)."""
    return None if cfg.force else finished(run_dir, run_key(cfg))


def execute(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Run one experiment into run_dir, or return the stored record if it already finished.
    A config value that the schema refuses stops here, before any work."""
    problem = schema.check(cfg)
    if problem:
        raise ConfigError(problem)
    run_dir = Path(run_dir)
    device = device_for(cfg.hardware)
    key = run_key(cfg)
    done = finished_record(cfg, run_dir)
    if done:
        if cfg.paper is not None and (done["label"], done["paper"]) != (cfg.label, cfg.paper):
            # the same numbers now stand in a paper table's row; plain sweeps never relabel
            done = {**done, "label": cfg.label, "paper": cfg.paper}
            write_json_atomic(run_dir / RESULTS, done)
        print(f"skip: finished run in {run_dir} (force=true reruns it)")
        return done
    run_cfg = effective_config(cfg)
    config = OmegaConf.to_container(run_cfg, resolve=True)
    seed_everything(cfg.seed)
    ctx = RunContext(
        device=device,
        logger=NullLogger(),
        run_dir=run_dir,
        cache_dir=Path(cfg.paths.outputs) / "cache",
        data_dir=Path(cfg.paths.data),
    )
    ctx.logger = create_logger(cfg.logger, run_dir, config, name=run_dir.name)
    start = time.perf_counter()
    metrics = tasks.runner(cfg.task.name)(run_cfg, ctx)
    wall = time.perf_counter() - start
    record = {
        "run_key": key,
        "task": cfg.task.name,
        "method": cfg.method.name,
        "label": cfg.label,
        "paper": cfg.paper,
        "seed": cfg.seed,
        "metrics": metrics,
        "wall_time_s": round(wall, 2),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "config": config,
    }
    write_json_atomic(run_dir / RESULTS, record)
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


def record_failure(run_dir: Path, cfg: DictConfig, err: Exception, overrides: list[str]) -> None:
    """error.json in the run dir: what failed and the config it failed with (a rerun retries the run)."""
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:
        config = OmegaConf.to_container(cfg)
    write_json_atomic(run_dir / ERROR, {
        "error": failure(err),
        "traceback": None if isinstance(err, UserError) else traceback.format_exc(),
        "overrides": overrides,
        "config": config,
        "git_commit": git_commit(),
    })


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> dict:
    """One run of run.py. A UserError is one line and exit 2, a bug keeps its traceback; either way
    the run dir gets error.json. In a sweep (-m) the other runs go on, and equi.sweep.SweepSummary
    tabulates what this returns."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    status = "skipped" if finished_record(cfg, run_dir) else "finished"
    try:
        execute(cfg, run_dir)
    except Exception as err:
        record_failure(run_dir, cfg, err, list(hydra_cfg.overrides.task))
        if not sweeping and not isinstance(err, UserError):
            raise  # a bug: its traceback
        if isinstance(err, UserError):
            print(f"error: {err}", file=sys.stderr)
        else:
            traceback.print_exc()
        if not sweeping:
            sys.exit(2)
        return {"status": "failed", "error": failure(err)}
    (run_dir / ERROR).unlink(missing_ok=True)
    return {"status": status}
