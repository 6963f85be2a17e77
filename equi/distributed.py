"""Data-parallel runs (DDP) for every task, in one place.

A run with ``hardware.nproc`` > 1 (``hardware=multigpu``: one per GPU) is N processes started by
torch's elastic launcher (what ``torchrun`` runs); a SLURM job with several tasks (submitit's
task-per-GPU model) or a run under ``torchrun`` already is N processes, and each joins as its rank.
Every rank composes the same config and draws the same global batches from the same seed; each
trains on its slice and DDP averages the gradients, so a global batch means what it means on one
process. Evaluation is split at batch boundaries (each batch is the one a single process would
see) and the counts are summed, so every rank gets the single-process metric. Rank 0 alone writes
results.json, checkpoints and W&B. Backend: nccl on GPUs, gloo on the CPU.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs, SignalException, Std
from torch.distributed.launcher.api import LaunchConfig, elastic_launch
from torch.utils.data import DataLoader, Subset


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process writes results, checkpoints and logs (rank 0, or the only process)."""
    return rank() == 0


def started_ranks() -> int:
    """How many processes were started for this run outside our control: by torchrun (WORLD_SIZE)
    or by SLURM under submitit (its tasks), 1 when none. A SLURM task's rank is copied into the
    variables torch reads."""
    if "WORLD_SIZE" in os.environ:
        return int(os.environ["WORLD_SIZE"])
    if os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
        import submitit

        job = submitit.JobEnvironment()
        if job.num_tasks > 1:
            os.environ.update(RANK=str(job.global_rank), LOCAL_RANK=str(job.local_rank),
                              WORLD_SIZE=str(job.num_tasks), MASTER_ADDR=job.hostnames[0],
                              MASTER_PORT=str(20000 + int(job.raw_job_id) % 20000))
        return job.num_tasks
    return 1


def spawn(nproc: int, log_dir: Path, worker: Callable[..., Any], *args: Any) -> list[Any]:
    """Run worker(*args) in `nproc` fresh processes on this machine, one rank each, through torch's
    elastic launcher (torchrun --standalone); what each returned, by rank. The console shows rank
    0; every rank's output is also in log_dir/<run id>/attempt_0/<rank>/."""
    logs = DefaultLogsSpecs(log_dir=str(log_dir), redirects=Std.ALL, tee=Std.ALL, local_ranks_filter={0})
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, logs_specs=logs,
                          log_line_prefix_template="[rank ${rank}] ")
    with interruptible_launcher():
        returned = elastic_launch(config, quiet_on_interrupt)(worker, *args)
    return [returned[r] for r in range(nproc)]


LAUNCHER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)  # its TORCHELASTIC_SIGNALS_TO_HANDLE


@contextmanager
def interruptible_launcher() -> Iterator[None]:
    """Ctrl-C during a launch raises KeyboardInterrupt, as in one process: the launcher raises its own
    SignalException instead, and leaves its signal handlers behind, which would do so for a later
    Ctrl-C too. Its warnings as it closes the ranks stay off the console, where our one line goes."""
    handlers = {sig: signal.getsignal(sig) for sig in LAUNCHER_SIGNALS}
    loggers = {log: log.level for log in map(logging.getLogger, list(logging.root.manager.loggerDict))
               if log.name.startswith("torch.distributed.elastic")}
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        yield
    except SignalException as err:
        if err.sigval != signal.SIGINT:
            raise
        raise KeyboardInterrupt from None
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for log, level in loggers.items():
            log.setLevel(level)


def quiet_on_interrupt(worker: Callable[..., Any], *args: Any) -> Any:
    """One rank: worker(*args). Ctrl-C reaches every rank; each ends without a traceback, and the
    parent says the one line."""
    signal.signal(signal.SIGINT, interrupted_once)
    try:
        return worker(*args)
    except KeyboardInterrupt:
        sys.exit(130)


def interrupted_once(signum: int, frame: Any) -> None:
    """The first SIGINT stops the rank; the one the launcher sends as it closes the ranks would
    interrupt the unwinding (a progress bar closing) with a traceback, so it is ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def join(device_type: str) -> None:
    """Join the process group that the launcher set up (env://); a no-op in a single process."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def wrap_ddp(module: nn.Module) -> nn.Module:
    """`module` whose backward averages gradients over the ranks (itself in a single process).
    Call the wrapper for training forward passes; the module itself still evaluates."""
    if world_size() == 1:
        return module
    on_gpu = next(module.parameters()).is_cuda
    return nn.parallel.DistributedDataParallel(module, device_ids=[local_rank()] if on_gpu else None)


def shard(n: int, batch: int = 1) -> range:
    """This rank's contiguous share of n items, cut at multiples of `batch`: iterating it in steps
    of `batch` gives exactly the batches a single process would see, split between the ranks."""
    batches = -(-n // batch)
    first, last = batches * rank() // world_size(), batches * (rank() + 1) // world_size()
    return range(min(n, first * batch), min(n, last * batch))


def my_part(items):
    """This rank's slice of a global batch (a tensor or a sequence); all of it in a single process."""
    part = shard(len(items))
    return items[part.start : part.stop]


def shard_loader(loader: DataLoader) -> tuple[DataLoader, int]:
    """The same loader over this rank's `shard` of its dataset, and the index of its first item."""
    if world_size() == 1:
        return loader, 0
    mine = shard(len(loader.dataset), loader.batch_size)
    return DataLoader(Subset(loader.dataset, mine), batch_size=loader.batch_size, num_workers=loader.num_workers,
                      pin_memory=loader.pin_memory), mine.start


def sum_over_ranks(*counts: float) -> list:
    """Numbers summed over the ranks: evaluation counts (correct, total) exactly, as integers."""
    if world_size() == 1:
        return list(counts)
    exact = all(isinstance(c, int) for c in counts)
    total = torch.tensor(counts, dtype=torch.int64 if exact else torch.float64)
    dist.all_reduce(total)
    return total.tolist()


def gather(part: torch.Tensor | None, dim: int = 0) -> torch.Tensor | None:
    """Every rank's `part` (each from its `shard`), concatenated in rank order along `dim`: the
    tensor a single process would have built."""
    if world_size() == 1:
        return part
    parts = [None] * world_size()
    dist.all_gather_object(parts, part)
    parts = [p for p in parts if p is not None]
    return torch.cat(parts, dim) if parts else None


def from_main(value: Any) -> Any:
    """Rank 0's value on every rank (e.g. whether a cached checkpoint exists, so all ranks decide alike)."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
