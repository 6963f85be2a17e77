"""Config composition helpers: resolvers, run names, and a one-line check of the command line.

Hydra's own errors for a misspelled key or choice are several lines with a hint about
stack traces; ``check_cli`` catches those mistakes first and names them in one line.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import warnings
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from . import schema
from .errors import one_line

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
GROUPS = sorted(d.name for d in CONF_DIR.iterdir() if d.is_dir() and d.name != "hydra")  # hydra/: launchers
LAUNCHERS = ["basic", *sorted(p.stem for p in (CONF_DIR / "hydra" / "launcher").glob("*.yaml"))]
# our conf/hydra/launcher/submitit_*.yaml set values over the plugin's schema of the same name, as meant
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against ConfigStore schema")
NOT_IN_RUN_KEY = ("hardware", "logger", "label", "paper", "paper_by_split", "force", "download", "paths", "hydra")


def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


# Keys added after runs were recorded, each with when it leaves the numbers as they were (its
# default, or a task that ignores it): then it stays out of the run key, so earlier runs keep
# their keys and a rerun still finds them.
def _our_cnn_protocol(cfg: DictConfig) -> bool:
    return OmegaConf.select(cfg, "task.protocol", default="ours") == "ours"


def _last_scan_checkpoint(cfg: DictConfig) -> bool:
    return OmegaConf.select(cfg, "task.pretrain.keep", default="last") == "last"


def _scan_default(path: str, default):
    """For a key scan added: out of the key while it holds the value runs were made with before."""
    return lambda cfg: cfg.task.name == "scan" and OmegaConf.select(cfg, path, default=default) == default


ADDED_KEYS = {
    "method.relaxed": lambda cfg: not OmegaConf.select(cfg, "method.relaxed", default=False),  # nlg's R- variants
    "method.decoding": lambda cfg: cfg.task.name not in schema.DECODING_TASKS,  # scan only
    "task.protocol": _our_cnn_protocol,  # cnn's paper protocol, its settings and their fast mode
    "task.paper_protocol": _our_cnn_protocol,
    "task.fast.paper_protocol": _our_cnn_protocol,
    "task.pretrain.keep": _last_scan_checkpoint,  # scan's early stopping
    "task.pretrain.val_every": _last_scan_checkpoint,
    "task.finetune.weight_decay": _scan_default("task.finetune.weight_decay", 0),  # scan's paper finetuning recipe
    "task.finetune.loss": _scan_default("task.finetune.loss", "token_mean"),
    "task.finetune.clip_scope": _scan_default("task.finetune.clip_scope", "model"),  # scan's per-module clipping
    "task.pretrain.clip_scope": _scan_default("task.pretrain.clip_scope", "model"),
    "task.pretrain.loss": _scan_default("task.pretrain.loss", "token_mean"),
    "task.paper_finetune_lr": lambda cfg: OmegaConf.select(cfg, "task.finetune.lr") != "paper",  # scan's table of them
}


def run_key(cfg: DictConfig) -> str:
    """Hash of everything that changes a run's numbers (not logging or labels, nor hardware: the
    device and the process count leave the numbers as they are up to rounding). Mixed precision
    does not: bf16/fp16 runs get their own key, fp32 ones keep the key they always had."""
    content = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in NOT_IN_RUN_KEY}
    for path, as_before in ADDED_KEYS.items():
        if as_before(cfg):
            *parents, key = path.split(".")
            node = content
            for name in parents:
                node = node.get(name) or {}
            node.pop(key, None)
    precision = OmegaConf.select(cfg, "hardware.precision", default="fp32")
    if precision != "fp32":
        content["precision"] = precision
    return hashlib.sha1(json.dumps(content, sort_keys=True).encode()).hexdigest()[:10]


def run_name(cfg: DictConfig) -> str:
    fast = "-fast" if cfg.fast else ""
    return f"{cfg.task.name}-{cfg.method.name}-seed{cfg.seed}{fast}-{run_key(cfg)}"


def _run_name_resolver(*, _root_: DictConfig) -> str:
    return run_name(OmegaConf.masked_copy(_root_, [k for k in _root_ if k != "hydra"]))


for _name, _fn in (("repo_root", lambda: str(REPO_ROOT)), ("run_name", _run_name_resolver)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)


def compose_config(overrides: list[str] = ()) -> DictConfig:
    """The composed run config (without Hydra's own node), as run.py would see it."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def check_launcher(hydra_overrides: list[str]) -> str | None:
    """The hydra.launcher keys of a hydra/launcher=<name> choice against schema.LAUNCHERS."""
    name = next((o.split("=", 1)[1] for o in hydra_overrides if o.startswith("hydra/launcher=")), "basic")
    if name == "basic":
        return None
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            launcher = compose(config_name="config", overrides=hydra_overrides, return_hydra_config=True).hydra.launcher
            return schema.check_launcher(OmegaConf.to_container(launcher, resolve=True), name)
    except Exception as err:  # hydra's own error for an unknown key or a wrong type
        return one_line(err)


def _all_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items_ex(resolve=False):
        keys.append(prefix + str(k))
        if isinstance(v, DictConfig):
            keys += _all_keys(v, f"{prefix}{k}.")
    return keys


def check_cli(overrides: list[str]) -> str | None:
    """None if the overrides compose into valid runs, else one line naming the problem.

    Sweeps are checked choice by choice for config groups (up to 64 combinations) and value by
    value for other keys (with the first combination); ``schema.check`` judges each value.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as err:  # hydra's parser error: report its first line
        return one_line(err)

    group_values: dict[str, list[str]] = {}
    key_overrides: list[tuple[str, str, list[str]]] = []  # (key element, key, values)
    for o in parsed:
        key = o.key_or_group
        if key == "hydra/launcher" and o.get_value_element_as_str() not in LAUNCHERS:
            return f"unknown hydra/launcher {o.get_value_element_as_str()!r}; choose one of: {', '.join(LAUNCHERS)}"
        if key.startswith("hydra"):
            continue
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        if key in GROUPS and not o.is_delete():
            allowed = choices(key) + (["null"] if key == "experiment" else [])
            for v in values:
                if v not in allowed:
                    return f"unknown {key} {v!r}; choose one of: {', '.join(choices(key))}"
            group_values[key] = values
        else:
            key_overrides.append((o.get_key_element(), key, values))

    problem = check_launcher([o for o in overrides if o.startswith("hydra")])
    if problem:
        return problem
    first = [f"{e}={vs[0]}" for e, _, vs in key_overrides]
    later = [first[:i] + [f"{e}={v}"] + first[i + 1:] for i, (e, _, vs) in enumerate(key_overrides) for v in vs[1:]]
    combos = list(itertools.product(*[[(g, v) for v in vs] for g, vs in group_values.items()]))[:64]
    for n, combo in enumerate(combos):
        group_args = [f"{g}={v}" for g, v in combo]
        try:
            cfg = compose_config(group_args)
        except Exception as err:
            return one_line(err)
        known = _all_keys(cfg)
        for element, key, _ in key_overrides:
            if not element.startswith(("+", "~")) and key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                return f"unknown config key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        for values in [first] + (later if n == 0 else []):
            try:
                problem = schema.check(compose_config(group_args + values))
            except Exception as err:
                return one_line(err)
            if problem:
                return problem
    return None
