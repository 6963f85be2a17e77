"""Task runners: each picks a model, a group, a proxy loss and a training loop.

A runner is ``run(cfg, ctx) -> metrics`` in its own module; methods come from
``equi.methods.wrap`` so no runner holds a copy of the operator. A task that reads data files or
resolves weights says which in ``inputs(cfg, ctx) -> {name: fingerprint}`` (see equi.inputs).
"""

from __future__ import annotations

import importlib
from typing import Callable

from ..errors import ConfigError

RUNNERS = {
    "clip": "equi.tasks.clip",
    "cnn": "equi.tasks.cnn",
    "dqn": "equi.tasks.dqn",
    "nlg": "equi.tasks.nlg",
    "scan": "equi.tasks.scan",
    "synthetic": "equi.tasks.synthetic",
}


def _module(name: str):
    if name not in RUNNERS:
        raise ConfigError(f"unknown task {name!r}; choose one of: {', '.join(sorted(RUNNERS))}")
    return importlib.import_module(RUNNERS[name])


def runner(name: str) -> Callable:
    return _module(name).run


def inputs(name: str) -> Callable:
    """The task's `inputs(cfg, ctx)`; a task that reads no files has none, and reads {}."""
    return getattr(_module(name), "inputs", lambda cfg, ctx: {})
