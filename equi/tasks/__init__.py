"""Task runners: each picks a model, a group, a proxy loss and a training loop.

A runner is ``run(cfg, ctx) -> metrics`` in its own module; methods come from
``equi.methods.wrap`` so no runner holds a copy of the operator.
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


def runner(name: str) -> Callable:
    if name not in RUNNERS:
        raise ConfigError(f"unknown task {name!r}; choose one of: {', '.join(sorted(RUNNERS))}")
    return importlib.import_module(RUNNERS[name]).run
