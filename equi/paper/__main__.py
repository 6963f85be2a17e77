"""python -m equi.paper build|report --budget smoke|cpu|full|rehearsal: see equi.paper.build and equi.paper.report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from equi.paper import build, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m equi.paper", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("build", "report"),
                        help="build: run or reuse every artefact's runs, then the report; report: the report alone")
    parser.add_argument("--budget", default="smoke", help="a budget of equi/paper/budgets.yaml")
    parser.add_argument("--only", help="build: only these artefacts (comma-separated names of basu2023.yaml)")
    parser.add_argument("--no-standins", action="store_true",
                        help="build: leave out the offline stand-in readings' targets (fig-clip-offline)")
    parser.add_argument("--runs", type=Path, help="report: the run dirs (default: the budget's outputs/runs)")
    parser.add_argument("--out", type=Path, help="report: where report.md and index.html go (default: outputs/paper)")
    args = parser.parse_args(argv)
    try:
        chosen = build.budget(args.budget)
        only = args.only.split(",") if args.only else None
        for name in only or ():
            report.paper.artefact(name)  # an unknown name stops here, in one line
    except (ValueError, LookupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.action == "build":
        return build.build(chosen, only, standins=not args.no_standins)
    return report.write(chosen, args.runs or build.outputs_for(chosen) / "runs", args.out)


if __name__ == "__main__":
    sys.exit(main())
