"""Config composition helpers: resolvers, run names, and a one-line check of the command line.

Hydra's own errors for a misspelled key or choice are several lines with a hint about
stack traces; ``check_cli`` catches those mistakes first and names them in one line.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
GROUPS = sorted(d.name for d in CONF_DIR.iterdir() if d.is_dir())
NOT_IN_RUN_KEY = ("hardware", "logger", "label", "paper", "paper_by_split", "force", "paths", "hydra")


def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def run_key(cfg: DictConfig) -> str:
    """Hash of everything that changes a run's numbers (not hardware, logging or labels)."""
    content = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in NOT_IN_RUN_KEY}
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


def _all_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items_ex(resolve=False):
        keys.append(prefix + str(k))
        if isinstance(v, DictConfig):
            keys += _all_keys(v, f"{prefix}{k}.")
    return keys


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    cause = err.__cause__
    if cause is not None and str(cause).strip():
        text = f"{text.splitlines()[0]}: {str(cause).strip()}"
    return text.splitlines()[0]


def _type_problem(key: str, old, new) -> str | None:
    """YAML defaults carry no schema, so check that an override keeps the default's kind."""
    if isinstance(old, bool) or isinstance(new, bool):
        ok = isinstance(new, bool) or old is None or new is None
        kind = "true or false"
    elif isinstance(old, int):
        ok, kind = isinstance(new, int) or new is None, "an integer"
    elif isinstance(old, float):
        ok, kind = isinstance(new, (int, float)) or new is None, "a number"
    else:
        return None
    return None if ok else f"{key} must be {kind}, got {new!r}"


def check_cli(overrides: list[str]) -> str | None:
    """None if the overrides compose into valid runs, else one line naming the problem.

    Sweeps are checked choice by choice for config groups (up to 64 combinations); for
    other keys the first sweep value stands for the rest.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as err:  # hydra's parser error: report its first line
        return _first_line(err)

    group_values: dict[str, list[str]] = {}
    key_overrides: list[tuple[str, str, str]] = []  # (key element, key, first value)
    for o in parsed:
        key = o.key_or_group
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
            key_overrides.append((o.get_key_element(), key, values[0]))

    combos = list(itertools.product(*[[(g, v) for v in vs] for g, vs in group_values.items()]))
    for combo in combos[:64]:
        group_args = [f"{g}={v}" for g, v in combo]
        try:
            cfg = compose_config(group_args)
        except Exception as err:
            return _first_line(err)
        known = _all_keys(cfg)
        for element, key, _ in key_overrides:
            if not element.startswith(("+", "~")) and key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                return f"unknown config key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        try:
            new = compose_config(group_args + [f"{e}={v}" for e, _, v in key_overrides])
        except Exception as err:
            return _first_line(err)
        for element, key, _ in key_overrides:
            problem = None if element.startswith(("+", "~")) else _type_problem(key, OmegaConf.select(cfg, key), OmegaConf.select(new, key))
            if problem:
                return problem
        cfg = new
        if cfg.method.name not in cfg.task.methods:
            return f"task {cfg.task.name!r} does not support method {cfg.method.name!r}; supported: {', '.join(cfg.task.methods)}"
    return None
