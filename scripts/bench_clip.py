#!/usr/bin/env python
"""Paper Table 1: time and peak memory of a zero-shot pass with equitune, equizero and λ-equitune.

    python scripts/bench_clip.py [--models RN50,ViT-B-32] [--batches 3] [--device cpu|cuda]

Protocol: `--batches` batches of 32 random 224-px images, rot90 (4 views each, one batched
encoder pass), a 1000-class zero-shot head of random unit text embeddings, open_clip models with
random weights (timing needs no trained weights), after one warm-up batch; the median time per
batch. Each (model, method) runs in its own process, so each peak is its own: on CUDA
torch.cuda.max_memory_allocated, on a CPU the peak resident set size; "of it the pass" is the peak
above what was allocated before the first batch (weights, inputs), i.e. what the pass itself adds. λ reads the image features of the same encoder pass; "λ (frozen
copy)" adds the second image-tower pass of the paper's finetuning setting.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from equi import paper
from equi.report import outputs_root
from equi.results import write_json_atomic

METHODS = ["equitune", "equizero", "lambda", "lambda_frozen"]


def paper_ratio(model: str) -> str:
    """Table 1's λ / equitune ratios of time and memory for `model` (basu2023.yaml's table1), or -."""
    ratios = [paper.find("table1", model, column) for column in ("time", "memory")]
    return "-" if None in ratios else f"{ratios[0]}×, {ratios[1]}×"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child(model_name: str, method_name: str, batches: int, device_name: str) -> dict:
    import torch

    from equi.config import compose_config
    from equi.groups import image
    from equi.methods import wrap
    from equi.models.clip import ImageEncoder, ZeroShotHead, random_clip
    from equi.tasks.clip.runner import with_frozen_lambda_features

    device = torch.device(device_name)
    torch.manual_seed(0)
    model = random_clip(model_name).to(device).eval()
    dim = model.visual.output_dim
    heads = torch.nn.functional.normalize(torch.randn(dim, 1000, device=device), dim=0)
    method = compose_config(["task=clip", f"method={method_name.removesuffix('_frozen')}"]).method
    head = ZeroShotHead(heads, 1.0, probabilities=method.name != "equizero")
    net = wrap(method, head, group=image.rot90(), invariant=True, encoder=ImageEncoder(model.visual),
               feature_dim=dim, default_proxy="neg_similarity")
    if method_name == "lambda_frozen":
        net = with_frozen_lambda_features(method, net, dim)
    net = net.to(device).eval()
    x = torch.randn(batches + 1, 32, 3, 224, 224, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = rss_mb()
    times = []
    with torch.no_grad():
        net(x[0])  # warm-up
        for batch in x[1:]:
            sync()
            start = time.perf_counter()
            net(batch)
            sync()
            times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"s_per_batch": statistics.median(times), "peak_mb": peak, "pass_mb": peak - base}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="RN50,ViT-B-32")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when torch sees a GPU)")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=outputs_root() / "tables" / "table1.md",
                        help="the table; its numbers also go beside it as .json (make paper reads them)")
    args = parser.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.child:
        print(json.dumps(child(*args.child, args.batches, args.device)))
        return 0
    if args.batches < 1:
        print("error: --batches must be at least 1", file=sys.stderr)
        return 2
    memory = "torch.cuda.max_memory_allocated" if args.device == "cuda" else "peak resident set size of the process"
    print(f"zero-shot pass: {args.batches} batches of 32 images × 4 rot90 views, 224 px, 1000 classes, random weights, "
          f"device {args.device}; memory = {memory}")
    lines = [f"Device: {args.device}; {args.batches} batches of 32 images, rot90, random weights; memory: {memory}.", "",
             "| model | method | s / batch (median) | peak MB | of it the pass | time / equitune | peak / equitune "
             "| pass / equitune | paper λ / equitune (time, memory) |",
             "|---|---|---|---|---|---|---|---|---|"]
    every = {}
    for model in args.models.split(","):
        results = every[model] = {}
        for method in METHODS:
            out = subprocess.run([sys.executable, __file__, "--child", model, method, "--batches", str(args.batches),
                                  "--device", args.device], capture_output=True, text=True)
            if out.returncode != 0:
                last = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1]
                print(f"error: {model} {method}: {last}", file=sys.stderr)
                return 1
            results[method] = json.loads(out.stdout.strip().splitlines()[-1])
            base = results["equitune"]
            r = results[method]
            ratio = paper_ratio(model) if method == "lambda" else "-"
            line = (f"| {model} | {method.replace('_frozen', ' (frozen copy)')} | {r['s_per_batch']:.3f} | {r['peak_mb']:.0f} "
                    f"| {r['pass_mb']:.0f} | {r['s_per_batch'] / base['s_per_batch']:.2f}× "
                    f"| {r['peak_mb'] / base['peak_mb']:.2f}× | {r['pass_mb'] / base['pass_mb']:.2f}× | {ratio} |")
            lines.append(line)
            print(line, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    write_json_atomic(args.out.with_suffix(".json"), {"device": args.device, "batches": args.batches, "results": every})
    print(f"table: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
