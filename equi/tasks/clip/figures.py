"""CLIP under rotations and flips (paper Figures 4, 5a, 7, 8, 11a, 12, and the offline stand-in).

    python -m equi.tasks.clip.figures fig7|fig4|fig8|fig5a|fig11a|fig12|offline [--where key=value …]

Reads task=clip runs; writes bar charts of zero-shot top-1 and finetuning curves as PNGs, and a
markdown table with the paper's numbers beside ours (read off its plots, ±0.5: equi/paper/basu2023.yaml's
fig7, fig4, fig5a, fig11a). The paper's "flip" is a 180° rotation (`torch.flip(dims=(-2, -1))` in its
code): rows labelled "flip (paper: rot180)" reproduce it; "mirror (ours)" is a true left-right flip.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from equi import paper  # noqa: E402
from equi.data import imagesets  # noqa: E402
from equi.errors import UserError  # noqa: E402
from equi.groups.image import BY_NAME as GROUPS  # noqa: E402
from equi.plots import views_figure  # noqa: E402
from equi.report import figure_parser, load, mean_std, stats  # noqa: E402

TRANSFORMS = {"none": "upright", "rot180": "flip (paper: rot180)", "flip": "mirror (ours)", "rot90": "rot90"}
METHODS = ["vanilla", "equitune", "equizero", "lambda"]
VANILLA = {"cifar100": "fig7", "imagenetv2": "fig4"}  # the paper's vanilla bars of each dataset (basu2023.yaml)
FINETUNE = ("fig5a", "fig11a")  # its finetuning curves on rot90-CIFAR-100: RN50, RN101; ViT-B-32, ViT-B-16
FINETUNE_STEPS = (0, 4000)  # the steps of its curves that basu2023.yaml holds
FIGURES = {  # name: (dataset, what it shows)
    "fig7": ("cifar100", "vanilla"), "fig4": ("imagenetv2", "vanilla+methods"), "fig8": ("cifar100", "methods"),
    "fig5a": ("cifar100", "curves"), "fig11a": ("cifar100", "curves"), "fig12": ("cifar100", "lambda"),
    "offline": ("cifar10", "all"),
}


def paper_vanilla(dataset: str, model: str, transform: str) -> float | None:
    number = paper.find(VANILLA[dataset], model, transform) if dataset in VANILLA else None
    return number.value if number is not None and number.known else None


def paper_finetune(model: str, method: str) -> tuple[float, float] | None:
    """The paper's top-1 of `method` on `model` at finetuning steps 0 and 4000, or None."""
    for artefact in FINETUNE:
        readings = [paper.find(artefact, model, method, step) for step in FINETUNE_STEPS]
        if None not in readings:
            return tuple(r.value for r in readings)
    return None


def warn_if_mixed(runs: dict) -> None:
    """A bar or curve must average seeds only: say so when one holds two runs of the same seed."""
    for key, seeds in runs.items():
        if len(set(seeds)) < len(seeds):
            print(f"warning: {' '.join(map(str, key))} holds {len(seeds)} runs for seeds {sorted(set(seeds))}: runs with "
                  "other settings share it; narrow the figure with --where", file=sys.stderr)


def zero_shot_groups(records: list[dict]) -> dict:
    """(model, transform, method) → zero-shot top-1 of each seed."""
    groups, seeds = defaultdict(list), defaultdict(list)
    for r in records:
        key = (r["metrics"]["model"], r["metrics"]["transform"], r["method"])
        groups[key].append(r["metrics"]["zero_shot_accuracy"])
        seeds[key].append(r["seed"])
    warn_if_mixed(seeds)
    return groups


def bar_panel(ax, groups: dict, models: list[str], series: list[tuple[str, str, str]], title: str) -> None:
    """Bars per model, one per (transform, method, label) series, with seed std as error bars."""
    width = 0.8 / max(len(series), 1)
    for i, (transform, method, label) in enumerate(series):
        values = [stats(groups[(m, transform, method)]) if groups.get((m, transform, method)) else (np.nan, 0) for m in models]
        ax.bar(np.arange(len(models)) + i * width, [v[0] for v in values], width, yerr=[v[1] for v in values], label=label)
    ax.set_xticks(np.arange(len(models)) + width * (len(series) - 1) / 2, models)
    ax.set_ylabel("zero-shot top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)


def present(groups: dict, models: list[str], transforms: list[str], methods: list[str]) -> list[tuple[str, str]]:
    return [(t, m) for t in transforms for m in methods if any(groups.get((x, t, m)) for x in models)]


def zero_shot_table(groups: dict, dataset: str, models: list[str]) -> str:
    lines = ["| model | transform | method | zero-shot top-1 (%), ours | seeds | paper (vanilla) |", "|---|---|---|---|---|---|"]
    for model in models:
        for transform, label in TRANSFORMS.items():
            for method in METHODS:
                values = groups.get((model, transform, method))
                if values:
                    reading = paper_vanilla(dataset, model, transform) if method == "vanilla" else None
                    lines.append(f"| {model} | {label} | {method} | {mean_std(values, 1)} | {len(values)} | "
                                 f"{'-' if reading is None else reading} |")
    return "\n".join(lines)


def bars_figure(groups: dict, models: list[str], what: str, dataset: str, path: Path) -> None:
    panels = []
    if "vanilla" in what or what == "all":
        panels.append(("vanilla under each transform", [(t, "vanilla", TRANSFORMS[t]) for t, _ in
                                                        present(groups, models, list(TRANSFORMS), ["vanilla"])]))
    if "methods" in what or what == "all":
        for transform in ("rot90", "rot180", "flip"):
            series = [(t, m, m) for t, m in present(groups, models, [transform], METHODS)]
            if series:
                panels.append((f"methods under {TRANSFORMS[transform]}", series))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels):
        bar_panel(ax, groups, models, series, f"{dataset}: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def curves(records: list[dict]) -> dict:
    """(model, method) → {step: [top-1 of each seed]} of finetuning runs."""
    out: dict = defaultdict(lambda: defaultdict(list))
    seeds = defaultdict(list)
    for r in records:
        if r["metrics"]["finetune_steps"]:
            seeds[(r["metrics"]["model"], r["method"])].append(r["seed"])
            for step, value in r["metrics"]["curve"].items():
                out[(r["metrics"]["model"], r["method"])][int(step)].append(value)
    warn_if_mixed(seeds)
    return out


def curves_figure_and_table(runs: dict, models: list[str], path: Path) -> str:
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.8), squeeze=False)
    lines = ["| model | method | step 0 | last step | steps | seeds | paper 0 → 4000 |", "|---|---|---|---|---|---|---|"]
    for ax, model in zip(axes[0], models):
        for method in ("equitune", "equizero", "lambda", "vanilla"):
            by_step = runs.get((model, method))
            if not by_step:
                continue
            steps = sorted(by_step)
            mean = np.array([stats(by_step[s])[0] for s in steps])
            std = np.array([stats(by_step[s])[1] for s in steps])
            line = ax.plot(steps, mean, marker="o", label=method)[0]
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2, color=line.get_color())
            readings = paper_finetune(model, method)
            if readings:
                ax.plot(FINETUNE_STEPS, readings, ls="--", marker="x", color=line.get_color(), alpha=0.6,
                        label=f"{method} (paper)")
            lines.append(f"| {model} | {method} | {mean_std(by_step[steps[0]], 1)} | {mean_std(by_step[steps[-1]], 1)} "
                         f"| {steps[-1]} | {len(by_step[steps[-1]])} | {f'{readings[0]} → {readings[1]}' if readings else '-'} |")
        ax.set_title(f"{model}: finetuning on the transformed training split", fontsize=10)
        ax.set_xlabel("finetuning step")
        ax.set_ylabel("test top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return "\n".join(lines)


def lambda_figure(record: dict, path: Path) -> None:
    """Figure 12: the shown test images of a λ-equitune run, view by view."""
    config, shown = record["config"], record["metrics"]["weight_examples"]
    task = config["task"]
    root = imagesets.root_for(task["dataset"], task["data_root"], Path(config["paths"]["data"]))
    test = imagesets.load(task["dataset"], root, "test", task["eval_per_class"], 224, None)
    rows = [(test[i][0], t, w) for i, t, w in zip(shown["index"], shown["element"], shown["weights"])]
    views_figure(rows, GROUPS[record["metrics"]["group"]](),
                 f"λ-equitune, {record['metrics']['model']} on {task['dataset']}: weight of each view", path)


def upright_table(lam: list[dict]) -> str:
    """λ's weight on the upright view, per model, transform and finetuning budget (uniform is 1/|G|)."""
    runs = defaultdict(list)
    for r in lam:
        runs[(r["metrics"]["model"], r["metrics"]["transform"], r["metrics"]["finetune_steps"])].append(r["metrics"])
    lines = ["| model | transform | finetuning steps | λ on the upright view | upright view weighted most | uniform | seeds |",
             "|---|---|---|---|---|---|---|"]
    for (model, transform, steps), ms in sorted(runs.items()):
        lines.append(f"| {model} | {TRANSFORMS[transform]} | {steps} | {mean_std([m['upright_weight'] for m in ms], 2)} "
                     f"| {mean_std([m['upright_argmax_rate'] for m in ms], 2)} "
                     f"| {1 / len(ms[0]['weight_examples']['weights'][0]):.2f} | {len(ms)} |")
    return "\n".join(lines)


def orderings(groups: dict, models: list[str]) -> list[str]:
    """The paper's zero-shot claims, checked on what ran ("not run" where a side is missing)."""
    def verdict(low, high):
        if low is None or high is None:
            return "not run"
        return f"{'holds' if high > low else 'does not hold'} ({high:.2f} vs {low:.2f})"

    out = []
    for model in models:
        def mean(t, m):
            return stats(groups[(model, t, m)])[0] if groups.get((model, t, m)) else None
        for t in ("rot90", "rot180", "flip"):
            v, eq, ez, lam = (mean(t, m) for m in METHODS)
            out.append(f"{model}, {TRANSFORMS[t]}: vanilla drops: {verdict(v, mean('none', 'vanilla'))}; "
                       f"equizero > equitune: {verdict(eq, ez)}; λ > equitune: {verdict(eq, lam)}")
    return out


def paper_cells(artefact: str, records: list[dict], bench: dict | None = None) -> dict[str, list[float]]:
    """The cells equi.paper's claims read, one value per seed. Zero-shot figures (7, 4, 8):
    "<model>/<transform>/<method>"; finetuning (5a, 11a): "<model>/<method>/0" and ".../last";
    Figure 12: "<model>/upright_weight" and "<model>/upright_argmax_rate" (a model at CLIP's own
    logit scale, task.logit_scale=model, is "<model>@model-scale"); Table 1 (from its
    benchmark's json, `bench`): "<model>/time", "<model>/memory" (λ over equitune), "<model>/equizero_time"."""
    out: dict[str, list[float]] = defaultdict(list)
    if artefact == "table1":
        for model, methods in (bench or {}).get("results", {}).items():
            base = methods["equitune"]
            out[f"{model}/time"].append(methods["lambda"]["s_per_batch"] / base["s_per_batch"])
            out[f"{model}/memory"].append(methods["lambda"]["peak_mb"] / base["peak_mb"])
            out[f"{model}/equizero_time"].append(methods["equizero"]["s_per_batch"] / base["s_per_batch"])
        return dict(out)
    for r in sorted(records, key=lambda r: r["seed"]):
        m = r["metrics"]
        model = m["model"] + ("@model-scale" if r["config"]["task"]["logit_scale"] == "model" else "")
        if not m["finetune_steps"]:
            out[f"{model}/{m['transform']}/{r['method']}"].append(m["zero_shot_accuracy"])
            if r["method"] == "lambda" and m["transform"] == "rot90" and "upright_weight" in m:
                out[f"{model}/upright_weight"].append(m["upright_weight"])
                out[f"{model}/upright_argmax_rate"].append(m["upright_argmax_rate"])
        elif m["transform"] == "rot90":
            curve = {int(k): v for k, v in m["curve"].items()}
            out[f"{model}/{r['method']}/0"].append(curve[0])
            out[f"{model}/{r['method']}/last"].append(curve[max(curve)])
    return dict(out)


def stand_ins(records: list[dict]) -> list[str]:
    """CLIP and data other than the paper's."""
    return [f"CLIP: {r['metrics']['weights']} (a small open_clip model, not OpenAI's), on {r['metrics']['dataset']}"
            for r in records if r["metrics"]["model"] == "standin"]


def main(argv: list[str] | None = None) -> int:
    parser = figure_parser(__doc__, FIGURES)
    parser.add_argument("--models", help="only these models (comma-separated open_clip names, or standin)")
    args = parser.parse_args(argv)
    dataset, what = FIGURES[args.figure]
    records = load(args.runs, "clip", args.include_fast, False, [f"task.dataset={dataset}", *args.where])
    if args.models:
        records = [r for r in records if r["metrics"]["model"] in args.models.split(",")]
    if not records:
        print(f"error: no clip runs on {dataset} under {args.runs} (with {args.where or 'any settings'})", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    args.tables.mkdir(parents=True, exist_ok=True)
    models = sorted({r["metrics"]["model"] for r in records}, key=lambda m: (m not in paper.artefact("fig7").rows, m))
    texts, figures = [], []
    zero_shot = [r for r in records if not r["metrics"]["finetune_steps"]]
    if zero_shot and what in ("vanilla", "methods", "vanilla+methods", "all"):
        groups = zero_shot_groups(zero_shot)
        texts.append(zero_shot_table(groups, dataset, models))
        figures.append(args.out / f"{args.figure}.png")
        bars_figure(groups, models, what, dataset, figures[-1])
        if what == "all":
            texts.append("\n".join(f"- {line}" for line in orderings(groups, models)))
    runs = curves(records)
    if runs and what in ("curves", "all"):
        figures.append(args.out / f"{args.figure}{'_curves' if what == 'all' else ''}.png")
        texts.append(curves_figure_and_table(runs, [m for m in models if any(k[0] == m for k in runs)], figures[-1]))
    lam = [r for r in records if r["method"] == "lambda" and "weight_examples" in r["metrics"]]
    if lam and what in ("lambda", "all"):
        figures.append(args.out / f"{args.figure}{'_lambda' if what == 'all' else ''}.png")
        try:  # Figure 12's setting first: zero-shot, rot90
            lambda_figure(min(lam, key=lambda r: (r["metrics"]["finetune_steps"], r["metrics"]["transform"] != "rot90",
                                                  r["seed"])), figures[-1])
        except UserError as err:  # the test images are not on this machine
            print(f"error: {err}", file=sys.stderr)
            return 2
        texts.append(upright_table(lam))
    if not texts:
        print(f"error: the {args.figure} runs found hold nothing for this figure", file=sys.stderr)
        return 1
    text = "\n\n".join(texts)
    print(text)
    (args.tables / f"{args.figure}.md").write_text(text + "\n")
    for f in figures:
        print(f"figure: {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
