"""What each config key may hold, so that a bad value stops before any work with one line.

One table of rules per choice of each config group: a task's own (``Task.rules`` in
equi/tasks/<task>/schema.py, besides ``TASK_COMMON``), a method's (``Method.rules`` in
equi/methods.py), ``HARDWARE``, ``LOGGERS``, and one for the run itself (``RUN``). Keys are
dotted paths inside the group; ``*`` stands for one level (a model's or an environment's own
block), and the keys of a task's ``fast:`` block follow the task's own rules. A key no rule
covers is refused: a misspelled key in an experiment file or a ``+key=…`` stops like a bad value.
``check`` is run by ``equi.config.check_cli`` on the command line and by ``equi.experiment.execute``
on the composed config. ``LAUNCHERS`` holds the keys of our Hydra launcher configs
(conf/hydra/launcher/), checked by ``check_launcher``.

A key added after runs were recorded is declared ``Added``: with the value that leaves the numbers
as they were (``as_before``), or the setting without which it is unused (``used_when``). While so,
it stays out of the run key (``as_before_pruned``), so earlier runs and checkpoints keep their keys.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import tasks
from .errors import one_line
from .proxy import PROXIES


class Rule:
    """What one key may hold."""

    def allows(self, value: Any, cfg: DictConfig) -> bool:
        raise NotImplementedError

    def describe(self, cfg: DictConfig) -> str:
        """What is allowed, as the end of "<key> must be …"."""
        raise NotImplementedError

    def problem(self, key: str, value: Any, cfg: DictConfig) -> str | None:
        return None if self.allows(value, cfg) else f"{key} must be {self.describe(cfg)}, got {value!r}"

    def bad_values(self, cfg: DictConfig) -> list:
        """Values this rule refuses (for the tests that feed every key a bad value); [] for free text."""
        return []


@dataclass(frozen=True)
class Number(Rule):
    """An integer (``integer``) or a finite number within [low, high]; ``above``/``below`` leave the bound out."""

    low: float | None = None
    high: float | None = None
    integer: bool = False
    above: bool = False
    below: bool = False
    nullable: bool = False

    def allows(self, value, cfg):
        if value is None:
            return self.nullable
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or (value < self.high if self.below else value <= self.high)

    def describe(self, cfg):
        text = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            text += f" in {'(' if self.above else '['}{self.low}, {self.high}{')' if self.below else ']'}"
        elif self.low is not None:
            text += f" {'>' if self.above else '≥'} {self.low}"
        return text + (" or null" if self.nullable else "")

    def bad_values(self, cfg):
        bad = ["x"] + ([] if self.nullable else [None])
        if self.low is not None:
            bad.append(self.low if self.above else self.low - 1)
        if self.high is not None:
            bad.append(self.high if self.below else self.high + 1)
        if self.integer:
            bad.append((self.low or 0) + 1.5)
        return bad


@dataclass(frozen=True)
class Choice(Rule):
    """One of ``options``: a tuple, or a function of the config (e.g. the keys of a block)."""

    options: tuple | Callable[[DictConfig], Iterable]
    nullable: bool = False

    def names(self, cfg) -> list:
        return list(self.options(cfg) if callable(self.options) else self.options)

    def allows(self, value, cfg):
        return (value is None and self.nullable) or (isinstance(value, str) and value in self.names(cfg))

    def describe(self, cfg):
        return "one of " + ", ".join(map(str, self.names(cfg))) + (" or null" if self.nullable else "")

    def problem(self, key, value, cfg):
        if self.allows(value, cfg):
            return None
        null = " (or null)" if self.nullable else ""
        return f"unknown {key} {value!r}; choose one of: {', '.join(map(str, self.names(cfg)))}{null}"

    def bad_values(self, cfg):
        return ["nosuch"] + ([] if self.nullable else [None])


class Flag(Rule):
    def allows(self, value, cfg):
        return isinstance(value, bool)

    def describe(self, cfg):
        return "true or false"

    def bad_values(self, cfg):
        return ["maybe", 1]


@dataclass(frozen=True)
class Text(Rule):
    """Free text (names, paths, labels): any single value, not a list or a block."""

    nullable: bool = False

    def allows(self, value, cfg):
        return isinstance(value, (str, int, float)) or (value is None and self.nullable)

    def describe(self, cfg):
        return "a single value" + (" or null" if self.nullable else "")


@dataclass(frozen=True)
class Pattern(Rule):
    regex: str
    what: str
    bad: tuple = ("nosuch", None)  # values the regex refuses, for the bad-value tests

    def allows(self, value, cfg):
        return isinstance(value, str) and re.fullmatch(self.regex, value) is not None

    def describe(self, cfg):
        return self.what

    def bad_values(self, cfg):
        return list(self.bad)


@dataclass(frozen=True)
class ListOf(Rule):
    item: Rule
    nullable: bool = False
    length: int | None = None  # exactly this many items
    nonempty: bool = False  # the work needs items (pairs to compare, values to select from)

    def allows(self, value, cfg):
        return (value is None and self.nullable) or (
            isinstance(value, list) and all(self.item.allows(v, cfg) for v in value)
            and (self.length is None or len(value) == self.length) and (value or not self.nonempty))

    def describe(self, cfg):
        size = f"a list of {self.length}" if self.length else "a non-empty list" if self.nonempty else "a list"
        return f"{size}, each {self.item.describe(cfg)}" + (", or null" if self.nullable else "")

    def bad_values(self, cfg):
        wrong_length = [[]] if self.length or self.nonempty else []
        return ["x"] + wrong_length + [[bad] for bad in self.item.bad_values(cfg) if bad is not None]


class Options(Rule):
    """A block of free key: value options passed through as they are (e.g. extra sbatch flags)."""

    def allows(self, value, cfg):
        return isinstance(value, dict)

    def describe(self, cfg):
        return "a block of key: value options"

    def bad_values(self, cfg):
        return ["x"]


@dataclass(frozen=True)
class Either(Rule):
    """What either rule allows (a number or a keyword)."""

    first: Rule
    second: Rule

    def allows(self, value, cfg):
        return self.first.allows(value, cfg) or self.second.allows(value, cfg)

    def describe(self, cfg):
        return f"{self.first.describe(cfg)}, or {self.second.describe(cfg)}"

    def bad_values(self, cfg):
        return [v for v in self.first.bad_values(cfg) + self.second.bad_values(cfg) if not self.allows(v, cfg)]


class Block(Options):
    """A block of keys, each with a rule of its own: named only to declare it ``Added``."""

    def describe(self, cfg):
        return "a block of keys"


_UNSET = object()


@dataclass(frozen=True)
class Wrapping(Rule):
    """``rule`` judges the values; a subclass says whether the key is in the run key."""

    rule: Rule

    def allows(self, value, cfg):
        return self.rule.allows(value, cfg)

    def describe(self, cfg):
        return self.rule.describe(cfg)

    def problem(self, key, value, cfg):
        return self.rule.problem(key, value, cfg)

    def bad_values(self, cfg):
        return self.rule.bad_values(cfg)


@dataclass(frozen=True)
class Added(Wrapping):
    """A key added after runs were recorded: it stays out of the run key while it holds
    ``as_before`` (the value runs had before it existed) or while the setting ``used_when = (key,
    value)`` has another value (it has no effect then)."""

    as_before: Any = _UNSET
    used_when: tuple[str, Any] | None = None

    def in_run_key(self, value, cfg) -> bool:
        if self.used_when is not None and OmegaConf.select(cfg, self.used_when[0]) != self.used_when[1]:
            return False
        return self.as_before is _UNSET or value != self.as_before


@dataclass(frozen=True)
class OfWeights(Wrapping):
    """A setting of weights a run may load (the offline stand-in's recipe): in the run key only of
    runs that name those weights (``task.weights`` = ``weights``), so runs on other weights keep
    their keys when it changes. Where ``task.weights=auto`` picks them by what is cached, the task's
    ``inputs`` name them instead (equi.inputs), and a changed recipe redoes the run there."""

    weights: str = ""

    def in_run_key(self, value, cfg) -> bool:
        return OmegaConf.select(cfg, "task.weights") == self.weights


@dataclass(frozen=True)
class TaskChoice(Rule):
    """A method key only some tasks offer (their ``Task.method_options[key]``); null, the task's own
    way, everywhere. Out of the run key of the tasks that do not offer it."""

    key: str

    def names(self, cfg) -> tuple:
        return tuple(tasks.get(cfg.task.name).method_options.get(self.key, ()))

    def offered_by(self) -> list[str]:
        return [name for name in tasks.names() if self.key in tasks.get(name).method_options]

    def in_run_key(self, value, cfg) -> bool:
        return bool(self.names(cfg))

    def allows(self, value, cfg):
        return value is None or value in self.names(cfg)

    def describe(self, cfg):
        return "one of " + ", ".join(self.names(cfg)) + " or null" if self.names(cfg) else "null"

    def problem(self, key, value, cfg):
        if self.allows(value, cfg):
            return None
        if not self.names(cfg):
            offered = " or ".join(f"task={t}" for t in self.offered_by())
            return f"{key}={value!r} is for {offered} only; task {cfg.task.name!r} takes null"
        return f"unknown {key} {value!r}; choose one of: {', '.join(self.names(cfg))} (or null)"

    def bad_values(self, cfg):
        return ["nosuch"]


WORD = Pattern(r"\S+", "one word without spaces", bad=("two words", "", None))
RATE = Number(low=0, above=True)  # learning rates, gradient-clipping norms
FRACTION = Number(low=0, high=1)
SEED = Number(low=0, high=2**32 - 1, integer=True)  # numpy's range
FLAG = Flag()
TEXT = Text()


def up_to(high: int, low: int = 1, nullable: bool = False) -> Number:
    """A count in [low, high]; low=0 where none is a choice (no finetuning), null where it means all."""
    return Number(low=low, high=high, integer=True, nullable=nullable)


# Every count has an upper bound, about 10× the largest value that conf/ or the Makefile's recipes
# use (in brackets), rounded up: a slip of a few zeros stops at once instead of running until killed.
MAX_EPOCHS = 10_000  # (100)
MAX_STEPS = 10_000_000  # optimizer steps, examples drawn, environment steps, replay buffers (400,000)
MAX_EXAMPLES = 1_000_000  # data set sizes and subsets: per class, per epoch, a limit (10,000)
MAX_BATCH = 100_000  # (1,024)
MAX_WIDTH = 10_000  # hidden sizes, embeddings (256)
MAX_LAYERS = 1_000  # layers, heads, rotations (30)
MAX_LENGTH = 10_000  # sequence lengths, tokens, image sides (224)
MAX_VOCAB = 1_000_000  # (49,408)
MAX_SAMPLES = 10_000  # generations per context, bootstrap resamples, evaluation episodes (1,000)
MAX_PROCESSES = 1_024  # threads, DDP processes; a cluster job's nodes, tasks, GPUs and CPUs (8)
EPOCHS = up_to(MAX_EPOCHS)
STEPS = up_to(MAX_STEPS)
EXAMPLES = up_to(MAX_EXAMPLES)
EXAMPLES_OR_ALL = up_to(MAX_EXAMPLES, nullable=True)  # null: all of them
BATCH = up_to(MAX_BATCH)
WIDTH = up_to(MAX_WIDTH)
LAYERS = up_to(MAX_LAYERS)
LENGTH = up_to(MAX_LENGTH)
SAMPLES = up_to(MAX_SAMPLES)
PROCESSES_OR_AUTO = up_to(MAX_PROCESSES, nullable=True)  # null: the launcher's or the machine's own count


def block(prefix: str, rules: dict[str, Rule]) -> dict[str, Rule]:
    """The same rules under `prefix` (a training block, or every model's/env's block with `*`)."""
    return {f"{prefix}.{key}": rule for key, rule in rules.items()}


SEQUENCE_PROXIES = ("seq_neg_max_prob",)  # reduce a time axis: only for sequence outputs
SCORE_PROXIES = tuple(p for p in PROXIES if p not in SEQUENCE_PROXIES)  # one score vector per view


def methods_registry() -> dict:
    """equi.methods.METHODS (imported here when first needed: the methods' rules use this module's)."""
    from .methods import METHODS

    return METHODS


def task_proxies(cfg: DictConfig) -> list[str]:
    """The proxies fit for the task's outputs: those its own default_proxy may be."""
    rule = (group_rules(cfg, "task") or {}).get("default_proxy")
    return rule.names(cfg) if isinstance(rule, Choice) else list(PROXIES)


TASK_METHODS = ListOf(Choice(lambda cfg: tuple(methods_registry())), nonempty=True)

TASK_COMMON = {"name": TEXT, "methods": TASK_METHODS, "metric": TEXT}  # every task's, besides its Task.rules


GPU_PRECISIONS = ("bf16", "fp16")


def precisions(cfg: DictConfig) -> tuple[str, ...]:
    """Mixed precision on GPUs only: CPU runs stay fp32 and bit-reproducible."""
    return (*GPU_PRECISIONS, "fp32") if str(cfg.hardware.device).startswith("cuda") else ("fp32",)


class Precision(Choice):
    """A GPU's precision asked of the CPU is not a typo: say that it needs a GPU."""

    def problem(self, key, value, cfg):
        if value in GPU_PRECISIONS and not self.allows(value, cfg):
            return f"{key}={value} needs a GPU (hardware=cuda or multigpu); on the CPU only fp32"
        return super().problem(key, value, cfg)


DEVICE = {"device": Pattern(r"cpu|cuda(:\d+)?", "cpu, cuda or cuda:<index>"), "threads": PROCESSES_OR_AUTO,
          "nproc": PROCESSES_OR_AUTO,  # DDP processes; null: one per visible GPU
          "precision": Precision(precisions)}
HARDWARE = dict.fromkeys(("cpu", "cuda", "multigpu"), DEVICE)
LOGGERS = {
    "none": {},
    "wandb": {"mode": Choice(("online", "offline", "disabled")), "project": TEXT, "entity": Text(nullable=True),
              "tags": ListOf(TEXT)},
}
RUN = {"seed": SEED, "fast": FLAG, "force": FLAG, "download": FLAG, "label": TEXT, "paths.outputs": TEXT, "paths.data": TEXT}
# Keys that equi.experiment.hydra_entry adds to a run's config, never typed (check_cli refuses them):
# checked where present, not missing where absent.
ADDED_BY_RUN = {"typed_over_fast": ListOf(Pattern(r"task\.[\w.]+", "a task.* key"), nonempty=True)}
GROUPS = {"task": None, "method": None, "hardware": HARDWARE, "logger": LOGGERS}  # task, method: their registries

PROCESSES = up_to(MAX_PROCESSES)
SUBMITIT = {"_target_": TEXT, "submitit_folder": TEXT, "name": TEXT,
            "timeout_min": up_to(1_000_000),  # (240; a year is 525,600)
            "nodes": PROCESSES, "tasks_per_node": PROCESSES, "gpus_per_node": up_to(MAX_PROCESSES, low=0, nullable=True),
            "cpus_per_task": PROCESSES_OR_AUTO, "mem_gb": up_to(100_000, nullable=True),  # (32)
            "stderr_to_stdout": FLAG}
LAUNCHERS = {  # hydra/launcher=<name>: keys under hydra.launcher (checked by equi.config.check_cli)
    "submitit_local": SUBMITIT,
    "submitit_slurm": {**SUBMITIT, **dict.fromkeys(("partition", "qos", "comment", "constraint", "exclude", "gres",
                                                     "account", "mem_per_gpu", "mem_per_cpu"), Text(nullable=True)),
                       "cpus_per_gpu": PROCESSES_OR_AUTO, "gpus_per_task": PROCESSES_OR_AUTO,
                       "signal_delay_s": up_to(100_000, low=0), "max_num_timeout": up_to(MAX_PROCESSES, low=0),
                       "array_parallelism": up_to(10_000),  # (64)
                       "additional_parameters": Options(), "additional_parameters.*": TEXT,
                       "setup": ListOf(TEXT, nullable=True)},
}


def group_rules(cfg: DictConfig, group: str) -> dict[str, Rule] | None:
    """The rules of the group's chosen config; None when there are none for it (an unknown choice)."""
    name = cfg[group].get("name")
    if group == "task":
        return {**TASK_COMMON, **tasks.get(name).rules} if name in tasks.names() else None
    if group == "method":
        return {"name": TEXT, **methods_registry()[name].rules} if name in methods_registry() else None
    rules = GROUPS[group].get(name)
    return None if rules is None else {"name": TEXT, **rules}


def rule_for(cfg: DictConfig, key: str) -> Rule | None:
    group, _, inner = key.partition(".")
    if group in GROUPS:
        rules = group_rules(cfg, group) or {}
        if group == "task" and inner.startswith("fast."):
            inner = inner[len("fast."):]
    else:
        rules, inner = {**RUN, **ADDED_BY_RUN}, key
    if inner in rules:
        return rules[inner]
    parts = inner.split(".")
    for pattern, rule in rules.items():
        wanted = pattern.split(".")
        if len(wanted) == len(parts) and all(w in ("*", p) for w, p in zip(wanted, parts)):
            return rule
    return None


def leaves(node: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every value that is not a block; lists are values."""
    for key, value in node.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def resolved(cfg: DictConfig) -> tuple[dict, DictConfig]:
    """The config with every interpolation resolved, as plain values and as a config for the rules;
    raises OmegaConfBaseException when an interpolation does not resolve."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    return plain, OmegaConf.create(plain)


_ABSENT = object()


def check(cfg: DictConfig) -> str | None:
    """One line naming the first key whose value is not allowed (its value and what is), else None."""
    try:
        plain, cfg = resolved(cfg)
    except OmegaConfBaseException as err:
        return f"{err.full_key} does not resolve: {one_line(err)}"
    for key, value in leaves(plain):
        rule = rule_for(cfg, key)
        problem = rule.problem(key, value, cfg) if rule else unknown_key(cfg, key)
        if problem:
            return problem
    for prefix, rules in [("", RUN)] + [(f"{g}.", group_rules(cfg, g) or {}) for g in GROUPS]:
        for key, rule in rules.items():
            if "*" not in key and OmegaConf.select(cfg, prefix + key, default=_ABSENT) is _ABSENT:
                return f"{prefix}{key} is missing; it must be {rule.describe(cfg)}"
    if cfg.method.name not in cfg.task.methods:
        return f"task {cfg.task.name!r} does not support method {cfg.method.name!r}; supported: {', '.join(cfg.task.methods)}"
    return None


def ruled_keys(cfg: DictConfig) -> list[str]:
    """The keys the rules name (no patterns): what a misspelled key most likely meant."""
    keys = list(RUN)
    for group in GROUPS:
        keys += [f"{group}.{key}" for key in group_rules(cfg, group) or {} if "*" not in key]
    return keys


def unknown_key(cfg: DictConfig, key: str) -> str:
    group, _, inner = key.partition(".")
    if group in GROUPS and group_rules(cfg, group) is None:
        return f"unknown {group} {cfg[group].get('name')!r}: it has no rules in equi.schema"
    hint = difflib.get_close_matches(key.replace(".fast.", ".", 1), ruled_keys(cfg), n=1)
    if hint:
        return f"unknown config key {key!r} (did you mean {hint[0]!r}?)"
    return f"unknown config key {key!r}" + (f" ({group}={cfg[group].name} has no such key)" if group in GROUPS else "")


def as_before_pruned(content: dict, cfg: DictConfig, groups=("task", "method")) -> dict:
    """`content` (the run's config as plain values) without the keys that leave the numbers as they
    were before those keys existed: ``Added`` keys at their ``as_before`` or unused, and method
    keys of other tasks (``TaskChoice``). Also under task.fast, whose keys follow the task's rules."""
    for group in groups:
        for key, rule in (group_rules(cfg, group) or {}).items():
            if "*" in key or not hasattr(rule, "in_run_key"):
                continue
            for path in [key, f"fast.{key}"] if group == "task" else [key]:
                *parents, last = path.split(".")
                node = content.get(group) or {}
                for name in parents:
                    node = node.get(name) if isinstance(node, dict) else None
                if isinstance(node, dict) and last in node and not rule.in_run_key(node[last], cfg):
                    del node[last]
    return content


def check_launcher(launcher: dict, name: str) -> str | None:
    """One line naming the first hydra.launcher key that is unknown or not allowed, else None."""
    rules = LAUNCHERS.get(name, {})
    for key, value in leaves(launcher):
        rule = rules.get(key) or rules.get(key.rsplit(".", 1)[0] + ".*")
        if rule is None:
            return f"unknown config key 'hydra.launcher.{key}' for hydra/launcher={name}"
        problem = rule.problem(f"hydra.launcher.{key}", value, OmegaConf.create())
        if problem:
            return problem
    return None


def unruled(cfg: DictConfig) -> list[str]:
    """Keys of the config that no rule covers (tests require none)."""
    plain, cfg = resolved(cfg)
    return [key for key, _ in leaves(plain) if rule_for(cfg, key) is None]
