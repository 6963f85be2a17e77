"""Scale-out on the CPU: DDP over gloo (the code path nccl takes on GPUs), a sweep through
submitit's local launcher, a sweep killed halfway and resumed, and two runs of one key at once."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from equi import distributed, methods
from equi.data import cifar
from equi.groups import image
from equi.models.cnn import cifar_resnet
from equi.tasks.cnn import toolkit as cnn

from .conftest import REPO

TINY = ["task=synthetic", "fast=true", "logger=none", "hardware.threads=1"]
SLOW = TINY[:-1] + ["task.fast.epochs=6"]  # a few seconds per run, so that a run can be caught midway (fast: sets task.epochs)
FIT = OmegaConf.create({"epochs": 1, "examples_per_epoch": None, "batch_size": 16, "optimizer": "sgd", "lr": 0.05,
                        "schedule": "constant", "weight_decay": 0.0, "label_smoothing": 0.0})


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True, text=True, timeout=180,
                          **kwargs)


def results(outputs):
    return sorted((outputs / "runs").glob("*/results.json"))


def test_two_processes_write_results_once(tmp_path):
    outputs = tmp_path / "outputs"
    result = run_cli(*TINY, "hardware.nproc=2")
    assert result.returncode == 0, result.stderr
    [path] = results(outputs)
    record = json.loads(path.read_text())
    assert record["processes"] == 2
    logs = {p.parent.name: p.read_text() for p in (path.parent / "ranks").glob("*/attempt_0/*/stdout.log")}
    assert sorted(logs) == ["0", "1"]
    assert "results: " in logs["0"] and "results: " not in logs["1"]  # rank 1 wrote and printed nothing
    assert not list(path.parent.glob(".results.json.*"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def tiny_equitune():
    torch.manual_seed(0)
    model = cifar_resnet(widths=(8, 8, 16, 16))
    return methods.wrap(OmegaConf.create({"name": "equitune"}), model, group=image.rot90(), invariant=True)


def tiny_cifar(n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8), torch.randint(10, (n,), generator=gen)


def ddp_rank(rank: int, port: int, out: str) -> None:
    """A few DDP finetuning steps of the cnn task's loop, then its sharded evaluation."""
    os.environ.update(MASTER_ADDR="localhost", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    net = tiny_equitune()
    images, labels = tiny_cifar(64, 1)
    cnn.fit(net, list(net.parameters()), images, labels, FIT, torch.Generator().manual_seed(3), "cpu", "ddp",
            rotated=True, stats=cifar.STATS)
    test, test_labels = tiny_cifar(50, 2)
    accuracy, weights = cnn.evaluate(net, cifar.normalize(test), test_labels, 8, "cpu", "test")
    params = b"".join(p.detach().numpy().tobytes() for p in net.parameters())
    torch.save({"hash": hashlib.sha1(params).hexdigest(), "accuracy": accuracy, "weights": weights,
                "state": net.state_dict()}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_ranks_stay_identical_and_evaluate_like_one_process(tmp_path):
    mp.spawn(ddp_rank, args=(free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["hash"] == ranks[1]["hash"]  # the same parameters after the DDP steps
    assert ranks[0]["accuracy"] == ranks[1]["accuracy"]
    net = tiny_equitune()
    net.load_state_dict(ranks[0]["state"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        test, test_labels = tiny_cifar(50, 2)
        accuracy, weights = cnn.evaluate(net, cifar.normalize(test), test_labels, 8, "cpu", "test")
    finally:
        torch.set_num_threads(threads)
    assert distributed.world_size() == 1
    assert accuracy == ranks[0]["accuracy"]  # exactly: the counts are summed, each batch is the same
    assert torch.equal(weights, ranks[0]["weights"])


def test_sweep_through_submitit_local(tmp_path):
    outputs = tmp_path / "outputs"
    result = run_cli("-m", "hydra/launcher=submitit_local", *TINY, "seed=0,1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(json.loads(p.read_text())["seed"] for p in results(outputs)) == [0, 1]


def test_killed_sweep_resumes_without_recomputing(tmp_path):
    outputs = tmp_path / "outputs"
    command = [sys.executable, "run.py", "-m", *SLOW, "seed=0,1,2"]
    sweep = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not results(outputs) and time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.05)
    sweep.send_signal(signal.SIGKILL)  # midway through the second run, which holds its lock
    sweep.wait()
    [first] = results(outputs)
    stamp = first.stat().st_mtime_ns
    rerun = run_cli("-m", *SLOW, "seed=0,1,2")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "sweep: 3 runs: 2 finished, 1 skipped, 0 failed" in rerun.stdout
    assert len(results(outputs)) == 3 and first.stat().st_mtime_ns == stamp


def test_two_runs_of_one_key_at_once_give_one_result(tmp_path):
    command = [sys.executable, "run.py", *SLOW, "task.fast.epochs=40"]  # outlasts the second process's start-up, even on a busy machine
    both = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outs = [run.communicate(timeout=120)[0] for run in both]
    assert [run.returncode for run in both] == [0, 0]
    ran, waited = sorted(outs, key=lambda out: "wait: " in out)
    assert "results: " in ran and "wait: " not in ran
    assert "wait: " in waited and "skip: finished run" in waited and "results: " not in waited
    [path] = results(tmp_path / "outputs")
    assert json.loads(path.read_text())["metrics"]["test_loss"] > 0
