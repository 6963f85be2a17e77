#!/usr/bin/env python
"""The one entrypoint: python run.py task=<task> method=<method> hardware=<cpu|cuda|multigpu> [-m sweeps].

python run.py --help lists the config groups and their choices; python run.py assets lists the
datasets and pretrained weights each task uses and how to get the missing ones; python run.py data
[dataset|task …] fetches datasets into the data folder (all of them with no names).
"""

import signal
import sys
from contextlib import contextmanager


@contextmanager
def interrupts_deferred():
    """Ctrl-C while torch's C++ extensions load would abort the process (it cannot be raised through
    them): it is noted, and raised once the imports are done (a second or two later)."""
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def main() -> None:
    if sys.argv[1:2] == ["assets"]:
        from equi.assets import report

        sys.exit(report(sys.argv[2:]))
    if sys.argv[1:2] == ["data"]:
        from equi.data.catalog import main as fetch_data

        sys.exit(fetch_data(sys.argv[2:]))
    with interrupts_deferred():
        from hydra._internal.utils import get_args_parser

        from equi.config import check_cli, check_outputs
        from equi.experiment import hydra_entry

    args = get_args_parser().parse_args()
    if not (args.help or args.hydra_help or args.cfg or args.info or args.shell_completion):
        problem = check_cli(args.overrides) or check_outputs(args.overrides, args.multirun)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            sys.exit(2)
    hydra_entry()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # a run in progress says its own line (equi.experiment.hydra_entry)
        print("interrupted (no run was in progress); rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
