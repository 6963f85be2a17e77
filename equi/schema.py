"""What each config key may hold, so that a bad value stops before any work with one line.

One table of rules per choice of each config group (``TASKS``, ``METHODS``, ``HARDWARE``,
``LOGGERS``) and one for the run itself (``RUN``). Keys are dotted paths inside the group; ``*``
stands for one level (a model's or an environment's own block), and the keys of a task's
``fast:`` block follow the task's own rules. ``check`` is run by ``equi.config.check_cli`` on
the command line and by ``equi.experiment.execute`` on the composed config. ``LAUNCHERS`` holds
the keys of our Hydra launcher configs (conf/hydra/launcher/), checked by ``check_launcher``.

A new task adds ``TASKS["<name>"] = {key: rule, …}``; until then its keys are not checked, and
tests/test_errors.py fails naming each key that lacks a rule.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .data.fairness import CONTEXTS
from .data.imagesets import DATASETS, TRANSFORMS
from .data.scan import ACTIONS, COMMANDS, SPLITS
from .errors import one_line
from .groups.image import BY_NAME as IMAGE_GROUPS
from .models.seq2seq import CELLS
from .proxy import PROXIES
from .sequence import DECODINGS


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


@dataclass(frozen=True)
class TaskChoice(Rule):
    """A choice only some tasks offer (``options`` by task name); null, the task's own way, everywhere."""

    options: dict[str, tuple]

    def names(self, cfg) -> tuple:
        return self.options.get(cfg.task.name, ())

    def allows(self, value, cfg):
        return value is None or value in self.names(cfg)

    def describe(self, cfg):
        return "one of " + ", ".join(self.names(cfg)) + " or null" if self.names(cfg) else "null"

    def problem(self, key, value, cfg):
        if self.allows(value, cfg):
            return None
        if not self.names(cfg):
            offered = " or ".join(f"task={t}" for t in self.options)
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


def task_proxies(cfg: DictConfig) -> list[str]:
    """The proxies fit for the task's outputs: those its own default_proxy may be."""
    rule = TASKS.get(cfg.task.name, {}).get("default_proxy")
    return rule.names(cfg) if isinstance(rule, Choice) else list(PROXIES)


LAMBDA_NET = {"lambda_hidden": WIDTH, "lambda_layers": LAYERS}
DECODING_TASKS = {"scan": DECODINGS}  # tasks where equitune and λ choose how to decode (method.decoding)
DECODING = TaskChoice(DECODING_TASKS)
METHODS: dict[str, dict[str, Rule]] = {
    "vanilla": {},
    "equitune": {"relaxed": FLAG, "decoding": DECODING},  # task=nlg: R-EquiLM
    "equizero": {"proxy": Choice(task_proxies, nullable=True), "straight_through": FLAG,  # null: the task's default
                 "relaxed": FLAG},  # task=nlg: R-EquizeroLM
    "lambda": {**LAMBDA_NET, "lambda_features": Choice(("frozen", "shared")),  # clip finetuning: which image tower λ reads
               "decoding": DECODING},
    "canonical_lambda": {**LAMBDA_NET, "lambda_residual": FLAG, "extra_rotations": LAYERS},
}
TASK_METHODS = ListOf(Choice(tuple(METHODS)), nonempty=True)

CNN_TRAINING = {"epochs": up_to(MAX_EPOCHS, low=0), "examples_per_epoch": EXAMPLES_OR_ALL, "batch_size": BATCH,
                "optimizer": Choice(("sgd", "adam")), "lr": RATE, "schedule": Choice(("constant", "cosine", "onecycle")),
                "weight_decay": Number(low=0), "label_smoothing": FRACTION}
CNN_PRETRAINING = {**CNN_TRAINING, "seed": SEED, "per_class": EXAMPLES_OR_ALL}
SCAN_TRAINING = {"examples": up_to(MAX_STEPS, low=0), "batch_size": BATCH, "lr": RATE, "schedule": Choice(("constant", "cosine")),
                 "clip": RATE}
SCAN_LOSS = Choice(("token_mean", "sum_to_predicted_eos"))  # per target token, or the paper's loop's sum
CLIP_SCOPE = Choice(("model", "encoder_decoder"))  # clipped as one: the model, or its encoder and decoder apart
SCAN_WORDS = tuple(w for w in COMMANDS if not w.startswith("<"))
SCAN_ACTIONS = tuple(a for a in ACTIONS if not a.startswith("<"))
DQN_SETTINGS = {"learning_rate": RATE, "batch_size": BATCH, "buffer_size": STEPS, "learning_starts": up_to(MAX_STEPS, low=0),
                "gamma": FRACTION, "target_update_interval": STEPS, "train_freq": STEPS,
                "gradient_steps": up_to(MAX_STEPS, low=-1),  # -1: as many as environment steps
                "exploration_fraction": Number(low=0, high=1, above=True), "exploration_final_eps": FRACTION}

CLIP_STANDIN = {"seed": SEED, "epochs": EPOCHS, "examples_per_epoch": EXAMPLES_OR_ALL, "per_class": EXAMPLES_OR_ALL,
                "eval_per_class": EXAMPLES_OR_ALL, "batch_size": BATCH, "lr": RATE, "weight_decay": Number(low=0),
                "model.embed_dim": WIDTH, "model.vision_cfg.image_size": LENGTH,
                "model.vision_cfg.layers": ListOf(LAYERS, nonempty=True), "model.vision_cfg.width": WIDTH,
                **block("model.text_cfg", {"context_length": LENGTH, "vocab_size": up_to(MAX_VOCAB), "width": WIDTH,
                                           "heads": LAYERS, "layers": LAYERS})}

TASKS: dict[str, dict[str, Rule]] = {
    "synthetic": {
        "methods": TASK_METHODS, "metric": TEXT, "n_train": EXAMPLES, "n_test": EXAMPLES, "batch_size": BATCH,
        "epochs": EPOCHS, "lr": RATE, "hidden": WIDTH, "residual_layers": up_to(MAX_LAYERS, low=0), "finite_rotations": LAYERS,
        "canonicalizer": Choice(("sum", "x1", "x2")),  # whose angle: x1 + x2 (the paper's), or one vector
    },
    "scan": {
        "methods": TASK_METHODS, "metric": TEXT, "split": Choice(tuple(SPLITS)),
        "architecture": Choice(("seq2seq", "seq2seq_paper", "gseq2seq")), "cell": Choice(tuple(CELLS)), "hidden": WIDTH,
        "dropout": FRACTION, "max_len": LENGTH, "default_proxy": Choice(tuple(PROXIES)),
        **block("pretrain", {**SCAN_TRAINING, "teacher_forcing": FRACTION, "split_seed": SEED,
                             "clip_scope": CLIP_SCOPE, "loss": SCAN_LOSS,
                             "keep": Choice(("last", "best_val")), "val_every": STEPS,
                             "val_fraction": Number(low=0, high=1, above=True, below=True)}),
        **block("lambda_stage", SCAN_TRAINING),
        **block("finetune", {**SCAN_TRAINING, "weight_decay": Number(low=0), "clip_scope": CLIP_SCOPE,
                             "loss": SCAN_LOSS,
                             "lr": Either(RATE, Choice(("paper",)))}),  # paper: task.paper_finetune_lr's
        "paper_finetune_lr.*.*": RATE,
        "eval_batch": BATCH, "limit": EXAMPLES_OR_ALL,
        "groups.*.commands": ListOf(ListOf(Choice(SCAN_WORDS)), nonempty=True),
        "groups.*.actions": ListOf(ListOf(Choice(SCAN_ACTIONS)), nonempty=True),
    },
    "dqn": {
        "methods": TASK_METHODS, "metric": TEXT, "env": Choice(lambda cfg: cfg.task.envs), "eval_episodes": SAMPLES,
        "default_proxy": Choice(SCORE_PROXIES),
        "envs.*.id": TEXT, "envs.*.timesteps": STEPS, "envs.*.net_arch": ListOf(WIDTH),  # []: a linear Q-network
        **block("envs.*.dqn", DQN_SETTINGS),
    },
    "clip": {
        "methods": TASK_METHODS, "metric": TEXT, "model": TEXT, "pretrained": TEXT, "checkpoint": Text(nullable=True),
        "weights": Choice(("auto", "pretrained", "standin", "random")),
        "dataset": Choice(DATASETS), "data_root": Text(nullable=True), "transform": Choice(TRANSFORMS),
        "transform_per": Choice(("image", "batch")), "transform_seed": SEED,
        "group": Choice(tuple(IMAGE_GROUPS), nullable=True), "logit_scale": Either(RATE, Choice(("model",))),
        "default_proxy": Choice(SCORE_PROXIES), "eval_per_class": EXAMPLES_OR_ALL, "train_per_class": EXAMPLES_OR_ALL,
        "eval_batch": BATCH, "lambda_examples": EXAMPLES,
        **block("lambda_stage", {"steps": up_to(MAX_STEPS, low=0), "batch_size": BATCH, "lr": RATE}),
        **block("finetune", {"steps": up_to(MAX_STEPS, low=0), "eval_every": STEPS, "batch_size": BATCH}),
        "finetune.lr_by_method.*": RATE,
        **block("standin", CLIP_STANDIN),
    },
    "nlg": {
        "methods": TASK_METHODS, "metric": TEXT, "lm": TEXT, "context": Choice(tuple(CONTEXTS)),
        "pairs": ListOf(Choice(lambda cfg: cfg.task.demographics), nonempty=True),
        "demographics.*.words": ListOf(WORD, length=2),
        "demographics.*.subject": Pattern(r"[^{}]*\{\}[^{}]*", "a phrase with one {} where the word goes",
                                          bad=("The person", "{} {}", None)),
        "demographics.*.word_lists": FLAG, "capitalized": FLAG, "general_words": ListOf(WORD, nonempty=True),
        "samples_per_context": SAMPLES, "max_new_tokens": LENGTH, "top_k": up_to(MAX_VOCAB), "chunk": LENGTH,
        "regard": TEXT, "regard_mask": FLAG, "regard_standin.layers": ListOf(up_to(MAX_LAYERS, low=0), nonempty=True),
        "regard_standin.C": ListOf(RATE, nonempty=True), "bootstrap": SAMPLES,
    },
    "cnn": {
        "methods": TASK_METHODS, "metric": TEXT,
        "model": Choice(lambda cfg: cfg.task.pretrain),  # a model with its own pretraining block
        "weights": Choice(("auto", "imagenet", "scratch", "random")), "data_root": Text(nullable=True),
        "default_proxy": Choice(SCORE_PROXIES), "rotation_seed": SEED, "eval_per_class": EXAMPLES_OR_ALL,
        "train_per_class": EXAMPLES_OR_ALL, "eval_batch": BATCH, "lambda_examples": EXAMPLES,
        **block("pretrain.*", CNN_PRETRAINING),
        **block("imagenet_adapt", {**CNN_PRETRAINING, "input_size": up_to(MAX_LENGTH, low=64)}),  # AlexNet's stem
        **block("lambda_stage", CNN_TRAINING),
        **block("finetune", {**CNN_TRAINING, "layers": Choice(("all", "last2"))}),
        "protocol": Choice(("ours", "paper")),
        **block("paper_protocol", {"epochs": EPOCHS, "examples_per_epoch": EXAMPLES_OR_ALL, "batch_size": BATCH,
                                   "lr": RATE, "momentum": FRACTION, "lambda_hidden": WIDTH,
                                   "lambda_dropout": Number(low=0, high=1, below=True),
                                   "bugs.test_from_train": FLAG, "bugs.argmin_max_prob": FLAG}),
    },
}

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
RUN = {"seed": SEED, "fast": FLAG, "force": FLAG, "download": FLAG, "label": TEXT, "paper": Text(nullable=True),
       "paper_by_split": Text(nullable=True), "paper_by_split.*": Text(nullable=True),
       "paths.outputs": TEXT, "paths.data": TEXT}
# Keys that equi.experiment.hydra_entry adds to a run's config, never typed (check_cli refuses them):
# checked where present, not missing where absent.
ADDED_BY_RUN = {"typed_over_fast": ListOf(Pattern(r"task\.[\w.]+", "a task.* key"), nonempty=True)}
GROUPS = {"task": TASKS, "method": METHODS, "hardware": HARDWARE, "logger": LOGGERS}

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
    """The rules of the group's chosen config; None when the schema has no entry for it yet."""
    rules = GROUPS[group].get(cfg[group].get("name"))
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
        problem = rule.problem(key, value, cfg) if rule else None
        if problem:
            return problem
    for prefix, rules in [("", RUN)] + [(f"{g}.", group_rules(cfg, g) or {}) for g in GROUPS]:
        for key, rule in rules.items():
            if "*" not in key and OmegaConf.select(cfg, prefix + key, default=_ABSENT) is _ABSENT:
                return f"{prefix}{key} is missing; it must be {rule.describe(cfg)}"
    if cfg.method.name not in cfg.task.methods:
        return f"task {cfg.task.name!r} does not support method {cfg.method.name!r}; supported: {', '.join(cfg.task.methods)}"
    return None


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
