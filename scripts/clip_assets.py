#!/usr/bin/env python
"""Check, before a CLIP paper target does any work, that every model's weights and the dataset are here.

    python scripts/clip_assets.py --models RN50,RN101 --dataset cifar100 [key=value overrides …]

Exit 0 when all are present; else one line naming what is missing and how to supply it, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from equi.config import compose_config  # noqa: E402
from equi.data import imagesets  # noqa: E402
from equi.errors import UserError  # noqa: E402
from equi.models.clip import cached_weights, where_weights_go  # noqa: E402


def problems(models: list[str], tag: str, dataset: str, data_root: str | None, data_dir: Path,
             download: bool) -> list[tuple[str, str]]:
    """(short name, the full reason) of each missing asset."""
    found = []
    for model in models:
        if not download and cached_weights(model, tag) is None:
            found.append((f"{model}/{tag} weights",
                          f"CLIP weights {model}/{tag} are not cached (put them at {where_weights_go(model, tag)})"))
    missing = imagesets.missing(dataset, imagesets.root_for(dataset, data_root, data_dir))
    if missing and not (download and dataset == "cifar100"):
        found.append((dataset, missing))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True)
    parser.add_argument("--dataset", required=True, choices=imagesets.DATASETS)
    parser.add_argument("overrides", nargs="*", help="the target's ARGS (task.download=true, paths.data=…)")
    args = parser.parse_args(argv)
    try:
        cfg = compose_config(["task=clip", *args.overrides])
        found = problems(args.models.split(","), cfg.task.pretrained, args.dataset, cfg.task.data_root,
                         Path(cfg.paths.data), cfg.task.download)
    except UserError as err:
        found = [("", str(err))]
    if found:
        also = f"; also missing: {', '.join(name for name, _ in found[1:])}" if len(found) > 1 else ""
        print(f"error: {found[0][1]}{also}; task.download=true fetches them where a network exists; "
              "see `python run.py assets`", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
