"""Check, before a CLIP paper target does any work, that every model's weights and the dataset are here.

    python -m equi.tasks.clip.check_assets --models RN50,RN101 --dataset cifar100 [key=value overrides …]

Exit 0 when all are present or fetchable (download=true and their hosts or the mirror answer); else
one line naming what is missing and how to get it, exit 2. The rows are `python run.py assets`'s.
"""

from __future__ import annotations

import argparse
import sys

from equi.tasks.clip.assets import assets as clip_assets
from equi.config import compose_config
from equi.data import imagesets
from equi.errors import ASSETS_HINT, UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True)
    parser.add_argument("--dataset", required=True, choices=imagesets.DATASETS)
    parser.add_argument("overrides", nargs="*", help="the target's ARGS (download=false, paths.data=…)")
    args = parser.parse_args(argv)
    try:
        cfg = compose_config(["task=clip", *args.overrides])
        missing = [a for a in clip_assets(cfg, args.models.split(","), [args.dataset]) if not (a.present or a.fetchable)]
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if missing:
        first, rest = missing[0], missing[1:]
        also = f"; also missing: {', '.join(a.what for a in rest)}" if rest else ""
        print(f"error: {first.what} not found at {first.where} (to get it: {first.get}){also}; "
              f"with a network (or EQUI_DATA_MIRROR) and download=true a run fetches them; {ASSETS_HINT}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
