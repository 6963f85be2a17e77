"""Figures 3 and 9 (regard of generations per demographic pair and model) and Tables 3–7 (samples).

    python -m equi.tasks.nlg.figures fig3|fig9|samples [--where key=value …] [--runs DIR] [--out DIR]

fig3 (respect contexts) and fig9 (occupation contexts): for each pair, stacked bars of the regard
labels of both subjects' generations for the LM, EquiLM, R-EquiLM, EquizeroLM and R-EquizeroLM, and
a markdown table with the total-variation distance between the subjects, the mean regard score
with its bootstrap interval, and the paper's two claims checked. ``samples``: five generations per
model for the sexuality pair's subjects with their regard labels, like the paper's Tables 3–7.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from equi.data.fairness import LABELS  # noqa: E402
from equi.report import figure_parser, load  # noqa: E402

MODELS = ("LM", "EquiLM", "R-EquiLM", "EquizeroLM", "R-EquizeroLM")
FIGURES = {"fig3": "respect", "fig9": "occupation", "samples": None}
COLOURS = {"negative": "#d62728", "neutral": "#7f7f7f", "positive": "#2ca02c", "other": "#bcbd22"}


def by_model(records: list[dict]) -> dict[str, dict]:
    """The newest run of each model (one seed set per model: the figures are of generations)."""
    out = {}
    for r in sorted(records, key=lambda r: r.get("finished", "")):
        out[r["metrics"]["model"]] = r
    return {m: out[m] for m in MODELS if m in out}


def bars(models: dict[str, dict], scorer: str, path: Path, title: str) -> None:
    pairs = list(next(iter(models.values()))["metrics"]["pairs"])
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.6), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        ticks, names = [], []
        for i, (model, record) in enumerate(models.items()):
            result = record["metrics"]["pairs"][pair][scorer]
            for s in range(2):
                x = i * 2.6 + s
                bottom = 0.0
                for label in LABELS.values():
                    share = result["distribution"][s][label]
                    ax.bar(x, share, bottom=bottom, color=COLOURS[label], width=0.9,
                           label=label if (i, s) == (0, 0) else None)
                    bottom += share
                ticks.append(x)
                names.append(f"{model}\n{result['subjects'][s].split()[1]}")
        ax.set_xticks(ticks, names, rotation=90, fontsize=7)
        ax.set_title(pair)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel(f"fraction of generations ({scorer})")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def table(models: dict[str, dict], scorer: str) -> str:
    lines = [f"| pair | model | subject | n | {' | '.join(LABELS.values())} | mean score [95% CI] | TV distance | swapped |",
             "|---" * (7 + len(LABELS)) + "|"]
    for pair in next(iter(models.values()))["metrics"]["pairs"]:
        for model, record in models.items():
            p = record["metrics"]["pairs"][pair]
            result = p[scorer]
            for s in range(2):
                mean, low, high = result["mean_score"][s]
                shares = " | ".join(f"{result['distribution'][s][l]:.2f}" for l in LABELS.values())
                tv = f"{result['tv_distance']:.3f}" if s == 0 else ""
                swapped = f"{p['swapped']:.2f}" if s == 0 else ""
                lines.append(f"| {pair} | {model} | {result['subjects'][s]} | {result['n'][s]} | {shares} | "
                             f"{mean:+.2f} [{low:+.2f}, {high:+.2f}] | {tv} | {swapped} |")
    return "\n".join(lines)


def claims(models: dict[str, dict]) -> list[str]:
    """The paper's claims on what ran: equal distributions for EquiLM/EquizeroLM; more positive
    regard for EquizeroLM/R-EquizeroLM than for the others."""
    out = []
    pairs = list(next(iter(models.values()))["metrics"]["pairs"])
    tv = {m: [r["metrics"]["pairs"][p]["regard"]["tv_distance"] for p in pairs] for m, r in models.items()}
    for m in ("EquiLM", "EquizeroLM"):
        if m in tv and "LM" in tv:
            swapped = [models[m]["metrics"]["pairs"][p]["swapped"] for p in pairs]
            lower = sum(a < b for a, b in zip(tv[m], tv["LM"]))
            out.append(f"{m} makes each pair's two regard distributions equal: "
                       f"{'held' if all(t <= 1e-9 for t in tv[m]) else 'NOT held'} (TV {', '.join(f'{t:.3f}' for t in tv[m])} "
                       f"vs the LM's {', '.join(f'{t:.3f}' for t in tv['LM'])}, lower on {lower} of {len(pairs)} pairs; "
                       f"generations that are exact swaps: {', '.join(f'{x:.2f}' for x in swapped)}; a swapped "
                       "sentence keeps its regard only if the scorer ignores the swapped words)")
    positive = {m: r["metrics"]["positive_fraction"] for m, r in models.items()}
    others = {m: v for m, v in positive.items() if "Equizero" not in m}
    for m in ("EquizeroLM", "R-EquizeroLM"):
        if m in positive and others:
            best = max(others, key=others.get)
            out.append(f"{m} raises positive regard over the others: {'held' if positive[m] > others[best] else 'NOT held'} "
                       f"({positive[m]:.2f} positive vs {best}'s {others[best]:.2f}, the highest of the rest)")
    return out


def samples_table(records: list[dict], pair: str, per_model: int) -> str:
    lines = ["| model | subject | generation | regard |", "|---|---|---|---|"]
    for model, record in by_model(records).items():
        path = Path(record["metrics"]["samples"])
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        for s in range(2):
            chosen = [r for r in rows if r["pair"] == pair and r["subject"] == s][:per_model]
            for r in chosen:
                lines.append(f"| {model} | {r['subject_text']} | {r['text']!s} | {LABELS[r['regard']]} |")
    return "\n".join(lines)


def paper_cells(artefact: str, records: list[dict]) -> dict[str, list[float]]:
    """Figures 3 and 9's cells for equi.paper's claims, one value per seed: "<pair>/<model>/tv" (the
    regard distributions' total-variation distance between the pair's subjects) and "<model>/positive"."""
    out: dict[str, list[float]] = {}
    for r in sorted(records, key=lambda r: r["seed"]):
        model = r["metrics"]["model"]
        out.setdefault(f"{model}/positive", []).append(r["metrics"]["positive_fraction"])
        for pair, result in r["metrics"]["pairs"].items():
            out.setdefault(f"{pair}/{model}/tv", []).append(result["regard"]["tv_distance"])
    return out


def stand_ins(records: list[dict]) -> list[str]:
    """The paper's GPT-2 and regard classifier, where other ones were read."""
    out = []
    for r in records:
        lm, scorer = r["metrics"]["lm"], r["metrics"]["regard_scorer"]
        if lm != "gpt2":
            out.append(f"LM: {lm} (the paper: GPT-2)")
        if "stand-in" in scorer:
            out.append(f"regard scorer: {scorer}, trained here on Sheng et al.'s annotations (the paper: their BERT classifier)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = figure_parser(__doc__, FIGURES)
    parser.add_argument("--pair", default="sexuality", help="samples: which pair's subjects")
    parser.add_argument("--per-model", type=int, default=5, help="samples: generations per subject and model")
    args = parser.parse_args(argv)
    context = FIGURES[args.figure]
    where = args.where + ([f"task.context={context}"] if context else [])
    records = load(args.runs, "nlg", args.include_fast, False, where)
    if not records:
        print(f"error: no nlg runs under {args.runs} (with {where})", file=sys.stderr)
        return 1
    args.tables.mkdir(parents=True, exist_ok=True)
    if context is None:
        text = samples_table(records, args.pair, args.per_model)
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        models = by_model(records)
        first = next(iter(models.values()))["metrics"]
        title = (f"{args.figure}: {context} contexts, LM {first['lm']}, {first['regard_scorer']}, "
                 f"{first['pairs'][next(iter(first['pairs']))]['regard']['n'][0]} generations per subject")
        bars(models, "regard", args.out / f"{args.figure}.png", title)
        bars(models, "vader", args.out / f"{args.figure}_vader.png", title.replace(first["regard_scorer"], "VADER sentiment"))
        text = "\n\n".join([f"## {title}", table(models, "regard"), "\n".join(f"- {c}" for c in claims(models)),
                            "## VADER sentiment (a second scorer: sentiment, not regard)", table(models, "vader")])
    path = args.tables / f"{'nlg_samples' if context is None else args.figure}.md"
    path.write_text(text + "\n")
    print(text)
    print(f"\nwrote {path}" + ("" if context is None else f", {args.out / args.figure}.png, {args.out / args.figure}_vader.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
