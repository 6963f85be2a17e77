"""The task registry: every task is one package, ``equi/tasks/<name>/``, that registers a ``Task``.

A task package's ``__init__`` registers its ``Task`` and stays light (it is imported to check a
config): the runner (``run(cfg, ctx) -> metrics``, and ``inputs(cfg, ctx) -> {name: fingerprint}``
when the task reads data files or weights; see equi.inputs) and the asset report are named by
module path and imported only when used. Its config lives in ``conf/task/<name>.yaml``, and the
rules of its keys in ``Task.rules`` (see equi.schema). docs/adding-a-task.md walks through one.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ConfigError


@dataclass(frozen=True)
class Task:
    name: str
    runner: str  # module with run(cfg, ctx) -> metrics and, if the task reads files, inputs(cfg, ctx)
    rules: dict[str, Any]  # task.* key (dotted, * for one level) -> equi.schema rule; every key needs one
    assets: str | None = None  # "module:function" giving its rows of `python run.py assets`; None: reads no files
    method_options: dict[str, tuple] = field(default_factory=dict)  # method keys only this task takes (scan: decoding)
    label: Callable[[Any], str] | None = None  # a run's row name in result tables, from its config; None: the method's

    def run(self, cfg, ctx) -> dict:
        return importlib.import_module(self.runner).run(cfg, ctx)

    def inputs(self, cfg, ctx) -> dict:
        """The fingerprints of what the run reads; {} for a task that reads no files."""
        read = getattr(importlib.import_module(self.runner), "inputs", None)
        return read(cfg, ctx) if read else {}

    def row_label(self, cfg) -> str:
        """The run's row in result tables (`label` in its config, unless an experiment or the
        command line names it): the task's label for the run, else the method's name."""
        return self.label(cfg) if self.label else cfg.method.name

    def asset_rows(self, cfg) -> list:
        """The task's rows of `python run.py assets`: none for a task that reads no data or weights."""
        if self.assets is None:
            return []
        module, function = self.assets.split(":")
        return getattr(importlib.import_module(module), function)(cfg)


REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    REGISTRY[task.name] = task
    return task


def packages() -> list[str]:
    """The task packages under equi/tasks/."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def get(name: str) -> Task:
    """The registered task (its package imported on first use)."""
    if name not in REGISTRY and name in packages():
        importlib.import_module(f"{__name__}.{name}")
    if name not in REGISTRY:
        raise ConfigError(f"unknown task {name!r}; choose one of: {', '.join(names())}")
    return REGISTRY[name]


def names() -> list[str]:
    return sorted({*packages(), *REGISTRY})
