"""Config composition helpers: resolvers, run names, and a one-line check of the command line.

Hydra's own errors for a misspelled key or choice are several lines with a hint about
stack traces; ``check_cli`` catches those mistakes first and names them in one line.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import itertools
import json
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from . import schema
from .errors import one_line

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
GROUPS = sorted({str(d.parent.relative_to(CONF_DIR)) for d in CONF_DIR.rglob("*.yaml")  # task/scan/pretrain: recipes
                 if d.parent != CONF_DIR and d.parts[len(CONF_DIR.parts)] != "hydra"})  # hydra/: launchers
LAUNCHERS = ["basic", *sorted(p.stem for p in (CONF_DIR / "hydra" / "launcher").glob("*.yaml"))]
# our conf/hydra/launcher/submitit_*.yaml set values over the plugin's schema of the same name, as meant
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_\w+' is validated against ConfigStore schema")
NOT_IN_RUN_KEY = ("hardware", "logger", "label", "force", "download", "paths", "hydra")


def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def run_key(cfg: DictConfig) -> str:
    """Hash of everything that changes a run's numbers (not logging or labels, nor hardware: the
    device and the process count leave the numbers as they are up to rounding), nor the keys added
    later while they hold the value runs had before them (schema.Added). Mixed precision changes
    the numbers: bf16/fp16 runs get their own key, fp32 ones keep the key they always had."""
    content = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in NOT_IN_RUN_KEY}
    schema.as_before_pruned(content, cfg)
    precision = OmegaConf.select(cfg, "hardware.precision", default="fp32")
    if precision != "fp32":
        content["precision"] = precision
    return hashlib.sha1(json.dumps(content, sort_keys=True).encode()).hexdigest()[:10]


@functools.cache
def recipe(group: str, option: str) -> dict:
    """The settings a recipe (an option of a nested group such as task/scan/pretrain) sets: {dotted
    key under its ``# @package``: value as written, interpolations unresolved}, its own defaults
    (options of the same group) first."""
    path = CONF_DIR / group / f"{option}.yaml"
    if not path.exists():
        raise ValueError(f"unknown {group} {option!r}; choose one of: {', '.join(choices(group))}")
    text = path.read_text()
    package = next((line.split("@package", 1)[1].strip() for line in text.splitlines()[:3] if "@package" in line), "")
    node = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    settings = {}
    for parent in node.pop("defaults", []):
        if parent != "_self_":
            settings.update(recipe(group, parent))
    settings.update({f"{package}.{key}" if package else key: value for key, value in schema.leaves(node)})
    return settings


def typed_over_fast(cfg: DictConfig, overrides: Iterable[str]) -> list[str]:
    """The task.* keys typed on the command line that task.fast also sets: with fast=true the typed
    value wins (equi.experiment.effective_config). Values from experiment files do not: fast is the
    smoke-test mode."""
    if cfg.fast is not True:
        return []
    fast = [key for key, _ in schema.leaves(OmegaConf.to_container(cfg.task.fast))]
    typed = {o.key_or_group.removeprefix("task.") for o in OverridesParser.create().parse_overrides(list(overrides))
             if o.key_or_group.startswith("task.") and not o.is_delete()}
    return sorted(f"task.{key}" for key in typed if any(f == key or f.startswith(f"{key}.") for f in fast))


def with_typed_over_fast(cfg: DictConfig, overrides: Iterable[str]) -> DictConfig:
    """cfg with its `typed_over_fast` key (when there are such keys), so that the run key, the run
    dir's name and every process of the run see what the command line set."""
    typed = typed_over_fast(cfg, overrides)
    if typed:
        with open_dict(cfg):
            cfg.typed_over_fast = typed
    return cfg


def run_name(cfg: DictConfig) -> str:
    fast = "-fast" if cfg.fast else ""
    return f"{cfg.task.name}-{cfg.method.name}-seed{cfg.seed}{fast}-{run_key(cfg)}"


def _run_name_resolver(*, _root_: DictConfig) -> str:
    """The run dir's name, from Hydra's config: the command line it holds counts as in the run key."""
    cfg = OmegaConf.masked_copy(_root_, [k for k in _root_ if k != "hydra"])
    return run_name(with_typed_over_fast(cfg, OmegaConf.select(_root_, "hydra.overrides.task", default=[])))


def _row_label_resolver(*, _root_: DictConfig) -> str:
    """`label`'s default: the task's name for the run's row in result tables (equi.tasks.Task.label)."""
    from . import tasks

    try:
        return tasks.get(_root_.task.name).row_label(_root_)
    except Exception:  # a bad value it is made from: its own rule names it (equi.schema.check)
        return str(OmegaConf.select(_root_, "method.name"))


for _name, _fn in (("repo_root", lambda: str(REPO_ROOT)), ("run_name", _run_name_resolver),
                   ("row_label", _row_label_resolver)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)


def compose_config(overrides: list[str] = ()) -> DictConfig:
    """The composed run config (without Hydra's own node), as run.py would see it."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def sweep_runs(overrides: list[str]) -> list[list[str]]:
    """One override list per run of a sweep (`seed=0,1` → two lists), in Hydra's order."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    values = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
              else [o.input_line] for o in parsed]
    return [list(run) for run in itertools.product(*values)]


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


COMMANDS = ("assets", "data")  # python run.py <command> …, besides overrides


def not_an_override(word: str) -> str:
    """A bare word on the command line: a misspelled command, a choice without its group, or neither."""
    if word in COMMANDS:
        return f"{word!r} is a command of its own, first on the line: `python run.py {word} …`"
    command = difflib.get_close_matches(word, COMMANDS, n=1)
    if command:
        return f"unknown command {word!r}; did you mean `python run.py {command[0]}`?"
    group = next((g for g in sorted(GROUPS, key=lambda g: g.count("/")) if word in choices(g)), None)  # top level first
    hint = f"did you mean {group}={word}?" if group else "see `python run.py --help` for the keys and choices"
    return f"{word!r} is not an override: overrides are key=value (task=scan, seed=1); {hint}"


def check_cli(overrides: list[str]) -> str | None:
    """None if the overrides compose into valid runs, else one line naming the problem.

    Sweeps are checked choice by choice for config groups (up to 64 combinations) and value by
    value for other keys (with the first combination); ``schema.check`` judges each value.
    """
    word = next((o for o in overrides if "=" not in o and not o.startswith("~")), None)
    if word is not None:
        return not_an_override(word)
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
        if key in schema.ADDED_BY_RUN:
            return f"{key} is set by run.py itself (from the task.* keys typed beside fast=true); leave it out"
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
            recipe_of = next((g for g, _ in combo if g.count("/") > 1 and f"'{g}'. No match" in str(err)), None)
            if recipe_of:  # task/scan/pretrain=… with another task
                return f"{recipe_of} is a recipe of task={recipe_of.split('/')[1]}; leave it out with other tasks"
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


OUTPUT_KEYS = ("paths.outputs", "hydra.run.dir", "hydra.sweep.dir")


def output_variants(overrides: list[str]) -> list[list[str]]:
    """The overrides of a sweep's first run (each swept key at its first value), and one more list
    for each further value of a swept output folder."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    values = [list(o.sweep_string_iterator()) if o.is_sweep_override() else None for o in parsed]
    first = [o.input_line if v is None else f"{o.get_key_element()}={v[0]}" for o, v in zip(parsed, values)]
    return [first] + [first[:i] + [f"{o.get_key_element()}={value}"] + first[i + 1:]
                      for i, (o, v) in enumerate(zip(parsed, values)) if v and o.key_or_group in OUTPUT_KEYS
                      for value in v[1:]]


def unwritable(folder: Path, named: Path) -> str | None:
    """Why runs cannot write in folder (made first, as Hydra would), said of `named` (folder or one
    above it, as the command line named it); None when they can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
        return None
    except OSError as err:
        there = next(p for p in (folder, *folder.parents) if p.exists())
        if not there.is_dir():
            return "is a file, not a folder" if there == named else f"cannot be a folder: {there} is a file"
        inside = f" in {there}" if named in there.parents else ""
        return f"is not writable ({(err.strerror or str(err)).lower()}{inside})"


def check_outputs(overrides: list[str], multirun: bool) -> str | None:
    """One line when runs cannot write where they would: the run dir (or with -m the sweep dir), which
    Hydra makes before any of our code runs (and fails with two chained tracebacks), and
    paths.outputs (cached checkpoints). Makes them, as Hydra would next."""
    dir_key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    for variant in output_variants(overrides):
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                cfg = compose(config_name="config", overrides=variant, return_hydra_config=True)
        except Exception:  # Hydra says why it does not compose, in its own words
            return None
        outputs, run_dir = Path(cfg.paths.outputs), Path(OmegaConf.select(cfg, dir_key))
        typed_dir = any(o.split("=", 1)[0].lstrip("+") == dir_key for o in variant)
        named = (dir_key, run_dir) if typed_dir else ("paths.outputs", outputs)  # what the user can change
        for (setting, value), folder in ((named, run_dir), (("paths.outputs", outputs), outputs)):
            problem = unwritable(folder, value)
            if problem:
                also = " or EQUI_OUTPUTS" if setting == "paths.outputs" else ""
                return f"{setting}={value} {problem}; choose another with {setting}=…{also}"
    return None
